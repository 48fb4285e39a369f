"""Generator and discriminator: shapes at odd sizes, output ranges, style codes, shape asserts;
VGG16 features: seeded random weights, the global RNG left alone, ImageNet files by path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from vidcolor.config import load
from vidcolor.errors import ConfigError, ModelError
from vidcolor.models.discriminator import Discriminator, build_discriminator
from vidcolor.models.features import (
    IMAGENET_FILE,
    LAYER_INDEX,
    VGGFeatures,
    find_imagenet_weights,
    load_vgg_features,
    vgg16_trunk,
)
from vidcolor.models.generator import Generator, build_generator

REPO = Path(__file__).resolve().parents[1]
STYLES = ("natural", "ink", "oil")



def tiny_generator(seed: int = 0, perturb: bool = True) -> Generator:
    """The tiny test model with three styles; optionally with every parameter perturbed, so
    FiLM and the heads (zero or near-zero at initialisation) really act on the output."""
    torch.manual_seed(seed)
    cfg = load(REPO / "configs" / "train" / "tiny.toml").model
    g = build_generator(dataclasses.replace(cfg, style_names=STYLES)).eval()
    if perturb:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in g.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return g


def luma_batch(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, h, w, generator=gen)


# ----- generator -------------------------------------------------------------------------------


@pytest.mark.parametrize("b,h,w", [(1, 37, 53), (3, 37, 53), (1, 16, 16), (3, 41, 8), (2, 5, 7)])
def test_generator_shapes_and_ranges_all_inputs(b, h, w):
    g = tiny_generator()
    luma = luma_batch(b, h, w)
    hint = torch.rand(b, 2, h, w) - 0.5
    mask = (torch.rand(b, 1, h, w) > 0.7).float()
    z = torch.randn(b, g.z_dim)
    styles = torch.arange(b) % len(STYLES)
    weights = torch.softmax(torch.randn(b, len(STYLES)), dim=1)
    with torch.no_grad():
        for kwargs in (
            {},
            {"hint_chroma": hint, "hint_mask": mask},
            {"z": z},
            {"style": styles},
            {"style": weights},
            {"hint_chroma": hint, "hint_mask": mask, "z": z, "style": styles},
        ):
            out = g(luma, heads=("chroma", "rgb"), **kwargs)
            assert set(out) == {"chroma", "rgb"}
            assert out["chroma"].shape == (b, 2, h, w)
            assert out["rgb"].shape == (b, 3, h, w)
            assert torch.isfinite(out["chroma"]).all() and torch.isfinite(out["rgb"]).all()
            assert out["chroma"].min() >= -0.5 and out["chroma"].max() <= 0.5
            assert out["rgb"].min() >= 0.0 and out["rgb"].max() <= 1.0


def test_generator_heads_are_independent_and_selectable():
    g = tiny_generator()
    luma = luma_batch(2, 37, 53)
    with torch.no_grad():
        both = g(luma, heads=("chroma", "rgb"))
        chroma = g(luma)
        rgb = g(luma, heads=("rgb",))
    assert set(chroma) == {"chroma"} and set(rgb) == {"rgb"}
    assert torch.equal(chroma["chroma"], both["chroma"])
    assert torch.equal(rgb["rgb"], both["rgb"])


def test_saturated_heads_stay_in_range():
    """Huge coefficients: tanh / sigmoid must still bound chroma to [-0.5, 0.5] and RGB to [0, 1]."""
    g = tiny_generator()
    with torch.no_grad():
        for head in (g.chroma_head, g.rgb_head):
            head.weight.normal_(0.0, 50.0)
            head.bias.normal_(0.0, 50.0)
        out = g(luma_batch(3, 37, 53), heads=("chroma", "rgb"))
    c, rgb = out["chroma"], out["rgb"]
    assert c.min() >= -0.5 and c.max() <= 0.5 and c.abs().max() > 0.45  # really saturated
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0 and (rgb > 0.95).any() and (rgb < 0.05).any()


def test_inputs_steer_the_output():
    """Sanity for the equality tests below: hints, z and style each change the output."""
    g = tiny_generator()
    b, h, w = 2, 37, 53
    luma = luma_batch(b, h, w)
    with torch.no_grad():
        base = g(luma, heads=("chroma", "rgb"))
        hinted = g(luma, hint_chroma=torch.full((b, 2, h, w), 0.3), hint_mask=torch.ones(b, 1, h, w))
        noisy = g(luma, z=torch.randn(b, g.z_dim))
        styled = g(luma, style=torch.full((b,), 2), heads=("chroma", "rgb"))
    assert not torch.allclose(base["chroma"], hinted["chroma"])
    assert not torch.allclose(base["chroma"], noisy["chroma"])
    assert not torch.allclose(base["rgb"], styled["rgb"])


def test_zero_z_equals_no_z_and_output_is_deterministic():
    g = tiny_generator()
    luma = luma_batch(3, 37, 53)
    with torch.no_grad():
        a = g(luma, heads=("chroma", "rgb"))
        b = g(luma, heads=("chroma", "rgb"))
        zero = g(luma, z=torch.zeros(3, g.z_dim), heads=("chroma", "rgb"))
    for k in a:
        assert torch.equal(a[k], b[k])
        torch.testing.assert_close(a[k], zero[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", range(len(STYLES)))
def test_one_hot_style_weights_equal_style_index(k):
    g = tiny_generator()
    b = 3
    luma = luma_batch(b, 37, 53)
    one_hot = torch.zeros(b, len(STYLES))
    one_hot[:, k] = 1.0
    with torch.no_grad():
        by_weights = g(luma, style=one_hot, heads=("chroma", "rgb"))
        by_index = g(luma, style=torch.full((b,), k, dtype=torch.long), heads=("chroma", "rgb"))
        by_int32 = g(luma, style=torch.full((b,), k, dtype=torch.int32), heads=("chroma", "rgb"))
    for head in ("chroma", "rgb"):
        torch.testing.assert_close(by_weights[head], by_index[head], rtol=0, atol=1e-6)
        assert torch.equal(by_int32[head], by_index[head])


def test_natural_weights_equal_style_none():
    g = tiny_generator()
    b = 3
    luma = luma_batch(b, 37, 53)
    natural = torch.zeros(b, len(STYLES))
    natural[:, 0] = 1.0
    with torch.no_grad():
        none = g(luma, style=None, heads=("chroma", "rgb"))
        weights = g(luma, style=natural, heads=("chroma", "rgb"))
        index0 = g(luma, style=torch.zeros(b, dtype=torch.long), heads=("chroma", "rgb"))
    for head in ("chroma", "rgb"):
        torch.testing.assert_close(weights[head], none[head], rtol=0, atol=1e-6)
        assert torch.equal(index0[head], none[head])


def test_style_mix_rows_are_per_sample():
    """A batch with different style weights per row gives each row what it gets alone."""
    g = tiny_generator()
    luma = luma_batch(3, 24, 40)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.0, 0.8]])
    with torch.no_grad():
        together = g(luma, style=mix, heads=("rgb",))["rgb"]
        for i in range(3):
            alone = g(luma[i : i + 1], style=mix[i : i + 1], heads=("rgb",))["rgb"]
            torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-5, atol=1e-5)
    # Half-strength differs from both ends (a real interpolation, not a switch).
    with torch.no_grad():
        ends = [g(luma[1:2], style=torch.tensor([k]), heads=("rgb",))["rgb"] for k in (0, 1)]
    assert not torch.allclose(together[1:2], ends[0]) and not torch.allclose(together[1:2], ends[1])


def test_padding_does_not_leak_between_batch_items():
    g = tiny_generator()
    luma = luma_batch(3, 37, 53)
    with torch.no_grad():
        full = g(luma, heads=("chroma", "rgb"))
        single = g(luma[1:2], heads=("chroma", "rgb"))
    for head in full:
        torch.testing.assert_close(full[head][1:2], single[head], rtol=1e-5, atol=1e-6)


def test_generator_shape_asserts():
    g = tiny_generator(perturb=False)
    b, h, w = 2, 37, 53
    luma = luma_batch(b, h, w)
    bad_calls = [
        lambda: g(torch.rand(b, 3, h, w)),  # RGB instead of luma
        lambda: g(luma, hint_chroma=torch.zeros(b, 1, h, w)),  # one hint channel
        lambda: g(luma, hint_mask=torch.zeros(b, 2, h, w)),
        lambda: g(luma, hint_chroma=torch.zeros(b, 2, h + 1, w)),
        lambda: g(luma, z=torch.zeros(b, g.z_dim + 1)),
        lambda: g(luma, z=torch.zeros(b + 1, g.z_dim)),
        lambda: g(luma, style=torch.zeros(b + 1, dtype=torch.long)),  # indices for another batch
        lambda: g(luma, style=torch.zeros(b, 1, dtype=torch.long)),
        lambda: g(luma, style=torch.zeros(b, len(STYLES) + 1)),  # weights for more styles
        lambda: g.coefficients(luma),  # unpadded size not a multiple
    ]
    for call in bad_calls:
        with pytest.raises(AssertionError):
            call()


def test_coefficients_apply_at_a_larger_size():
    """The guided upsampling: coefficients from the network size apply to a larger luma."""
    g = tiny_generator()
    m = g.multiple
    small = luma_batch(1, 2 * m, 3 * m)
    big = torch.nn.functional.interpolate(small, scale_factor=4, mode="bilinear", align_corners=False)
    with torch.no_grad():
        coeffs = g.coefficients(small, heads=("chroma", "rgb"))
        assert coeffs["chroma"].shape == (1, 4, 2 * m // g.stem_factor, 3 * m // g.stem_factor)
        assert coeffs["rgb"].shape == (1, 6, 2 * m // g.stem_factor, 3 * m // g.stem_factor)
        chroma = Generator.apply_coefficients(coeffs["chroma"], big, "chroma")
        rgb = Generator.apply_coefficients(coeffs["rgb"], big, "rgb")
    assert chroma.shape == (1, 2, 8 * m, 12 * m) and rgb.shape == (1, 3, 8 * m, 12 * m)
    assert chroma.abs().max() <= 0.5 and rgb.min() >= 0 and rgb.max() <= 1


def test_generator_config_and_build_roundtrip():
    g = tiny_generator(perturb=False)
    assert g.style_names == STYLES
    again = build_generator(g.config)
    assert again.config == g.config
    assert [(k, v.shape) for k, v in again.state_dict().items()] == [(k, v.shape) for k, v in g.state_dict().items()]


def test_default_model_stays_under_ten_million_parameters():
    cfg = load(REPO / "configs" / "train" / "base.toml").model
    g = build_generator(cfg)
    assert sum(p.numel() for p in g.parameters()) < 10_000_000


def test_untrained_rgb_head_is_grey_in_grey_out():
    """At initialisation the RGB head follows luma (sigmoid(2(l - 0.5)) + tiny coefficients)."""
    g = tiny_generator(perturb=False)
    luma = luma_batch(2, 37, 53)
    with torch.no_grad():
        rgb = g(luma, heads=("rgb",))["rgb"]
    spread = (rgb.max(dim=1).values - rgb.min(dim=1).values).max()
    assert spread < 0.05  # near grey
    dark, bright = luma < 0.2, luma > 0.8
    assert rgb.mean(1, keepdim=True)[dark].mean() < rgb.mean(1, keepdim=True)[bright].mean()


# ----- discriminator ---------------------------------------------------------------------------


def tiny_discriminator(seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return build_discriminator(load(REPO / "configs" / "train" / "tiny.toml").discriminator)


@pytest.mark.parametrize("b,h,w", [(1, 37, 53), (3, 37, 53), (1, 32, 32), (3, 9, 70)])
def test_discriminator_shapes(b, h, w):
    d = tiny_discriminator()
    glob, pixel = d(luma_batch(b, h, w), torch.rand(b, 3, h, w))
    assert glob.shape == (b,)
    assert pixel.shape == (b, 1, h, w)
    assert torch.isfinite(glob).all() and torch.isfinite(pixel).all()


def test_discriminator_scores_depend_on_colour_and_luma():
    d = tiny_discriminator().eval()
    luma = luma_batch(2, 32, 32)
    rgb = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = d(luma, rgb)
        b = d(luma, rgb.flip(1))
        c = d(1.0 - luma, rgb)
    assert not torch.allclose(a[1], b[1]) and not torch.allclose(a[0], b[0])
    assert not torch.allclose(a[1], c[1])


def test_discriminator_is_spectrally_normalised():
    d = tiny_discriminator()
    names = [k for k in d.state_dict() if "parametrizations" in k]
    assert any(k.startswith("inp.") for k in names)
    assert any(k.startswith("pixel_head.") for k in names)
    assert any(k.startswith("global_head.") for k in names)


def test_discriminator_shape_asserts():
    d = tiny_discriminator()
    luma = luma_batch(2, 37, 53)
    for rgb in (torch.rand(2, 3, 37, 52), torch.rand(2, 1, 37, 53), torch.rand(1, 3, 37, 53)):
        with pytest.raises(AssertionError):
            d(luma, rgb)


# ----- VGG features ----------------------------------------------------------------------------


def _conv_weights(f: VGGFeatures) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in f.trunk if isinstance(m, torch.nn.Conv2d)]


def test_random_vgg_is_fixed_and_leaves_global_rng_alone():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = load_vgg_features("random", ("relu1_2", "relu2_2"))
    after = torch.get_rng_state()
    assert torch.equal(before, after), "building the random VGG moved torch's global RNG"
    torch.manual_seed(999)  # a different global state must not change the weights
    b = load_vgg_features("random", ("relu1_2", "relu2_2"))
    assert a.source == b.source and a.source.startswith("random")
    wa, wb = _conv_weights(a), _conv_weights(b)
    assert len(wa) == 4  # truncated after relu2_2: conv1_1, conv1_2, conv2_1, conv2_2
    for x, y in zip(wa, wb):
        assert torch.equal(x, y)
    assert all(float(w.std()) > 0 for w in wa)


def test_vgg_features_shapes_and_frozen():
    f = load_vgg_features("random", ("relu1_2", "relu2_2", "relu3_1"))
    assert not any(p.requires_grad for p in f.parameters())
    assert not f.training
    x = torch.rand(2, 3, 32, 40)
    feats = f(x)
    assert list(feats) == ["relu1_2", "relu2_2", "relu3_1"]
    assert feats["relu1_2"].shape == (2, 64, 32, 40)
    assert feats["relu2_2"].shape == (2, 128, 16, 20)
    assert feats["relu3_1"].shape == (2, 256, 8, 10)
    assert all((v >= 0).all() for v in feats.values())  # ReLU outputs
    # max(LAYER_INDEX) + 1 layers at most: the trunk is cut after the deepest tap.
    assert len(f.trunk) == LAYER_INDEX["relu3_1"] + 1


def test_vgg_unknown_layer_is_a_config_error():
    """The layer names come from ``loss.vgg_layers``: a config problem (exit 2), not a model one."""
    with pytest.raises(ConfigError, match=r"config key 'loss.vgg_layers': unknown VGG layer 'relu9_9' \(valid: relu1_1"):
        load_vgg_features("random", ("relu1_2", "relu9_9"))


def test_vgg_auto_without_cached_imagenet_is_random(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        assert find_imagenet_weights() is None
        f = load_vgg_features("auto", ("relu1_2",))
    finally:
        torch.hub.set_dir(old)
    assert f.source.startswith("random")
    ref = load_vgg_features("random", ("relu1_2",))
    for x, y in zip(_conv_weights(f), _conv_weights(ref)):
        assert torch.equal(x, y)


def _fake_imagenet_state(seed: int = 5) -> dict[str, torch.Tensor]:
    """A full VGG16 state dict shaped like torchvision's (keys "features.N.weight" plus a
    classifier entry that must be ignored), from a randomly initialised local twin."""
    torch.manual_seed(seed)
    trunk = vgg16_trunk()
    state = {f"features.{k}": v.clone() for k, v in trunk.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


def test_vgg_from_a_given_state_dict(tmp_path):
    state = _fake_imagenet_state()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    f = load_vgg_features(str(path), ("relu1_2", "relu2_2"))
    assert f.source == f"imagenet:{path}"
    assert torch.equal(f.trunk[0].weight, state["features.0.weight"])
    assert torch.equal(f.trunk[7].bias, state["features.7.bias"])
    random = load_vgg_features("random", ("relu1_2", "relu2_2"))
    assert not torch.equal(f.trunk[0].weight, random.trunk[0].weight)


def test_vgg_auto_uses_the_hub_cache(tmp_path):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    state = _fake_imagenet_state(seed=6)
    torch.save(state, hub / "checkpoints" / IMAGENET_FILE)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        f = load_vgg_features("auto", ("relu1_2",))
    finally:
        torch.hub.set_dir(old)
    assert f.source.startswith("imagenet:")
    assert torch.equal(f.trunk[2].weight, state["features.2.weight"])


def test_vgg_bad_paths_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_vgg_features(str(tmp_path / "missing.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelError, match="not a usable VGG16"):
        load_vgg_features(str(garbage))
    wrong = tmp_path / "wrong.pth"
    state = _fake_imagenet_state()
    state["features.0.weight"] = torch.zeros(8, 3, 3, 3)  # wrong shape
    torch.save(state, wrong)
    with pytest.raises(ModelError, match="not a usable VGG16"):
        load_vgg_features(str(wrong))
    empty = tmp_path / "empty.pth"
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, empty)  # no features at all
    with pytest.raises(ModelError) as info:
        load_vgg_features(str(empty))
    assert str(empty) in str(info.value) and "\n" not in str(info.value)  # one line, naming the file
