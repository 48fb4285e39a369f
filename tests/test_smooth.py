"""The flow-guided chroma smoother: identity, flicker reduction, scene resets, chunk warm-up."""

import math

import cv2
import numpy as np
import pytest
import torch

from vidcolor import color, flow
from vidcolor.metrics.temporal import warp_error
from vidcolor.pipeline.smooth import ChromaSmoother, smooth_sequence, warmup_frames


def smooth_texture(h, w, sigma, seed):
    """Smooth random field in [0, 1]."""
    noise = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), sigma)
    return (tex - tex.min()) / (tex.max() - tex.min())


def moving_clip(n, h, w, flicker=0.05, seed=0, luma_range=(0.05, 0.95)):
    """Luma and true chroma cropped from a scene sliding 1 px/frame right and 0.5 down,
    plus the chroma a model would give: the truth with per-frame random flicker.

    Returns:
        (lumas, true_chromas, noisy_chromas): lists of (H, W) and (2, H, W) float32.
    """
    big_h, big_w = h + n // 2 + 4, w + n + 4
    lo, hi = luma_range
    luma_tex = lo + (hi - lo) * smooth_texture(big_h, big_w, 2.0, seed)
    chroma_tex = np.stack([smooth_texture(big_h, big_w, 6.0, seed + k) - 0.5 for k in (1, 2)]) * 0.4
    rng = np.random.default_rng(seed + 3)
    lumas, truths, noisy = [], [], []
    for t in range(n):
        rows, cols = slice(t // 2, t // 2 + h), slice(t, t + w)
        truth = chroma_tex[:, rows, cols].copy()
        offset = rng.normal(0.0, flicker, (2, 1, 1))  # whole-frame colour flicker
        grain = rng.normal(0.0, flicker / 2, truth.shape)  # per-pixel flicker
        lumas.append(luma_tex[rows, cols].copy())
        truths.append(truth)
        noisy.append((truth + offset + grain).astype(np.float32))
    return lumas, truths, noisy


def to_rgb(luma, chroma):
    """(H, W) luma + (2, H, W) chroma -> (H, W, 3) RGB in [0, 1] via vidcolor.color."""
    ycc = torch.from_numpy(np.concatenate([luma[None], chroma]).astype(np.float32))
    return color.ycbcr_to_rgb(ycc).clamp(0, 1).permute(1, 2, 0).numpy()


def codes(chroma):
    """Chroma as 8-bit code values (the unit that the farm's guarantee is stated in)."""
    return np.round(chroma * 255.0).astype(np.int32)


# --- warm-up ------------------------------------------------------------------------------


def test_warmup_frames_for_default_alpha():
    assert warmup_frames(0.8) == 28


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8, 0.9, 0.95])
def test_warmup_is_the_fewest_frames_that_decay_below_half_a_code(alpha):
    w = warmup_frames(alpha)
    assert w == math.ceil(math.log(0.5 / 255) / math.log(alpha))
    assert alpha**w <= 0.5 / 255 < alpha ** (w - 1)


def test_warmup_edges():
    assert warmup_frames(0.0) == 0
    assert warmup_frames(-0.5) == 0
    with pytest.raises(ValueError):
        warmup_frames(1.0)


# --- behaviour ----------------------------------------------------------------------------


def test_alpha_zero_is_identity_and_computes_no_flow(monkeypatch):
    def no_flow(*args):
        raise AssertionError("alpha 0 must not compute flow")

    monkeypatch.setattr(flow, "dis_flow", no_flow)
    lumas, _, noisy = moving_clip(3, 16, 24)
    smoother = ChromaSmoother(alpha=0.0)
    for y, c in zip(lumas, noisy):
        out = smoother(y, c)
        assert np.array_equal(out, c) and out.dtype == np.float32


def test_smoothing_reduces_flicker_and_error():
    lumas, truths, noisy = moving_clip(20, 48, 64)
    smoothed = smooth_sequence(lumas, noisy, alpha=0.8)
    assert all(s.shape == (2, 48, 64) and s.dtype == np.float32 for s in smoothed)

    def temporal_error(chromas):
        return warp_error([to_rgb(y, c) for y, c in zip(lumas, chromas)], flows_from=lumas)

    def truth_error(chromas):  # after the first frame's own flicker has decayed
        return float(np.mean([np.abs(c - t).mean() for c, t in zip(chromas[10:], truths[10:])]))

    assert temporal_error(smoothed) < 0.3 * temporal_error(noisy)
    assert truth_error(smoothed) < 0.6 * truth_error(noisy)


def test_scene_cut_resets_state():
    dark, _, dark_chroma = moving_clip(4, 32, 48, seed=0, luma_range=(0.05, 0.4))
    bright, _, bright_chroma = moving_clip(3, 32, 48, seed=10, luma_range=(0.6, 0.95))
    smoother = ChromaSmoother(0.8)
    cuts, outputs = [], []
    for y, c in zip(dark + bright, dark_chroma + bright_chroma):
        outputs.append(smoother(y, c))
        cuts.append(smoother.last_was_cut)
    assert cuts == [False, False, False, False, True, False, False]
    assert np.array_equal(outputs[4], bright_chroma[0])  # first frame of the new shot: raw
    assert not np.allclose(outputs[3], dark_chroma[3])  # while within a shot it does smooth


def test_returned_arrays_are_independent_of_state():
    lumas, _, noisy = moving_clip(3, 16, 24)
    a, b = ChromaSmoother(0.8), ChromaSmoother(0.8)
    for y, c in zip(lumas, noisy):
        out = a(y, c)
        expected = b(y, c)
        assert np.array_equal(out, expected)
        out[...] = 9.0  # the caller may scribble on what it got back


def test_reset_passes_next_frame_through():
    lumas, _, noisy = moving_clip(3, 16, 24)
    smoother = ChromaSmoother(0.8)
    smoother(lumas[0], noisy[0])
    smoother.reset()
    assert np.array_equal(smoother(lumas[1], noisy[1]), noisy[1])
    assert smoother.last_was_cut is False


def test_chunk_with_warmup_matches_single_run():
    alpha, start = 0.8, 30
    lumas, _, noisy = moving_clip(60, 64, 96, flicker=0.08, seed=5)
    full = smooth_sequence(lumas, noisy, alpha)
    first = start - warmup_frames(alpha)
    chunk = smooth_sequence(lumas[first:], noisy[first:], alpha)
    assert np.abs(codes(chunk[0]) - codes(full[first])).max() > 1  # the states did start apart
    for t in range(start, len(lumas)):
        assert np.abs(codes(chunk[t - first]) - codes(full[t])).max() <= 1, f"frame {t}"


def test_smoothers_in_threads_match_a_single_thread():
    from concurrent.futures import ThreadPoolExecutor

    clips = [moving_clip(6, 24, 32, seed=s) for s in (0, 7)]
    expected = [smooth_sequence(y, c, 0.8) for y, _, c in clips]
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda clip: smooth_sequence(clip[0], clip[2], 0.8), clips))
    for exp, out in zip(expected, got):
        assert all(np.array_equal(e, o) for e, o in zip(exp, out))
