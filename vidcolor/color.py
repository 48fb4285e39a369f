"""Colour conversions as differentiable torch ops.

The model works in one fixed space: BT.601 full-range YCbCr with luma in [0, 1] and chroma
in [-0.5, 0.5] (the JPEG convention of its training photos). Streams come in BT.601, BT.709
or BT.2020, limited or full range, 8 to 16 bits; these helpers convert at the edges so every
source gets the same colours.

Tensors are channel-first: ``[..., C, H, W]``.
"""

from __future__ import annotations

import torch


# Luma weights (Kr, Kb) of each matrix.
_MATRICES = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}

def rgb_to_ycbcr(rgb: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """Full-range RGB in [0, 1] to full-range YCbCr (Y in [0, 1], Cb/Cr in [-0.5, 0.5]).

    Args:
        rgb: ``[..., 3, H, W]`` tensor.
        matrix: ``"bt601"``, ``"bt709"`` or ``"bt2020"``.

    Returns:
        ``[..., 3, H, W]`` tensor (Y, Cb, Cr).
    """
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    r, g, b = rgb.unbind(-3)
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb(ycc: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """Inverse of ``rgb_to_ycbcr`` (not clamped, so it stays differentiable).

    Args:
        ycc: ``[..., 3, H, W]`` tensor (Y in [0, 1], Cb/Cr in [-0.5, 0.5]).
        matrix: ``"bt601"``, ``"bt709"`` or ``"bt2020"``.

    Returns:
        ``[..., 3, H, W]`` RGB tensor.
    """
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    y, cb, cr = ycc.unbind(-3)
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack((r, g, b), dim=-3)


def rgb_to_luma(rgb: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """Luma of an RGB image, keeping a channel axis.

    Args:
        rgb: ``[..., 3, H, W]`` tensor in [0, 1].
        matrix: luma weights to use.

    Returns:
        ``[..., 1, H, W]`` tensor.
    """
    kr, kb = _MATRICES[matrix]
    r, g, b = rgb.unbind(-3)
    return (kr * r + (1.0 - kr - kb) * g + kb * b).unsqueeze(-3)


def luma_code_range(bit_depth: int, full_range: bool) -> tuple[float, float]:
    """Black level and black-to-white span of a stream's luma codes.

    Args:
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full (JPEG) range, False for limited (16-235 scaled).

    Returns:
        (black code, white code - black code).
    """
    if full_range:
        return 0.0, float((1 << bit_depth) - 1)
    scale = float(1 << (bit_depth - 8))
    return 16.0 * scale, 219.0 * scale


def luma_codes_to_unit(y: torch.Tensor, bit_depth: int, full_range: bool) -> torch.Tensor:
    """Stream luma code values to normalised full-range luma in [0, 1].

    Args:
        y: integer or float tensor of code values.
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full (JPEG) range, False for limited (16-235 scaled).

    Returns:
        Float tensor in [0, 1] (clamped: limited-range footroom/headroom is clipped).
    """
    lo, span = luma_code_range(bit_depth, full_range)
    return ((y.float() - lo) / span).clamp(0.0, 1.0)


def luma_unit_to_codes(y: torch.Tensor, bit_depth: int, full_range: bool) -> torch.Tensor:
    """Normalised luma in [0, 1] to rounded stream code values (inverse of ``luma_codes_to_unit``).

    Args:
        y: luma tensor, any shape.
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full range, False for limited (16-235 scaled).

    Returns:
        Rounded, clamped code values as float32.
    """
    lo, span = luma_code_range(bit_depth, full_range)
    return (y * span + lo).round().clamp(lo, lo + span)


def chroma_code_scale(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """How chroma in [-0.5, 0.5] maps to stream code values: ``code = c * gain + mid``.

    Args:
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full range, False for limited (16-240 scaled).

    Returns:
        (gain, mid, lowest code, highest code).
    """
    scale = float(1 << (bit_depth - 8))
    if full_range:
        top = float((1 << bit_depth) - 1)
        return top, 128.0 * scale, 0.0, top
    return 224.0 * scale, 128.0 * scale, 16.0 * scale, 240.0 * scale


def chroma_unit_to_codes(c: torch.Tensor, bit_depth: int, full_range: bool) -> torch.Tensor:
    """Chroma in [-0.5, 0.5] to rounded stream code values (still a float tensor).

    Args:
        c: chroma tensor (Cb and/or Cr), any shape.
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full range, False for limited (16-240 scaled).

    Returns:
        Rounded, clamped code values as float32.
    """
    gain, mid, lo, hi = chroma_code_scale(bit_depth, full_range)
    return (c * gain + mid).round().clamp(lo, hi)


def chroma_codes_to_unit(c: torch.Tensor, bit_depth: int, full_range: bool) -> torch.Tensor:
    """Stream chroma code values to chroma in [-0.5, 0.5] (inverse of ``chroma_unit_to_codes``).

    Args:
        c: integer or float tensor of code values.
        bit_depth: 8, 10, 12 or 16.
        full_range: True for full range, False for limited.

    Returns:
        Float tensor.
    """
    c = c.float()
    scale = float(1 << (bit_depth - 8))
    mid = 128.0 * scale
    if full_range:
        return (c - mid) / float((1 << bit_depth) - 1)
    return (c - mid) / (224.0 * scale)


def convert_chroma(luma: torch.Tensor, chroma: torch.Tensor, src: str, dst: str) -> torch.Tensor:
    """Re-express model chroma in another matrix, keeping the stream's own luma.

    Goes through RGB so hues match; the returned chroma pairs with ``luma`` in ``dst``.

    Args:
        luma: ``[..., 1, H, W]`` normalised luma.
        chroma: ``[..., 2, H, W]`` chroma in matrix ``src``.
        src: matrix the chroma was predicted in.
        dst: the stream's matrix.

    Returns:
        ``[..., 2, H, W]`` chroma in ``dst``.
    """
    if src == dst:
        return chroma
    rgb = ycbcr_to_rgb(torch.cat((luma, chroma), dim=-3), src)
    return rgb_to_ycbcr(rgb, dst)[..., 1:, :, :]


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to CIE Lab (D65): L in [0, 100], a/b roughly [-128, 127].

    Args:
        rgb: ``[..., 3, H, W]`` tensor.

    Returns:
        ``[..., 3, H, W]`` tensor (L, a, b).
    """
    lin = _srgb_to_linear(rgb.clamp(0.0, 1.0))
    r, g, b = lin.unbind(-3)
    x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.950456
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.088754
    eps = 216.0 / 24389.0
    kappa = 24389.0 / 27.0

    def f(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > eps, t.clamp(min=eps) ** (1.0 / 3.0), (kappa * t + 16.0) / 116.0)

    fx, fy, fz = f(x), f(y), f(z)
    lum = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    bb = 200.0 * (fy - fz)
    return torch.stack((lum, a, bb), dim=-3)


def fit_chroma_to_gamut(luma: torch.Tensor, chroma: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """Scale chroma down per pixel just enough that luma + chroma stays inside RGB [0, 1].

    Chroma adds no luma, so scaling it keeps the pixel's luma exactly, where clamping the
    RGB afterwards would change it (dark and bright pixels with strong colour).

    Args:
        luma: ``[..., 1, H, W]`` in [0, 1].
        chroma: ``[..., 2, H, W]``.
        matrix: the matrix both are expressed in.

    Returns:
        ``[..., 2, H, W]`` chroma whose RGB needs no clamping.
    """
    delta = ycbcr_to_rgb(torch.cat((torch.zeros_like(luma), chroma), dim=-3), matrix)  # RGB offset from grey
    room = torch.where(delta > 0, (1.0 - luma) / delta.clamp(min=1e-8), luma / (-delta).clamp(min=1e-8))
    scale = room.amin(dim=-3, keepdim=True).clamp(0.0, 1.0)
    return chroma * scale
