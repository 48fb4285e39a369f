"""``vidcolor eval``: score a model on colour photos and colour clips against two baselines.

Every input is colour; it is turned grey first (BT.601 luma of its RGB, the model's own
space), colorized, and compared with the original. Each method's output is rebuilt the same
way: **the true luma plus that method's chroma** (BT.601 full-range YCbCr to RGB, clamped), so
methods differ only in their chroma and luma never counts for or against anyone. (In style mode,
``style=``, the styled methods change luma as ``colorize --style`` does, and that counts in their
warp error; see ``evaluate_clip``.)

Methods:

- ``model``: the model exactly as ``vidcolor colorize`` runs it. Photos go through
  ``pipeline.run.colorize_luma`` (the model at render size, its coefficients applied to the
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
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vidcolor.color import fit_chroma_to_gamut, ycbcr_to_rgb
from vidcolor.config import DEFAULT_RENDER_SIZE
from vidcolor.devices import pick_device
from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import atomic_output
from vidcolor.io.decode import iter_frames
from vidcolor.io.media_files import IMAGE_EXTENSIONS, find_media
from vidcolor.io.probe import probe
from vidcolor.io.stills import read_image
from vidcolor.metrics.image import colourfulness, colourfulness_ratio, image_report
from vidcolor.metrics.temporal import cdc, flow_method, frame_luma, warp_errors
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator
from vidcolor.pipeline.batch import luma_to_unit, make_batch, render_shape, upsample_chroma
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.reference import Reference, ReferenceHints, blend, reach, read_reference
from vidcolor.pipeline.run import colorize_luma, planes_to_rgb
from vidcolor.pipeline.smooth import smooth_sequence
from vidcolor.pipeline.style import style_code, style_offsets, styled_luma
from vidcolor.wording import count_of

log = logging.getLogger("vidcolor")

SCHEMA_VERSION = 1

# Files a folder is searched for (an explicit file argument that is no image is tried as video).

PHOTO_METRICS = ("psnr", "ssim", "colourfulness", "colourfulness_ratio", "auc")
CLIP_METRICS = PHOTO_METRICS + ("warp_error", "warp_error_chroma", "cdc")
PHOTO_METHODS = ("model", "grey", "truth")
CLIP_METHODS = ("model", "per-frame", "grey", "truth")
ALL_PHOTOS = "all photos"
ALL_CLIPS = "all clips"

# The settings of the metrics themselves (their defaults in image.py and temporal.py),
# recorded in the report so numbers from different versions are not compared blindly.
AUC_MAX_THRESHOLD = 150.0
AUC_STEPS = 151
CDC_BINS = 32
CDC_GAPS = (1, 2)

_BATCH = 8  # frames per generator call (the result does not depend on it)
_GREYISH_TRUTH = 1.0  # mean truth colourfulness below this: the "ground truth" is nearly grey

_METHOD_NOTES = {
    "model": "the model as `vidcolor colorize` runs it (clips: with temporal smoothing)",
    "per-frame": "the same model with smoothing off",
    "grey": "the input luma with neutral chroma",
    "truth": "the colour original; image metrics against itself are not reported (null)",
}


# ----- finding the data ---------------------------------------------------------------------


def find_data(paths: Iterable[str | os.PathLike]) -> tuple[dict[Path, list[Path]], list[Path]]:
    """Split files and folders (searched recursively) into photo groups and clips.

    Args:
        paths: photo folders, clip folders, or single files.

    Returns:
        ({parent folder: its photos, sorted}, clips sorted), without duplicates.

    Raises:
        InputError: a path that does not exist.
    """
    images, clips = find_media(paths)
    photos: dict[Path, list[Path]] = {}
    for f in images:
        photos.setdefault(f.parent, []).append(f)
    return photos, clips


def _unique_names(paths: Sequence[Path], short: Callable[[Path], str]) -> list[str]:
    """``short(path)`` for each path, or the full path where two short names collide."""
    names = [short(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


# ----- colour: the true luma plus a method's chroma -----------------------------------------


def compose(luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    """RGB from luma and BT.601 chroma of the same size, clamped to [0, 1] (as ``run_image``).

    Args:
        luma: ``(H, W)`` float32 luma in [0, 1].
        chroma: ``(2, H, W)`` float32 chroma in [-0.5, 0.5], or None for neutral chroma.

    Returns:
        ``(H, W, 3)`` float32 RGB.
    """
    y = torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))[None]
    c = torch.zeros(2, *y.shape[1:]) if chroma is None else torch.from_numpy(np.ascontiguousarray(chroma, dtype=np.float32))
    return ycbcr_to_rgb(torch.cat((y, c))).clamp(0, 1).permute(1, 2, 0).numpy()


def _truth_metrics(truth_c: float, metrics: Sequence[str], warps: dict[str, float] | None = None,
                   cdc_value: float | None = None) -> dict:
    """The ``truth`` method's row: colourfulness (and temporal metrics), the rest null."""
    row: dict[str, float | None] = {m: None for m in metrics}
    row["colourfulness"] = truth_c
    row["colourfulness_ratio"] = None if truth_c is None else colourfulness_ratio(truth_c, truth_c)
    if "warp_error" in row:
        row.update(warps or {})
        row["cdc"] = cdc_value
    return row


