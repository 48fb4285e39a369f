"""Finding what ``vidcolor eval`` scores: photo folders and clips, and their dataset names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterable

from vidcolor.io.media_files import find_media


def find_data(paths: Iterable[str | os.PathLike]) -> tuple[dict[Path, list[Path]], list[Path]]:
    """Split files and folders (searched recursively) into photo groups and clips.

    Args:
        paths: photo folders, clip folders, or single files.

    Returns:
        ({parent folder: its photos, sorted}, clips sorted), without duplicates.

    Raises:
        InputError: a path that does not exist.
    """
    images, clips = find_media(paths)
    photos: dict[Path, list[Path]] = {}
    for f in images:
        photos.setdefault(f.parent, []).append(f)
    return photos, clips


def unique_names(paths: Sequence[Path], short: Callable[[Path], str]) -> list[str]:
    """Dataset names: ``short(path)`` for each path, or the full path where two short names collide.

    Args:
        paths: the folders or clips.
        short: the name a path goes by when it is unique (a folder's name, a clip's stem).

    Returns:
        One name per path.
    """
    names = [short(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]
