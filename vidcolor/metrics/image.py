"""Per-image quality metrics: PSNR, SSIM, colourfulness and the chroma AuC.

Images are float RGB arrays ``(H, W, 3)`` in [0, 1]; every metric returns a plain Python
float. Arithmetic is done in float64 so small differences are not lost to rounding.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from vidcolor import color

# Wang et al. 2004 SSIM constants.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03

# ab errors this small (Lab units; a just-visible difference is about 1) are rounding noise of
# the Lab conversion, e.g. greys of different lightness; they count as exact at threshold 0.
_AB_TOLERANCE = 1e-6


def _pair_as_float(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 arrays of the same shape (ValueError otherwise)."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth shapes differ: {p.shape} vs {t.shape}")
    return p, t


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` sRGB in [0, 1] to ``(H, W, 3)`` Lab, through ``vidcolor.color``."""
    # float32 is within 1e-4 Lab units of float64 here and several times faster; AuC steps
    # are whole Lab units.
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb, -1, 0), dtype=np.float32))
    return np.moveaxis(color.rgb_to_lab(chw).numpy(), 0, -1)


def psnr(pred: np.ndarray, truth: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB.

    Args:
        pred: predicted image.
        truth: reference image, same shape.
        peak: largest possible value (1.0 for [0, 1] images).

    Returns:
        ``10·log10(peak² / MSE)``; ``inf`` when the images are identical.
    """
    p, t = _pair_as_float(pred, truth)
    mse = float(np.mean((p - t) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _gaussian_mean(img: np.ndarray) -> np.ndarray:
    """Local gaussian-weighted mean (11x11 window, sigma 1.5), borders reflected."""
    k = _SSIM_WINDOW
    return cv2.GaussianBlur(img, (k, k), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def _ssim_map(x: np.ndarray, y: np.ndarray, peak: float) -> np.ndarray:
    """Per-pixel SSIM of two single-channel float64 images."""
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    mu_x, mu_y = _gaussian_mean(x), _gaussian_mean(y)
    var_x = _gaussian_mean(x * x) - mu_x * mu_x
    var_y = _gaussian_mean(y * y) - mu_y * mu_y
    cov = _gaussian_mean(x * y) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def _crop_window_border(ssim_map: np.ndarray) -> np.ndarray:
    """Drop the half-window border where the window hangs off the image (as in the
    reference implementation's 'valid' filtering), when the image is big enough to."""
    r = _SSIM_WINDOW // 2
    h, w = ssim_map.shape
    if h > 2 * r and w > 2 * r:
        return ssim_map[r : h - r, r : w - r]
    return ssim_map


def ssim(pred: np.ndarray, truth: np.ndarray, peak: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004) on each RGB channel, averaged.

    Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03; the 5-pixel border is left
    out of the mean when the image is larger than the window.

    Args:
        pred: ``(H, W, 3)`` (or ``(H, W)``) image.
        truth: reference image, same shape.
        peak: dynamic range of the values (1.0 for [0, 1] images).

    Returns:
        Mean SSIM, 1.0 for identical images.
    """
    p, t = _pair_as_float(pred, truth)
    if p.ndim == 2:
        p, t = p[..., None], t[..., None]
    per_channel = [
        _crop_window_border(_ssim_map(p[..., c], t[..., c], peak)).mean()
        for c in range(p.shape[-1])
    ]
    return float(np.mean(per_channel))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk (2003) colourfulness, on the 0..255 scale.

    ``rg = R - G``, ``yb = (R + G)/2 - B``;
    ``M = sqrt(std_rg² + std_yb²) + 0.3·sqrt(mean_rg² + mean_yb²)``.

    Args:
        rgb: ``(H, W, 3)`` RGB in [0, 1].

    Returns:
        M (0 for a grey image; about 100+ for very vivid ones).
    """
    img = np.asarray(rgb, dtype=np.float64) * 255.0
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    offset = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * offset


def ab_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel chroma error: Euclidean distance in the Lab a-b plane.

    Args:
        pred: ``(H, W, 3)`` RGB in [0, 1].
        truth: same shape.

    Returns:
        ``(H, W)`` float64 array of distances (Lab units).
    """
    p, t = _pair_as_float(pred, truth)
    diff = _rgb_to_lab(p)[..., 1:] - _rgb_to_lab(t)[..., 1:]
    return np.sqrt((diff**2).sum(-1))


def chroma_auc(
    pred: np.ndarray, truth: np.ndarray, max_threshold: float = 150.0, steps: int = 151
) -> float:
    """Area under the cumulative ab-error curve (Zhang et al. 2016, "Colorful Image Colorization").

    For each threshold t in ``linspace(0, max_threshold, steps)``, the share of pixels whose
    ab error is <= t; the result is the mean of those shares.

    Args:
        pred: ``(H, W, 3)`` RGB in [0, 1].
        truth: same shape.
        max_threshold: largest threshold, in Lab units.
        steps: number of thresholds.

    Returns:
        A value in [0, 1]; 1 for identical chroma.
    """
    errors = np.sort(ab_error(pred, truth), axis=None)
    thresholds = np.linspace(0.0, max_threshold, steps)
    # searchsorted on the sorted errors counts pixels <= t for every t at once.
    within = np.searchsorted(errors, thresholds + _AB_TOLERANCE, side="right") / errors.size
    return float(within.mean())


def colourfulness_ratio(pred_value: float, truth_value: float) -> float:
    """Ratio of two colourfulness values (pred / truth).

    Args:
        pred_value: colourfulness of the prediction.
        truth_value: colourfulness of the reference.

    Returns:
        The ratio; 1.0 when both are 0 (equally grey), ``inf`` when only the truth is grey.
    """
    if truth_value == 0.0:
        return 1.0 if pred_value == 0.0 else math.inf
    return pred_value / truth_value


def image_report(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All image metrics of one prediction against its ground truth.

    Args:
        pred: ``(H, W, 3)`` RGB in [0, 1].
        truth: same shape.

    Returns:
        ``{"psnr", "ssim", "colourfulness" (of pred), "colourfulness_ratio" (pred/truth),
        "auc"}``, plain floats.
    """
    pred_c = colourfulness(pred)
    return {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "colourfulness": pred_c,
        "colourfulness_ratio": colourfulness_ratio(pred_c, colourfulness(truth)),
        "auc": chroma_auc(pred, truth),
    }