# ----- aggregation --------------------------------------------------------------------------


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None or nan; None when all are None, nan when no
    value is left (inf is kept: one identical image makes the mean PSNR inf, honestly)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    usable = [v for v in present if not math.isnan(v)]
    return float(np.mean(usable)) if usable else math.nan


def _aggregate(rows: Sequence[dict], truth_values: Sequence[float], metrics: Sequence[str]) -> dict:
    """Average metric rows; the colourfulness ratio is mean colourfulness over mean truth
    colourfulness (as ``clip_report``: steadier than a mean of ratios when some truths are
    nearly grey)."""
    out = {m: _mean(r[m] for r in rows) for m in metrics}
    if out["colourfulness"] is not None and out["colourfulness_ratio"] is not None and truth_values:
        out["colourfulness_ratio"] = colourfulness_ratio(out["colourfulness"], float(np.mean(truth_values)))
    return out


# Metrics that compare a method's colours with the truth's: meaningless when the truth is grey
# (a grey "truth" makes the grey baseline perfect: PSNR 150 dB, ratio inf).
COLOUR_METRICS = ("psnr", "ssim", "colourfulness_ratio", "auc")


def _mark_if_grey(entry: dict, what: str) -> bool:
    """Mark a dataset whose ground truth is nearly grey: its colour-comparison metrics become
    null (they do not apply) and the aggregates leave it out; warn once.

    Args:
        entry: a folder's or a clip's dataset entry (changed in place).
        what: "all photos" or "all clips", for the warning.

    Returns:
        True when the dataset was marked.
    """
    if entry["truth_colourfulness"] >= _GREYISH_TRUTH:
        return False
    log.warning("%s: the ground truth is nearly grey (colourfulness %.2f): no colour to compare with, so its colour "
                "metrics are left out ('-') and it is not counted in '%s'", entry["name"], entry["truth_colourfulness"], what)
    for row in entry["methods"].values():
        row.update({m: None for m in COLOUR_METRICS})
    entry["grey_truth"] = True
    return True


# ----- photos -------------------------------------------------------------------------------


def evaluate_photo(model: Generator, path: Path, render_size: int, device: torch.device) -> dict:
    """Score the model and the grey baseline on one colour photo.

    Args:
        model: the generator (on ``device``).
        path: a colour image.
        render_size: the model's short side.
        device: where the model runs.

    Returns:
        ``{"size": [H, W], "truth_colourfulness", "methods": {"model": {...}, "grey": {...}}}``
        with ``image_report`` metrics per method.
    """
    truth = read_image(str(path))
    luma = frame_luma(truth)
    y = torch.from_numpy(luma)[None, None]
    chroma = fit_chroma_to_gamut(y, colorize_luma(model, y, render_size, device))[0].numpy()  # as run_image
    preds = {"model": compose(luma, chroma), "grey": compose(luma, None)}
    return {
        "size": list(truth.shape[:2]),
        "truth_colourfulness": colourfulness(truth),
        "methods": {m: image_report(p, truth) for m, p in preds.items()},
    }


