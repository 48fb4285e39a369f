"""Optical flow helpers shared by training pairs, the smoother, references and metrics.

Convention (OpenCV's): ``flow = dis_flow(a, b)`` gives, for each pixel x of ``a``, the
displacement to where it lies in ``b``, so ``a(x) ≈ b(x + flow(x))`` and
``warp(b, flow)`` brings ``b`` back into ``a``'s frame.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

_local = threading.local()  # DIS objects are not thread-safe; one per thread


def _dis() -> "cv2.DISOpticalFlow":
    dis = getattr(_local, "dis", None)
    if dis is None:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        _local.dis = dis
    return dis


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids, cached per size (rebuilding them cost more than the warp)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


def to_gray8(img: np.ndarray, bit_depth: int = 16) -> np.ndarray:
    """Make an 8-bit single-channel image for flow from luma in [0, 1] or uint8/uint16 codes.

    Args:
        img: ``(H, W)`` array, float in [0, 1], uint8 or uint16.
        bit_depth: depth of uint16 codes (10 for 10-bit video); the shift is fixed by it, not
            by each frame's content, so the scaling never changes from frame to frame.

    Returns:
        Contiguous ``(H, W)`` uint8 array.
    """
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint16:
        return np.ascontiguousarray((img >> max(bit_depth - 8, 0)).astype(np.uint8))
    return np.ascontiguousarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` with OpenCV's DIS.

    Args:
        a: ``(H, W)`` luma (float [0, 1] or integer codes).
        b: same shape as ``a``.

    Returns:
        ``(H, W, 2)`` float32 flow (x, y displacements in pixels).
    """
    return _dis().calc(to_gray8(a), to_gray8(b), None)


# Farneback's settings: a pyramid deep enough for the motion of 720p footage (4 levels of
# halving) and a 15-pixel window, which smooths more than DIS's 8-pixel patches.
_FARNEBACK = dict(pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def farneback_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` with OpenCV's Farneback method: a second, independent
    estimator (polynomial expansion, not patch search) for checking measurements that DIS flow
    would share with the smoother.

    Args:
        a: ``(H, W)`` luma (float [0, 1] or integer codes).
        b: same shape as ``a``.

    Returns:
        ``(H, W, 2)`` float32 flow (x, y displacements in pixels).
    """
    return cv2.calcOpticalFlowFarneback(to_gray8(a), to_gray8(b), None, **_FARNEBACK)


# Flow estimators by name, for the metrics' ``flow=`` choice.
FLOW_METHODS = {"dis": dis_flow, "farneback": farneback_flow}


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` at ``x + flow(x)`` (bilinear, edges replicated).

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` float32 array.
        flow: ``(H, W, 2)`` flow.

    Returns:
        Array shaped like ``img``.
    """
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(
        img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Forward-backward check: 1 where the flow is reliable, 0 at occlusions and off-frame.

    A pixel is kept when following the forward flow and then the backward flow returns near
    the start (Sundaram et al. 2010), and its target lies inside the frame.

    Args:
        forward: ``(H, W, 2)`` flow a->b.
        backward: ``(H, W, 2)`` flow b->a.

    Returns:
        ``(H, W)`` float32 mask of 0 and 1.
    """
    h, w = forward.shape[:2]
    gx, gy = _grid(h, w)
    tx, ty = gx + forward[..., 0], gy + forward[..., 1]
    back = cv2.remap(backward, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Per-channel arithmetic: numpy's reductions over a length-2 last axis are slow.
    fx, fy, bx, by = forward[..., 0], forward[..., 1], back[..., 0], back[..., 1]
    ok = (fx + bx) ** 2 + (fy + by) ** 2 <= 0.01 * (fx * fx + fy * fy + bx * bx + by * by) + 0.5
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (ok & inside).astype(np.float32)


def checked_flow(a: np.ndarray, b: np.ndarray, estimate=dis_flow) -> tuple[np.ndarray, np.ndarray]:
    """Flow from ``a`` to ``b`` and where it can be trusted: the flow back from ``b`` to ``a``
    is estimated too, and ``consistency_mask`` keeps the pixels where the two agree.

    ``warp(img_b, flow)`` then lands ``b``'s content in ``a``'s grid, reliable where the mask is 1.

    Args:
        a: ``(H, W)`` luma.
        b: same shape as ``a``.
        estimate: the estimator, ``dis_flow`` or another of ``FLOW_METHODS``.

    Returns:
        (``(H, W, 2)`` flow a->b, ``(H, W)`` float32 mask of 0 and 1).
    """
    forward = estimate(a, b)
    backward = estimate(b, a)
    return forward, consistency_mask(forward, backward)


def is_scene_cut(a: np.ndarray, b: np.ndarray, threshold: float = 0.35, thumb_threshold: float = 0.1) -> bool:
    """Whether two consecutive luma frames belong to different shots.

    Two tests, either one declares a cut: 32-bin luma histograms far apart (half the L1
    distance, 0 = same, 1 = disjoint), or 32-pixel-wide thumbnails that differ by more than
    ``thumb_threshold`` on average (a cut between shots of similar brightness). Thumbnails are
    small enough that camera and subject motion barely move them (real footage stays under
    about 0.06 between consecutive frames).

    Args:
        a: ``(H, W)`` luma.
        b: ``(H, W)`` luma.
        threshold: histogram distance above which a cut is declared.
        thumb_threshold: mean thumbnail difference (in [0, 1]) above which a cut is declared.

    Returns:
        True at a cut.
    """
    ga, gb = to_gray8(a), to_gray8(b)
    ha = cv2.calcHist([ga], [0], None, [32], [0, 256]).ravel()
    hb = cv2.calcHist([gb], [0], None, [32], [0, 256]).ravel()
    ha /= max(ha.sum(), 1.0)
    hb /= max(hb.sum(), 1.0)
    if 0.5 * np.abs(ha - hb).sum() > threshold:
        return True
    size = (32, max(1, round(32 * ga.shape[0] / ga.shape[1])))
    ta = cv2.resize(ga, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    tb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return bool(np.abs(ta - tb).mean() / 255.0 > thumb_threshold)
