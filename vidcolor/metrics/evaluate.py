"""``vidcolor eval``: score a model on colour photos and colour clips against two baselines.

Every input is colour; it is turned grey first (BT.601 luma of its RGB, the model's own
space), colorized, and compared with the original. Each method's output is rebuilt the same
way: **the true luma plus that method's chroma** (BT.601 full-range YCbCr to RGB, clamped), so
methods differ only in their chroma and luma never counts for or against anyone. (In style mode,
``style=``, the styled methods change luma as ``colorize --style`` does, and that counts in their
warp error; see ``evaluate_clip``.)

Methods:

- ``model``: the model exactly as ``vidcolor colorize`` runs it. Photos go through
  ``pipeline.still.colorize_luma`` (the model at render size, its coefficients applied to the
  full-resolution luma) and ``color.fit_chroma_to_gamut``, as ``run_image``; clip frames go through the video path (render-size luma from
  ``pipeline.batch.luma_to_unit``, the ``ChromaGenerator``, the flow-guided
  ``ChromaSmoother`` at render size) and the chroma is upsampled bilinearly to full size.
- ``per-frame`` (clips): the same model and path with smoothing off.
- ``grey``: neutral chroma (the input luma alone); the floor any model must beat.
- ``truth``: the colour original itself; only its colourfulness, warp error and CDC are
  reported (its image metrics against itself are trivially perfect), so the temporal
  metrics of a method can be read against the footage's own motion.

References (optional, clips only): ``references=[0, 120]`` gives the model the true colour
frames 0 and 120 of each clip as hand-coloured references, exactly as ``vidcolor colorize
--reference frame.png@0`` would (the frame is saved as PNG and read back by the pipeline's
reference reader, propagated, fed as hints and blended after smoothing), so the report measures
how far a reference carries. ``model`` and ``per-frame`` both use them.

Datasets: photos are grouped by their immediate parent folder (``bsd100``, ``kodak24``...)
plus an ``all photos`` group where every photo counts once; each clip is a dataset, plus an
``all clips`` group where every clip counts once. The aggregate groups are always present
when there is at least one photo (clip), so scripts comparing runs find the same keys.

Clips are processed as a stream: only the decoded truth (8-bit RGB) and the render-size
chroma are kept; every method's full-size frames are rebuilt when a metric needs them.

Where the parts are: ``registry`` (one record per metric: rows, tables, JSON keys and the
aggregation all follow it), ``data`` (finding photos and clips), ``frames`` (reading a clip,
rebuilding a method's frame), ``scoring`` (a method's row), ``aggregate`` (datasets, grey truths),
``photos``, ``clips``, ``table`` and ``report_json``; this module checks the options and makes the
report.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import time
from collections.abc import Sequence
from typing import Iterable

import numpy as np
import torch

from vidcolor import __version__
from vidcolor.config import DEFAULT_RENDER_SIZE, DEFAULT_SMOOTH, ColorizeConfig, check_setting
from vidcolor.devices import pick_device
from vidcolor.errors import UsageError
from vidcolor.io.media_files import IMAGE_EXTENSIONS
from vidcolor.metrics.clips import ALL_CLIPS, CLIP_METHODS, evaluate_clips
from vidcolor.metrics.data import find_data
from vidcolor.metrics.frames import compose, read_clip
from vidcolor.metrics.photos import ALL_PHOTOS, PHOTO_METHODS, evaluate_photo_groups
from vidcolor.metrics.registry import CLIP_METRICS, COLOUR_METRICS, PHOTO_METRICS, REGISTRY
from vidcolor.metrics.report_json import json_safe, write_json
from vidcolor.metrics.table import format_table
from vidcolor.metrics.temporal import flow_method
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator
from vidcolor.pipeline.batch import render_shape
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.style import style_code

# The eval's public face: the CLI, benchmarks and tests reach these through this module.
__all__ = ["ALL_CLIPS", "ALL_PHOTOS", "CLIP_METHODS", "CLIP_METRICS", "COLOUR_METRICS", "PHOTO_METHODS",
           "PHOTO_METRICS", "SCHEMA_VERSION", "compose", "evaluate", "format_table", "json_safe", "read_clip",
           "write_json"]

SCHEMA_VERSION = 1

_METHOD_NOTES = {
    "model": "the model as `vidcolor colorize` runs it (clips: with temporal smoothing)",
    "per-frame": "the same model with smoothing off",
    "grey": "the input luma with neutral chroma",
    "truth": "the colour original; image metrics against itself are not reported (null)",
}


def _check_references(references: Iterable[int] | None) -> list[int]:
    """The reference frame indices as a sorted list of distinct ints (UsageError otherwise)."""
    if references is None:
        return []
    if isinstance(references, (str, bytes)):
        raise UsageError(f"references must be frame numbers, got {references!r}")
    out = set()
    for value in references:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise UsageError(f"references must be frame numbers (0 or more), got {value!r}")
        out.add(int(value))
    return sorted(out)


def _check_options(render_size: int, smooth: float, max_frames: int | None, max_images: int | None,
                   flow_name: str = "dis") -> None:
    render_shape(render_size, render_size, render_size)  # UsageError for a bad size
    try:
        flow_method(flow_name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_setting(ColorizeConfig, "smooth", smooth)  # the colorize option's own check
    for flag, value in (("--max-frames", max_frames), ("--max-images", max_images)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive number, got {value}")


def _load_model(model: str | os.PathLike | Generator, device: torch.device) -> tuple[Generator, dict]:
    if isinstance(model, Generator):
        generator, meta, name = model.to(device).eval(), {}, "(in-memory generator)"
    else:
        generator, meta = load_generator(model, device)
        name = str(model)
    info = {
        "name": name,
        "parameters": sum(p.numel() for p in generator.parameters()),
        "sha256": meta.get("sha256"),
        "provenance": meta.get("provenance", {}),
    }
    return generator, info


def evaluate(model_name_or_generator: str | os.PathLike | Generator, paths: Sequence[str | os.PathLike] | str,
             render_size: int = DEFAULT_RENDER_SIZE, smooth: float = DEFAULT_SMOOTH, device: str = "auto", max_frames: int | None = None,
             max_images: int | None = None, references: Iterable[int] | None = None, progress: bool = True,
             style: str | None = None, strength: float = 1.0, flow_name: str = "dis") -> dict:
    """Evaluate a model on colour photo folders and colour clips (see the module docstring).

    Args:
        model_name_or_generator: a model name or path (as ``--model``), or a ``Generator``.
        paths: photo folders, clip folders or single files.
        render_size: the model's short side (as ``colorize --render-size``).
        smooth: temporal smoothing of the ``model`` method on clips, in [0, 1).
        device: "auto", "cpu", "cuda" or "cuda:N".
        max_frames: use at most this many frames from the start of each clip.
        max_images: use at most this many photos (sorted by name) of each folder.
        references: frame numbers (0-based, per clip) whose true colour frames are given to the
            model as references on every clip (see the module docstring); photos ignore them.
        progress: show progress bars on stderr.
        style: measure this painting style of the model instead of natural colour (clips
            only: how steady the styled video is; see ``evaluate_clip``).
        strength: the style's strength, 0 to 1 (as ``colorize --strength``).
        flow_name: the optical flow the warp error is measured along: ``"dis"`` (the default,
            the estimator the smoother itself uses) or ``"farneback"`` (an independent one, so
            that a smoother cannot look steadier merely for sharing the metric's flow).

    Returns:
        The report (a dict; see ``docs/eval.md`` for the schema). Metric values are floats,
        possibly inf or nan (``write_json`` makes those JSON-safe), or None where a metric
        does not apply.

    Raises:
        UsageError: bad options, or no photo or clip found.
        InputError: a missing path or an unreadable photo or clip.
        ModelError: a missing or broken model.
    """
    t0 = time.time()
    _check_options(render_size, smooth, max_frames, max_images, flow_name)
    references = _check_references(references)
    beyond = [r for r in references if max_frames and r >= max_frames]
    if beyond:  # no clip could use it: measuring without it would look like a result with it
        raise UsageError(f"--reference-frame {beyond[0]} is past --max-frames {max_frames} (frames 0 to "
                         f"{max_frames - 1} are scored)")
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    groups, clips = find_data(paths)
    if not groups and not clips:
        raise UsageError(f"no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) or clips found in {', '.join(map(str, paths))}")
    if style is not None and (groups or references):
        raise UsageError("a style is measured on clips alone (its steadiness): give clips, without --reference-frame")
    dev = pick_device(device)
    model, model_info = _load_model(model_name_or_generator, dev)
    weights = style_code(model.style_names, style, strength)
    if weights is None:
        style = None  # natural colour (no style, "natural" or strength 0): measured as such
    datasets = []
    if groups:
        datasets += evaluate_photo_groups(model, groups, render_size, dev, max_images, progress)
    if clips:
        generator = ChromaGenerator(model, dev, style=weights, head="chroma" if style is None else "rgb",
                                    maps=style is not None)
        datasets += evaluate_clips(generator, clips, render_size, smooth, max_frames, progress, references, flow_name)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "vidcolor eval",
        "vidcolor_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.time() - t0,
        "model": model_info,
        "settings": {
            "render_size": render_size,
            "smooth": smooth,
            "device": str(dev),
            "max_frames": max_frames,
            "max_images": max_images,
            "references": references,
            "style": style,
            "strength": strength if style is not None else None,
            "flow": flow_name,
            "colour_space": ("BT.601 full-range YCbCr; outputs are the true luma plus each method's chroma"
                             if style is None else
                             "BT.601 full-range YCbCr; styled outputs are the true luma plus the style's change of "
                             "luma, with the style's chroma"),
            # each metric's own parameters (a fresh copy: the report is the caller's to change)
            **{m.name: copy.deepcopy(dict(m.settings)) for m in REGISTRY.values() if m.settings},
        },
        "inputs": [str(p) for p in paths],
        "methods": {m: _METHOD_NOTES[m] for m in CLIP_METHODS},
        "datasets": datasets,
    }