def _photo_dataset(name: str, items: list[dict], seconds: float, path: str | None, members: list[str] | None) -> dict:
    truth_values = [it["truth_colourfulness"] for it in items]
    truth_c = float(np.mean(truth_values)) if items else None
    methods = {m: _aggregate([it["methods"][m] for it in items], truth_values, PHOTO_METRICS) for m in PHOTO_METHODS[:-1]}
    methods["truth"] = _truth_metrics(truth_c, PHOTO_METRICS)
    entry = {
        "name": name,
        "kind": "photos",
        "aggregate": members is not None,
        "path": path,
        "count": len(items),
        "truth_colourfulness": truth_c,
        "methods": methods,
        "seconds": seconds,
    }
    if members is not None:
        entry["members"] = members
    else:
        entry["items"] = items
    return entry


def _evaluate_photo_groups(model, groups: dict[Path, list[Path]], render_size, device, max_images, progress) -> list[dict]:
    folders = list(groups)
    names = _unique_names(folders, lambda p: p.name or str(p))
    datasets, everything = [], []
    t_all = time.time()
    for folder, name in zip(folders, names):
        files = groups[folder][:max_images] if max_images else groups[folder]
        t0 = time.time()
        items = []
        for f in tqdm(files, desc=name, unit="photo", disable=not progress, leave=False, dynamic_ncols=True):
            item = evaluate_photo(model, f, render_size, device)
            items.append({"name": f.name, **item})
        datasets.append(_photo_dataset(name, items, time.time() - t0, str(folder), None))
        if not _mark_if_grey(datasets[-1], ALL_PHOTOS):
            everything.extend(items)
    members = [d["name"] for d in datasets if not d.get("grey_truth")]
    datasets.append(_photo_dataset(ALL_PHOTOS, everything, time.time() - t_all, None, members))
    _note_left_out(datasets)
    return datasets


def _note_left_out(datasets: list[dict]) -> None:
    """Record in the aggregate (the last entry) which grey-truth datasets it leaves out."""
    left_out = [d["name"] for d in datasets[:-1] if d.get("grey_truth")]
    if left_out:
        datasets[-1]["left_out"] = left_out


# ----- clips --------------------------------------------------------------------------------


class LazyFrames(Sequence):
    """A read-only sequence whose frames are made on access, keeping the last two (the
    warp error reads frames t-1 and t), so a long clip never sits in memory at full size.

    Args:
        length: number of frames.
        make: ``make(t)`` builds frame ``t``.
    """

    def __init__(self, length: int, make: Callable[[int], np.ndarray]):
        self._length = length
        self._make = make
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, t):  # type: ignore[override]
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(self._length))]
        if t < 0:
            t += self._length
        if not 0 <= t < self._length:
            raise IndexError(t)
        if t not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[t] = self._make(t)
        return self._cache[t]


def read_clip(path: str | os.PathLike, max_frames: int | None = None) -> list[np.ndarray]:
    """Decode a clip's first frames as 8-bit RGB with its own matrix and range.

    Args:
        path: a video file.
        max_frames: keep at most this many frames from the start (None: all).

    Returns:
        ``T`` frames ``(H, W, 3)`` uint8.

    Raises:
        InputError: not a decodable video.
    """
    info = probe(path, verdict=False)
    video = info.video
    end = None if max_frames is None else max_frames - 1
    frames = []
    for frame in iter_frames(path, info, 0, end):
        cb, cr = frame.cb, frame.cr
        if cb is None:  # a grey stream: neutral chroma
            cb = cr = np.full((1, 1), 1 << (video.bit_depth - 1), np.float32)
        width = frame.y.shape[1]
        frames.append(planes_to_rgb(frame.y, cb, cr, video.bit_depth, video.full_range, video.matrix, width))
    if not frames:
        raise InputError(f"{path}: no frame could be decoded")
    return frames


