"""Training: pseudo-video pairs with known flow, the dataset and loader, a short run that
learns, exact resume (API and CLI), and NaN losses that stop the run with the last good
checkpoint kept. Everything runs the tiny configs on data synthesized in tmp_path."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidcolor import flow as vflow
from vidcolor.cli import main
from vidcolor.color import rgb_to_luma, rgb_to_ycbcr
from vidcolor.config import load
from vidcolor.errors import InputError, TrainingError
from vidcolor.io.media_files import find_media
from vidcolor.losses import objective as objective_module
from vidcolor.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from vidcolor.training.data import (
    AFFINE_MARGIN,
    DataOptions,
    PairDataset,
    affine_pair,
    load_sources,
    make_loader,
    rgb_to_chroma,
    sample_hints,
)
from vidcolor.training.trainer import SAMPLE_INDEX_BASE, Trainer, next_run_dir, start_run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny.toml"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40), (200, 60, 200), (40, 200, 210)]


def region_photo(i: int, size: int = 96, seed: int = 0) -> np.ndarray:
    """RGB uint8 photo: four regions, each a fixed colour, with a luma texture and grain."""
    rng = np.random.default_rng([seed, i])
    yy, xx = np.mgrid[0:size, 0:size]
    quadrant = (yy // (size // 2)) * 2 + (xx // (size // 2))
    img = np.zeros((size, size, 3), np.float32)
    for q in range(4):
        img[quadrant == q] = COLOURS[(q + i) % len(COLOURS)]
    shade = 1.0 + 0.2 * np.sin(xx / 3.0 + i) * np.cos(yy / 5.0)
    img = img * shade[..., None] + rng.normal(0.0, 5.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def smooth_photo(size: int = 96, seed: int = 0) -> np.ndarray:
    """RGB uint8 photo with smooth colour texture (bilinear warps of it are nearly exact)."""
    rng = np.random.default_rng(seed)
    chans = []
    for _ in range(3):
        t = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3.0)
        chans.append(20 + 215 * (t - t.min()) / (t.max() - t.min()))
    return np.stack(chans, axis=-1).round().astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"p{i}.png"), region_photo(i)[..., ::-1])
    return folder


@pytest.fixture
def mixed_dir(photo_dir) -> Path:
    """Photos plus a short colour clip (and a file that is neither, which is skipped)."""
    from tests.media import make_clip

    make_clip(photo_dir / "clip.mp4", width=64, height=48, frames=6, content="colour")
    (photo_dir / "notes.txt").write_text("not data")
    return photo_dir


def tiny_config(**overrides):
    return load(TINY, overrides)


# ----- pseudo-video pairs ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_affine_pair_flow_warps_frame_t1_back_onto_frame_t(seed):
    photo = smooth_photo(seed=seed)
    crop = 48
    a, b, flow, mask = affine_pair(photo, crop, np.random.default_rng(seed))
    assert a.shape == b.shape == (crop, crop, 3) and a.dtype == np.uint8
    assert flow.shape == (crop, crop, 2) and flow.dtype == np.float32
    assert mask.shape == (crop, crop) and set(np.unique(mask)) <= {0.0, 1.0}
    assert mask.mean() > 0.5
    af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    back = vflow.warp(bf, flow)
    inner = mask.astype(bool)
    inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False
    err = np.abs(back - af)[inner]
    unwarped = np.abs(bf - af)[inner].mean()
    assert err.mean() < 0.01, "warping t+1 back with the flow should reproduce t"
    assert err.max() < 0.06
    assert unwarped > 5 * err.mean()


class ScriptedRng:
    """Stands in for numpy's Generator: fixed crop origin, no rotation, unit scale and a
    given shift, so ``affine_pair`` makes a pure translation."""

    def __init__(self, shift: tuple[float, float], origin: tuple[int, int] = (5, 7)):
        self.shift, self.origin = shift, list(origin)

    def integers(self, low, high=None, size=None):
        return self.origin.pop(0)

    def uniform(self, low, high, size=None):
        if size == 2:
            return np.array(self.shift, dtype=np.float64)
        return 0.0 if low < 0 < high else 1.0  # angle 0, scale 1


@pytest.mark.parametrize("shift", [(3.0, -2.0), (-5.0, 4.0), (0.0, 6.0)])
def test_affine_pair_of_a_pure_translation(shift):
    photo = region_photo(0, size=120)
    crop = 40
    a, b, flow, mask = affine_pair(photo, crop, ScriptedRng(shift))
    dx, dy = shift
    np.testing.assert_allclose(flow[..., 0], dx, atol=1e-4)
    np.testing.assert_allclose(flow[..., 1], dy, atol=1e-4)
    # Frame t is the crop at the scripted origin.
    m = AFFINE_MARGIN
    np.testing.assert_array_equal(a, photo[5 + m : 5 + m + crop, 7 + m : 7 + m + crop])
    # Integer shift: t+1 is t moved by (dx, dy) exactly, and the mask is the overlap.
    dx, dy = int(dx), int(dy)
    ys, xs = np.mgrid[0:crop, 0:crop]
    expected_mask = (xs + dx >= 0) & (xs + dx <= crop - 1) & (ys + dy >= 0) & (ys + dy <= crop - 1)
    np.testing.assert_array_equal(mask.astype(bool), expected_mask)
    y0, y1 = max(0, -dy), crop - max(0, dy)
    x0, x1 = max(0, -dx), crop - max(0, dx)
    np.testing.assert_array_equal(b[y0 + dy : y1 + dy, x0 + dx : x1 + dx], a[y0:y1, x0:x1])
    # And the content that enters t+1 from outside the crop is the photo's, not padding.
    moved = photo[5 + m - dy : 5 + m - dy + crop, 7 + m - dx : 7 + m - dx + crop]
    np.testing.assert_array_equal(b, moved)


def test_rgb_to_chroma_matches_the_torch_conversion():
    rgb = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    ours = rgb_to_chroma(rgb)
    theirs = rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1))[1:].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    grey = np.full((2, 2, 3), 0.4, np.float32)
    np.testing.assert_allclose(rgb_to_chroma(grey), 0.0, atol=1e-7)


def test_sample_hints_modes():
    s = 24
    chroma = np.random.default_rng(0).uniform(-0.3, 0.3, (2, s, s, 2)).astype(np.float32)
    hints, mask = sample_hints(chroma, 0.0, np.random.default_rng(0))
    assert hints.shape == (2, 2, s, s) and mask.shape == (1, s, s)
    assert not hints.any() and not mask.any()
    seen_dabs = seen_region = False
    for seed in range(20):
        hints, mask = sample_hints(chroma, 1.0, np.random.default_rng(seed))
        on = mask[0] > 0
        assert on.any(), "probability 1 always gives a hint"
        assert not hints[:, :, ~on].any(), "no hint chroma outside the mask"
        assert mask.max() <= 1.0
        if np.allclose(hints[:, :, on], chroma.transpose(0, 3, 1, 2)[:, :, on]):
            seen_region = True  # a propagated reference: exact chroma
            assert 0.3 <= mask.max() <= 1.0
        else:
            seen_dabs = True  # dabs of mean chroma
            assert set(np.unique(mask)) <= {0.0, 1.0}
    assert seen_dabs and seen_region


def test_find_and_load_sources(mixed_dir, tmp_path):
    photos, videos = find_media([mixed_dir])
    assert [p.name for p in photos] == ["p0.png", "p1.png", "p2.png"]
    assert [p.name for p in videos] == ["clip.mp4"]
    with pytest.raises(InputError, match="no such file"):
        find_media([tmp_path / "missing"])
    (mixed_dir / "broken.png").write_bytes(b"not a png")
    small = mixed_dir / "small.png"
    cv2.imwrite(str(small), region_photo(5, size=20)[..., ::-1])
    photos, clips = load_sources([mixed_dir], crop=32, max_photo_side=64, max_video_frames=4)
    assert len(photos) == 4  # the broken file is skipped
    need = 32 + 2 * AFFINE_MARGIN
    assert all(min(p.shape[:2]) >= need and max(p.shape[:2]) <= max(64, need) + 1 for p in photos)
    assert len(clips) == 1 and clips[0].shape[0] == 4 and min(clips[0].shape[1:3]) == 48
    with pytest.raises(TrainingError, match="no usable training data"):
        PairDataset([], [], DataOptions(32, 0.3, 0.5, 1, 0))


def _dataset(photos, clips, *, crop=32, video_fraction=0.0, hints=0.5, styles=1, seed=0):
    return PairDataset(photos, clips, DataOptions(crop, video_fraction, hints, styles, seed))


def test_style_fraction_sets_the_share_of_styled_samples():
    photos = [smooth_photo(64, seed=s) for s in range(2)]

    def styled_share(fraction: float) -> float:
        ds = PairDataset(photos, [], DataOptions(32, 0.0, 0.5, 4, 0, style_fraction=fraction))
        return float(np.mean([int(ds[i]["style"]) > 0 for i in range(200)]))

    assert styled_share(0.0) == 0.0 and styled_share(1.0) == 1.0
    assert 0.15 < styled_share(0.25) < 0.35 and 0.65 < styled_share(0.75) < 0.85


def ramp_photo(size: int = 96, seed: int = 0) -> np.ndarray:
    """``smooth_photo`` whose red channel rises left to right, so a mirrored crop shows."""
    photo = smooth_photo(size, seed)
    photo[..., 0] = np.linspace(10, 245, size).round().astype(np.uint8)[None, :]
    return photo


def test_dataset_items_are_deterministic_and_consistent():
    photos = [ramp_photo(seed=s) for s in range(2)]
    ds = _dataset(photos, [], styles=3)
    flips = 0
    styles = set()
    for i in range(12):
        item = ds[i]
        again = ds[i]
        assert all(torch.equal(item[k], again[k]) for k in item)
        assert item["rgb"].shape == (2, 3, 32, 32) and item["rgb"].dtype == torch.float32
        assert 0.0 <= float(item["rgb"].min()) and float(item["rgb"].max()) <= 1.0
        assert item["flow"].shape == (2, 32, 32) and item["flow_mask"].shape == (1, 32, 32)
        assert item["hint_chroma"].shape == (2, 2, 32, 32) and item["hint_mask"].shape == (1, 32, 32)
        styles.add(int(item["style"]))
        # The flow (mirrored with the images or not) warps frame t+1 back onto frame t.
        a = item["rgb"][0].permute(1, 2, 0).numpy()
        b = item["rgb"][1].permute(1, 2, 0).numpy()
        f = item["flow"].permute(1, 2, 0).numpy()
        m = item["flow_mask"][0].numpy().astype(bool)
        m[:2], m[-2:], m[:, :2], m[:, -2:] = False, False, False, False
        err = np.abs(vflow.warp(np.ascontiguousarray(b), np.ascontiguousarray(f)) - a)[m].mean()
        assert err < 0.01, f"item {i}: flow does not match its frames"
        red = a[..., 0]
        flips += int(red[:, :8].mean() > red[:, -8:].mean())  # the ramp runs right to left
    assert 0 < flips < 12, "both mirrored and plain items should occur"
    assert styles <= {0, 1, 2} and len(styles) > 1
    assert not torch.equal(ds[0]["rgb"], ds[1]["rgb"])
    other_seed = _dataset(photos, [], styles=3, seed=1)
    assert not torch.equal(ds[0]["rgb"], other_seed[0]["rgb"])


def panning_frames(n: int = 6, seed: int = 0) -> np.ndarray:
    """(n, 48, 64, 3) uint8 frames of a smooth colour scene panning 2 px left, 1 px up per frame."""
    big = smooth_photo(size=140, seed=seed)
    return np.stack([big[10 + i : 10 + i + 48, 10 + 2 * i : 10 + 2 * i + 64] for i in range(n)])


def test_clip_pairs_have_dis_flow_and_a_consistency_mask():
    ds = _dataset([], [panning_frames()], video_fraction=1.0)
    for i in range(6):
        item = ds[i]
        mask = item["flow_mask"][0].numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.mean() > 0.5
        a = item["rgb"][0].permute(1, 2, 0).numpy()
        b = item["rgb"][1].permute(1, 2, 0).numpy()
        f = np.ascontiguousarray(item["flow"].permute(1, 2, 0).numpy())
        on = mask.astype(bool)
        # DIS finds the pan (gap 1 or 2 frames, maybe mirrored): |dx| = 2·gap, dy = -gap.
        dx, dy = f[on].mean(axis=0)
        gap = round(-dy)
        assert gap in (1, 2) and abs(dy + gap) < 0.1 and abs(abs(dx) - 2 * gap) < 0.2
        warped = np.abs(vflow.warp(np.ascontiguousarray(b), f) - a)[on].mean()
        assert warped < 0.01 < np.abs(b - a)[on].mean()


def test_dataset_mixes_photos_and_decoded_clips(mixed_dir):
    photos, clips = load_sources([mixed_dir], crop=32, max_photo_side=64, max_video_frames=6)
    assert len(photos) == 3 and len(clips) == 1
    only_clips = _dataset([], clips, video_fraction=1.0)
    item = only_clips[0]
    assert item["rgb"].shape == (2, 3, 32, 32) and torch.isfinite(item["flow"]).all()
    assert set(np.unique(item["flow_mask"].numpy())) <= {0.0, 1.0}
    # video_fraction picks the source: 0 never uses the clip, so every pair has exact affine flow
    # (a smooth, nearly linear field); 1 with photos present always uses it.
    never = _dataset(photos, clips, video_fraction=0.0)
    always = _dataset(photos, clips, video_fraction=1.0)
    for i in range(4):
        f = never[i]["flow"]
        second = f[:, 2:, :] - 2 * f[:, 1:-1, :] + f[:, :-2, :]
        assert float(second.abs().max()) < 1e-3  # affine: zero second differences
        crop = (always[i]["rgb"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert _found_in(clips[0], crop) or _found_in(clips[0], np.ascontiguousarray(crop[:, ::-1]))


def _found_in(frames: np.ndarray, crop: np.ndarray) -> bool:
    """Whether ``crop`` is a sub-image of one of ``frames`` (OpenCV sums in float: near 0)."""
    return any(cv2.matchTemplate(frame, crop, cv2.TM_SQDIFF).min() < 1000 for frame in frames)


def test_loader_batch_k_holds_items_k_times_b():
    ds = _dataset([smooth_photo()], [])
    loader = iter(make_loader(ds, batch_size=2, workers=0, start_step=3))
    batch = next(loader)
    assert batch["rgb"].shape == (2, 2, 3, 32, 32)
    assert torch.equal(batch["rgb"][0], ds[6]["rgb"]) and torch.equal(batch["rgb"][1], ds[7]["rgb"])
    assert torch.equal(next(loader)["flow"][1], ds[9]["flow"])


# ----- trainer ---------------------------------------------------------------------------------


def test_next_run_dir_numbers_runs(tmp_path):
    assert next_run_dir(tmp_path, "tiny").name == "0001-tiny"
    (tmp_path / "0001-tiny").mkdir()
    (tmp_path / "0007-other").mkdir()
    (tmp_path / "junk").mkdir()
    assert next_run_dir(tmp_path, "tiny").name == "0008-tiny"


def _chroma_error(trainer: Trainer, dataset: PairDataset) -> float:
    """Mean |chroma - truth| of the (non-EMA) generator on fixed held-out items, no hints."""
    errs = []
    with torch.no_grad():
        for i in range(4):
            truth = dataset[SAMPLE_INDEX_BASE + 100 + i]["rgb"][:1]
            out = trainer.generator(rgb_to_luma(truth))["chroma"]
            errs.append(float((out - rgb_to_ycbcr(truth)[:, 1:]).abs().mean()))
    return float(np.mean(errs))


def test_tiny_training_run_lowers_the_chroma_loss(photo_dir, tmp_path):
    steps = 40
    cfg = tiny_config(steps_colorize=steps, lr_g=1e-3, sample_every=1000, checkpoint_every=1000)
    trainer = start_run(cfg, tmp_path / "runs", quiet=True)
    dataset, batches = trainer.build_loader([str(photo_dir)])
    before = _chroma_error(trainer, dataset)
    l1 = []
    while trainer.step < steps:
        logs = trainer.train_step(next(batches))
        trainer.step += 1
        assert all(math.isfinite(v) for v in logs.values())
        l1.append(logs["l1"])
    start, end = np.mean(l1[:5]), np.mean(l1[-5:])
    assert end < 0.85 * start, f"l1 went from {start:.3f} to {end:.3f}"
    after = _chroma_error(trainer, dataset)
    assert after < 0.9 * before, f"held-out chroma error went from {before:.4f} to {after:.4f}"
    # The EMA follows the generator.
    assert not all(torch.equal(a, b) for a, b in zip(trainer.ema.parameters(), trainer.generator.parameters()))


def test_train_writes_the_run_folder(photo_dir, tmp_path):
    cfg = tiny_config()
    trainer = start_run(cfg, tmp_path / "runs", quiet=True)
    assert trainer.run_dir.name == "0001-tiny"
    stem = trainer.train([str(photo_dir)])
    run = trainer.run_dir
    assert trainer.step == cfg.steps_colorize == 4
    assert (run / "config.toml").is_file() and (run / "log.txt").is_file()
    assert load(run / "config.toml") == trainer.config  # the saved config is the resolved one
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    grid = cv2.imread(str(run / "samples" / "step_000004.png"))
    assert grid.shape == (6 * 32, 3 * 32, 3)
    payload = load_checkpoint(run)
    assert payload["step"] == 4 and payload["vgg"].startswith("random")
    assert stem == run / "model" and (run / "model.safetensors").is_file() and (run / "model.json").is_file()
    log_text = (run / "log.txt").read_text()
    assert "VGG16 features: random" in log_text and "step 4 phase colorize" in log_text


def _assert_same_state(a: dict, b: dict, label: str) -> None:
    assert list(a) == list(b), label
    for k in a:
        assert torch.equal(a[k], b[k]), f"{label}: {k} differs"


def _assert_same_optimizer(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k]), f"optimizer state {pid}.{k} differs"


def test_resume_equals_an_uninterrupted_run(mixed_dir, tmp_path):
    n = 6
    cfg = tiny_config(steps_colorize=n, video_fraction=0.5)
    data = [str(mixed_dir)]
    straight = start_run(cfg, tmp_path / "a", quiet=True)
    straight.train(data)

    first = start_run(cfg, tmp_path / "b", quiet=True)
    first.train(data, stop_at=n // 2)
    assert first.step == n // 2 and load_checkpoint(first.run_dir)["step"] == n // 2
    del first
    torch.manual_seed(12345)  # whatever the global RNG did in between must not matter
    resumed = Trainer.resume(tmp_path / "b" / "0001-tiny", quiet=True)
    assert resumed.step == n // 2
    resumed.train(data)
    assert resumed.step == straight.step == n

    _assert_same_state(straight.generator.state_dict(), resumed.generator.state_dict(), "generator")
    _assert_same_state(straight.ema.state_dict(), resumed.ema.state_dict(), "ema")
    _assert_same_state(straight.discriminator.state_dict(), resumed.discriminator.state_dict(), "discriminator")
    _assert_same_optimizer(straight.opt_g.state_dict(), resumed.opt_g.state_dict())
    _assert_same_optimizer(straight.opt_d.state_dict(), resumed.opt_d.state_dict())
    assert (straight.run_dir / "model.safetensors").read_bytes() == (resumed.run_dir / "model.safetensors").read_bytes()


def _checkpoint_tensors(run_dir: Path) -> dict:
    payload = load_checkpoint(run_dir)
    return {part: payload[part] for part in ("generator", "ema", "discriminator")} | {"step": payload["step"]}


def test_resume_through_the_cli(photo_dir, tmp_path):
    runner = CliRunner()
    base = ["train", "--config", str(TINY), "--data", str(photo_dir), "--quiet"]
    straight = runner.invoke(main, base + ["--runs", str(tmp_path / "a")])
    assert straight.exit_code == 0, straight.output
    assert "step 4" in straight.stdout
    half = runner.invoke(main, base + ["--runs", str(tmp_path / "b"), "--until", "2"])
    assert half.exit_code == 0, half.output
    run_b = tmp_path / "b" / "0001-tiny"
    assert load_checkpoint(run_b)["step"] == 2
    resumed = runner.invoke(main, ["train", "--resume", str(run_b), "--data", str(photo_dir), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert "step 4" in resumed.stdout
    a = _checkpoint_tensors(tmp_path / "a" / "0001-tiny")
    b = _checkpoint_tensors(run_b)
    assert a["step"] == b["step"] == 4
    for part in ("generator", "ema", "discriminator"):
        _assert_same_state(a[part], b[part], part)
    # --resume keeps the saved config: overrides are refused with a usage error.
    refused = runner.invoke(main, ["train", "--resume", str(run_b), "--set", "lr_g=0.1"])
    assert refused.exit_code == 2 and refused.stderr.startswith("vidcolor: error:")


def test_resume_without_a_checkpoint_is_a_training_error(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        Trainer.resume(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CHECKPOINT_NAME).write_bytes(b"\x00" * 100)
    with pytest.raises(TrainingError, match="unreadable checkpoint"):
        Trainer.resume(tmp_path / "bad")


def _nan_after(monkeypatch, trainer_ref: dict, name: str, from_step: int) -> None:
    """Make the objective's ``name`` loss function return NaN from ``from_step`` on."""
    real = getattr(objective_module, name)

    def patched(*args, **kwargs):
        value = real(*args, **kwargs)
        if trainer_ref["trainer"].step >= from_step:
            return value * float("nan")
        return value

    monkeypatch.setattr(objective_module, name, patched)


