"""Style mode: painting looks from the generator's RGB head, blended by strength.

``--style NAME`` picks one of the styles the model carries (``vidcolor styles`` lists them);
``--strength s`` mixes the style codes, ``(1 - s)·natural + s·NAME``, so 1 is the full style;
strength 0 and the style ``natural`` run the natural-colour path itself (``style_code``).
Unlike colorize mode, a style changes luma too: the output is RGB converted with the stream's
own matrix and range. The model sees render size only, so the
source's full-resolution detail (grain, edges) is kept by adding the style's *change* of luma,
upsampled, to the source's own luma. Temporal smoothing works on the style's colour-coefficient
maps (``styled_rgb``), so it never drags old edges along.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vidcolor.color import luma_codes_to_unit, luma_unit_to_codes, rgb_to_ycbcr
from vidcolor.config import DEFAULT_RENDER_SIZE
from vidcolor.errors import UsageError
from vidcolor.io.encode import OutputFormat
from vidcolor.models.generator import Generator
from vidcolor.pipeline.batch import upsample_chroma_codes


def style_weights(style_names: tuple[str, ...], style: str, strength: float) -> torch.Tensor:
    """Mixing weights over a model's style codes for ``--style`` and ``--strength``.

    Args:
        style_names: the model's styles (index 0 is "natural").
        style: the requested name.
        strength: 0 (natural colour) to 1 (full style).

    Returns:
        ``[num_styles]`` float32 weights summing to 1.
    """
    if style not in style_names:
        raise UsageError(f"unknown style {style!r}; this model has: {', '.join(style_names)}")
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {strength}")
    weights = torch.zeros(len(style_names))
    weights[0] = 1.0 - strength
    weights[style_names.index(style)] += strength
    return weights


def style_code(style_names: tuple[str, ...], style: str | None, strength: float) -> torch.Tensor | None:
    """``--style``/``--strength`` as style-code weights, or None where the result is natural colour.

    No style, ``natural`` and strength 0 all mean natural colour, and natural colour is what the
    colorize path (the chroma head) makes, so those return None and run that path: ``--strength
    0`` gives exactly the output without ``--style`` (the RGB head's own natural code is trained
    with fewer natural-colour samples and colours less faithfully).

    Args:
        style_names: the model's styles (index 0 is "natural").
        style: the requested name, or None.
        strength: 0 to 1.

    Returns:
        ``[num_styles]`` weights (see ``style_weights``), or None for natural colour.
    """
    if style is None:
        return None
    weights = style_weights(style_names, style, strength)  # unknown names and strengths fail here
    return None if float(weights[0]) == 1.0 else weights


def effective_style(style: str | None, strength: float | None) -> tuple[str | None, float | None]:
    """``--style``/``--strength`` as they decide the pixels, for comparing runs' settings.

    Args:
        style: the requested name, or None.
        strength: 0 to 1.

    Returns:
        ``(style, strength)``, or ``(None, None)`` for natural colour (no style, ``natural`` or
        strength 0; see ``style_code``).
    """
    if style is None or style == "natural" or not strength:
        return None, None
    return style, strength


def styled_rgb(maps: np.ndarray, seen_luma: np.ndarray) -> np.ndarray:
    """Apply (possibly smoothed) RGB coefficient maps to the luma the model saw.

    Temporal smoothing in style mode runs on the maps, not on the styled picture: they are
    smooth fields, so blending them along the flow cannot drag the previous frame's edges
    into this one (smoothing RGB, or the style's change of luma, did: a style that changes
    contrast carries the picture's structure in its output); the structure always comes from
    this frame's own luma.

    Args:
        maps: ``(6, h, w)`` from ``Generator.coefficient_maps`` (RGB head).
        seen_luma: ``(h, w)`` the normalised luma the model saw.

    Returns:
        ``(3, h, w)`` float32 RGB in [0, 1].
    """
    rgb = Generator.apply_maps(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None],
                               torch.from_numpy(np.ascontiguousarray(seen_luma, dtype=np.float32))[None, None], "rgb")
    return rgb[0].numpy()


def style_offsets(maps: np.ndarray, seen_luma: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """A styled frame as what it changes: (luma change, Cb, Cr) at render size.

    Args:
        maps: ``(6, h, w)`` RGB coefficient maps (possibly smoothed), applied by ``styled_rgb``.
        seen_luma: ``(h, w)`` the normalised luma the model saw.
        matrix: the output's matrix (the change is added to luma in that matrix).

    Returns:
        ``(3, h, w)`` float32: styled luma minus seen luma, then Cb and Cr in [-0.5, 0.5].
    """
    ycc = rgb_to_ycbcr(torch.from_numpy(styled_rgb(maps, seen_luma)), matrix).numpy()
    ycc[0] -= seen_luma
    return ycc


def styled_luma(change: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Full-resolution styled luma: the source's own luma plus the style's change, upsampled
    (so grain and edges the model never saw at render size survive).

    Args:
        change: ``(h, w)`` the style's change of luma at render size (``style_offsets[0]``).
        source: ``(H, W)`` the source's normalised luma in [0, 1].

    Returns:
        ``(H, W)`` float32 luma in [0, 1].
    """
    h, w = source.shape
    up = cv2.resize(np.ascontiguousarray(change, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(source + up, 0.0, 1.0).astype(np.float32)


def styled_planes(offsets: np.ndarray, y_codes: np.ndarray, source_depth: int, source_full_range: bool,
                  fmt: OutputFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a styled frame's offsets at render size into the output's Y, Cb and Cr planes.

    Args:
        offsets: ``(3, h, w)`` from ``style_offsets`` in ``fmt.matrix`` (possibly smoothed).
        y_codes: ``(H, W)`` the source's Y plane (its codes).
        source_depth: the source's bit depth.
        source_full_range: the source's range.
        fmt: the output format (matrix, range, depth, chroma size).

    Returns:
        (y, cb, cr) code planes in ``fmt.dtype``.
    """
    source = luma_codes_to_unit(torch.from_numpy(y_codes.astype(np.float32)), source_depth, source_full_range)
    y = luma_unit_to_codes(torch.from_numpy(styled_luma(offsets[0], source.numpy())), fmt.bit_depth, fmt.full_range)
    codes = upsample_chroma_codes(offsets[1:], fmt.chroma_size, fmt.bit_depth, fmt.full_range, fmt.dtype)
    return y.numpy().astype(fmt.dtype), codes[0], codes[1]


def style_sheet(model, image_path: str, sheet_path: str, render_size: int = DEFAULT_RENDER_SIZE, width: int = 320) -> list[str]:
    """Render one image in every style of a model, side by side with its name order.

    Args:
        model: the generator.
        image_path: a still image, or a video (its first frame is used).
        sheet_path: the PNG to write.
        render_size: the model's short side.
        width: width of each thumbnail.

    Returns:
        The style names, in the sheet's order (left to right, top to bottom).
    """
    from vidcolor.io.decode import iter_frames
    from vidcolor.io.media_files import media_kind
    from vidcolor.io.probe import probe
    from vidcolor.io.stills import read_image
    from vidcolor.pipeline.run import colorize_rgb, write_contact_sheet

    if media_kind(image_path) == "image":
        rgb = torch.from_numpy(read_image(image_path)).permute(2, 0, 1)
        luma = rgb_to_ycbcr(rgb)[:1][None]
    else:
        info = probe(image_path, verdict=False)
        frame = next(iter_frames(image_path, info, 0, 0))
        luma = luma_codes_to_unit(torch.from_numpy(frame.y.astype(np.float32)), info.video.bit_depth, info.video.full_range)[None, None]
    h = max(1, round(luma.shape[-2] * width / luma.shape[-1]))
    thumbs = []
    for name in model.style_names:
        out = colorize_rgb(model, luma, render_size, torch.device("cpu"), style_code(model.style_names, name, 1.0))
        img = (out * 255 + 0.5).astype(np.uint8)
        thumbs.append(cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA))
    rows = [tuple(thumbs[i : i + 4]) for i in range(0, len(thumbs), 4)]
    write_contact_sheet(sheet_path, rows)
    return list(model.style_names)