def reference_hints(truth8: Sequence[np.ndarray], frames: Sequence[int], small_lumas: Sequence[np.ndarray],
                    render: tuple[int, int]) -> ReferenceHints:
    """Hints from true colour frames used as references, as ``colorize --reference`` makes them.

    Each frame is written as a PNG and read back with the pipeline's reference reader, then
    propagated over the clip's render-size luma.

    Args:
        truth8: the clip's ``(H, W, 3)`` uint8 RGB frames.
        frames: indices of the frames given as references (within the clip).
        small_lumas: the clip's render-size luma, as the model sees it.
        render: (render height, render width).

    Returns:
        Per-frame hints (empty when ``frames`` is).
    """
    if not frames:
        return ReferenceHints({})
    items = []
    with tempfile.TemporaryDirectory(prefix="vidcolor-eval-") as tmp:
        for index in frames:
            path = str(Path(tmp) / f"frame_{index}.png")
            if not cv2.imwrite(path, np.ascontiguousarray(truth8[index][..., ::-1])):
                raise OutputError(f"cannot write a temporary reference image in {tmp}")
            items.append(read_reference(Reference(path, index), render))
    wanted = reach([item.reference for item in items], 0, len(small_lumas) - 1)
    return ReferenceHints.build(items, {t: small_lumas[t] for t in wanted})