def test_nan_loss_stops_with_the_last_good_checkpoint(photo_dir, tmp_path, monkeypatch):
    cfg = tiny_config(steps_colorize=6)
    trainer = start_run(cfg, tmp_path / "runs", quiet=True)
    _nan_after(monkeypatch, {"trainer": trainer}, "flicker_loss", from_step=3)
    with pytest.raises(TrainingError) as info:
        trainer.train([str(photo_dir)])
    message = str(info.value)
    assert "'flicker'" in message and "nan" in message and "step 3" in message
    assert "last good checkpoint kept" in message and "\n" not in message
    payload = load_checkpoint(trainer.run_dir)
    assert payload["step"] == 2  # checkpoint_every = 2: the one before the NaN
    assert all(torch.isfinite(v).all() for v in payload["generator"].values())
    assert not (trainer.run_dir / "model.safetensors").exists()  # no model from a broken run
    monkeypatch.undo()
    resumed = Trainer.resume(trainer.run_dir, quiet=True)
    assert resumed.step == 2


def test_nan_before_any_checkpoint_says_so(photo_dir, tmp_path, monkeypatch):
    trainer = start_run(tiny_config(), tmp_path / "runs", quiet=True)
    _nan_after(monkeypatch, {"trainer": trainer}, "discriminator_loss", from_step=0)
    with pytest.raises(TrainingError, match=r"discriminator loss term 'total' became nan at step 0.*no checkpoint"):
        trainer.train([str(photo_dir)])
    assert not (trainer.run_dir / CHECKPOINT_NAME).exists()


