"""Pixel formats: the planar yuv/gray format decode delivers, and what a planar format holds."""

from __future__ import annotations

import math
import re

import av

# Planar formats we hand out as they are: yuv (optionally JPEG-range) or gray, little endian.
_NATIVE_FORMAT = re.compile(r"^(yuvj?(420|422|444|440|411|410)p|gray)((9|10|12|14|16)le)?$")
SUBSAMPLING_FAMILY = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (2, 0): "411", (0, 1): "440", (2, 2): "410"}
SUBSAMPLING_NAMES = {shift: f"{family[0]}:{family[1]}:{family[2]}" for shift, family in SUBSAMPLING_FAMILY.items()}


def _depth_suffix(bits: int) -> str:
    for depth in (8, 9, 10, 12, 14, 16):
        if bits <= depth:
            return "" if depth == 8 else f"{depth}le"
    return "16le"


def _format_exists(name: str) -> bool:
    try:
        av.video.format.VideoFormat(name)
        return True
    except (ValueError, av.error.FFmpegError):
        return False


def planar_equivalent(pix_fmt: str) -> str:
    """The planar yuv/gray format that ``iter_frames`` delivers for a decoder format.

    Planar yuv/gray formats are kept; packed, semi-planar, RGB, palette, alpha or big-endian
    formats map to the nearest planar yuv format of the same bit depth (RGB and palette to
    4:4:4, since they have full-resolution colour).

    Args:
        pix_fmt: the decoder's pixel format name, e.g. ``"nv12"``.

    Returns:
        A format name such as ``"yuv420p"``, ``"yuv444p10le"`` or ``"gray"``.
    """
    if _NATIVE_FORMAT.match(pix_fmt):
        return pix_fmt
    fmt = av.video.format.VideoFormat(pix_fmt, 64, 64)
    components = [c for c in fmt.components if not c.is_alpha]
    bits = max((c.bits for c in components), default=8)
    suffix = _depth_suffix(bits)
    if fmt.is_rgb or fmt.has_palette:
        family = "444"
    elif len(components) == 1:
        return f"gray{suffix}"
    else:
        chroma = components[1]
        shift = (int(round(math.log2(64 / chroma.width))), int(round(math.log2(64 / chroma.height))))
        family = SUBSAMPLING_FAMILY.get(shift, "444")
    name = f"yuv{family}p{suffix}"
    return name if _format_exists(name) else f"yuv444p{suffix}"


def format_layout(pix_fmt: str) -> tuple[int, bool, tuple[int, int]]:
    """Bit depth, grayness and chroma subsampling of a planar format.

    Args:
        pix_fmt: a planar yuv or gray format name.

    Returns:
        ``(bit_depth, is_gray, (log2 horizontal, log2 vertical) chroma subsampling)``.
    """
    fmt = av.video.format.VideoFormat(pix_fmt, 64, 64)
    components = [c for c in fmt.components if not c.is_alpha]
    depth = components[0].bits
    if len(components) == 1:
        return depth, True, (0, 0)
    chroma = components[1]
    shift = (int(round(math.log2(64 / chroma.width))), int(round(math.log2(64 / chroma.height))))
    return depth, False, shift


def is_rgb_like(pix_fmt: str) -> bool:
    """Whether a decoder format is RGB or palette, which decode converts to full-range YCbCr
    with the stream's ``matrix`` (so the planes written are no longer RGB).

    Args:
        pix_fmt: the decoder's pixel format name, e.g. ``"gbrp"``.

    Returns:
        True for RGB and palette formats.
    """
    fmt = av.video.format.VideoFormat(pix_fmt)
    return bool(fmt.is_rgb or fmt.has_palette)
