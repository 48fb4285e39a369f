"""Flow-guided recursive chroma smoothing (README, "No flicker").

``c'_t = (1 - a·m)·c_t + a·m·warp(c'_{t-1})``: each frame's predicted chroma is blended with
the previous smoothed chroma carried along the optical flow, where the flow is reliable
(``m``, a softened forward-backward consistency mask). Flow is DIS on luma at render size;
the state is reset at scene cuts, so colours never bleed across shots.

Why W warm-up frames are enough for the farm: bilinear warping never increases the largest
value and ``a·m <= a``, so a difference in starting state shrinks at least by ``a`` per
frame; after ``W = ceil(ln(0.5/255) / ln a)`` frames it is under half a code value.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from vidcolor import flow
from vidcolor.config import DEFAULT_SMOOTH

# Softening of the reliability mask: a small blur so that occlusion borders fade in and out
# instead of leaving a hard seam between filtered and unfiltered chroma.
_MASK_BLUR_KERNEL = (5, 5)
_MASK_BLUR_SIGMA = 1.0

# A leftover difference must fall below half an 8-bit code value to round the same way.
_HALF_CODE = 0.5 / 255.0


def warmup_frames(alpha: float) -> int:
    """Frames a chunk must run before its first output frame to match a single run.

    Args:
        alpha: smoothing strength in [0, 1).

    Returns:
        ``ceil(ln(0.5/255) / ln alpha)``, 0 for ``alpha <= 0`` (28 for 0.8).
    """
    if alpha <= 0.0:
        return 0
    _check_alpha(alpha)
    return math.ceil(math.log(_HALF_CODE) / math.log(alpha))


def _check_alpha(alpha: float) -> None:
    """ValueError unless 0 <= alpha < 1 (at 1 the state would never forget, no warm-up fits)."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"smoothing alpha must be in [0, 1), got {alpha}")


def _check_shapes(luma: np.ndarray, chroma: np.ndarray) -> None:
    """ValueError unless luma is (H, W) and chroma (C, H, W) with 1 <= C <= 8."""
    if luma.ndim != 2 or chroma.ndim != 3 or chroma.shape[1:] != luma.shape or not 1 <= chroma.shape[0] <= 8:
        raise ValueError(f"expected luma (H, W) and chroma (C<=8, H, W), got {luma.shape} and {chroma.shape}")


def _interleaved(chroma: np.ndarray) -> np.ndarray:
    """(C, H, W) planes to a contiguous (H, W, C) image, the layout cv2.remap warps in one
    call (cv2.merge is several times faster than numpy's strided copy)."""
    merged = cv2.merge(list(chroma))
    return merged[..., None] if merged.ndim == 2 else merged


def _own_gray(luma: np.ndarray) -> np.ndarray:
    """8-bit luma for flow that does not alias the caller's buffer (which it may reuse)."""
    gray = flow.to_gray8(luma)
    return gray.copy() if np.shares_memory(gray, luma) else gray


def flow_and_weight(gray: np.ndarray, prev_gray: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Flow from a frame to the previous one and the smoother's per-pixel blend weight ``a·m``.

    Args:
        gray: ``(H, W)`` uint8 luma of this frame.
        prev_gray: ``(H, W)`` uint8 luma of the previous frame.
        alpha: smoothing strength ``a``.

    Returns:
        (``(H, W, 2)`` flow t -> t-1, ``(H, W)`` float32 weight: ``a`` times the softened
        forward-backward consistency mask).
    """
    to_prev, mask = flow.checked_flow(gray, prev_gray)
    weight = cv2.GaussianBlur(mask, _MASK_BLUR_KERNEL, _MASK_BLUR_SIGMA)
    weight *= alpha
    return to_prev, weight


class ChromaSmoother:
    """Stateful chroma filter for one stream of frames, in display order.

    One instance per stream and per thread (it holds the previous frame); the only shared
    resource is ``vidcolor.flow``'s per-thread DIS object.

    Attributes:
        alpha: smoothing strength ``a`` in [0, 1); 0 turns smoothing off.
        last_was_cut: True when a scene cut was detected between the previous frame and
            the frame just processed (the state was reset and its chroma passed through).
    """

    def __init__(self, alpha: float = DEFAULT_SMOOTH):
        _check_alpha(alpha)
        self.alpha = float(alpha)
        self.last_was_cut = False
        self._prev_gray: np.ndarray | None = None  # (H, W) uint8 luma of the previous frame
        self._prev_chroma: np.ndarray | None = None  # (H, W, C) float32 smoothed values

    def warmup_frames(self) -> int:
        """Frames a stream that starts mid-shot must run before its first output frame for its
        output to match a run from the film's start (to within one code value).

        Returns:
            ``warmup_frames(alpha)``: 0 with smoothing off.
        """
        return warmup_frames(self.alpha)

    def reset(self) -> None:
        """Forget the history: the next frame is passed through as the start of a shot."""
        self.last_was_cut = False
        self._prev_gray = None
        self._prev_chroma = None

    def __call__(self, luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """Smooth one frame's chroma against the history.

        Args:
            luma: ``(H, W)`` float32 luma in [0, 1] (or uint8 codes) at render size.
            chroma: ``(C, H, W)`` float32, same size: (Cb, Cr) in colorize mode, the style's
                six colour-coefficient maps in style mode (any 1 to 8 channels are smoothed
                alike).

        Returns:
            A new ``(C, H, W)`` float32 array of smoothed values (the input itself when
            alpha is 0).
        """
        luma = np.asarray(luma)
        chroma = np.asarray(chroma, dtype=np.float32)
        _check_shapes(luma, chroma)
        self.last_was_cut = False
        if self.alpha == 0.0:
            return chroma

        # 1. Start a shot when there is no usable history or when the shot changed.
        gray = _own_gray(luma)
        if self._prev_gray is None or self._prev_gray.shape != gray.shape:
            return self._start_shot(gray, chroma)
        if flow.is_scene_cut(self._prev_gray, gray):
            self.last_was_cut = True
            return self._start_shot(gray, chroma)

        # 2. Flow from this frame to the previous one, and how far to trust each pixel.
        to_prev, weight = flow_and_weight(gray, self._prev_gray, self.alpha)

        # 3. Blend: c + w·(warp(c'_{t-1}) - c), computed in place in the warped buffer.
        current = _interleaved(chroma)
        blended = flow.warp(self._prev_chroma, to_prev).reshape(current.shape)
        blended -= current
        blended *= weight[..., None]
        blended += current

        self._prev_gray, self._prev_chroma = gray, blended
        return np.ascontiguousarray(blended.transpose(2, 0, 1))

    def _start_shot(self, gray: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """Reset the state to this frame and return its chroma unchanged (a copy)."""
        self._prev_gray = gray
        self._prev_chroma = _interleaved(chroma)
        return chroma.copy()


def smooth_sequence(
    lumas: Sequence[np.ndarray], chromas: Sequence[np.ndarray], alpha: float
) -> list[np.ndarray]:
    """Run a fresh ``ChromaSmoother`` over a whole clip.

    Args:
        lumas: ``T`` luma frames ``(H, W)``.
        chromas: ``T`` frames of 1 to 8 planes ``(C, H, W)`` (chroma, or a style's coefficient maps).
        alpha: smoothing strength in [0, 1).

    Returns:
        ``T`` smoothed ``(C, H, W)`` float32 frames.
    """
    if len(lumas) != len(chromas):
        raise ValueError(f"{len(lumas)} luma frames but {len(chromas)} chroma frames")
    smoother = ChromaSmoother(alpha)
    return [smoother(y, c) for y, c in zip(lumas, chromas)]