def test_nan_loss_through_the_cli_exits_6(photo_dir, tmp_path, monkeypatch):
    import vidcolor.training.trainer as trainer_module

    real_step = trainer_module.Trainer.train_step

    def nan_step(self, batch):
        if self.step >= 3:
            monkeypatch.setattr(objective_module, "perceptual_loss", lambda *a, **k: torch.tensor(float("nan")))
        return real_step(self, batch)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", nan_step)
    result = CliRunner().invoke(
        main, ["train", "--config", str(TINY), "--data", str(photo_dir), "--runs", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 6
    lines = [line for line in result.stderr.splitlines() if line.startswith("vidcolor: error:")]
    assert len(lines) == 1 and "'perceptual'" in lines[0]
    assert "Traceback" not in result.stderr
    assert load_checkpoint(tmp_path / "0001-tiny")["step"] == 2


def test_train_cli_needs_data(tmp_path):
    result = CliRunner().invoke(main, ["train", "--config", str(TINY), "--runs", str(tmp_path)])
    assert result.exit_code == 2 and "no training data" in result.stderr


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_shared_data_makes_training_pairs():
    """Two real photos and one real clip (a handful of frames) give usable pairs."""
    photo_paths, clip_paths = find_media([SHARED_DATA / "train" / "photos", SHARED_DATA / "video" / "color"])
    if not photo_paths or not clip_paths:
        pytest.skip("../shared/data has no training photos or colour clips")
    photos, clips = load_sources(photo_paths[:2] + clip_paths[:1], crop=32, max_photo_side=96, max_video_frames=3)
    assert len(photos) == 2 and len(clips) == 1 and clips[0].shape[0] == 3
    for video_fraction in (0.0, 1.0):
        ds = _dataset(photos, clips, video_fraction=video_fraction)
        for i in range(3):
            item = ds[i]
            assert item["rgb"].shape == (2, 3, 32, 32) and torch.isfinite(item["flow"]).all()
            assert set(np.unique(item["flow_mask"].numpy())) <= {0.0, 1.0}


def photo_folder(tmp_path: Path, count: int = 3) -> Path:
    """A folder of small colourful training photos."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(count):
        cv2.imwrite(str(photos / f"p{i}.png"), region_photo(i, size=64)[..., ::-1])
    return photos


def test_style_phase_from_a_trained_model_adds_styles(tmp_path):
    """configs/train/styles.toml's path: start from a model, learn a style, keep natural colour."""
    from vidcolor.models.generator import build_generator
    from vidcolor.models.weights import load_generator, save_generator

    torch.manual_seed(3)
    base = build_generator(load(TINY).model)
    save_generator(base, tmp_path / "base")
    painting = tmp_path / "swirls.png"
    cv2.imwrite(str(painting), region_photo(9, size=64)[..., ::-1])

    # The generator starts as the given model; the new style starts from natural colour's code.
    cfg = load(TINY, {"init_from": str(tmp_path / "base.json"), "style_images": [str(painting)],
                      "steps_colorize": 0, "steps_style": 2})
    trainer = Trainer(cfg, tmp_path / "run0")
    ours, theirs = trainer.generator.state_dict(), base.state_dict()
    for key, value in theirs.items():
        if key != "style_embedding.weight":
            assert torch.equal(ours[key], value), key
    table = ours["style_embedding.weight"]
    assert table.shape[0] == 2 and torch.equal(table[0], theirs["style_embedding.weight"][0])
    assert torch.equal(table[1], table[0])

    # And through the CLI: two style steps give a model carrying both styles.
    photos = photo_folder(tmp_path)
    result = CliRunner().invoke(main, [
        "train", "--config", str(TINY), "--data", str(photos), "--runs", str(tmp_path / "runs"), "--quiet",
        "--style-image", str(painting), "--set", f"init_from='{tmp_path / 'base.json'}'",
        "--set", "steps_colorize=0", "--set", "steps_style=2",
    ])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    model, meta = load_generator(run_dir / "model.json")
    assert model.style_names == ("natural", "swirls")
    assert meta["provenance"]["style_images"] == [str(painting)]

    # Resuming needs only the checkpoint: the model the run started from may be gone.
    (tmp_path / "base.json").unlink()
    (tmp_path / "base.safetensors").unlink()
    again = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--until", "3", "--quiet"])
    assert again.exit_code == 0, again.output


def test_resume_without_data_trains_on_what_the_run_started_with(tmp_path):
    photos = photo_folder(tmp_path)
    runs = tmp_path / "runs"
    first = CliRunner().invoke(main, ["train", "--config", str(TINY), "--data", str(photos), "--runs", str(runs),
                                      "--quiet", "--until", "2"])
    assert first.exit_code == 0, first.output
    run_dir = next(runs.iterdir())
    again = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--quiet"])
    assert again.exit_code == 0, again.output
    assert "step 4" in again.output
    assert load_checkpoint(run_dir)["data"] == [str(photos)]


def test_until_past_the_total_trains_a_finished_run_on(tmp_path):
    photos = photo_folder(tmp_path)
    runs = tmp_path / "runs"
    done = CliRunner().invoke(main, ["train", "--config", str(TINY), "--data", str(photos), "--runs", str(runs), "--quiet"])
    assert done.exit_code == 0 and "step 4" in done.output, done.output
    run_dir = next(runs.iterdir())
    more = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--until", "6", "--quiet"])
    assert more.exit_code == 0 and "step 6" in more.output, more.output
    assert load_checkpoint(run_dir)["step"] == 6


# ----- the train command's checks (trial report) -------------------------------------------------


def _train(tmp_path: Path, *args: str, runs: Path | None = None):
    """Run ``vidcolor train`` on tiny.toml with the given extra arguments."""
    runs = runs or tmp_path / "runs"
    return CliRunner().invoke(main, ["train", "--config", str(TINY), "--runs", str(runs), "--quiet", *args])


def _run_folders(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def test_export_refuses_an_existing_model_before_training_unless_overwrite(tmp_path):
    photos = photo_folder(tmp_path)
    (tmp_path / "exp").mkdir()
    first = _train(tmp_path, "--data", str(photos), "--export", str(tmp_path / "exp" / "m"))
    assert first.exit_code == 0, first.output
    assert f"exported {tmp_path / 'exp' / 'm.safetensors'}" in first.stdout
    before = (tmp_path / "exp" / "m.safetensors").read_bytes()
    again = _train(tmp_path, "--data", str(photos), "--set", "steps_colorize=2", "--export", str(tmp_path / "exp" / "m"))
    assert again.exit_code == 4 and "exists; pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert _run_folders(tmp_path / "runs") == ["0001-tiny"]  # refused before a run started
    assert (tmp_path / "exp" / "m.safetensors").read_bytes() == before
    replaced = _train(tmp_path, "--data", str(photos), "--set", "steps_colorize=2", "--overwrite",
                      "--export", str(tmp_path / "exp" / "m.json"))
    assert replaced.exit_code == 0, replaced.output
    assert (tmp_path / "exp" / "m.safetensors").read_bytes() != before


def test_export_keeps_dots_in_the_name_and_refuses_a_missing_folder(tmp_path):
    from vidcolor.models.weights import load_generator

    photos = photo_folder(tmp_path)
    ok = _train(tmp_path, "--data", str(photos), "--set", "steps_colorize=1", "--export", str(tmp_path / "colour.v2"))
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "colour.v2.safetensors").is_file() and (tmp_path / "colour.v2.json").is_file()
    assert not (tmp_path / "colour.safetensors").exists()
    load_generator(tmp_path / "colour.v2")
    missing = _train(tmp_path, "--data", str(photos), "--export", str(tmp_path / "nowhere" / "m"))
    assert missing.exit_code == 4 and "does not exist" in missing.stderr
    assert not (tmp_path / "nowhere").exists() and _run_folders(tmp_path / "runs") == ["0001-tiny"]


def test_export_never_replaces_a_model_that_appeared_during_training_nor_names_a_folder(tmp_path, monkeypatch):
    """The export was checked before training, then written with a plain replace hours later;
    and --export DIR wrote DIR.safetensors beside the folder, which --model DIR cannot find."""
    import vidcolor.training.trainer as trainer_module

    photos = photo_folder(tmp_path)
    (tmp_path / "exp").mkdir()
    folder = _train(tmp_path, "--data", str(photos), "--export", str(tmp_path / "exp"))
    assert folder.exit_code == 2 and "is a folder; give a model name in it" in folder.stderr
    real_train = trainer_module.Trainer.train

    def train_while_someone_exports(self, *args, **kwargs):
        (tmp_path / "exp" / "m.safetensors").write_bytes(b"another export")
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "train", train_while_someone_exports)
    result = _train(tmp_path, "--data", str(photos), "--set", "steps_colorize=1", "--export", str(tmp_path / "exp" / "m"))
    assert result.exit_code == 4 and "m.safetensors appeared during training" in result.stderr
    assert "the trained model is" in result.stderr
    assert (tmp_path / "exp" / "m.safetensors").read_bytes() == b"another export"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a folder nobody can write into)")
