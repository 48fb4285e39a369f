"""Adversarial terms for both outputs of the U-Net discriminator (global and per pixel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("hinge", "nonsaturating")


def _mean_both(scores: tuple[torch.Tensor, torch.Tensor], fn) -> torch.Tensor:
    global_score, pixel = scores
    return 0.5 * (fn(global_score).mean() + fn(pixel).mean())


def discriminator_loss(
    real: tuple[torch.Tensor, torch.Tensor], fake: tuple[torch.Tensor, torch.Tensor], kind: str = "hinge"
) -> torch.Tensor:
    """Loss for the discriminator, averaged over its global and per-pixel scores.

    Args:
        real: (global [B], pixel [B,1,H,W]) scores on real images.
        fake: the same on generated images.
        kind: "hinge" or "nonsaturating".

    Returns:
        Scalar loss.
    """
    if kind == "hinge":
        return _mean_both(real, lambda s: F.relu(1.0 - s)) + _mean_both(fake, lambda s: F.relu(1.0 + s))
    if kind == "nonsaturating":
        return _mean_both(real, lambda s: F.softplus(-s)) + _mean_both(fake, F.softplus)
    raise ValueError(f"unknown adversarial loss {kind!r} (valid: {', '.join(KINDS)})")


def generator_loss(fake: tuple[torch.Tensor, torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """Loss for the generator on the discriminator's scores of its output.

    Args:
        fake: (global [B], pixel [B,1,H,W]) scores on generated images.
        kind: "hinge" or "nonsaturating".

    Returns:
        Scalar loss.
    """
    if kind == "hinge":
        return _mean_both(fake, lambda s: -s)
    if kind == "nonsaturating":
        return _mean_both(fake, lambda s: F.softplus(-s))
    raise ValueError(f"unknown adversarial loss {kind!r} (valid: {', '.join(KINDS)})")