def clip_chroma(generator: ChromaGenerator, small_lumas: Sequence[np.ndarray], hints: ReferenceHints | None = None,
                on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Per-frame model chroma at render size, through the pipeline's batch and generate stages.

    Args:
        generator: the pipeline's ``ChromaGenerator``.
        small_lumas: ``T`` render-size luma frames ``(h, w)`` float32.
        hints: reference hints per frame index, or None.
        on_batch: called with the number of frames after each batch (progress).

    Returns:
        ``T`` frames ``(C, h, w)`` float32 (before smoothing and reference blending): chroma, or
        the RGB coefficient maps when the generator is in style mode.
    """
    hints = hints or ReferenceHints({})
    out: list[np.ndarray] = []
    for i in range(0, len(small_lumas), _BATCH):
        lumas = list(small_lumas[i : i + _BATCH])
        indices = list(range(i, i + len(lumas)))
        batch = make_batch(indices, lumas, [hints.get(t) for t in indices], generator.cuda)
        _, chroma = generator.submit(batch).result()
        out.extend(np.array(c, dtype=np.float32) for c in chroma)
        if on_batch:
            on_batch(len(lumas))
    return out


def evaluate_clip(generator: ChromaGenerator, path: Path, render_size: int, smooth: float,
                  max_frames: int | None = None, progress: bool = False, name: str | None = None,
                  references: Sequence[int] = (), flow_name: str = "dis") -> dict:
    """Score the model (smoothed and per frame), grey and the truth on one colour clip.

    With a ``ChromaGenerator`` in style mode (RGB head), ``model`` and ``per-frame`` are the
    styled clip as ``colorize --style`` makes it, with and without smoothing; a style is not
    meant to match the truth, so their PSNR, SSIM, AuC and colourfulness ratio are None.

    Args:
        generator: the pipeline's ``ChromaGenerator`` around the model.
        path: a colour clip.
        render_size: the model's short side.
        smooth: the smoother's strength for the ``model`` method.
        max_frames: frames from the start to use (None: all).
        progress: show a progress bar.
        name: label for the bar.
        references: indices of frames whose true colours are given as references (those past
            the clip's evaluated frames are left out).
        flow_name: the warp error's flow, ``"dis"`` or ``"farneback"`` (see ``warp_errors``).

    Returns:
        ``{"frames", "size": [H, W], "render": [h, w], "references": [indices used],
        "truth_colourfulness", "methods"}``
        with ``CLIP_METRICS`` for each of ``CLIP_METHODS``; image metrics are per-frame
        means, as in ``clip_report``; warp error uses one flow (``flow_name``) on the true
        luma for every method.
    """
    styled = generator.head == "rgb"
    truth8 = read_clip(path, max_frames)
    n = len(truth8)
    size = truth8[0].shape[:2]
    render = render_shape(size[0], size[1], render_size)

    def truth(t: int) -> np.ndarray:
        return truth8[t].astype(np.float32) / 255.0

    bar = tqdm(total=3 * n, desc=name or path.name, unit="frame", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        # 1. The model's input: the true luma at render size, as the pipeline's batch stage makes
        #    it from 8-bit full-range codes (here unrounded: the luma of the colour truth).
        small = [luma_to_unit(frame_luma(truth(t)) * 255.0, 8, True, render) for t in range(n)]
        bar.update(n)
        # 2. Per-frame chroma from the generate stage (with reference hints, if any), then the
        #    smooth stage; references are blended in after smoothing, as in the pipeline.
        used = sorted({t for t in references if t < n})
        hints = reference_hints(truth8, used, small, render)
        raw = clip_chroma(generator, small, hints, bar.update)
        smoothed = smooth_sequence(small, raw, smooth)
        if styled:  # as the pipeline does it: coefficient maps smoothed, then applied
            raw, smoothed = ([style_offsets(m, small[t]) for t, m in enumerate(seq)]
                             for seq in (raw, smoothed))
        chromas = {"model": [blend(c, hints.get(t)) for t, c in enumerate(smoothed)],
                   "per-frame": [blend(c, hints.get(t)) for t, c in enumerate(raw)], "grey": None}

        def predict(method: str, t: int, luma: np.ndarray) -> np.ndarray:
            c = chromas[method]
            if c is None:
                return compose(luma, None)
            if styled:  # offsets at render size, rebuilt at full size as styled_planes does
                return compose(styled_luma(c[t][0], luma), upsample_chroma(np.ascontiguousarray(c[t][1:]), size))
            return compose(luma, upsample_chroma(c[t], size))

        # 3. Image metrics frame by frame (one full-size frame per method at a time). A style
        #    is not meant to match the truth: only its colourfulness is measured.
        rows: dict[str, list[dict]] = {m: [] for m in chromas}
        truth_values = []
        for t in range(n):
            true_rgb = truth(t)
            luma = frame_luma(true_rgb)
            truth_values.append(colourfulness(true_rgb))
            for method in chromas:
                pred = predict(method, t, luma)
                styled_method = styled and chromas[method] is not None
                rows[method].append({"colourfulness": colourfulness(pred)} if styled_method else image_report(pred, true_rgb))
            bar.update(1)
    finally:
        bar.close()

    # 4. Temporal metrics on lazily rebuilt frames, with flow from the true luma (one flow
    #    per frame pair for every method); the aggregation is clip_report's (per-frame
    #    means, ratio of mean colourfulness).
    lumas = LazyFrames(n, lambda t: frame_luma(truth(t)))
    truth_c = float(np.mean(truth_values))
    versions = {m: LazyFrames(n, lambda t, m=m: predict(m, t, lumas[t])) for m in chromas}
    versions["truth"] = LazyFrames(n, truth)
    warps = warp_errors(versions, lumas, flow_name)
    methods = {}
    for method in chromas:
        pred_c = float(np.mean([r["colourfulness"] for r in rows[method]]))
        matched = {"psnr", "ssim", "auc"} <= set(rows[method][0])
        methods[method] = {
            **{k: float(np.mean([r[k] for r in rows[method]])) if matched else None for k in ("psnr", "ssim")},
            "colourfulness": pred_c,
            "colourfulness_ratio": colourfulness_ratio(pred_c, truth_c) if matched else None,
            "auc": float(np.mean([r["auc"] for r in rows[method]])) if matched else None,
            **warps[method],
            "cdc": cdc(versions[method], CDC_BINS, CDC_GAPS),
        }
    methods["truth"] = _truth_metrics(truth_c, CLIP_METRICS, warps["truth"], cdc(versions["truth"], CDC_BINS, CDC_GAPS))
    return {"frames": n, "size": list(size), "render": list(render), "references": used, "truth_colourfulness": truth_c,
            "methods": {m: methods[m] for m in CLIP_METHODS}}


def _evaluate_clips(generator, clips: list[Path], render_size, smooth, max_frames, progress, references,
                    flow_name) -> list[dict]:
    names = _unique_names(clips, lambda p: p.stem)
    datasets = []
    t_all = time.time()
    for path, name in zip(clips, names):
        t0 = time.time()
        result = evaluate_clip(generator, path, render_size, smooth, max_frames, progress, name, references, flow_name)
        datasets.append({"name": name, "kind": "clip", "aggregate": False, "path": str(path),
                         "count": result.pop("frames"), **result, "seconds": time.time() - t0})
        _mark_if_grey(datasets[-1], ALL_CLIPS)
    counted = [d for d in datasets if not d.get("grey_truth")]
    truth_values = [d["truth_colourfulness"] for d in counted]
    truth_c = float(np.mean(truth_values)) if counted else None
    methods = {m: _aggregate([d["methods"][m] for d in counted], truth_values, CLIP_METRICS) for m in CLIP_METHODS[:-1]}
    truth_rows = [d["methods"]["truth"] for d in counted]
    warps = {k: _mean(r[k] for r in truth_rows) for k in ("warp_error", "warp_error_chroma")}
    methods["truth"] = _truth_metrics(truth_c, CLIP_METRICS, warps, _mean(r["cdc"] for r in truth_rows))
    datasets.append({"name": ALL_CLIPS, "kind": "clips", "aggregate": True, "path": None,
                     "count": sum(d["count"] for d in counted), "truth_colourfulness": truth_c,
                     "methods": methods, "seconds": time.time() - t_all, "members": [d["name"] for d in counted]})
    _note_left_out(datasets)
    return datasets


# ----- the whole evaluation -----------------------------------------------------------------


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
    if not 0.0 <= smooth < 1.0:
        raise UsageError(f"--smooth must be in [0, 1), got {smooth}")
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
             render_size: int = DEFAULT_RENDER_SIZE, smooth: float = 0.8, device: str = "auto", max_frames: int | None = None,
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
        datasets += _evaluate_photo_groups(model, groups, render_size, dev, max_images, progress)
    if clips:
        generator = ChromaGenerator(model, dev, style=weights, head="chroma" if style is None else "rgb",
                                    maps=style is not None)
        datasets += _evaluate_clips(generator, clips, render_size, smooth, max_frames, progress, references, flow_name)
    from vidcolor import __version__

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
            "auc": {"max_threshold": AUC_MAX_THRESHOLD, "steps": AUC_STEPS},
            "cdc": {"bins": CDC_BINS, "gaps": list(CDC_GAPS)},
        },
        "inputs": [str(p) for p in paths],
        "methods": {m: _METHOD_NOTES[m] for m in CLIP_METHODS},
        "datasets": datasets,
    }


# ----- output -------------------------------------------------------------------------------

_COLUMNS = (  # (metric, header, scale, format)
    ("psnr", "PSNR", 1.0, "{:.2f}"),
    ("ssim", "SSIM", 1.0, "{:.4f}"),
    ("colourfulness", "colourf.", 1.0, "{:.1f}"),
    ("colourfulness_ratio", "ratio", 1.0, "{:.3f}"),
    ("auc", "AuC", 1.0, "{:.4f}"),
    ("warp_error", "warp(e-3)", 1e3, "{:.3f}"),
    ("warp_error_chroma", "cwarp(e-3)", 1e3, "{:.3f}"),
    ("cdc", "CDC(e-3)", 1e3, "{:.3f}"),
)


def _cell(value: float | None, scale: float, fmt: str) -> str:
    if value is None or math.isnan(value):  # does not apply (nan: a temporal metric of one frame)
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return fmt.format(value * scale)


def _dataset_title(d: dict) -> str:
    if d["kind"] == "photos":
        what = count_of(d["count"], "photo") + (f" in {count_of(len(d['members']), 'folder')}" if d["aggregate"] else "")
    elif d["kind"] == "clip":
        h, w = d["size"]
        what = f"clip, {count_of(d['count'], 'frame')}, {w}x{h}"
        if d.get("references"):
            what += ", true colours given at frame " + ", ".join(map(str, d["references"]))
        if d["count"] < 2:
            what += "; warp error and CDC need 2 frames or more (-)"
    else:
        what = f"{count_of(len(d['members']), 'clip')}, {count_of(d['count'], 'frame')}"
    if d.get("grey_truth"):
        what += "; grey ground truth: colour metrics do not apply (-)"
    if d.get("left_out"):
        what += f"; left out, grey ground truth: {', '.join(d['left_out'])}"
    return f"{d['name']}: {what}"


def format_table(report: dict) -> str:
    """The report as text tables, one per dataset (methods as rows, metrics as columns).

    Args:
        report: what ``evaluate`` returned (or the parsed JSON).

    Returns:
        Multi-line text, ASCII only.
    """
    s = report["settings"]
    model = report["model"]
    lines = [
        f"model: {model['name']}, {model['parameters'] / 1e6:.2f}M parameters; render size {s['render_size']}, "
        f"smoothing {s['smooth']}, {s['device']}, {report['seconds']:.1f} s"
        # reports written before the flow was a setting were all measured with DIS
        + (f"; warp error along {s['flow']} flow" if s.get("flow", "dis") != "dis" else "")
    ]
    if s.get("style"):
        lines.append(f"style {s['style']} at strength {s['strength']}: model and per-frame are the styled clip "
                     "(not compared with the truth: PSNR, SSIM, AuC and ratio do not apply)")
    for d in report["datasets"]:
        metrics = PHOTO_METRICS if d["kind"] == "photos" else CLIP_METRICS
        cols = [c for c in _COLUMNS if c[0] in metrics]
        rows = [["method"] + [c[1] for c in cols]]
        for method, values in d["methods"].items():
            rows.append([method] + [_cell(values.get(c[0]), c[2], c[3]) for c in cols])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["", _dataset_title(d)]
        for r in rows:
            cells = [r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]
            lines.append("  " + "  ".join(cells))
    lines += ["", "higher is better: PSNR, SSIM, AuC; lower is better: warp, cwarp (chroma alone), CDC; "
                  "ratio = colourfulness / the truth's (1 = as colourful)"]
    return "\n".join(lines)


def _pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901 JSON Pointer of a location."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_safe(report: dict) -> dict:
    """A copy of the report with every inf or nan replaced by null, and a ``non_finite`` map
    from each such value's JSON Pointer to ``"inf"``, ``"-inf"`` or ``"nan"``.

    So every metric is a JSON number or null (strict parsers accept the file), and nothing is
    lost: a null whose pointer is not in ``non_finite`` means "does not apply".

    Args:
        report: what ``evaluate`` returned.

    Returns:
        A new dict.
    """
    found: dict[str, str] = {}

    def walk(value: Any, where: list) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, where + [k]) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, where + [i]) for i, v in enumerate(value)]
        if isinstance(value, (float, np.floating)):
            v = float(value)
            if math.isfinite(v):
                return v
            found[_pointer(where)] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            return None
        if isinstance(value, np.integer):
            return int(value)
        return value

    safe = walk({k: v for k, v in report.items() if k != "non_finite"}, [])
    safe["non_finite"] = found
    return safe


def write_json(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as strict JSON (see ``json_safe``), atomically, replacing ``path``.

    Args:
        report: what ``evaluate`` returned.
        path: the JSON file; its folder must exist.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: the folder is missing or not writable, or ``path`` is a folder.
    """
    text = json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n"
    with atomic_output(path, overwrite=True) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return Path(path)