def test_export_into_a_folder_that_cannot_be_written_fails_before_training(tmp_path):
    photos = photo_folder(tmp_path)
    result = _train(tmp_path, "--data", str(photos), "--export", "/proc/vidcolor_model")
    assert result.exit_code == 4 and result.stderr.startswith("vidcolor: error: cannot write /proc/vidcolor_model")
    assert "internal error" not in result.stderr and not (tmp_path / "runs").exists()


def test_models_are_written_with_the_usual_file_mode(tmp_path):
    from vidcolor.models.generator import build_generator
    from vidcolor.models.weights import save_generator

    weights, card = save_generator(build_generator(load(TINY).model), tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    assert weights.stat().st_mode & 0o777 == card.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def _styled_base(tmp_path: Path, names=("natural", "alpha", "beta"), **model) -> Path:
    """A tiny model carrying styles, saved as tmp_path/base.{safetensors,json}."""
    from dataclasses import replace

    from vidcolor.models.generator import build_generator
    from vidcolor.models.weights import save_generator

    torch.manual_seed(5)
    base = build_generator(replace(load(TINY).model, style_names=tuple(names), **model))
    save_generator(base, tmp_path / "base")
    return tmp_path / "base.json"


def _painting(path: Path, seed: int = 9) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), region_photo(seed, size=64)[..., ::-1])
    return path


