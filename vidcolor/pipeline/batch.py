"""Batching: stream luma planes to the model's size and space, in fixed-size batches."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidcolor.color import chroma_code_scale, luma_code_range
from vidcolor.errors import UsageError

RENDER_MULTIPLE = 16
# The model was trained on 128-px crops and colours best near 192 (MODEL_CARD.md); far larger
# render sizes only cost memory (100000 would ask OpenCV for 53 GB), so they are refused.
MAX_RENDER_SIZE = 2048
# The long side's cap, for very wide or tall frames: a 4000x16 strip at short side 192 made a
# 48000-px render, past the 32767 px a side OpenCV's remap (the smoother's warp) takes. 8192 is
# four times the largest short side, so it also bounds the render's area (4 * 2048**2 pixels).
MAX_RENDER_SIDE = 8192
# The short side's floor (the smallest --render-size): OpenCV's DIS flow fails, or crashes, on
# pictures 16 px high.
MIN_RENDER_SIDE = 32


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The size the model sees: short side ``render_size``, aspect kept, multiples of 16.

    A frame more than ``MAX_RENDER_SIDE / render_size`` times wider than high (or higher than
    wide) is rendered with its long side at ``MAX_RENDER_SIDE`` and its short side smaller, but
    never under ``MIN_RENDER_SIDE`` (the aspect then stretches; chroma is upsampled back anyway).

    Args:
        height: frame height.
        width: frame width.
        render_size: short side (a multiple of 16, 32 to ``MAX_RENDER_SIZE``).

    Returns:
        (render height, render width).
    """
    if render_size < MIN_RENDER_SIDE or render_size > MAX_RENDER_SIZE or render_size % RENDER_MULTIPLE:
        raise UsageError(f"--render-size must be a multiple of {RENDER_MULTIPLE} from {MIN_RENDER_SIDE} to "
                         f"{MAX_RENDER_SIZE}, got {render_size}")
    scale = min(render_size / min(height, width), MAX_RENDER_SIDE / max(height, width))

    def snap(v: float) -> int:
        return max(MIN_RENDER_SIDE, int(round(v / RENDER_MULTIPLE)) * RENDER_MULTIPLE)

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
    lo, span = luma_code_range(bit_depth, full_range)
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


def area_matrix(src: int, dst: int) -> np.ndarray:
    """Weights of an area-averaging downscale of ``src`` samples to ``dst`` (OpenCV's INTER_AREA).

    Output sample ``i`` covers source positions ``[i * s, (i + 1) * s)`` with ``s = src / dst``;
    each source sample counts with the length of its overlap, so ``A @ x`` is the area average.

    Args:
        src: input length.
        dst: output length, at most ``src``.

    Returns:
        ``(dst, src)`` float32 matrix whose rows sum to 1.
    """
    assert 0 < dst <= src, "area_matrix only downscales"
    scale = src / dst
    edges = np.arange(dst + 1, dtype=np.float64) * scale
    cells = np.arange(src, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], cells[None] + 1) - np.maximum(edges[:-1, None], cells[None])
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


# Frames converted to float at once on the device: bounds the full-size float copies (33 MB a
# frame at 2160p) whatever the batch size.
RESIZE_CHUNK = 8


