"""The grey/tinted/colour verdict: chroma statistics of a few frames spread over a clip."""

from __future__ import annotations

import math

import numpy as np

from vidcolor.io.decode import iter_frames
from vidcolor.io.media_info import MediaInfo

# Verdict thresholds in unit chroma (code minus mid, divided by the chroma range), tuned on
# synthetic clips to sit above the encoder noise of neutral chroma (figures: BENCHMARKS.md).
GREY_MEAN_MAGNITUDE = 0.01
GREY_P95_MAGNITUDE = 0.025
TINT_SPREAD_RATIO = 0.5  # a tint's spread stays under half its offset
# The statistics are taken on the means of square blocks, about this many along the long side:
# colour (and a tint) covers areas, so it survives the averaging, while the zero-mean, spatially
# random chroma noise of black-and-white film telecined on colour equipment averages away
# (figures: BENCHMARKS.md, "Figures behind io's choices").
_BLOCKS_ALONG = 32


def chroma_to_unit(plane: np.ndarray, bit_depth: int, full_range: bool) -> np.ndarray:
    """Chroma code values to unit chroma (about [-0.5, 0.5]), as ``vidcolor.color`` does.

    Args:
        plane: Cb or Cr code values.
        bit_depth: bits per sample.
        full_range: True for full (JPEG) range.

    Returns:
        float32 array of the same shape.
    """
    scale = float(1 << (bit_depth - 8))
    mid = 128.0 * scale
    span = float((1 << bit_depth) - 1) if full_range else 224.0 * scale
    return (plane.astype(np.float32) - mid) / span


def block_means(plane: np.ndarray, blocks_along: int = _BLOCKS_ALONG) -> np.ndarray:
    """Means of square blocks, about ``blocks_along`` of them along the long side (a remainder
    row or column of pixels is left out; a plane smaller than that is returned as it is).

    Args:
        plane: ``(H, W)`` values.
        blocks_along: blocks wanted along the longer side.

    Returns:
        ``(H // b, W // b)`` float array of block means, ``b`` the block side (at most the short side).
    """
    h, w = plane.shape
    side = max(1, min(max(h, w) // blocks_along, h, w))
    rows, cols = h // side, w // side
    return plane[: rows * side, : cols * side].reshape(rows, side, cols, side).mean(axis=(1, 3))


def _frame_chroma_stats(cb: np.ndarray, cr: np.ndarray) -> dict:
    """Magnitude, offset and spread of one frame's unit chroma, on block means."""
    cb, cr = block_means(cb), block_means(cr)
    magnitude = np.hypot(cb, cr)
    mean_cb, mean_cr = float(cb.mean()), float(cr.mean())
    spread = float(np.sqrt(np.mean((cb - mean_cb) ** 2 + (cr - mean_cr) ** 2)))
    return {
        "magnitude": magnitude.ravel(),
        "mean_abs_cb": float(np.abs(cb).mean()),
        "mean_abs_cr": float(np.abs(cr).mean()),
        "mean_cb": mean_cb,
        "mean_cr": mean_cr,
        "offset": math.hypot(mean_cb, mean_cr),
        "spread": spread,
    }


def summarize_chroma(frames: list[tuple[np.ndarray, np.ndarray]]) -> tuple[str, dict]:
    """Grey/tinted/colour verdict from unit-chroma planes of a few frames.

    Grey: chroma is neutral everywhere. Tinted: each frame's chroma sits on one non-neutral
    colour (sepia, a blue night tint) with little spread around it. Colour: the rest.
    Spread is measured per frame, so a film tinted differently per scene still reads as tinted.
    Everything is measured on block means (``block_means``), so chroma noise that is random from
    pixel to pixel and zero on average does not count as colour.

    Args:
        frames: ``(cb, cr)`` unit-chroma arrays per sampled frame.

    Returns:
        ``(verdict, stats)`` where stats holds the numbers behind the verdict.
    """
    per_frame = [_frame_chroma_stats(cb, cr) for cb, cr in frames]
    magnitude = np.concatenate([f["magnitude"] for f in per_frame])
    stats = {
        "frames_sampled": len(per_frame),
        "mean_magnitude": float(magnitude.mean()),
        "p95_magnitude": float(np.percentile(magnitude, 95)),
        "mean_abs_cb": float(np.mean([f["mean_abs_cb"] for f in per_frame])),
        "mean_abs_cr": float(np.mean([f["mean_abs_cr"] for f in per_frame])),
        "mean_cb": float(np.mean([f["mean_cb"] for f in per_frame])),
        "mean_cr": float(np.mean([f["mean_cr"] for f in per_frame])),
        "offset": float(np.mean([f["offset"] for f in per_frame])),
        "spread": float(np.mean([f["spread"] for f in per_frame])),
    }
    if stats["mean_magnitude"] < GREY_MEAN_MAGNITUDE and stats["p95_magnitude"] < GREY_P95_MAGNITUDE:
        return "grey", stats
    tinted = all(f["spread"] <= TINT_SPREAD_RATIO * f["offset"] for f in per_frame)
    return ("tinted" if tinted else "colour"), stats


def _sample_indices(frame_count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` frame indices spread evenly over the clip, first and last included."""
    if frame_count <= 0 or wanted <= 0:
        return []
    if frame_count <= wanted:
        return list(range(frame_count))
    if wanted == 1:
        return [frame_count // 2]
    step = (frame_count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _sampled_chroma(info: MediaInfo, sample_frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Unit chroma of frames spread over the clip: one pass for short clips, seeks otherwise."""
    video = info.video
    indices = _sample_indices(video.frame_count, sample_frames)
    wanted = set(indices)
    frames = []
    if video.frame_count <= 4 * max(sample_frames, 1):
        chosen = (f for f in iter_frames(info.path, info) if f.index in wanted)
    else:
        chosen = (f for i in indices for f in iter_frames(info.path, info, start=i, end=i))
    for frame in chosen:
        frames.append((chroma_to_unit(frame.cb, video.bit_depth, video.full_range),
                       chroma_to_unit(frame.cr, video.bit_depth, video.full_range)))
    return frames


def chroma_verdict(info: MediaInfo, sample_frames: int) -> tuple[str | None, dict]:
    """Grey, tinted or colour, from ``sample_frames`` frames spread over the clip.

    Args:
        info: the file as ``streams.describe_media`` describes it.
        sample_frames: frames to decode for the statistics.

    Returns:
        ``(verdict, stats)``: None and the reason in ``stats`` where there is nothing to judge.

    Raises:
        TimestampError: the sampled frames' timestamps go backwards.
    """
    video = info.video
    if video is None:
        return None, {}
    if video.frame_count == 0:
        return None, {"frames_sampled": 0, "reason": "no frames"}
    if video.is_gray:
        return "grey", {"frames_sampled": 0, "reason": f"{video.pix_fmt} has no chroma planes"}
    frames = _sampled_chroma(info, sample_frames)
    if not frames:
        return None, {"frames_sampled": 0}
    return summarize_chroma(frames)