def test_adding_a_style_keeps_the_init_models_styles_by_name(tmp_path):
    from vidcolor.models.weights import load_generator
    from vidcolor.pipeline.style import style_code

    base_json = _styled_base(tmp_path)
    base, _ = load_generator(base_json)
    theirs = base.state_dict()["style_embedding.weight"]
    gamma = _painting(tmp_path / "paint" / "gamma.png")
    cfg = load(TINY, {"init_from": str(base_json), "style_images": [str(gamma)], "steps_colorize": 0, "steps_style": 2})
    trainer = Trainer(cfg, tmp_path / "api")
    assert trainer.config.model.style_names == ("natural", "alpha", "beta", "gamma")
    table = trainer.generator.state_dict()["style_embedding.weight"]
    for row in (0, 1, 2):  # kept styles keep their codes; the new one starts from natural colour's
        assert torch.equal(table[row], theirs[row])
    assert torch.equal(table[3], theirs[0])
    assert trainer.kept_styles == ("alpha", "beta")

    photos = photo_folder(tmp_path)
    result = _train(tmp_path, "--data", str(photos), "--style-image", str(gamma), "--set", f"init_from='{base_json}'",
                    "--set", "steps_colorize=0", "--set", "steps_style=2")
    assert result.exit_code == 0, result.output
    assert "styles kept: alpha, beta; new (from natural colour): gamma" in result.stderr
    run_dir = tmp_path / "runs" / "0001-tiny"
    model, meta = load_generator(run_dir)  # a run folder names its model
    assert model.style_names == ("natural", "alpha", "beta", "gamma")
    assert meta["provenance"]["kept_styles"] == ["alpha", "beta"]
    for name in model.style_names:
        style_code(model.style_names, name, 1.0)  # every style can be selected
    listed = CliRunner().invoke(main, ["styles", "--model", str(run_dir)])
    assert listed.exit_code == 0 and [line.split()[1] for line in listed.stdout.splitlines()] == list(model.style_names)
    # Kept styles are trained towards their own look: their Gram targets are set and saved.
    grams = load_checkpoint(run_dir)["style_grams"]
    assert all(float(g[1].abs().sum()) > 0 and float(g[2].abs().sum()) > 0 for g in grams.values())


