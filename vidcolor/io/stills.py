"""Still images: read 8- or 16-bit, grey or colour, with or without alpha, upright as shown."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vidcolor.errors import InputError
from vidcolor.io.inputs import ffmpeg_path
from vidcolor.io.media_info import is_image_format


@dataclass
class Still:
    """A still image as read: colour, transparency and the bit depth it was stored with."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1], None when the image has none
    bit_depth: int  # 8 or 16


def _still_via_ffmpeg(path: str) -> np.ndarray | None:
    """The first picture of an image file FFmpeg reads, as OpenCV would give it: BGR(A) or
    grey, 8- or 16-bit; None when FFmpeg cannot read it either."""
    try:
        with av.open(ffmpeg_path(path)) as container:
            # Only FFmpeg's image readers: a film named .png is a film, not its first frame.
            if not is_image_format(container.format.name) or not container.streams.video:
                return None
            frame = next(container.decode(video=0), None)
    except (av.error.FFmpegError, OSError, ValueError, StopIteration):
        return None
    if frame is None:
        return None
    components = frame.format.components
    deep = max(c.bits for c in components) > 8
    alpha = any(c.is_alpha for c in components)
    if len(components) == 1 and not frame.format.is_rgb and not frame.format.name.startswith("pal"):
        return frame.to_ndarray(format="gray16le" if deep else "gray")  # a grey scan stays grey
    target = ("bgra64le" if deep else "bgra") if alpha else ("bgr48le" if deep else "bgr24")
    return frame.to_ndarray(format=target)


_EXIF_ORIENTATION = 0x0112


def exif_orientation(exif: bytes) -> int:
    """The Orientation tag (1 to 8) of an EXIF block, 1 (upright) when it has none.

    Args:
        exif: the block as OpenCV returns it: a TIFF header and its first IFD, with or without
            the ``Exif\0\0`` prefix of a JPEG's APP1 segment.

    Returns:
        1 to 8, as the EXIF standard numbers them.
    """
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for i in range(count):
            # A 12-byte entry: tag, type, count, then the value; a SHORT sits in its first 2 bytes.
            tag, kind, _, value = struct.unpack_from(order + "HHIH", exif, ifd + 2 + 12 * i)
            if tag == _EXIF_ORIENTATION and kind == 3:
                return value if 1 <= value <= 8 else 1
    except struct.error:  # a truncated block: treat it as untagged
        pass
    return 1


def upright(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image the way its EXIF orientation says a viewer shows it.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` as stored.
        orientation: the EXIF Orientation, 1 to 8.

    Returns:
        The image as shown (contiguous; height and width swapped for 5 to 8).
    """
    turned = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # upside down
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # stored turned left: turn right (clockwise) to view
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transposed across the other diagonal
        8: lambda a: np.rot90(a, 1),  # stored turned right: turn left to view
    }.get(orientation)
    return img if turned is None else np.ascontiguousarray(turned(img))


def _decode_upright(data: np.ndarray) -> np.ndarray | None:
    """OpenCV's decode with depth and alpha kept, turned upright; None when OpenCV cannot read it.

    IMREAD_UNCHANGED is the one mode that keeps 16 bits and alpha, and also the one in which
    OpenCV leaves the EXIF orientation unapplied (phone photos would come out sideways), so
    the orientation is read from the EXIF block the decoder returns and applied here. TIFF's
    decoder turns the image itself and returns no EXIF block, so nothing is turned twice.
    """
    import cv2  # only stills need it; keeps `import vidcolor.io` light

    img, kinds, blocks = cv2.imdecodeWithMetadata(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    for kind, block in zip(kinds, blocks):
        if kind == cv2.IMAGE_METADATA_EXIF:
            return upright(img, exif_orientation(np.asarray(block, np.uint8).tobytes()))
    return img


def read_still(path: str) -> Still:
    """Read a still image (8- or 16-bit; grey, grey+alpha, colour or colour+alpha), upright as
    a viewer shows it (EXIF orientation applied).

    Args:
        path: image file.

    Returns:
        A ``Still``.
    """
    data = np.fromfile(path, dtype=np.uint8) if Path(path).is_file() else None
    img = _decode_upright(data) if data is not None and data.size else None
    if img is None and data is not None and data.size:
        img = _still_via_ffmpeg(path)  # DPX and Targa scans: OpenCV has no reader for them
    if img is None:
        raise InputError(f"{path}: not a readable image")
    bit_depth = 16 if img.dtype == np.uint16 else 8
    img = img.astype(np.float32) / float((1 << bit_depth) - 1)
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2]
    alpha = np.ascontiguousarray(img[..., -1]) if channels in (2, 4) else None  # grey+alpha, BGRA
    rgb = np.repeat(img[..., :1], 3, axis=2) if channels < 3 else np.ascontiguousarray(img[..., 2::-1])
    return Still(rgb, alpha, bit_depth)


def read_image(path: str) -> np.ndarray:
    """Read a still image as float RGB in [0, 1] (8- or 16-bit, grey or colour, alpha dropped).

    Args:
        path: image file.

    Returns:
        ``(H, W, 3)`` float32.
    """
    return read_still(path).rgb
