"""The training objective: one object with named phases ``G`` and ``D``.

L_G = λ_p·perceptual + ½(λ_s·style + λ_id·identity) + λ_adv·adversarial + λ_l1·L1 + λ_t·flicker

Training batches hold frame *pairs* (t, t+1) with the flow between them, so the flicker term
sees every sample. The two training phases use the same terms with different targets:

- ``colorize``: the chroma head is compared with the true chroma (L1), its colour image with
  the truth (perceptual, Gram, adversarial); the RGB head learns the truth too, so style 0
  (natural colour) means the same thing on both heads.
- ``style``: samples carry a style index; for styles > 0 the RGB head keeps the content of the
  truth (perceptual), takes the Gram statistics of its style image (style) and keeps the input's
  luma structure (identity); style-0 samples keep the colorize targets so colorization is not
  forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidcolor.color import rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb
from vidcolor.config import LossConfig
from vidcolor.losses.adversarial import discriminator_loss, generator_loss
from vidcolor.losses.perceptual import gram, identity_loss, perceptual_loss, style_loss
from vidcolor.losses.temporal import flicker_loss
from vidcolor.models.discriminator import Discriminator
from vidcolor.models.features import VGGFeatures
from vidcolor.models.generator import Generator

PHASES = ("colorize", "style")


@dataclass
class GeneratorPass:
    """What one generator pass produced, kept for the discriminator phase.

    Attributes:
        luma: [2B, 1, S, S] input luma of frames t and t+1 (t first).
        truth: [2B, 3, S, S] true RGB.
        chroma: [2B, 2, S, S] predicted chroma.
        colour: [2B, 3, S, S] colour image from the chroma head (luma kept).
        rgb: [2B, 3, S, S] RGB head output.
        style: [2B] style index of each sample (0 = natural colour).
    """

    luma: torch.Tensor
    truth: torch.Tensor
    chroma: torch.Tensor
    colour: torch.Tensor
    rgb: torch.Tensor
    style: torch.Tensor

    @property
    def styled(self) -> torch.Tensor:
        """[2B] bool, True for samples trained towards a painting style."""
        return self.style > 0


def _pairs_to_batch(x: torch.Tensor) -> torch.Tensor:
    """[B, 2, ...] pairs to [2B, ...] with all frames t first, then all frames t+1."""
    return torch.cat((x[:, 0], x[:, 1]), dim=0)


def _masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values over the samples where ``mask`` is True (0 if none)."""
    mask = mask.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