def test_a_painting_named_like_a_kept_style_trains_that_style(tmp_path):
    base_json = _styled_base(tmp_path)
    alpha = _painting(tmp_path / "alpha.png")
    cfg = load(TINY, {"init_from": str(base_json), "style_images": [str(alpha)], "steps_colorize": 0, "steps_style": 2})
    trainer = Trainer(cfg, tmp_path / "api")
    assert trainer.config.model.style_names == ("natural", "alpha", "beta") and trainer.kept_styles == ("beta",)


@pytest.mark.parametrize("files, message", [
    (["natural.png"], "cannot be named 'natural'"),
    (["a/udnie.png", "b/udnie.png"], "would both be the style 'udnie'"),
    (["twice.png", "twice.png"], "is given twice"),
])
def test_reserved_or_repeated_style_names_are_refused_before_training(tmp_path, files, message):
    photos = photo_folder(tmp_path)
    args = []
    for seed, name in enumerate(files):
        args += ["--style-image", str(_painting(tmp_path / "paint" / name, seed))]
    result = _train(tmp_path, "--data", str(photos), *args, "--set", "steps_colorize=0", "--set", "steps_style=1")
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_missing_style_image_is_one_line_and_leaves_no_run(tmp_path):
    photos = photo_folder(tmp_path)
    result = _train(tmp_path, "--data", str(photos), "--style-image", str(tmp_path / "nope.jpg"))
    assert result.exit_code == 3 and "style image not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_init_from_another_architecture_is_refused(tmp_path):
    photos = photo_folder(tmp_path)
    other = _styled_base(tmp_path, base_channels=16)
    result = _train(tmp_path, "--data", str(photos), "--set", f"init_from='{other}'")
    assert result.exit_code == 2 and "another architecture" in result.stderr and "base_channels 16" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_other_data_config_or_paintings_and_the_run_records_its_data(tmp_path, monkeypatch):
    photos = photo_folder(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "x.png"), region_photo(7, size=64)[..., ::-1])
    first = _train(tmp_path, "--data", str(photos), "--until", "2")
    assert first.exit_code == 0, first.output
    run_dir = tmp_path / "runs" / "0001-tiny"
    assert load(run_dir / "config.toml").data == (str(photos),)  # config.toml says what it trains on
    before = load_checkpoint(run_dir)["step"]
    resume = ["train", "--resume", str(run_dir), "--quiet"]
    for extra, message in ((["--data", str(other)], "trains on the run's own data"),
                           (["--config", str(REPO / "configs" / "train" / "base.toml")], "differs from the run's own config"),
                           (["--style-image", str(_painting(tmp_path / "s.png"))], "keeps the run's paintings")):
        refused = CliRunner().invoke(main, resume + extra)
        assert refused.exit_code == 2 and message in refused.stderr, (extra, refused.output)
        assert load_checkpoint(run_dir)["step"] == before
    monkeypatch.chdir(tmp_path)  # the same data and config given again (a copied command line) are fine
    same = CliRunner().invoke(main, resume + ["--data", "photos", "--config", str(TINY), "--until", "3"])
    assert same.exit_code == 0, same.output
    assert load_checkpoint(run_dir)["data"] == [str(photos)]
    json_data = __import__("json").loads((run_dir / "model.json").read_text())["provenance"]["data"]
    assert json_data == [str(photos)]


