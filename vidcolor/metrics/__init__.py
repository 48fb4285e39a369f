"""Quality metrics: per-image (PSNR, SSIM, colourfulness, AuC) and temporal (warp error, CDC)."""

from vidcolor.metrics.image import chroma_auc, colourfulness, image_report, psnr, ssim
from vidcolor.metrics.temporal import cdc, clip_report, warp_error

__all__ = [
    "cdc",
    "chroma_auc",
    "clip_report",
    "colourfulness",
    "image_report",
    "psnr",
    "ssim",
    "warp_error",
]
