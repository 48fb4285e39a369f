"""Flicker term: outputs of consecutive frames agree where the flow is reliable."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp_back(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (frame t+1) at ``x + flow(x)``, bringing it into frame t.

    Args:
        img: [B, C, H, W] frame t+1 (or its output).
        flow: [B, 2, H, W] flow from frame t to frame t+1 in pixels (x, y).

    Returns:
        [B, C, H, W] warped image.
    """
    b, _, h, w = img.shape
    assert flow.shape == (b, 2, h, w), f"flow must be [B, 2, {h}, {w}], got {tuple(flow.shape)}"
    ys, xs = torch.meshgrid(
        torch.arange(h, device=img.device, dtype=img.dtype),
        torch.arange(w, device=img.device, dtype=img.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def flicker_loss(out_t: torch.Tensor, out_t1: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 between the output for frame t and the output for t+1 warped back.

    Args:
        out_t: [B, C, H, W] output for frame t.
        out_t1: [B, C, H, W] output for frame t+1.
        flow: [B, 2, H, W] flow t -> t+1.
        mask: [B, 1, H, W] 1 where the flow is reliable (not occluded), else 0.

    Returns:
        Scalar loss; 0 for a static pair with identical outputs.
    """
    diff = (out_t - warp_back(out_t1, flow)).abs() * mask
    return diff.sum() / (mask.sum() * out_t.shape[1]).clamp(min=1.0)