def test_until_that_is_not_ahead_is_refused(tmp_path):
    photos = photo_folder(tmp_path)
    zero = _train(tmp_path, "--data", str(photos), "--until", "0")
    assert zero.exit_code == 2 and "--until must be a positive step" in zero.stderr and not (tmp_path / "runs").exists()
    done = _train(tmp_path, "--data", str(photos))
    assert done.exit_code == 0, done.output
    behind = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "runs" / "0001-tiny"), "--until", "3", "--quiet"])
    assert behind.exit_code == 2 and "is not after the run's step 4" in behind.stderr


@pytest.mark.parametrize("extra, code", [(["--set", "device=tpu"], 2), (["--set", "loss.vgg_weights='/nonexist.pth'"], None),
                                         (["--set", "name='../../escape'"], 2)])
def test_failed_starts_leave_no_run_folder(tmp_path, extra, code):
    photos = photo_folder(tmp_path)
    result = _train(tmp_path, "--data", str(photos), *extra)
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    assert "Traceback" not in result.output and _run_folders(tmp_path / "runs") == []
    assert not (tmp_path / "escape").exists()


def test_interrupt_says_which_checkpoint_was_kept_and_how_to_resume(tmp_path, monkeypatch):
    import vidcolor.training.trainer as trainer_module

    real_step = trainer_module.Trainer.train_step
    stop_at = {"step": 3}

    def interrupted(self, batch):
        if self.step >= stop_at["step"]:
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", interrupted)
    photos = photo_folder(tmp_path)
    result = _train(tmp_path, "--data", str(photos))
    run_dir = tmp_path / "runs" / "0001-tiny"
    assert result.exit_code == 130
    assert "at step 3; the checkpoint of step 2 is kept" in result.stderr
    assert f"vidcolor train --resume {run_dir}" in result.stderr
    assert "stopped at step 3" in (run_dir / "log.txt").read_text()  # the error is in the run's log
    stop_at["step"] = 1  # before any checkpoint: nothing to resume, so no run folder is left
    early = _train(tmp_path, "--data", str(photos))
    assert early.exit_code == 130 and "no checkpoint yet" in early.stderr
    assert _run_folders(tmp_path / "runs") == ["0001-tiny"]


