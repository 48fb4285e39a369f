"""What identifies a render: the model, the options that change pixels, and the stamp made of them.

The same functions serve ``colorize --frames`` (the stamp of a hand-made chunk), ``--resume``
(its manifest and its segments' stamps) and ``farm`` (its manifest and the stamp it hands its
tasks), so all three identify a render alike and their files can be compared and merged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from vidcolor.config import ColorizeConfig
from vidcolor.io.codecs import effective_crf
from vidcolor.io.stamp import make_stamp, settings_fingerprint, source_fingerprint
from vidcolor.models.generator import Generator
from vidcolor.models.weights import read_model_card, resolve_model_path
from vidcolor.pipeline.reference import reference_identity
from vidcolor.pipeline.style import effective_style


def model_identity(model: str | os.PathLike | Generator | None) -> dict[str, Any]:
    """What identifies a model's weights, for manifests and chunk stamps.

    Args:
        model: a model name or path (identified by its card's sha256, else the weights' size
            and mtime: cheap, no hashing of the file), or a loaded generator (hashed).

    Returns:
        ``{"model": ..., "model_sha256": ...}``.

    Raises:
        ModelError: a model name or path whose card is missing or corrupt.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return {"model": "<in-memory generator>", "model_sha256": digest.hexdigest()}
    card = read_model_card(model)  # ModelError now, before any work, for a missing model
    weights, _ = resolve_model_path(model)
    sha = card.get("sha256")
    if not sha and weights.is_file():
        st = weights.stat()
        sha = f"size {st.st_size}, mtime {st.st_mtime_ns}"
    return {"model": weights.stem, "model_sha256": sha}


def render_settings(cfg: ColorizeConfig, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The options that decide a chunk's pixels, as JSON-friendly values.

    The same function serves ``farm`` (its manifest and the stamp it hands its tasks) and
    ``colorize --frames`` (the stamp of a hand-made chunk), so both stamp alike.

    Args:
        cfg: a ``ColorizeConfig`` whose ``codec`` is the one the chunk is written with.
        identity: ``model_identity`` of the model.

    Returns:
        A dict: model, codec, crf, render size, smoothing, style, references (by name, frame
        and content), deinterlace.
    """
    style, strength = effective_style(cfg.style, cfg.strength)  # "natural" and strength 0 are no style
    return {**identity, "codec": cfg.codec, "crf": effective_crf(cfg.codec, cfg.crf), "render_size": cfg.render_size,
            "smooth": cfg.smooth, "style": style, "strength": strength,
            "references": [reference_identity(text) for text in cfg.references], "deinterlace": cfg.deinterlace}


def job_settings(source: str | os.PathLike, frame_count: int, render: Mapping[str, Any], **plan: int) -> dict[str, Any]:
    """What a chunk folder's manifest records: the source, how the film is cut, and the
    settings that change pixels.

    Args:
        source: the source film.
        frame_count: its frames.
        render: ``render_settings`` of the job.
        plan: the chunk length, as ``chunk_frames=N`` (farm) or ``segment_frames=N`` (``--resume``).

    Returns:
        JSON-friendly settings (see ``check_manifest``).
    """
    return {"source": Path(source).name, "source_bytes": os.path.getsize(source), "source_frames": frame_count,
            **plan, **render}


def chunk_stamp(source: str | os.PathLike, settings: Mapping[str, Any]) -> str:
    """The stamp chunks of ``source`` rendered with ``settings`` carry (``vidcolor.io.stamp``)."""
    return make_stamp(source_fingerprint(source), settings_fingerprint(settings))



def chunk_stamp_for(cfg: ColorizeConfig, codec: str, model: Generator | None) -> str:
    """The stamp of a chunk (``vidcolor.io.stamp``): the one farm handed down, else computed
    from the options.

    Args:
        cfg: the run's options.
        codec: the codec the chunk is written with (not ``"auto"``).
        model: the loaded generator, or None to identify ``cfg.model`` by its description.

    Returns:
        The stamp text.
    """
    if cfg.chunk_stamp:
        return cfg.chunk_stamp
    identity = model_identity(model if model is not None else cfg.model)
    return chunk_stamp(cfg.input, render_settings(replace(cfg, codec=codec), identity))
