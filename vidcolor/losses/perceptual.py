"""Perceptual (VGG feature), style (Gram matrix) and identity (luma and structure) terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidcolor.color import rgb_to_luma


def perceptual_loss(feats_out: dict[str, torch.Tensor], feats_ref: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 distance between VGG features relative to the reference's mean magnitude.

    Dividing by the reference's mean |feature| makes the term scale-free, so its weight
    means the same with ImageNet or random VGG weights and for every layer.

    Args:
        feats_out: {layer: [B, C, h, w]} features of the output.
        feats_ref: the same layers for the reference (detached by the caller).

    Returns:
        Scalar loss; 0 when the features are equal.
    """
    terms = [F.l1_loss(feats_out[k], feats_ref[k]) / feats_ref[k].abs().mean().clamp(min=1e-8) for k in feats_out]
    return torch.stack(terms).mean()


def gram(features: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix of a feature map.

    Args:
        features: [B, C, h, w].

    Returns:
        [B, C, C] Gram matrices divided by C·h·w.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / float(c * h * w)


def style_loss(feats_out: dict[str, torch.Tensor], grams_ref: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared distance between Gram matrices relative to the reference Gram's energy.

    Per sample and layer: ||G_out - G_ref||² / ||G_ref||², averaged. Scale-free like
    ``perceptual_loss``: about 1 between unrelated images, 0 for an image with itself.

    Args:
        feats_out: {layer: [B, C, h, w]} features of the output.
        grams_ref: {layer: [B or 1, C, C]} Gram matrices of the reference (a style image or
            the true colour image).

    Returns:
        Scalar loss.
    """
    terms = []
    for k, feats in feats_out.items():
        g_out = gram(feats)
        g_ref = grams_ref[k].expand_as(g_out)
        err = (g_out - g_ref).pow(2).sum(dim=(1, 2))
        energy = g_ref.pow(2).sum(dim=(1, 2)).clamp(min=1e-12)
        terms.append((err / energy).mean())
    return torch.stack(terms).mean()


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return img[..., :, 1:] - img[..., :, :-1], img[..., 1:, :] - img[..., :-1, :]


def identity_loss(rgb_out: torch.Tensor, luma_in: torch.Tensor) -> torch.Tensor:
    """Keep the output's luma and structure the input's.

    L1 between the output's luma and the input luma, plus L1 between their horizontal and
    vertical gradients (structure survives even when the style shifts brightness).

    Args:
        rgb_out: [B, 3, H, W] output in [0, 1].
        luma_in: [B, 1, H, W] input luma.

    Returns:
        Scalar loss; 0 when the output's luma equals the input's.
    """
    luma_out = rgb_to_luma(rgb_out)
    gx_o, gy_o = _gradients(luma_out)
    gx_i, gy_i = _gradients(luma_in)
    return F.l1_loss(luma_out, luma_in) + F.l1_loss(gx_o, gx_i) + F.l1_loss(gy_o, gy_i)
