"""Frames between the model's colour space and the output's code planes.

The model works in one fixed colour space (BT.601 chroma in [-0.5, 0.5] at render size); the
output wants Cb/Cr code planes in the stream's own matrix, range, depth and chroma size, and
its luma untouched. These functions convert at that edge, and back to RGB for previews.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vidcolor.color import chroma_codes_to_unit, convert_chroma, luma_code_range, luma_codes_to_unit, ycbcr_to_rgb
from vidcolor.io.encode import OutputFormat, shift_bits
from vidcolor.pipeline.batch import upsample_chroma_codes

MODEL_MATRIX = "bt601"  # the model's fixed colour space (see vidcolor.color)


def chroma_to_planes(chroma: np.ndarray, fmt: OutputFormat) -> tuple[np.ndarray, np.ndarray]:
    """Model chroma at render size to the output's Cb/Cr planes (size, matrix, range, depth).

    Args:
        chroma: ``(2, h, w)`` float32 BT.601 chroma in [-0.5, 0.5].
        fmt: the output format.

    Returns:
        (cb, cr) code planes at ``fmt.chroma_size`` in ``fmt.dtype``.
    """
    # Matrix conversion of chroma does not depend on luma (grey maps to zero chroma in every
    # matrix), so a zero luma stands in for the stream's; being linear, it is done at render
    # size, before upsampling.
    c = convert_chroma(torch.zeros(1, *chroma.shape[1:]), torch.from_numpy(chroma), MODEL_MATRIX, fmt.matrix)
    codes = upsample_chroma_codes(c.numpy(), fmt.chroma_size, fmt.bit_depth, fmt.full_range, fmt.dtype)
    return codes[0], codes[1]


def output_luma(y: np.ndarray, bit_depth: int, full_range: bool, fmt: OutputFormat) -> np.ndarray:
    """The source's Y plane as the output's: its own codes, only shifted to the output depth.

    Where the output's range differs from the source's (a full-range source, e.g. RGB or JPEG
    range, written as ProRes or as FFV1 in AVI, which are limited) the codes are rescaled
    instead, so the picture's luma stays the source's.

    Args:
        y: ``(H, W)`` the source's luma codes.
        bit_depth: the source's bit depth.
        full_range: the source's range.
        fmt: the output format.

    Returns:
        ``(H, W)`` luma codes in ``fmt.dtype``.
    """
    if full_range == fmt.full_range:
        return shift_bits(y, bit_depth, fmt.bit_depth)
    lo, span = luma_code_range(bit_depth, full_range)
    out_lo, out_span = luma_code_range(fmt.bit_depth, fmt.full_range)
    codes = (y.astype(np.float32) - lo) * (out_span / span) + out_lo
    return np.clip(np.round(codes), 0, (1 << fmt.bit_depth) - 1).astype(fmt.dtype)


def planes_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int, full_range: bool, matrix: str, width: int) -> np.ndarray:
    """Code planes to an 8-bit RGB image of the given width (for previews).

    Args:
        y: ``(H, W)`` luma codes.
        cb: chroma codes at any size.
        cr: same size as ``cb``.
        bit_depth: depth of the codes.
        full_range: range of the codes.
        matrix: the stream's matrix.
        width: output width (height keeps the aspect).

    Returns:
        ``(h, width, 3)`` uint8 RGB.
    """
    h = max(1, round(y.shape[0] * width / y.shape[1]))
    ys = cv2.resize(y.astype(np.float32), (width, h), interpolation=cv2.INTER_AREA)
    cbs = cv2.resize(cb.astype(np.float32), (width, h), interpolation=cv2.INTER_LINEAR)
    crs = cv2.resize(cr.astype(np.float32), (width, h), interpolation=cv2.INTER_LINEAR)
    luma = luma_codes_to_unit(torch.from_numpy(ys), bit_depth, full_range)[None]
    chroma = chroma_codes_to_unit(torch.from_numpy(np.stack((cbs, crs))), bit_depth, full_range)
    rgb = ycbcr_to_rgb(torch.cat((luma, chroma)), matrix).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
