"""Which files are media: stills or videos, by extension and by what can read them."""

from __future__ import annotations

import os
from pathlib import Path

from vidcolor.errors import InputError
from vidcolor.io.stills import read_still

# Stills: what OpenCV reads, and the film-scan formats it does not (DPX, Targa), read by FFmpeg.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".pgm", ".ppm", ".pnm", ".dpx", ".tga"}
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mts", ".m2ts", ".ts", ".mxf", ".y4m"}


def media_kind(path: str | os.PathLike) -> str:
    """``"image"`` for a still image (a known extension, and OpenCV or one of FFmpeg's image
    readers reads it), else ``"video"``.

    Args:
        path: the input path.

    Returns:
        ``"image"`` or ``"video"``.
    """
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
        return "video"
    import cv2  # only needed for stills; keeps `import vidcolor.io` light

    if cv2.haveImageReader(str(p)):  # OpenCV knows the file's signature: no need to decode it here
        return "image"
    try:
        read_still(str(p))
    except InputError:
        return "video"  # e.g. a film named .png: probing it as a video gives the clear error
    return "image"


def find_media(paths) -> tuple[list[Path], list[Path]]:
    """Split files and folders (searched recursively, hidden files skipped) into stills and videos.

    A file named directly counts as a video unless it has an image extension, so clips with
    unusual extensions can still be given one by one.

    Args:
        paths: files or folders.

    Returns:
        (image paths, video paths), each sorted and without duplicates.
    """
    images: set[Path] = set()
    videos: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and not f.name.startswith("."):
                    ext = f.suffix.lower()
                    if ext in IMAGE_EXTENSIONS:
                        images.add(f)
                    elif ext in VIDEO_EXTENSIONS:
                        videos.add(f)
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            images.add(p)
        else:
            videos.add(p)
    return sorted(images), sorted(videos)
