"""Batching: stream luma planes to the model's size and space, in fixed-size batches."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidcolor.color import chroma_code_scale
from vidcolor.errors import UsageError

RENDER_MULTIPLE = 16


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The size the model sees: short side ``render_size``, aspect kept, multiples of 16.

    Args:
        height: frame height.
        width: frame width.
        render_size: short side (a multiple of 16, at least 32).

    Returns:
        (render height, render width).
    """
    if render_size < 32 or render_size % RENDER_MULTIPLE:
        raise UsageError(f"--render-size must be a multiple of {RENDER_MULTIPLE} and at least 32, got {render_size}")
    scale = render_size / min(height, width)

    def snap(v: float) -> int:
        return max(RENDER_MULTIPLE, int(round(v / RENDER_MULTIPLE)) * RENDER_MULTIPLE)

    return snap(height * scale), snap(width * scale)


def luma_to_unit(y: np.ndarray, bit_depth: int, full_range: bool, shape: tuple[int, int]) -> np.ndarray:
    """A stream's Y plane as normalised full-range luma at render size.

    Args:
        y: ``(H, W)`` uint8 or uint16 codes.
        bit_depth: the stream's bit depth.
        full_range: True for full (JPEG) range.
        shape: (render height, render width).

    Returns:
        ``(h, w)`` float32 in [0, 1].
    """
    scale = float(1 << (bit_depth - 8))
    if full_range:
        lo, span = 0.0, float((1 << bit_depth) - 1)
    else:
        lo, span = 16.0 * scale, 219.0 * scale
    small = cv2.resize(y.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.clip((small - lo) / span, 0.0, 1.0)


def upsample_chroma(chroma: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Render-size chroma to ``size`` (height, width), bilinear (the pipeline's chroma upsampling).

    Args:
        chroma: ``(2, h, w)`` float32.
        size: (H, W).

    Returns:
        ``(2, H, W)`` float32.
    """
    h, w = size
    up = cv2.resize(np.ascontiguousarray(chroma.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(up.transpose(2, 0, 1))


def upsample_chroma_codes(chroma: np.ndarray, size: tuple[int, int], bit_depth: int, full_range: bool,
                          dtype: type) -> np.ndarray:
    """Render-size chroma straight to the output's code planes at ``size``.

    The scaling to code values is affine, so it commutes with bilinear upsampling: doing it on
    the small planes first leaves only the rounding at full size (about 4x faster than scaling
    the upsampled planes at 1080p).

    Args:
        chroma: ``(2, h, w)`` float32 chroma in [-0.5, 0.5], already in the output's matrix.
        size: (H, W) of the output's chroma planes.
        bit_depth: the output's bit depth.
        full_range: the output's range.
        dtype: the planes' numpy dtype.

    Returns:
        ``(2, H, W)`` rounded, clamped code values in ``dtype``.
    """
    gain, mid, lo, hi = chroma_code_scale(bit_depth, full_range)
    up = upsample_chroma((chroma * gain + mid).astype(np.float32), size)
    np.rint(up, out=up)
    np.clip(up, lo, hi, out=up)
    return up.astype(dtype)


@dataclass
class Batch:
    """Frames grouped for one generator call.

    Attributes:
        items: what travels with each frame (decoded frames, indices...), in order.
        luma: [N, 1, h, w] float32 luma at render size (pinned when the model runs on CUDA).
        hint_chroma: [N, 2, h, w] reference chroma, or None.
        hint_mask: [N, 1, h, w] reference confidence, or None.
    """

    items: list
    luma: torch.Tensor
    hint_chroma: torch.Tensor | None = None
    hint_mask: torch.Tensor | None = None


def make_batch(items: list, lumas: list[np.ndarray], hints: list[tuple[np.ndarray, np.ndarray] | None], pin: bool) -> Batch:
    """Stack per-frame arrays into one batch.

    Args:
        items: per-frame payloads.
        lumas: per-frame ``(h, w)`` float32 luma.
        hints: per-frame (hint chroma ``(2, h, w)``, mask ``(1, h, w)``) or None.
        pin: put the tensors in page-locked memory (fast, asynchronous copies to CUDA).

    Returns:
        A ``Batch``.
    """
    luma = torch.from_numpy(np.stack(lumas)[:, None])
    hint_chroma = hint_mask = None
    if any(h is not None for h in hints):
        h, w = lumas[0].shape
        hint_chroma = torch.zeros(len(lumas), 2, h, w)
        hint_mask = torch.zeros(len(lumas), 1, h, w)
        for i, hint in enumerate(hints):
            if hint is not None:
                hint_chroma[i] = torch.from_numpy(hint[0])
                hint_mask[i] = torch.from_numpy(hint[1])
    if pin:
        luma = luma.pin_memory()
        hint_chroma = None if hint_chroma is None else hint_chroma.pin_memory()
        hint_mask = None if hint_mask is None else hint_mask.pin_memory()
    return Batch(items, luma, hint_chroma, hint_mask)
