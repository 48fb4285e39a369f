"""The generator: a light U-Net that predicts chroma (colorize) or RGB (style) from luma.

Why it is shaped this way: a plain full-resolution U-Net is far too slow on a CPU. This one
pixel-unshuffles its input by ``stem_factor`` at once (no arithmetic, no information lost),
runs the U-Net at 1/stem_factor of the render size, and predicts per-pixel *affine
coefficients* there. The coefficients are upsampled and applied to the luma the network was
given (``a * (luma - 0.5) + b``, squashed by tanh for chroma or by a sigmoid for RGB: a learned
guided filter), so colour edges follow the luma's edges although the network works at a
quarter of that size; ``apply_coefficients`` also works on a larger luma (stills use it at
full resolution).

Inputs: luma (1), hint chroma (2), hint mask (1); a noise vector z added at the bottleneck
(zero unless asked: the seed paper's noise input); a style code (an embedding mixed by
weights, style 0 = natural colour) modulating every decoder level through FiLM.
No I/O here: weights are loaded by ``vidcolor.models.weights``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vidcolor.config import GENERATOR_ENCODERS, GeneratorConfig
from vidcolor.models.efficientnet import TAP_CHANNELS, EfficientNetLite0, fold_batch_norms


class FiLM(nn.Module):
    """Feature-wise affine modulation from a style vector (identity at initialisation)."""

    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Args: x [B, C, H, W]; style [B, style_dim]. Returns: x * (1 + gamma) + beta."""
        gamma, beta = self.proj(style).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1.0 + gamma) + beta


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a residual path; no normalisation (so frames stay independent)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        # Start close to identity so a deep stack trains without normalisation.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, C, H, W]. Returns: same shape."""
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class Generator(nn.Module):
    """U-Net generator with chroma and RGB heads (see module docstring).

    Two encoders share the decoder's shape, the heads and everything after them:

    - ``"unet"``: the light from-scratch encoder of the module docstring.
    - ``"efficientnet_lite0"``: an ImageNet-trained EfficientNet-Lite0 trunk (luma replicated
      to RGB) whose features at strides 4-32 feed the decoder through 1x1 laterals; the hints
      enter twice, added to the trunk's stem (stride 2) and to the decoder's last level
      (stride 4), both through zero-initialised convolutions, so a fresh model starts as the
      pretrained trunk and the hint path cannot be lost in the trunk. The trunk's batch norms
      always use their stored statistics (frames stay independent of their batch).

    Args:
        base_channels: channels at the stem level (the decoder's last level).
        levels: encoder levels below the stem, each halving the size and doubling channels
            (3 with the EfficientNet encoder: strides 4 to 32).
        max_channels: cap on channels per level.
        stem_factor: pixel-unshuffle factor; coefficients are predicted at 1/stem_factor
            (4 with the EfficientNet encoder).
        blocks: residual blocks per level.
        style_dim: size of a style code.
        z_dim: size of the noise vector added at the bottleneck.
        style_names: names of the styles; index 0 is natural colour.
        encoder: "unet" or "efficientnet_lite0".
        style_branch: residual blocks, each modulated by the style code, between the decoder
            and the RGB head (0: the RGB head reads the decoder directly). They start as the
            identity, and only the RGB head sees them, so a style phase that trains only
            ``style_parameters()`` cannot move natural colour (the chroma head) at all.
    """

    IN_CHANNELS = 4  # luma, hint Cb, hint Cr, hint mask

    def __init__(
        self,
        base_channels: int = 32,
        levels: int = 3,
        max_channels: int = 256,
        stem_factor: int = 4,
        blocks: int = 1,
        style_dim: int = 64,
        z_dim: int = 32,
        style_names: tuple[str, ...] | list[str] = ("natural",),
        encoder: str = "unet",
        style_branch: int = 0,
    ):
        super().__init__()
        assert levels >= 1 and stem_factor >= 1 and base_channels >= 4
        assert encoder in GENERATOR_ENCODERS, f"unknown encoder {encoder!r}"
        self.config = GeneratorConfig(
            base_channels=base_channels,
            levels=levels,
            max_channels=max_channels,
            stem_factor=stem_factor,
            blocks=blocks,
            style_dim=style_dim,
            z_dim=z_dim,
            style_names=tuple(style_names),
            encoder=encoder,
            style_branch=style_branch,
        )
        self.encoder_kind = encoder
        self.stem_factor = stem_factor
        self.z_dim = z_dim
        self.multiple = stem_factor * 2**levels  # input sizes are padded to this
        chans = [min(base_channels * 2**i, max_channels) for i in range(levels + 1)]

        self.unshuffle = nn.PixelUnshuffle(stem_factor)
        if encoder == "unet":
            self.stem = nn.Conv2d(self.IN_CHANNELS * stem_factor**2, chans[0], 3, padding=1)
            self.stem_blocks = nn.Sequential(*[ResBlock(chans[0]) for _ in range(blocks)])
            self.down = nn.ModuleList(
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(levels)
            )
            self.down_blocks = nn.ModuleList(
                nn.Sequential(*[ResBlock(chans[i + 1]) for _ in range(blocks)]) for i in range(levels)
            )
        else:
            self.encoder = EfficientNetLite0(classifier=False)
            hints = self.IN_CHANNELS - 1
            self.hint_stem = nn.Conv2d(hints, self.encoder._bn0.num_features, 3, stride=2, padding=1)
            self.hint_last = nn.Conv2d(hints * stem_factor**2, chans[0], 3, padding=1)
            self.lateral = nn.ModuleList(nn.Conv2d(TAP_CHANNELS[4 * 2**i], chans[i], 1) for i in range(levels + 1))
            self.level_blocks = nn.ModuleList(
                nn.Sequential(*[ResBlock(chans[i]) for _ in range(blocks)]) for i in range(levels + 1)
            )
            for conv in (self.hint_stem, self.hint_last):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
            self.train()  # a new module is in training mode: put the trunk's batch norms on their statistics now
        self.z_proj = nn.Linear(z_dim, chans[levels])
        self.style_embedding = nn.Embedding(len(style_names), style_dim)
        nn.init.normal_(self.style_embedding.weight, std=0.5)
        self.bottleneck_film = FiLM(style_dim, chans[levels])
        # Decoder level i goes from chans[i+1] to chans[i]; skips are added, not concatenated
        # (half the arithmetic of a concat U-Net for the same width).
        self.up_reduce = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 1) for i in range(levels))
        self.up_conv = nn.ModuleList(nn.Conv2d(chans[i], chans[i], 3, padding=1) for i in range(levels))
        self.up_film = nn.ModuleList(FiLM(style_dim, chans[i]) for i in range(levels))
        # Heads give affine coefficients (a, b) per output channel.
        self.chroma_head = nn.Conv2d(chans[0], 4, 3, padding=1)
        self.rgb_head = nn.Conv2d(chans[0], 6, 3, padding=1)
        self.style_blocks = nn.ModuleList(ResBlock(chans[0]) for _ in range(style_branch))
        self.style_films = nn.ModuleList(FiLM(style_dim, chans[0]) for _ in range(style_branch))
        for head in (self.chroma_head, self.rgb_head):
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    def train(self, mode: bool = True) -> "Generator":
        """Train or eval mode; the pretrained trunk's batch norms stay on their statistics."""
        super().train(mode)
        if self.encoder_kind != "unet":
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def for_inference(self) -> "Generator":
        """The model as inference runs it: with the EfficientNet encoder, an eval-mode copy
        whose batch norms are folded into their convolutions (the same results to float
        rounding, faster); the U-Net has none and is returned as it is.

        Returns:
            A generator for inference only (a folded copy cannot be trained or saved).
        """
        if self.encoder_kind == "unet":
            return self
        model = copy.deepcopy(self).eval()
        fold_batch_norms(model.encoder)
        return model

    def style_parameters(self) -> list[nn.Parameter]:
        """The parameters only the RGB (style) output depends on: the style codes, the style
        branch and the RGB head. Training only these, with the style table's row 0 (natural
        colour's code, which the decoder also reads) held fixed, leaves natural colour exactly
        as it was.

        Returns:
            The parameters, in module order.
        """
        names = ("style_embedding.", "style_blocks.", "style_films.", "rgb_head.")
        return [p for n, p in self.named_parameters() if n.startswith(names)]

    @property
    def style_names(self) -> tuple[str, ...]:
        """Names of the styles the model carries (index 0 is natural colour)."""
        return self.config.style_names

    def style_vector(self, style: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Turn style indices or mixing weights into style codes.

        Args:
            style: None (natural), LongTensor [B] of indices, or float [B, num_styles] weights
                (rows are convex mixes; strength s of style k is (1-s)·e0 + s·ek).
            batch: batch size B.
            device: where to build the default.

        Returns:
            [B, style_dim] style codes.
        """
        table = self.style_embedding.weight
        if style is None:
            return table[0].expand(batch, -1)
        if style.dtype in (torch.int64, torch.int32):
            assert style.shape == (batch,), f"style indices must be [B], got {tuple(style.shape)}"
            return self.style_embedding(style.long())
        assert style.shape == (batch, table.shape[0]), f"style weights must be [B, {table.shape[0]}]"
        return style.to(table.dtype) @ table

    def coefficients(
        self,
        luma: torch.Tensor,
        hint_chroma: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        heads: tuple[str, ...] = ("chroma",),
    ) -> dict[str, torch.Tensor]:
        """Run the U-Net and return low-resolution affine coefficients per head.

        Args:
            luma: [B, 1, H, W] normalised luma in [0, 1]; H and W multiples of ``self.multiple``.
            hint_chroma: [B, 2, H, W] hint chroma (zeros where no hint), or None.
            hint_mask: [B, 1, H, W] hint confidence in [0, 1], or None.
            style: see ``style_vector``.
            z: [B, z_dim] noise, or None for zeros (deterministic inference).
            heads: which of "chroma" and "rgb" to compute.

        Returns:
            {"chroma": [B, 4, H/f, W/f], "rgb": [B, 6, H/f, W/f]} for the requested heads.
        """
        b, c, h, w = luma.shape
        assert c == 1, f"luma must have 1 channel, got {c}"
        assert h % self.multiple == 0 and w % self.multiple == 0, f"size {h}x{w} not a multiple of {self.multiple}"
        if hint_chroma is None:
            hint_chroma = luma.new_zeros(b, 2, h, w)
        if hint_mask is None:
            hint_mask = luma.new_zeros(b, 1, h, w)
        assert hint_chroma.shape == (b, 2, h, w) and hint_mask.shape == (b, 1, h, w)
        hints = torch.cat((hint_chroma, hint_mask), dim=1)
        if self.encoder_kind == "unet":
            x = torch.cat((luma - 0.5, hints), dim=1)
            x = self.stem_blocks(_act(self.stem(self.unshuffle(x))))
            skips = [x]
            for down, blocks in zip(self.down, self.down_blocks):
                x = blocks(_act(down(x)))
                skips.append(x)
        else:
            skips = self._pretrained_skips(luma, hints)
            x = skips[-1]
        s = self.style_vector(style, b, luma.device)
        if z is None:
            # Zeros, not "skip": the projection's bias was present at every training step.
            z = luma.new_zeros(b, self.z_dim)
        assert z.shape == (b, self.z_dim), f"z must be [B, {self.z_dim}]"
        x = x + self.z_proj(z).unsqueeze(-1).unsqueeze(-1)
        x = self.bottleneck_film(x, s)
        for i in reversed(range(len(skips) - 1)):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up_reduce[i](x) + skips[i]
            x = self.up_film[i](_act(self.up_conv[i](x)), s)
        if self.encoder_kind != "unet":
            x = x + self.hint_last(self.unshuffle(hints))
        out = {}
        if "chroma" in heads:
            out["chroma"] = self.chroma_head(x)
        if "rgb" in heads:
            for block, film in zip(self.style_blocks, self.style_films):
                x = film(block(x), s)
            out["rgb"] = self.rgb_head(x)
        return out

    def _pretrained_skips(self, luma: torch.Tensor, hints: torch.Tensor) -> list[torch.Tensor]:
        """The EfficientNet trunk's features at strides 4 to 32, as decoder levels.

        Args:
            luma: [B, 1, H, W] in [0, 1].
            hints: [B, 3, H, W] hint chroma and mask.

        Returns:
            [B, chans[i], H/(4·2^i), W/(4·2^i)] for i = 0..levels.
        """
        rgb = EfficientNetLite0.normalise(luma).expand(-1, 3, -1, -1)
        stem = self.encoder.stem(rgb) + self.hint_stem(hints)
        feats = self.encoder.features(rgb, strides=(4, 8, 16, 32), stem=stem)
        return [blocks(_act(lat(feats[4 * 2**i])))
                for i, (lat, blocks) in enumerate(zip(self.lateral, self.level_blocks))]

    @staticmethod
    def upsample_coefficients(coeffs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Coefficients at 1/f resolution to per-pixel coefficient maps (bilinear).

        Args:
            coeffs: [B, 2K, h, w] coefficients (a for K channels, then b for K channels).
            size: (H, W) of the luma they will be applied to.

        Returns:
            [B, 2K, H, W] maps: smooth fields, safe to filter over time.
        """
        return F.interpolate(coeffs, size=size, mode="bilinear", align_corners=False)

    @staticmethod
    def apply_maps(maps: torch.Tensor, luma: torch.Tensor, kind: str) -> torch.Tensor:
        """Apply per-pixel coefficient maps to luma of the same size.

        Args:
            maps: [B, 2K, H, W] from ``upsample_coefficients``.
            luma: [B, 1, H, W] normalised luma.
            kind: "chroma" (K=2, output in [-0.5, 0.5]) or "rgb" (K=3, output in [0, 1]).

        Returns:
            [B, K, H, W] chroma or RGB.
        """
        a, bias = maps.chunk(2, dim=1)
        lin = a * (luma - 0.5) + bias
        if kind == "chroma":
            return 0.5 * torch.tanh(lin)
        return torch.sigmoid(lin + 2.0 * (luma - 0.5))  # luma-led start: grey in, grey out

    @classmethod
    def apply_coefficients(cls, coeffs: torch.Tensor, luma: torch.Tensor, kind: str) -> torch.Tensor:
        """Upsample coefficients to ``luma``'s size and apply them (the guided upsampling).

        Works at any output size, so callers may apply coefficients to a larger luma than the
        network saw.

        Args:
            coeffs: [B, 2K, h, w] coefficients (a for K channels, then b for K channels).
            luma: [B, 1, H, W] normalised luma.
            kind: "chroma" (K=2, output in [-0.5, 0.5]) or "rgb" (K=3, output in [0, 1]).

        Returns:
            [B, K, H, W] chroma or RGB.
        """
        return cls.apply_maps(cls.upsample_coefficients(coeffs, luma.shape[-2:]), luma, kind)

    def coefficient_maps(
        self,
        luma: torch.Tensor,
        hint_chroma: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        heads: tuple[str, ...] = ("chroma",),
    ) -> dict[str, torch.Tensor]:
        """Per-pixel coefficient maps at ``luma``'s size (any size, padded internally):
        ``apply_maps(maps, luma, kind)`` gives exactly what ``forward`` returns.

        Args:
            luma, hint_chroma, hint_mask, style, z, heads: see ``forward``.

        Returns:
            {"chroma": [B, 4, H, W], "rgb": [B, 6, H, W]} for the requested heads.
        """
        b, _, h, w = luma.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            pad = (0, pw, 0, ph)
            luma_p = F.pad(luma, pad, mode="replicate")
            hint_chroma = None if hint_chroma is None else F.pad(hint_chroma, pad)
            hint_mask = None if hint_mask is None else F.pad(hint_mask, pad)
        else:
            luma_p = luma
        coeffs = self.coefficients(luma_p, hint_chroma, hint_mask, style, z, heads)
        return {kind: self.upsample_coefficients(c, luma_p.shape[-2:])[..., :h, :w] for kind, c in coeffs.items()}

    def forward(
        self,
        luma: torch.Tensor,
        hint_chroma: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        heads: tuple[str, ...] = ("chroma",),
    ) -> dict[str, torch.Tensor]:
        """Colorize (and/or stylise) a batch at any size.

        Args:
            luma: [B, 1, H, W] normalised luma in [0, 1]; any H, W (padded internally).
            hint_chroma, hint_mask, style, z, heads: see ``coefficients``.

        Returns:
            {"chroma": [B, 2, H, W] in [-0.5, 0.5], "rgb": [B, 3, H, W] in [0, 1]} for the
            requested heads.
        """
        maps = self.coefficient_maps(luma, hint_chroma, hint_mask, style, z, heads)
        return {kind: self.apply_maps(m, luma, kind) for kind, m in maps.items()}


def build_generator(config: GeneratorConfig) -> Generator:
    """Build a generator from its config.

    Args:
        config: constructor arguments.

    Returns:
        A freshly initialised ``Generator``.
    """
    return Generator(**{k: getattr(config, k) for k in config.__dataclass_fields__})
