"""Temporal metrics of clips: warp error (Lai et al. 2018), CDC (TCVC) and the clip report.

Clips are sequences of float RGB frames ``(H, W, 3)`` in [0, 1]; results are plain floats.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from vidcolor import color, flow
from vidcolor.metrics.image import chroma_auc, colourfulness, colourfulness_ratio, psnr, ssim


def frame_luma(frame: np.ndarray) -> np.ndarray:
    """Luma used for flow: the frame itself when single-channel, else BT.601 luma of its RGB.

    Args:
        frame: ``(H, W)`` luma or ``(H, W, 3)`` RGB in [0, 1].

    Returns:
        ``(H, W)`` float32 luma.
    """
    arr = np.asarray(frame)
    if arr.ndim == 2:
        return arr.astype(np.float32, copy=False)
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, 0), dtype=np.float32))
    return color.rgb_to_luma(chw)[0].numpy()


def flow_method(name: str):
    """The flow estimator called ``name`` (``"dis"`` or ``"farneback"``).

    Args:
        name: a key of ``vidcolor.flow.FLOW_METHODS``.

    Returns:
        ``estimate(a, b) -> (H, W, 2)`` flow from ``a`` to ``b``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return flow.FLOW_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown flow {name!r}; choose from {', '.join(flow.FLOW_METHODS)}") from None


def _pair_flow(gray_prev: np.ndarray, gray_cur: np.ndarray, estimate=flow.dis_flow) -> tuple[np.ndarray, np.ndarray] | None:
    """Flow t -> t-1 (so ``warp(prev)`` lands in frame t) and its reliability mask, or None
    when no pixel has reliable flow (nothing to measure)."""
    to_prev, mask = flow.checked_flow(gray_cur, gray_prev, estimate)
    return None if float(mask.sum()) == 0.0 else (to_prev, mask)


