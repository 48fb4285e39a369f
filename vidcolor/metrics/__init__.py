"""Quality metrics: per-image (PSNR, SSIM, colourfulness, AuC) and temporal (warp error, CDC).

Exports load on first use, so importing ``vidcolor.commands.evaluate`` (and the CLI) stays quick.
"""

from __future__ import annotations

_EXPORTS = {
    "chroma_auc": "image",
    "colourfulness": "image",
    "image_report": "image",
    "psnr": "image",
    "ssim": "image",
    "cdc": "temporal",
    "clip_report": "temporal",
    "warp_error": "temporal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"vidcolor.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