class LumaResizer:
    """Y code planes to normalised luma at render size on the model's device (``luma_to_unit``
    without the CPU work): the area average is two matrix products, ``rows @ Y @ cols``.

    Used on CUDA, where it takes the resize (1.9 ms a frame at 1080p on one CPU core) off the
    host; the batch then carries the full-size codes, 1 or 2 bytes a sample.

    Args:
        size: (H, W) of the Y planes.
        render: (h, w) at most (H, W) (see ``applies``).
        bit_depth: the stream's bit depth.
        full_range: the stream's range.
        device: the model's device.
    """

    def __init__(self, size: tuple[int, int], render: tuple[int, int], bit_depth: int, full_range: bool,
                 device: torch.device):
        self.render = render
        self.rows = torch.from_numpy(area_matrix(size[0], render[0])).to(device)
        self.cols = torch.from_numpy(np.ascontiguousarray(area_matrix(size[1], render[1]).T)).to(device)
        self.lo, self.span = luma_code_range(bit_depth, full_range)

    @staticmethod
    def applies(size: tuple[int, int], render: tuple[int, int]) -> bool:
        """Whether the render size is a downscale in both directions (the usual case); small
        videos scaled up keep ``luma_to_unit``."""
        return size[0] >= render[0] and size[1] >= render[1]

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """Resize and normalise a batch of Y planes where they are.

        Args:
            codes: ``[N, H, W]`` uint8 codes, or 16-bit codes as int16 (``make_batch``'s
                layout), on the resizer's device.

        Returns:
            ``[N, 1, h, w]`` float32 luma in [0, 1].
        """
        if codes.dtype == torch.int16:
            codes = codes.int() & 0xFFFF  # back to the unsigned values
        parts = [self.rows @ codes[i:i + RESIZE_CHUNK].float() @ self.cols for i in range(0, codes.shape[0], RESIZE_CHUNK)]
        small = torch.cat(parts) if len(parts) > 1 else parts[0]
        return ((small - self.lo) / self.span).clamp_(0.0, 1.0)[:, None].contiguous()


@dataclass
class Batch:
    """Frames grouped for one generator call.

    Attributes:
        items: what travels with each frame (decoded frames, indices...), in order.
        luma: [N, 1, h, w] float32 luma at render size (pinned when the model runs on CUDA).
            With ``codes`` it is None until the generator has made it (on the host after
            ``Pending.result()``).
        hint_chroma: [N, 2, h, w] reference chroma, or None.
        hint_mask: [N, 1, h, w] reference confidence, or None.
        codes: [N, H, W] full-size Y codes (uint8, or 16-bit codes as int16) for a ``LumaResizer``
            on the device, or None.
    """

    items: list
    luma: torch.Tensor | None
    hint_chroma: torch.Tensor | None = None
    hint_mask: torch.Tensor | None = None
    codes: torch.Tensor | None = None


def make_batch(items: list, lumas: list[np.ndarray], hints: list[tuple[np.ndarray, np.ndarray] | None], pin: bool,
               codes: list[np.ndarray] | None = None, render: tuple[int, int] | None = None) -> Batch:
    """Stack per-frame arrays into one batch.

    Args:
        items: per-frame payloads.
        lumas: per-frame ``(h, w)`` float32 luma (empty when ``codes`` are given).
        hints: per-frame (hint chroma ``(2, h, w)``, mask ``(1, h, w)``) or None.
        pin: put the tensors in page-locked memory (fast, asynchronous copies to CUDA).
        codes: per-frame full-size Y planes (uint8 or uint16) for a ``LumaResizer``, instead
            of ``lumas``.
        render: (h, w), needed with ``codes``.

    Returns:
        A ``Batch``.
    """
    luma = None if codes is not None else _stack(lumas, pin).unsqueeze(1)
    code_batch = None if codes is None else _stack(codes, pin)
    hint_chroma = hint_mask = None
    if any(h is not None for h in hints):
        h, w = render if codes is not None else lumas[0].shape
        hint_chroma = torch.zeros(len(items), 2, h, w, pin_memory=pin)
        hint_mask = torch.zeros(len(items), 1, h, w, pin_memory=pin)
        for i, hint in enumerate(hints):
            if hint is not None:
                hint_chroma[i] = torch.from_numpy(hint[0])
                hint_mask[i] = torch.from_numpy(hint[1])
    return Batch(items, luma, hint_chroma, hint_mask, code_batch)


# Tensor types for stacked planes. 16-bit codes travel as int16 (the same bytes): torch's
# uint16 has few CUDA kernels, and ``LumaResizer`` reads them back as unsigned.
_STACK_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.int16}


def _stack(arrays: list[np.ndarray], pin: bool) -> torch.Tensor:
    """Same-shape arrays as one ``[N, ...]`` tensor, written straight into page-locked memory
    when ``pin`` (one copy of each frame, not a stack and then a pinned copy of it)."""
    first = arrays[0]
    out = torch.empty((len(arrays), *first.shape), dtype=_STACK_DTYPES[first.dtype], pin_memory=pin)
    np.stack(arrays, out=out.numpy().view(first.dtype))
    return out