def _masked_errors(prev: np.ndarray, cur: np.ndarray, to_prev: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Masked mean squared difference between ``cur`` and ``prev`` warped into it, over all
    channels and (for RGB frames) over the BT.601 chroma of the difference alone."""
    warped = flow.warp(np.ascontiguousarray(prev, dtype=np.float32), to_prev)
    diff = np.asarray(cur, dtype=np.float32) - warped
    if diff.ndim == 2:
        diff = diff[..., None]
    kept = float(mask.sum())
    weights = mask[..., None].astype(np.float64)
    whole = float((diff.astype(np.float64) ** 2 * weights).sum() / (kept * diff.shape[-1]))
    if diff.shape[-1] != 3:
        return whole, math.nan
    # The conversion is linear without offsets, so the chroma of the difference is the
    # difference of the chromas: no second warp is needed.
    chroma = color.rgb_to_ycbcr(torch.from_numpy(np.ascontiguousarray(np.moveaxis(diff, -1, 0))))[1:].numpy()
    chroma_err = float((chroma.astype(np.float64) ** 2 * mask[None]).sum() / (kept * 2))
    return whole, chroma_err


def warp_errors(clips: Mapping[str, Sequence[np.ndarray]], flows_from: Sequence[np.ndarray],
                flow_name: str = "dis") -> dict[str, dict[str, float]]:
    """Warp errors of several versions of one clip, measured with one flow per frame pair.

    The flow (on the luma of ``flows_from``) is the costly part and does not depend on
    the version, so it is computed once per pair and shared.

    Args:
        clips: name -> ``T`` frames ``(H, W, 3)`` RGB (or ``(H, W)``) in [0, 1].
        flows_from: ``T`` frames of the same size (luma or RGB), used only for flow and
            occlusions.
        flow_name: the estimator, ``"dis"`` (the smoother's own, the default) or
            ``"farneback"`` (independent of the smoother: a check that a method's steadiness
            is not an artefact of sharing its flow with the metric).

    Returns:
        name -> ``{"warp_error", "warp_error_chroma"}``: means over t >= 1 of the masked mean
        squared difference, over all channels and over the BT.601 Cb/Cr of the difference
        (``nan`` for single-channel frames, or without a pair with a reliable pixel).
    """
    estimate = flow_method(flow_name)
    for name, frames in clips.items():
        if len(frames) != len(flows_from):
            raise ValueError(f"flows_from has {len(flows_from)} frames, {name!r} {len(frames)}")
    errors: dict[str, list[tuple[float, float]]] = {name: [] for name in clips}
    gray_prev = None
    for t in range(len(flows_from)):
        gray = flow.to_gray8(frame_luma(flows_from[t]))
        pair = None if gray_prev is None else _pair_flow(gray_prev, gray, estimate)
        gray_prev = gray
        if pair is None:
            continue
        for name, frames in clips.items():
            errors[name].append(_masked_errors(frames[t - 1], frames[t], *pair))
    out = {}
    for name, pairs in errors.items():
        whole = [w for w, _ in pairs]
        chroma = [c for _, c in pairs if not math.isnan(c)]
        out[name] = {"warp_error": float(np.mean(whole)) if whole else math.nan,
                     "warp_error_chroma": float(np.mean(chroma)) if chroma else math.nan}
    return out


def warp_error(frames: Sequence[np.ndarray], flows_from: Sequence[np.ndarray] | None = None,
               flow_name: str = "dis") -> float:
    """Warp error (Lai et al. 2018): how much each frame differs from its predecessor moved
    along the optical flow, over pixels where the flow is reliable.

    Flow from frame t to frame t-1 is DIS (or ``flow_name``) flow on the luma of
    ``flows_from`` (when given) or of the frames themselves; giving the same ``flows_from``
    (the grey input or the truth) measures every method with the same flow.

    Args:
        frames: ``T`` frames, ``(H, W, 3)`` RGB (or ``(H, W)``) in [0, 1].
        flows_from: optional ``T`` frames of the same size, luma ``(H, W)`` or RGB, used
            only to compute flow and occlusions.
        flow_name: ``"dis"`` or ``"farneback"`` (see ``warp_errors``).

    Returns:
        Mean over t >= 1 of the masked mean squared difference (over pixels and channels);
        0 for a static clip; ``nan`` when there is no pair with a reliable pixel
        (e.g. fewer than two frames).
    """
    source = frames if flows_from is None else flows_from
    if len(source) != len(frames):
        raise ValueError(f"flows_from has {len(source)} frames, the clip {len(frames)}")
    return warp_errors({"clip": frames}, source, flow_name)["clip"]["warp_error"]


def channel_histograms(frame: np.ndarray, bins: int = 32) -> np.ndarray:
    """Normalised histogram of each channel over [0, 1] (values outside are clipped in).

    Args:
        frame: ``(H, W, C)`` array in [0, 1].
        bins: bins per channel.

    Returns:
        ``(C, bins)`` float64 array; each row sums to 1.
    """
    arr = np.asarray(frame, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    # floor(x·bins) puts 1.0 in its own bin; clipping folds it into the last one.
    idx = np.clip(np.floor(arr * bins), 0, bins - 1).astype(np.int64)
    hists = np.stack([np.bincount(idx[..., c].ravel(), minlength=bins) for c in range(arr.shape[-1])])
    return hists / hists.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence with the natural log (so it lies in [0, ln 2]).

    Args:
        p: ``(..., bins)`` distributions (rows sum to 1).
        q: same shape.

    Returns:
        ``(...)`` array of divergences; 0 log 0 is taken as 0.
    """
    m = 0.5 * (p + q)

    def kl_to_m(d: np.ndarray) -> np.ndarray:
        # where d == 0 the term is 0; elsewhere m >= d/2 > 0, so the log is finite.
        safe_ratio = np.where(d > 0, d / np.where(m > 0, m, 1.0), 1.0)
        return (d * np.log(safe_ratio)).sum(-1)

    return 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)


def cdc(frames: Sequence[np.ndarray], bins: int = 32, gaps: Sequence[int] = (1, 2)) -> float:
    """Colour distribution consistency (TCVC, "Temporally consistent video colorization").

    For each RGB channel, normalised ``bins``-bin histograms; the Jensen-Shannon divergence
    (natural log, maximum ln 2) between frame t and frame t+g, averaged over channels and t
    for each gap g, then over the gaps that have at least one pair.

    Args:
        frames: ``T`` frames ``(H, W, 3)`` in [0, 1].
        bins: histogram bins per channel.
        gaps: frame distances to compare.

    Returns:
        CDC (0 for a constant clip, lower is steadier); ``nan`` when no gap fits the clip.
    """
    hists = [channel_histograms(f, bins) for f in frames]
    per_gap = []
    for g in gaps:
        pairs = [js_divergence(hists[t], hists[t + g]).mean() for t in range(len(hists) - g)]
        if pairs:
            per_gap.append(np.mean(pairs))
    return float(np.mean(per_gap)) if per_gap else math.nan


def clip_report(
    pred_frames: Sequence[np.ndarray],
    truth_frames: Sequence[np.ndarray],
    flow_source: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """Image metrics averaged over frames plus the temporal metrics of the prediction.

    Args:
        pred_frames: ``T`` predicted RGB frames in [0, 1].
        truth_frames: ``T`` ground-truth RGB frames.
        flow_source: frames (luma or RGB) to compute flow on for the warp error; defaults
            to the truth, so every method is measured with the same flow.

    Returns:
        ``{"psnr", "ssim", "colourfulness", "colourfulness_ratio", "auc", "warp_error",
        "warp_error_chroma", "cdc"}``: per-frame means for the image metrics; ``colourfulness_ratio`` is mean
        pred colourfulness over mean truth colourfulness (steadier than a mean of ratios
        when some frames are nearly grey).
    """
    if len(pred_frames) != len(truth_frames):
        raise ValueError(f"{len(pred_frames)} predicted frames but {len(truth_frames)} truth frames")
    pairs = list(zip(pred_frames, truth_frames))
    pred_c = float(np.mean([colourfulness(p) for p in pred_frames]))
    truth_c = float(np.mean([colourfulness(t) for t in truth_frames]))
    return {
        "psnr": float(np.mean([psnr(p, t) for p, t in pairs])),
        "ssim": float(np.mean([ssim(p, t) for p, t in pairs])),
        "colourfulness": pred_c,
        "colourfulness_ratio": colourfulness_ratio(pred_c, truth_c),
        "auc": float(np.mean([chroma_auc(p, t) for p, t in pairs])),
        **warp_errors({"pred": pred_frames}, truth_frames if flow_source is None else flow_source)["pred"],
        "cdc": cdc(pred_frames),
    }
