"""Still images: the model at render size, its coefficients applied to the full-resolution luma."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor.color import fit_chroma_to_gamut, rgb_to_ycbcr, ycbcr_to_rgb
from vidcolor.config import ColorizeConfig
from vidcolor.devices import pick_device
from vidcolor.errors import OutputError, UsageError
from vidcolor.io.atomic import atomic_output, check_image_output
from vidcolor.io.codecs import AUTO
from vidcolor.io.stills import Still, read_still
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator
from vidcolor.pipeline.batch import render_shape
from vidcolor.pipeline.report import RunReport
from vidcolor.pipeline.style import style_code
from vidcolor.pipeline.video_plan import check_options

log = logging.getLogger("vidcolor")


def colorize_luma(model: Generator, luma: torch.Tensor, render_size: int, device: torch.device,
                  hint_chroma: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None,
                  style: torch.Tensor | None = None) -> torch.Tensor:
    """Colorize (or stylise) one full-resolution luma image: the model runs at render size and
    its coefficients are applied to the full-resolution luma (edges stay sharp at any size).

    Args:
        model: the generator.
        luma: [1, 1, H, W] normalised luma.
        render_size: the model's short side.
        device: where to run.
        hint_chroma: [1, 2, h, w] hints at render size, or None.
        hint_mask: [1, 1, h, w], or None.
        style: [num_styles] style weights for style mode (RGB out), or None (chroma out).

    Returns:
        [1, 2, H, W] BT.601 chroma, or [1, 3, H, W] RGB in style mode.
    """
    h, w = luma.shape[-2:]
    rh, rw = render_shape(h, w, render_size)
    m = model.multiple
    rh, rw = -(-rh // m) * m, -(-rw // m) * m  # no padding inside the model: coefficients cover the frame
    small = torch.nn.functional.interpolate(luma, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    head = "chroma" if style is None else "rgb"
    weights = None if style is None else style[None].to(device)
    with torch.inference_mode():
        coeffs = model.coefficients(small.to(device), hint_chroma, hint_mask, style=weights, heads=(head,))[head]
        return model.apply_coefficients(coeffs, luma.to(device), head).cpu()


def colorize_rgb(model: Generator, luma: torch.Tensor, render_size: int, device: torch.device,
                 style: torch.Tensor | None = None) -> np.ndarray:
    """A still image's colour result: natural colour (chroma head, kept in gamut) or a style.

    Args:
        model: the generator.
        luma: [1, 1, H, W] normalised luma.
        render_size: the model's short side.
        device: where to run.
        style: style weights from ``style_code``, or None for natural colour.

    Returns:
        ``(H, W, 3)`` float32 RGB in [0, 1].
    """
    if style is not None:
        rgb = colorize_luma(model, luma, render_size, device, style=style)
    else:
        chroma = fit_chroma_to_gamut(luma, colorize_luma(model, luma, render_size, device))
        rgb = ycbcr_to_rgb(torch.cat((luma, chroma), dim=1))
    return rgb[0].clamp(0, 1).permute(1, 2, 0).numpy()


# Image types that store 16 bits a sample, and those that store transparency (OpenCV's writers).
_SIXTEEN_BIT_IMAGES = (".png", ".tif", ".tiff")
_ALPHA_IMAGES = (".png", ".tif", ".tiff", ".webp")


def _still_image(rgb: np.ndarray, source: Still, suffix: str, name: str) -> np.ndarray:
    """The colour result as OpenCV writes it: the source's bit depth and transparency kept
    where the output type can store them (a 16-bit scan stays 16-bit, a cut-out keeps its alpha).

    Args:
        rgb: ``(H, W, 3)`` float RGB in [0, 1].
        source: the still as read.
        suffix: the output's extension.
        name: the output, for the warning.

    Returns:
        ``(H, W, 3 or 4)`` uint8 or uint16 BGR(A).
    """
    sixteen = source.bit_depth == 16 and suffix in _SIXTEEN_BIT_IMAGES
    if source.bit_depth == 16 and not sixteen:
        log.warning("%s: %s stores 8 bits a sample; the 16-bit source is rounded (write .png or .tif to keep 16)",
                    name, suffix)
    top, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    planes = [rgb[..., ::-1]]
    if source.alpha is not None:
        if suffix in _ALPHA_IMAGES:
            planes.append(source.alpha[..., None])
        else:
            log.warning("%s: %s stores no transparency; the source's alpha is dropped (write .png, .tif or .webp to keep it)",
                        name, suffix)
    return (np.concatenate(planes, axis=2) * top + 0.5).astype(dtype)


def run_image(cfg: ColorizeConfig, model: Generator | None = None) -> RunReport:
    """Colorize a still image; the output keeps the input's size and luma.

    Args:
        cfg: options (input, output, model, style, strength, render size, device, overwrite, force).
        model: a generator to use instead of loading ``cfg.model``.

    Returns:
        A ``RunReport`` with one frame.
    """
    t0 = time.time()
    check_options(cfg)
    for name, given in (("--frames", cfg.frames), ("--reference", cfg.references), ("--preview", cfg.preview)):
        if given:  # silently ignoring them would leave the user believing they took effect
            raise UsageError(f"{name} is for videos; {cfg.input} is a still image")
    # These only shape how a video is encoded or rendered; a batch may pass them to every
    # file of a folder, so a still takes them with a note instead of a refusal.
    unused = [name for name, given in (("--codec", cfg.codec != AUTO), ("--crf", cfg.crf is not None),
                                       ("--deinterlace", cfg.deinterlace), ("--resume", cfg.resume))
              if given]
    if unused:
        log.warning("%s: %s %s no effect on a still image", cfg.input, ", ".join(unused),
                    "has" if len(unused) == 1 else "have")
    check_image_output(cfg.output, cfg.overwrite, [cfg.input])
    still = read_still(cfg.input)
    ycc = rgb_to_ycbcr(torch.from_numpy(still.rgb).permute(2, 0, 1))
    if float(ycc[1:].abs().mean()) > 0.02 and not cfg.force:
        raise UsageError(f"{cfg.input} looks like a colour image; pass --force to recolour it from its luma")
    device = pick_device(cfg.device)
    if model is None:
        model, _ = load_generator(cfg.model, device)
    luma = ycc[:1][None]
    out = colorize_rgb(model, luma, cfg.render_size, device, style_code(model.style_names, cfg.style, cfg.strength))
    suffix = Path(cfg.output).suffix.lower() or ".png"
    image = _still_image(out, still, suffix, cfg.output)
    with atomic_output(cfg.output, overwrite=cfg.overwrite, input_paths=[cfg.input]) as tmp:
        ok, data = cv2.imencode(suffix, image)
        if not ok:
            raise OutputError(f"{cfg.output}: OpenCV could not encode the image as {suffix!r}")
        data.tofile(str(tmp))
    return RunReport(cfg.output, 1, time.time() - t0)
