"""``vidcolor styles --sheet``: one image in every style a model carries, side by side."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vidcolor.color import luma_codes_to_unit, rgb_to_ycbcr
from vidcolor.config import DEFAULT_RENDER_SIZE
from vidcolor.io.decode import iter_frames
from vidcolor.io.media_files import media_kind
from vidcolor.io.probe import probe
from vidcolor.io.stills import read_image
from vidcolor.pipeline.preview import write_contact_sheet
from vidcolor.pipeline.still import colorize_rgb
from vidcolor.pipeline.style import style_code


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