def test_a_data_worker_killed_by_sigterm_is_the_interruption_it_is(tmp_path, monkeypatch):
    """SIGTERM to the process group (a scheduler stopping the job) can kill a data-loading
    worker before the main process's handler runs: PyTorch's "DataLoader worker ... killed by
    signal: Terminated" was an internal error (exit 1) instead of exit 143 and the resume hint."""
    import vidcolor.training.trainer as trainer_module

    real_step = trainer_module.Trainer.train_step

    def worker_killed(self, batch):
        if self.step >= 3:
            raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Terminated. ")
        return real_step(self, batch)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", worker_killed)
    result = _train(tmp_path, "--data", str(photo_folder(tmp_path)))
    assert result.exit_code == 143, result.output
    assert "terminated (SIGTERM) at step 3; the checkpoint of step 2 is kept" in result.stderr
    assert "internal error" not in result.stderr


def test_grey_data_and_unreadable_photos_are_named_in_one_warning(tmp_path):
    photos = tmp_path / "grey"
    photos.mkdir()
    for i in range(3):
        grey = cv2.cvtColor(region_photo(i, size=64), cv2.COLOR_RGB2GRAY)
        cv2.imwrite(str(photos / f"g{i}.png"), grey)
    ok, buf = cv2.imencode(".jpg", region_photo(4, size=64)[..., ::-1])
    (photos / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])  # a truncated JPEG
    (photos / "junk.jpg").write_bytes(b"\x00" * 500)
    result = _train(tmp_path, "--data", str(photos), "--set", "steps_colorize=1")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "skipped" in line or "are grey" in line]
    assert len(warnings) == 2, result.stderr
    assert "cut.jpg" in warnings[0] and "junk.jpg" in warnings[0]
    assert "3 of 3 photos and 0 of 0 clips are grey" in warnings[1]
    assert "data: 3 photos" in (tmp_path / "runs" / "0001-tiny" / "log.txt").read_text()


def test_jpeg_with_data_after_its_end_is_a_photo(tmp_path):
    """A Motion Photo (an MP4 after the JPEG's end marker) or an editor's trailer was skipped as
    a truncated JPEG, since the end marker was looked for in the last 4 kB only."""
    from vidcolor.training.data import load_photo

    ok, buf = cv2.imencode(".jpg", region_photo(1, size=64)[..., ::-1])
    path = tmp_path / "motion.jpg"
    path.write_bytes(buf.tobytes() + b"\x00ftypmp42" + bytes(200_000))
    assert load_photo(path, 128) is not None
    path.write_bytes(buf.tobytes()[: len(buf) // 2])  # cut short: still refused
    assert load_photo(path, 128) is None
