"""Previews: contact sheets of input beside output, and the frames a ``--preview`` shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidcolor.errors import OutputError
from vidcolor.io.atomic import atomic_output
from vidcolor.io.decode import Frame
from vidcolor.io.encode import OutputFormat
from vidcolor.io.media_info import VideoStreamInfo
from vidcolor.pipeline.planes import planes_to_rgb

PREVIEW_FRAMES = 4
PREVIEW_WIDTH = 480


def preview_indices(start: int, end: int) -> set[int]:
    """The frames a ``--preview`` sheet shows: ``PREVIEW_FRAMES`` spread evenly over the range.

    Args:
        start: the first frame written.
        end: the last frame written (inclusive).

    Returns:
        Frame indices within ``start .. end``.
    """
    step = max((end - start + 1) // PREVIEW_FRAMES, 1)
    return {i for i in (start + step // 2 + k * step for k in range(PREVIEW_FRAMES)) if i <= end}


def write_contact_sheet(path: str | Path, rows: list[tuple[np.ndarray, ...]]) -> None:
    """Write rows of images side by side as one image (atomically; PNG or JPEG by extension).

    Args:
        path: the image to write.
        rows: tuples of uint8 RGB images (e.g. input, output[, truth]); images in a row share
            their height.
    """
    lines = []
    for images in rows:
        spacer = np.full((images[0].shape[0], 4, 3), 255, np.uint8)
        lines.append(np.concatenate([x for img in images for x in (img, spacer)][:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    gap = np.full((4, width, 3), 255, np.uint8)
    sheet = np.concatenate([x for line in lines for x in (line, gap)][:-1], axis=0)
    suffix = Path(path).suffix.lower() or ".png"
    with atomic_output(path, overwrite=True) as tmp:
        ok, data = cv2.imencode(suffix, sheet[..., ::-1])
        if not ok:
            raise OutputError(f"{path}: cannot write a contact sheet as {suffix!r} (use .png or .jpg)")
        data.tofile(str(tmp))


def preview_row(frame: Frame, video: VideoStreamInfo, fmt: OutputFormat, y: np.ndarray, cb: np.ndarray,
                cr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row of a ``--preview`` sheet: the input frame beside the output planes, as RGB.

    Args:
        frame: the decoded input frame.
        video: the input's video stream.
        fmt: the output format.
        y, cb, cr: the output's code planes of this frame.

    Returns:
        (input, output) uint8 RGB images ``PREVIEW_WIDTH`` wide.
    """
    if frame.cb is not None:
        grey_in = planes_to_rgb(frame.y, frame.cb, frame.cr, video.bit_depth, video.full_range, video.matrix,
                                PREVIEW_WIDTH)
    else:
        mid = np.full((1, 1), 1 << (video.bit_depth - 1), np.float32)
        grey_in = planes_to_rgb(frame.y, mid, mid, video.bit_depth, video.full_range, video.matrix, PREVIEW_WIDTH)
    out = planes_to_rgb(y, cb, cr, fmt.bit_depth, fmt.full_range, fmt.matrix, PREVIEW_WIDTH)
    return grey_in, out