class Objective:
    """Computes the named loss terms of each phase.

    Args:
        config: loss weights and options.
        vgg: frozen VGG16 features for the perceptual and style terms.
        style_grams: {layer: [K+1, C, C]} Gram matrices of the style images (row 0 unused),
            or None when the model has no painting styles.
    """

    def __init__(self, config: LossConfig, vgg: VGGFeatures, style_grams: dict[str, torch.Tensor] | None = None):
        self.config = config
        self.vgg = vgg
        self.style_grams = style_grams

    def _vgg(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        size = self.config.vgg_size
        if size and rgb.shape[-1] != size:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self.vgg(rgb)

    def generate(
        self, generator: Generator, batch: dict[str, torch.Tensor], phase: str, z: torch.Tensor | None = None
    ) -> GeneratorPass:
        """Run the generator on both frames of every pair.

        Args:
            generator: the model being trained.
            batch: a training batch (see ``vidcolor.training.data``).
            phase: "colorize" or "style".
            z: [2B, z_dim] noise for the bottleneck, or None.

        Returns:
            A ``GeneratorPass``.
        """
        assert phase in PHASES, f"unknown phase {phase!r}"
        truth = _pairs_to_batch(batch["rgb"])
        n = truth.shape[0]
        luma = rgb_to_luma(truth)
        hint_chroma = _pairs_to_batch(batch["hint_chroma"])
        hint_mask = batch["hint_mask"].repeat(2, 1, 1, 1)
        style = batch["style"].repeat(2) if phase == "style" else torch.zeros(n, dtype=torch.long, device=truth.device)
        # Hints describe the true colours; a styled sample must not be told them.
        keep = (style == 0).to(hint_mask.dtype).view(-1, 1, 1, 1)
        out = generator(luma, hint_chroma * keep, hint_mask * keep, style=style, z=z, heads=("chroma", "rgb"))
        colour = ycbcr_to_rgb(torch.cat((luma, out["chroma"]), dim=1)).clamp(0.0, 1.0)
        return GeneratorPass(luma, truth, out["chroma"], colour, out["rgb"], style)

    def generator_terms(
        self, gen: GeneratorPass, batch: dict[str, torch.Tensor], discriminator: Discriminator | None, phase: str
    ) -> dict[str, torch.Tensor]:
        """Phase G: every loss term of the generator, weighted total under ``"total"``.

        Args:
            gen: the pass from ``generate``.
            batch: the same batch (flow and mask of each pair).
            discriminator: scores the colour image (colorize phase); None to skip the term.
            phase: "colorize" or "style".

        Returns:
            {"l1", "perceptual", "style", "identity", "adversarial", "flicker", "total"}.
        """
        cfg = self.config
        n = gen.truth.shape[0]
        half = n // 2
        natural = ~gen.styled
        true_chroma = rgb_to_ycbcr(gen.truth)[:, 1:]
        chroma_err = (gen.chroma - true_chroma).abs().mean(dim=(1, 2, 3))
        rgb_err = (gen.rgb - gen.truth).abs().mean(dim=(1, 2, 3))
        terms: dict[str, torch.Tensor] = {"l1": _masked_mean(chroma_err + rgb_err, natural)}

        # Perceptual and style terms on frame t only: VGG is the costliest part of a step.
        shown = torch.where(gen.styled[:half].view(-1, 1, 1, 1), gen.rgb[:half], gen.colour[:half])
        feats_out = self._vgg(shown)
        with torch.no_grad():
            feats_truth = self._vgg(gen.truth[:half])
        terms["perceptual"] = perceptual_loss(feats_out, feats_truth)
        grams_ref = {k: gram(v) for k, v in feats_truth.items()}
        if phase == "style" and self.style_grams is not None:
            index = gen.style[:half]
            for k in grams_ref:
                styled_grams = self.style_grams[k].to(grams_ref[k].device)[index]
                grams_ref[k] = torch.where(gen.styled[:half].view(-1, 1, 1), styled_grams, grams_ref[k])
        terms["style"] = style_loss(feats_out, grams_ref)
        styled = gen.styled
        terms["identity"] = (
            identity_loss(gen.rgb[styled], gen.luma[styled]) if bool(styled.any()) else gen.truth.new_zeros(())
        )
        if discriminator is not None and phase == "colorize" and cfg.lambda_adv > 0:
            terms["adversarial"] = generator_loss(discriminator(gen.luma[:half], gen.colour[:half]), cfg.adversarial)
        else:
            terms["adversarial"] = gen.truth.new_zeros(())

        # Flicker: chroma for natural samples, RGB for styled ones (what the user would see).
        flow, mask = batch["flow"], batch["flow_mask"]
        shown_t = torch.where(gen.styled[:half].view(-1, 1, 1, 1), gen.rgb[:half], gen.colour[:half])
        shown_t1 = torch.where(gen.styled[half:].view(-1, 1, 1, 1), gen.rgb[half:], gen.colour[half:])
        terms["flicker"] = flicker_loss(shown_t, shown_t1, flow, mask)

        terms["total"] = (
            cfg.lambda_perceptual * terms["perceptual"]
            + 0.5 * (cfg.lambda_style * terms["style"] + cfg.lambda_identity * terms["identity"])
            + cfg.lambda_adv * terms["adversarial"]
            + cfg.lambda_l1 * terms["l1"]
            + cfg.lambda_flicker * terms["flicker"]
        )
        return terms

    def discriminator_terms(self, gen: GeneratorPass, discriminator: Discriminator) -> dict[str, torch.Tensor]:
        """Phase D: the discriminator's loss on true against generated colour (frame t only).

        Args:
            gen: the pass from ``generate`` (its outputs are detached here).
            discriminator: the model being trained.

        Returns:
            {"d_real", "d_fake", "total"}.
        """
        half = gen.truth.shape[0] // 2
        natural = ~gen.styled[:half]
        luma, truth, fake = gen.luma[:half][natural], gen.truth[:half][natural], gen.colour[:half][natural].detach()
        real_scores = discriminator(luma, truth)
        fake_scores = discriminator(luma, fake)
        total = discriminator_loss(real_scores, fake_scores, self.config.adversarial)
        return {
            "d_real": real_scores[0].mean().detach(),
            "d_fake": fake_scores[0].mean().detach(),
            "total": total,
        }
