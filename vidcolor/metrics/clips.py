"""``vidcolor eval`` on colour clips: the model through the video path (smoothed and per frame),
the grey baseline and the truth, per clip and over all clips."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from vidcolor.errors import OutputError
from vidcolor.metrics.aggregate import aggregate_rows, mark_if_grey, note_left_out
from vidcolor.metrics.data import unique_names
from vidcolor.metrics.frames import LazyFrames, compose, read_clip
from vidcolor.metrics.image import colourfulness
from vidcolor.metrics.registry import ClipVersions, metrics_for
from vidcolor.metrics.scoring import clip_scores, image_scores, method_row
from vidcolor.metrics.temporal import frame_luma
from vidcolor.pipeline.batch import luma_to_unit, make_batch, render_shape, upsample_chroma
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.after_model import AfterModel
from vidcolor.pipeline.planes import MODEL_MATRIX
from vidcolor.pipeline.reference import Reference, ReferenceHints, reach, read_reference
from vidcolor.pipeline.smooth import ChromaSmoother
from vidcolor.pipeline.style import styled_luma

CLIP_METHODS = ("model", "per-frame", "grey", "truth")
ALL_CLIPS = "all clips"

_BATCH = 8  # frames per generator call (the result does not depend on it)


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
        with the clip metrics (``metrics_for("clips")``) for each of ``CLIP_METHODS``; image metrics are per-frame
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
        #    pipeline's own after-model chain (smooth, reference, style); per-frame runs the
        #    same chain with smoothing off.
        used = sorted({t for t in references if t < n})
        hints = reference_hints(truth8, used, small, render)
        raw = clip_chroma(generator, small, hints, bar.update)
        style_matrix = MODEL_MATRIX if styled else None  # methods are composed in the model's BT.601
        chains = {"model": AfterModel(ChromaSmoother(smooth), style_matrix),
                  "per-frame": AfterModel(ChromaSmoother(0.0), style_matrix)}
        chromas = {method: [chain(small[t], c, hints.get(t)) for t, c in enumerate(raw)]
                   for method, chain in chains.items()}
        chromas["grey"] = None

        def predict(method: str, t: int, luma: np.ndarray) -> np.ndarray:
            c = chromas[method]
            if c is None:
                return compose(luma, None)
            if styled:  # offsets at render size, rebuilt at full size as styled_planes does
                return compose(styled_luma(c[t][0], luma), upsample_chroma(np.ascontiguousarray(c[t][1:]), size))
            return compose(luma, upsample_chroma(c[t], size))

        # 3. Image metrics frame by frame (one full-size frame per method at a time). A style
        #    is not meant to match the truth: only its colourfulness is measured.
        metrics = metrics_for("clips")
        rows: dict[str, list[dict]] = {m: [] for m in CLIP_METHODS}
        truth_values = []
        for t in range(n):
            true_rgb = truth(t)
            luma = frame_luma(true_rgb)
            truth_values.append(colourfulness(true_rgb))
            for method in chromas:
                pred = predict(method, t, luma)
                styled_method = styled and chromas[method] is not None
                rows[method].append(image_scores(pred, true_rgb, metrics, styled=styled_method))
            rows["truth"].append(image_scores(true_rgb, true_rgb, metrics, is_truth=True))
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
    whole_clip = clip_scores(ClipVersions(versions, lumas, flow_name), metrics)
    methods = {m: method_row(rows[m], truth_c, metrics, whole_clip[m], is_truth=m == "truth",
                             styled=styled and chromas.get(m) is not None)
               for m in CLIP_METHODS}
    return {"frames": n, "size": list(size), "render": list(render), "references": used, "truth_colourfulness": truth_c,
            "methods": methods}


def evaluate_clips(generator: ChromaGenerator, clips: list[Path], render_size: int, smooth: float,
                   max_frames: int | None, progress: bool, references: Sequence[int], flow_name: str) -> list[dict]:
    """Score every clip, then all clips together.

    Args:
        generator: the pipeline's ``ChromaGenerator`` around the model.
        clips: the colour clips.
        render_size, smooth, max_frames, references, flow_name: as for ``evaluate_clip``.
        progress: show progress bars.

    Returns:
        One dataset entry per clip, then the ``all clips`` entry (grey-truth clips left out).
    """
    names = unique_names(clips, lambda p: p.stem)
    datasets = []
    t_all = time.time()
    for path, name in zip(clips, names):
        t0 = time.time()
        result = evaluate_clip(generator, path, render_size, smooth, max_frames, progress, name, references, flow_name)
        datasets.append({"name": name, "kind": "clip", "aggregate": False, "path": str(path),
                         "count": result.pop("frames"), **result, "seconds": time.time() - t0})
        mark_if_grey(datasets[-1], ALL_CLIPS)
    counted = [d for d in datasets if not d.get("grey_truth")]
    truth_c = float(np.mean([d["truth_colourfulness"] for d in counted])) if counted else None
    metrics = metrics_for("clips")
    methods = {m: aggregate_rows([d["methods"][m] for d in counted], truth_c, metrics) for m in CLIP_METHODS}
    datasets.append({"name": ALL_CLIPS, "kind": "clips", "aggregate": True, "path": None,
                     "count": sum(d["count"] for d in counted), "truth_colourfulness": truth_c,
                     "methods": methods, "seconds": time.time() - t_all, "members": [d["name"] for d in counted]})
    note_left_out(datasets)
    return datasets
