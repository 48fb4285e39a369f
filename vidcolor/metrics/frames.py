"""The pictures ``vidcolor eval`` compares: a clip's true colour frames, and a method's frame
rebuilt as the true luma plus that method's chroma."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Callable

import numpy as np
import torch

from vidcolor.color import ycbcr_to_rgb
from vidcolor.errors import InputError
from vidcolor.io.decode import iter_frames
from vidcolor.io.probe import probe
from vidcolor.pipeline.planes import planes_to_rgb


def compose(luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    """RGB from luma and BT.601 chroma of the same size, clamped to [0, 1] (as ``run_image``).

    Args:
        luma: ``(H, W)`` float32 luma in [0, 1].
        chroma: ``(2, H, W)`` float32 chroma in [-0.5, 0.5], or None for neutral chroma.

    Returns:
        ``(H, W, 3)`` float32 RGB.
    """
    y = torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))[None]
    c = torch.zeros(2, *y.shape[1:]) if chroma is None else torch.from_numpy(np.ascontiguousarray(chroma, dtype=np.float32))
    return ycbcr_to_rgb(torch.cat((y, c))).clamp(0, 1).permute(1, 2, 0).numpy()


class LazyFrames(Sequence):
    """A read-only sequence whose frames are made on access, keeping the last two (the
    warp error reads frames t-1 and t), so a long clip never sits in memory at full size.

    Args:
        length: number of frames.
        make: ``make(t)`` builds frame ``t``.
    """

    def __init__(self, length: int, make: Callable[[int], np.ndarray]):
        self._length = length
        self._make = make
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, t):  # type: ignore[override]
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(self._length))]
        if t < 0:
            t += self._length
        if not 0 <= t < self._length:
            raise IndexError(t)
        if t not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[t] = self._make(t)
        return self._cache[t]


def read_clip(path: str | os.PathLike, max_frames: int | None = None) -> list[np.ndarray]:
    """Decode a clip's first frames as 8-bit RGB with its own matrix and range.

    Args:
        path: a video file.
        max_frames: keep at most this many frames from the start (None: all).

    Returns:
        ``T`` frames ``(H, W, 3)`` uint8.

    Raises:
        InputError: not a decodable video.
    """
    info = probe(path, verdict=False)
    video = info.video
    end = None if max_frames is None else max_frames - 1
    frames = []
    for frame in iter_frames(path, info, 0, end):
        cb, cr = frame.cb, frame.cr
        if cb is None:  # a grey stream: neutral chroma
            cb = cr = np.full((1, 1), 1 << (video.bit_depth - 1), np.float32)
        width = frame.y.shape[1]
        frames.append(planes_to_rgb(frame.y, cb, cr, video.bit_depth, video.full_range, video.matrix, width))
    if not frames:
        raise InputError(f"{path}: no frame could be decoded")
    return frames

