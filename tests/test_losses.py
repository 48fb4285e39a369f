"""Loss terms: each is zero (or minimal) where it should be and positive otherwise; the
objective's phases give finite, named terms and gradients where they belong."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidcolor.color import rgb_to_luma, ycbcr_to_rgb
from vidcolor.config import DiscriminatorConfig, GeneratorConfig, LossConfig
from vidcolor.losses.adversarial import discriminator_loss, generator_loss
from vidcolor.losses.objective import Objective
from vidcolor.losses.perceptual import gram, identity_loss, perceptual_loss, style_loss
from vidcolor.losses.temporal import flicker_loss, warp_back
from vidcolor.models.discriminator import build_discriminator
from vidcolor.models.features import load_vgg_features
from vidcolor.models.generator import build_generator



@pytest.fixture(scope="module")
def vgg():
    return load_vgg_features("random", ("relu1_2", "relu2_2"))


def texture(b: int, c: int, h: int, w: int, seed: int = 0, sigma: float = 2.0) -> torch.Tensor:
    """Smooth random texture in [0.1, 0.9] (smooth, so bilinear warps are nearly exact)."""
    rng = np.random.default_rng(seed)
    out = np.empty((b, c, h, w), np.float32)
    for i in range(b):
        for j in range(c):
            t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigma)
            out[i, j] = 0.1 + 0.8 * (t - t.min()) / (t.max() - t.min())
    return torch.from_numpy(out)


# ----- flicker ---------------------------------------------------------------------------------


def test_flicker_zero_for_static_identical_pair():
    out = texture(2, 3, 24, 32)
    flow = torch.zeros(2, 2, 24, 32)
    mask = torch.ones(2, 1, 24, 32)
    # grid_sample's coordinate normalisation leaves float rounding only.
    assert float(flicker_loss(out, out.clone(), flow, mask)) < 1e-6
    torch.testing.assert_close(warp_back(out, flow), out, rtol=0, atol=1e-6)  # zero flow: identity


def test_flicker_positive_for_a_pair_that_differs():
    out = texture(2, 3, 24, 32)
    other = texture(2, 3, 24, 32, seed=1)
    flow = torch.zeros(2, 2, 24, 32)
    mask = torch.ones(2, 1, 24, 32)
    loss = float(flicker_loss(out, other, flow, mask))
    assert loss > 0.01
    # Equal to the plain mean absolute difference when nothing moves and all is reliable.
    assert loss == pytest.approx(float((out - other).abs().mean()), rel=1e-5)
    # A constant colour shift of 0.1 costs exactly 0.1.
    assert float(flicker_loss(out, out + 0.1, flow, mask)) == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (2, 1), (-4, 3)])
def test_flicker_with_known_integer_shift_and_exact_flow_is_zero(dx, dy):
    """Frame t+1 is frame t moved by (dx, dy): out_t1(x + d) = out_t(x). With flow = d and the
    mask of pixels that stay in view the loss vanishes; without the flow it does not."""
    h, w = 24, 32
    big = texture(1, 3, h + 16, w + 16, seed=3)
    out_t = big[..., 8 : 8 + h, 8 : 8 + w]
    out_t1 = big[..., 8 - dy : 8 - dy + h, 8 - dx : 8 - dx + w]  # content moved by (+dx, +dy)
    flow = torch.empty(1, 2, h, w)
    flow[:, 0], flow[:, 1] = float(dx), float(dy)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = ((xs + dx >= 0) & (xs + dx <= w - 1) & (ys + dy >= 0) & (ys + dy <= h - 1)).float()
    mask = inside.view(1, 1, h, w)
    assert float(flicker_loss(out_t, out_t1, flow, mask)) < 1e-6
    assert float(flicker_loss(out_t, out_t1, torch.zeros_like(flow), mask)) > 0.01


def test_flicker_with_subpixel_shift_is_near_zero():
    """A smooth image moved by a fraction of a pixel: bilinear warping error only."""
    h, w = 32, 32
    dx, dy = 1.5, -0.5
    out_t = texture(1, 2, h, w, seed=4, sigma=3.0)
    theta = torch.tensor([[[1.0, 0.0, -dx * 2 / (w - 1)], [0.0, 1.0, -dy * 2 / (h - 1)]]])
    grid = torch.nn.functional.affine_grid(theta, (1, 2, h, w), align_corners=True)
    out_t1 = torch.nn.functional.grid_sample(out_t, grid, align_corners=True, padding_mode="border")
    flow = torch.empty(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    mask = torch.zeros(1, 1, h, w)
    mask[..., 3:-3, 3:-3] = 1.0
    exact = float(flicker_loss(out_t, out_t1, flow, mask))
    static = float(flicker_loss(out_t, out_t1, torch.zeros_like(flow), mask))
    assert exact < 0.005
    assert static > 5 * exact


def test_flicker_ignores_masked_pixels():
    out = texture(1, 3, 16, 16)
    other = out.clone()
    other[..., :4] += 0.5  # differs only where the mask is 0 (occluded)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., :4] = 0.0
    flow = torch.zeros(1, 2, 16, 16)
    assert float(flicker_loss(out, other, flow, mask)) < 1e-6
    assert float(flicker_loss(out, other, flow, torch.ones_like(mask))) > 0.1
    # An all-zero mask is not a division by zero.
    assert float(flicker_loss(out, other, flow, torch.zeros_like(mask))) == 0.0


def test_warp_back_shape_assert():
    with pytest.raises(AssertionError):
        warp_back(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 7))


# ----- identity --------------------------------------------------------------------------------


def test_identity_zero_when_luma_and_structure_match():
    luma = texture(2, 1, 24, 24)
    grey = luma.expand(-1, 3, -1, -1)
    assert float(identity_loss(grey, luma)) < 1e-6
    # A coloured image with the same luma (mild chroma, nothing clipped) keeps it too.
    chroma = 0.08 * (texture(2, 2, 24, 24, seed=7) - 0.5)
    coloured = ycbcr_to_rgb(torch.cat((luma, chroma), dim=1))
    assert coloured.min() >= 0 and coloured.max() <= 1
    assert not torch.allclose(coloured, grey)
    assert float(identity_loss(coloured, luma)) < 1e-5


def test_identity_positive_for_a_different_image():
    luma = texture(2, 1, 24, 24)
    other = texture(2, 3, 24, 24, seed=9)
    inverted = (1.0 - luma).expand(-1, 3, -1, -1)
    assert float(identity_loss(other, luma)) > 0.05
    assert float(identity_loss(inverted, luma)) > 0.05
    # Brighter but the same structure: only the luma part counts, the gradients agree.
    brighter = (luma + 0.05).expand(-1, 3, -1, -1)
    assert float(identity_loss(brighter, luma)) == pytest.approx(0.05, abs=1e-5)


# ----- style (Gram) and perceptual -------------------------------------------------------------


def test_gram_shape_and_symmetry():
    f = torch.rand(2, 5, 6, 7)
    g = gram(f)
    assert g.shape == (2, 5, 5)
    torch.testing.assert_close(g, g.transpose(1, 2))
    torch.testing.assert_close(g[0, 1, 2], (f[0, 1] * f[0, 2]).sum() / (5 * 6 * 7))


def test_style_loss_zero_for_itself_positive_for_another(vgg):
    a = texture(2, 3, 32, 32, seed=1)
    b = texture(2, 3, 32, 32, seed=2, sigma=0.7)  # finer texture: other statistics
    fa, fb = vgg(a), vgg(b)
    grams_a = {k: gram(v) for k, v in fa.items()}
    assert float(style_loss(fa, grams_a)) < 1e-10
    assert float(style_loss(fb, grams_a)) > 0.01
    # One reference Gram ([1, C, C]) broadcasts over the batch.
    one = {k: v[:1] for k, v in grams_a.items()}
    assert float(style_loss({k: v[:1] for k, v in fa.items()}, one)) < 1e-10


def test_style_loss_ignores_layout_but_not_texture(vgg):
    """Gram statistics are spatially blind: a shuffled arrangement of tiles costs far less
    than a different texture."""
    a = texture(1, 3, 32, 32, seed=1)
    swapped = torch.cat((a[..., 16:], a[..., :16]), dim=-1)  # halves exchanged
    other = texture(1, 3, 32, 32, seed=2, sigma=0.7)
    ref = {k: gram(v) for k, v in vgg(a).items()}
    assert float(style_loss(vgg(swapped), ref)) < 0.5 * float(style_loss(vgg(other), ref))


def test_perceptual_zero_for_equal_features_positive_otherwise(vgg):
    a = texture(2, 3, 32, 32, seed=1)
    b = texture(2, 3, 32, 32, seed=2)
    fa, fb = vgg(a), vgg(b)
    assert float(perceptual_loss(fa, {k: v.clone() for k, v in fa.items()})) == 0.0
    assert float(perceptual_loss(fb, fa)) > 0.01
    # Scale-free: scaling both feature sets leaves it unchanged.
    scaled = float(perceptual_loss({k: 3 * v for k, v in fb.items()}, {k: 3 * v for k, v in fa.items()}))
    assert scaled == pytest.approx(float(perceptual_loss(fb, fa)), rel=1e-5)


# ----- adversarial -----------------------------------------------------------------------------


def scores(value: float, b: int = 2, h: int = 4, w: int = 4):
    return torch.full((b,), value), torch.full((b, 1, h, w), value)


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating"])
def test_discriminator_loss_lower_when_it_is_right(kind):
    right = float(discriminator_loss(scores(3.0), scores(-3.0), kind))
    unsure = float(discriminator_loss(scores(0.0), scores(0.0), kind))
    wrong = float(discriminator_loss(scores(-3.0), scores(3.0), kind))
    assert right < unsure < wrong
    assert right >= 0.0


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating"])
def test_generator_loss_lower_when_fakes_look_real(kind):
    assert float(generator_loss(scores(3.0), kind)) < float(generator_loss(scores(0.0), kind))
    assert float(generator_loss(scores(0.0), kind)) < float(generator_loss(scores(-3.0), kind))


def test_adversarial_exact_values():
    # Hinge: no loss beyond the margins, 2 at zero scores (1 for real + 1 for fake).
    assert float(discriminator_loss(scores(1.0), scores(-1.0), "hinge")) == 0.0
    assert float(discriminator_loss(scores(0.0), scores(0.0), "hinge")) == pytest.approx(2.0)
    assert float(generator_loss(scores(0.7), "hinge")) == pytest.approx(-0.7)
    # Non-saturating: softplus, 2·ln 2 at zero scores.
    assert float(discriminator_loss(scores(0.0), scores(0.0), "nonsaturating")) == pytest.approx(2 * np.log(2))
    assert float(generator_loss(scores(0.0), "nonsaturating")) == pytest.approx(np.log(2))
    # Global and per-pixel scores count half each.
    mixed = (torch.full((2,), 0.0), torch.full((2, 1, 4, 4), 2.0))
    assert float(generator_loss(mixed, "hinge")) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        discriminator_loss(scores(0.0), scores(0.0), "wasserstein")
    with pytest.raises(ValueError):
        generator_loss(scores(0.0), "wasserstein")


# ----- the objective ---------------------------------------------------------------------------


def tiny_batch(b: int = 2, s: int = 32, seed: int = 0, styles: int = 1):
    rgb = texture(b * 2, 3, s, s, seed=seed).view(b, 2, 3, s, s)
    rgb[:, 1] = rgb[:, 0]  # static pairs
    return {
        "rgb": rgb,
        "flow": torch.zeros(b, 2, s, s),
        "flow_mask": torch.ones(b, 1, s, s),
        "hint_chroma": torch.zeros(b, 2, 2, s, s),
        "hint_mask": torch.zeros(b, 1, s, s),
        "style": torch.arange(b) % styles,
    }


def tiny_models(styles=("natural",)):
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(base_channels=8, levels=2, max_channels=16, stem_factor=2,
                                        style_dim=8, z_dim=4, style_names=tuple(styles)))
    d = build_discriminator(DiscriminatorConfig(base_channels=8, levels=2, max_channels=16))
    return g, d


def test_objective_colorize_phase_terms_and_gradients(vgg):
    g, d = tiny_models()
    obj = Objective(LossConfig(lambda_style=1.0), vgg)
    batch = tiny_batch()
    gen = obj.generate(g, batch, "colorize")
    assert gen.chroma.shape == (4, 2, 32, 32) and gen.rgb.shape == (4, 3, 32, 32)
    assert not gen.styled.any()
    # The colour image keeps the input luma exactly (up to clipping).
    torch.testing.assert_close(rgb_to_luma(gen.colour), gen.luma, atol=2e-3, rtol=0)
    terms = obj.generator_terms(gen, batch, d, "colorize")
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert set(terms) == {"l1", "perceptual", "style", "identity", "adversarial", "flicker", "total"}
    assert all(np.isfinite(v) for v in values.values())
    assert values["l1"] > 0 and values["identity"] == 0.0
    assert values["flicker"] < 1e-5  # static pairs and a deterministic generator
    terms["total"].backward()
    assert g.chroma_head.weight.grad is not None and g.chroma_head.weight.grad.abs().sum() > 0
    d_terms = obj.discriminator_terms(gen, d)
    assert set(d_terms) == {"d_real", "d_fake", "total"}
    assert torch.isfinite(d_terms["total"])


def test_objective_l1_is_zero_for_a_perfect_prediction(vgg):
    """Feed the truth through a pass: the L1, perceptual and style terms vanish."""
    g, _ = tiny_models()
    obj = Objective(LossConfig(lambda_style=1.0, lambda_adv=0.0), vgg)
    batch = tiny_batch()
    gen = obj.generate(g, batch, "colorize")
    from vidcolor.color import rgb_to_ycbcr

    gen.chroma = rgb_to_ycbcr(gen.truth)[:, 1:]
    gen.colour = gen.truth.clone()
    gen.rgb = gen.truth.clone()
    terms = obj.generator_terms(gen, batch, None, "colorize")
    assert float(terms["l1"]) < 1e-6
    assert float(terms["perceptual"]) < 1e-6
    assert float(terms["style"]) < 1e-6
    assert float(terms["flicker"]) < 1e-6
    assert float(terms["total"]) < 1e-5


def test_objective_style_phase_uses_style_grams_and_identity(vgg):
    styles = ("natural", "ink")
    g, d = tiny_models(styles)
    feats = vgg(texture(1, 3, 32, 32, seed=11, sigma=0.7))
    grams = {k: torch.cat((torch.zeros_like(gram(v)), gram(v))) for k, v in feats.items()}
    obj = Objective(LossConfig(lambda_style=1.0, lambda_identity=1.0), vgg, grams)
    batch = tiny_batch(styles=2)  # sample 0 natural, sample 1 "ink"
    gen = obj.generate(g, batch, "style")
    assert gen.styled.tolist() == [False, True, False, True]
    terms = {k: float(v.detach()) for k, v in obj.generator_terms(gen, batch, d, "style").items()}
    assert terms["identity"] > 0  # the styled samples' RGB is judged against the luma
    assert terms["adversarial"] == 0.0  # no adversarial term in the style phase
    assert all(np.isfinite(v) for v in terms.values())

