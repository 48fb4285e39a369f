"""U-Net discriminator: a global real/fake score and a per-pixel one, conditioned on luma.

After Schönfeld et al. 2020: the encoder's bottleneck gives one score per image, the decoder
gives one score per pixel, so the generator is pushed both on overall plausibility and on
local colour. Every layer is spectrally normalised. No I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vidcolor.config import DiscriminatorConfig


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class Discriminator(nn.Module):
    """U-Net discriminator over (luma, RGB).

    Args:
        base_channels: channels of the first level.
        levels: encoder levels (each halves the size).
        max_channels: cap on channels per level.
    """

    IN_CHANNELS = 4  # luma + RGB (the luma is the condition)

    def __init__(self, base_channels: int = 32, levels: int = 4, max_channels: int = 256):
        super().__init__()
        self.config = DiscriminatorConfig(base_channels, levels, max_channels)
        self.multiple = 2 ** (levels + 1)
        chans = [min(base_channels * 2**i, max_channels) for i in range(levels + 1)]
        # The first layer already halves the size: full-resolution layers cost most of a
        # discriminator's time, and per-pixel scores at half resolution are enough.
        self.inp = spectral_norm(nn.Conv2d(self.IN_CHANNELS, chans[0], 4, stride=2, padding=1))
        self.down = nn.ModuleList(
            spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)) for i in range(levels)
        )
        self.global_head = spectral_norm(nn.Linear(chans[levels], 1))
        self.up = nn.ModuleList(
            spectral_norm(nn.Conv2d(chans[i + 1] + chans[i], chans[i], 3, padding=1)) for i in range(levels)
        )
        self.pixel_head = spectral_norm(nn.Conv2d(chans[0], 1, 1))

    def forward(self, luma: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score images.

        Args:
            luma: [B, 1, H, W] the input luma (condition), any H, W.
            rgb: [B, 3, H, W] a real or generated colour image.

        Returns:
            (global [B], pixel [B, 1, H, W]) raw scores (higher = more real).
        """
        b, _, h, w = luma.shape
        assert rgb.shape == (b, 3, h, w), f"rgb must be [B, 3, {h}, {w}], got {tuple(rgb.shape)}"
        m = self.multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        x = F.pad(torch.cat((luma - 0.5, rgb - 0.5), dim=1), pad, mode="replicate")
        x = _act(self.inp(x))
        skips = [x]
        for down in self.down:
            x = _act(down(x))
            skips.append(x)
        global_score = self.global_head(x.sum(dim=(2, 3))).squeeze(1)
        for i in reversed(range(len(self.down))):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = _act(self.up[i](torch.cat((x, skips[i]), dim=1)))
        pixel = F.interpolate(self.pixel_head(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        pixel = pixel[..., :h, :w]
        return global_score, pixel


def build_discriminator(config: DiscriminatorConfig) -> Discriminator:
    """Build a discriminator from its config.

    Args:
        config: constructor arguments.

    Returns:
        A freshly initialised ``Discriminator``.
    """
    return Discriminator(config.base_channels, config.levels, config.max_channels)
