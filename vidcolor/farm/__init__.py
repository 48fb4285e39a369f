"""Render-farm support: frame-range chunks, and a Ray runner that renders and merges them.

Chunks are planned, named and found by ``vidcolor.pipeline.segments`` (shared with ``colorize
--resume``); ``vidcolor.farm.chunks`` (the folder lock) imports neither Ray nor torch;
``run_farm`` and the rest of ``vidcolor.farm.ray_executor`` load them only when used, so
``import vidcolor.farm`` stays quick and works without the ``farm`` extra.
"""

from __future__ import annotations

from vidcolor.pipeline.segments import ChunkLayout, chunk_name, parse_chunk_name, plan_chunks

__all__ = ["ChunkLayout", "FarmError", "FarmReport", "chunk_name", "parse_chunk_name", "plan_chunks", "run_farm"]


def __getattr__(name: str):
    if name in ("run_farm", "FarmReport", "FarmError"):
        from vidcolor.farm import ray_executor  # Ray and torch: only when the farm is used

        return getattr(ray_executor, name)
    raise AttributeError(name)
