"""Metrics against values worked out by hand on tiny arrays."""

import math

import cv2
import numpy as np
import pytest

from vidcolor.metrics import cdc, chroma_auc, clip_report, colourfulness, image_report, psnr, ssim
from vidcolor.metrics.temporal import js_divergence, warp_error, warp_errors

LN2 = math.log(2.0)


def constant_image(rgb, h=8, w=8):
    return np.broadcast_to(np.asarray(rgb, np.float32), (h, w, 3)).copy()


def textured_rgb(h, w, seed=0):
    """Smooth random colour texture in [0, 1], trackable by DIS."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (tex - tex.min()) / (tex.max() - tex.min())


def translated_clip(n=4, h=48, w=64, step=2):
    """Crops of a larger texture sliding right by ``step`` pixels per frame."""
    big = textured_rgb(h + 8, w + step * n + 8)
    return [big[4 : 4 + h, 4 + step * t : 4 + step * t + w].copy() for t in range(n)]


# --- PSNR ---------------------------------------------------------------------------------


def test_psnr_identical_is_infinite():
    img = textured_rgb(8, 8)
    assert psnr(img, img) == math.inf


def test_psnr_constant_offset():
    # MSE = 0.1² = 0.01 -> 10·log10(1/0.01) = 20 dB
    assert psnr(constant_image(0.6), constant_image(0.5)) == pytest.approx(20.0, abs=1e-4)


def test_psnr_one_pixel_shift_of_a_line():
    # One bright column in 8; shifted by one pixel, 2 of 8 columns differ by 1:
    # MSE = 2/8 = 0.25 -> 10·log10(4) = 6.0206 dB.
    truth = np.zeros((8, 8, 3), np.float32)
    truth[:, 3] = 1.0
    shifted = np.roll(truth, 1, axis=1)
    assert psnr(shifted, truth) == pytest.approx(10 * math.log10(4.0), abs=1e-9)


def test_psnr_returns_plain_float():
    assert type(psnr(constant_image(0.2), constant_image(0.3))) is float


# --- SSIM ---------------------------------------------------------------------------------


def test_ssim_identical_is_one():
    img = textured_rgb(24, 24)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constants():
    # No variance: SSIM = (2ab + C1) / (a² + b² + C1), C1 = 0.01².
    a, b, c1 = 0.5, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(constant_image(a, 16, 16), constant_image(b, 16, 16))
    assert got == pytest.approx(expected, abs=1e-7)  # float32 inputs: 0.6 is 0.6000000238


def test_ssim_drops_with_noise():
    img = textured_rgb(32, 32)
    noisy = np.clip(img + np.random.default_rng(1).normal(0, 0.2, img.shape), 0, 1)
    assert ssim(noisy, img) < 0.8


# --- colourfulness ------------------------------------------------------------------------


def test_colourfulness_of_grey_is_zero():
    grey = np.repeat(textured_rgb(8, 8)[..., :1], 3, axis=2)
    assert colourfulness(grey) == pytest.approx(0.0, abs=1e-9)


def test_colourfulness_of_red_and_blue_halves():
    # Red (255,0,0): rg = 255, yb = 127.5.  Blue (0,0,255): rg = 0, yb = -255.
    # mean_rg = 127.5, std_rg = 127.5; mean_yb = -63.75, std_yb = 191.25.
    img = np.zeros((4, 4, 3), np.float32)
    img[:, :2, 0] = 1.0
    img[:, 2:, 2] = 1.0
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert colourfulness(img) == pytest.approx(expected, rel=1e-9)


# --- AuC ----------------------------------------------------------------------------------


def test_auc_identical_is_one():
    img = textured_rgb(8, 8)
    assert chroma_auc(img, img) == pytest.approx(1.0)


def test_auc_ignores_lightness():
    # Greys of any lightness have a = b = 0: no chroma error at all.
    assert chroma_auc(constant_image(0.2), constant_image(0.8)) == pytest.approx(1.0)


def test_auc_of_red_against_grey():
    # sRGB red is Lab (53.24, 80.09, 67.20): ab error from grey = 104.55.
    # Thresholds 0..150 (step 1) at or above it: 105..150, 46 of 151. Half the pixels red.
    pred = constant_image(0.5)
    pred[:, :4] = (1.0, 0.0, 0.0)
    expected = 0.5 * 1.0 + 0.5 * 46 / 151
    assert chroma_auc(pred, constant_image(0.5)) == pytest.approx(expected, abs=1e-9)


def test_image_report_keys_and_types():
    truth = textured_rgb(16, 16)
    report = image_report(np.clip(truth + 0.05, 0, 1), truth)
    assert set(report) == {"psnr", "ssim", "colourfulness", "colourfulness_ratio", "auc"}
    assert all(type(v) is float for v in report.values())


# --- warp error ---------------------------------------------------------------------------


def test_warp_error_of_static_clip_is_zero():
    frame = textured_rgb(32, 48)
    assert warp_error([frame] * 3) == pytest.approx(0.0, abs=1e-12)


def test_warp_error_of_translated_clip_is_near_zero():
    assert warp_error(translated_clip()) < 2e-4


def test_warp_error_of_flickering_colour_is_large():
    clip = translated_clip()
    gains = np.random.default_rng(2).uniform(0.5, 1.5, (len(clip), 3)).astype(np.float32)
    flicker = [np.clip(f * g, 0, 1) for f, g in zip(clip, gains)]
    greys = [f.mean(-1) for f in clip]  # same flow for both clips: from the unflickered luma
    steady = warp_error(clip, flows_from=greys)
    assert warp_error(flicker, flows_from=greys) > 50 * max(steady, 1e-5)


def test_chroma_warp_error_ignores_luma_changes_and_sees_chroma_ones():
    """On a static grey clip whose brightness pulses, every change is luma: the RGB warp error
    is the squared step and the chroma warp error 0; a pure Cr step shows in both, by hand."""
    static = np.full((16, 16), 0.5, np.float32)
    greys = [np.full((16, 16, 3), v, np.float32) for v in (0.5, 0.6, 0.5)]
    errs = warp_errors({"grey": greys}, [static] * 3)["grey"]
    assert errs["warp_error"] == pytest.approx(0.01, rel=1e-5)  # (0.1)^2 on every channel
    assert errs["warp_error_chroma"] == pytest.approx(0.0, abs=1e-12)
    # Cr += d moves R by 1.402 d and G by -0.714136 d (BT.601), B not at all.
    d = 0.05
    base = np.full((16, 16, 3), 0.5, np.float32)
    shifted = base + np.array([1.402 * d, -0.714136 * d, 0.0], np.float32)
    errs = warp_errors({"cr": [base, shifted]}, [static] * 2)["cr"]
    assert errs["warp_error_chroma"] == pytest.approx(d * d / 2, rel=1e-4)  # Cb 0, Cr d
    assert errs["warp_error"] == pytest.approx(((1.402 * d) ** 2 + (0.714136 * d) ** 2) / 3, rel=1e-4)


def test_warp_errors_match_a_direct_computation():
    """Against the definition written out here with OpenCV alone: DIS flow t -> t-1 on the
    flow source, forward-backward mask, masked mean squared difference, averaged over pairs."""
    clip = translated_clip()
    gains = np.random.default_rng(4).uniform(0.8, 1.2, (len(clip), 3)).astype(np.float32)
    frames = [np.clip(f * g, 0, 1).astype(np.float32) for f, g in zip(clip, gains)]
    greys = [(f @ np.array([0.299, 0.587, 0.114], np.float32)) for f in clip]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    expected = []
    for t in range(1, len(frames)):
        a = (np.clip(greys[t], 0, 1) * 255 + 0.5).astype(np.uint8)
        b = (np.clip(greys[t - 1], 0, 1) * 255 + 0.5).astype(np.uint8)
        back, fwd = dis.calc(a, b, None), dis.calc(b, a, None)
        h, w = a.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        tx, ty = gx + back[..., 0], gy + back[..., 1]
        fb = cv2.remap(fwd, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err2 = ((back + fb) ** 2).sum(-1)
        ok = err2 <= 0.01 * ((back ** 2).sum(-1) + (fb ** 2).sum(-1)) + 0.5
        ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        warped = cv2.remap(frames[t - 1], tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        expected.append(float(((frames[t] - warped) ** 2)[ok].mean()))
    got = warp_errors({"clip": frames}, greys)["clip"]["warp_error"]
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-4)


def test_warp_errors_share_one_flow_and_match_warp_error():
    clip = translated_clip()
    gains = np.random.default_rng(3).uniform(0.8, 1.2, (len(clip), 3)).astype(np.float32)
    flicker = [np.clip(f * g, 0, 1) for f, g in zip(clip, gains)]
    greys = [f.mean(-1) for f in clip]
    both = warp_errors({"steady": clip, "flicker": flicker}, greys)
    assert both["steady"]["warp_error"] == pytest.approx(warp_error(clip, flows_from=greys), rel=1e-12)
    assert both["flicker"]["warp_error"] == pytest.approx(warp_error(flicker, flows_from=greys), rel=1e-12)
    assert both["flicker"]["warp_error_chroma"] > 20 * both["steady"]["warp_error_chroma"]
    with pytest.raises(ValueError):
        warp_errors({"short": clip[:-1]}, greys)


def test_farneback_flow_finds_a_known_shift():
    """The independent estimator recovers a translation (frame 1 is frame 0 moved 2 px right,
    so each pixel of frame 1 lies 2 px to the left in frame 0)."""
    from vidcolor.flow import farneback_flow

    clip = translated_clip(n=2, h=64, w=96)
    greys = [f.mean(-1) for f in clip]
    inner = farneback_flow(greys[1], greys[0])[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(2.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.25)


@pytest.mark.parametrize("flow_name", ["dis", "farneback"])
def test_warp_error_along_either_flow_tells_steady_from_flickering(flow_name):
    clip = translated_clip(h=64, w=96)
    gains = np.random.default_rng(2).uniform(0.5, 1.5, (len(clip), 3)).astype(np.float32)
    flicker = [np.clip(f * g, 0, 1) for f, g in zip(clip, gains)]
    greys = [f.mean(-1) for f in clip]
    both = warp_errors({"steady": clip, "flicker": flicker}, greys, flow_name)
    assert both["steady"]["warp_error"] < 5e-4
    assert both["flicker"]["warp_error"] > 20 * both["steady"]["warp_error"]
    assert warp_error(clip, greys, flow_name) == pytest.approx(both["steady"]["warp_error"], rel=1e-12)


def test_the_two_flows_are_different_estimators():
    clip = translated_clip(h=64, w=96)
    noisy = [np.clip(f + np.random.default_rng(t).normal(0, 0.05, f.shape), 0, 1).astype(np.float32)
             for t, f in enumerate(clip)]
    assert warp_error(noisy, flow_name="dis") != warp_error(noisy, flow_name="farneback")


def test_unknown_flow_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown flow 'raft'; choose from dis, farneback"):
        warp_error(translated_clip(), flow_name="raft")


def test_warp_error_needs_two_frames():
    assert math.isnan(warp_error([textured_rgb(8, 8)]))


# --- CDC ----------------------------------------------------------------------------------


def test_js_divergence_maximum_is_ln2():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert js_divergence(p, q) == pytest.approx(LN2)
    assert js_divergence(p, p) == pytest.approx(0.0)


def test_cdc_of_constant_clip_is_zero():
    assert cdc([constant_image((0.2, 0.5, 0.9))] * 4) == pytest.approx(0.0, abs=1e-12)


def test_cdc_of_disjoint_frames_is_ln2():
    # Red (1,0,0) and cyan (0,1,1): every channel's histograms are disjoint.
    frames = [constant_image((1, 0, 0)), constant_image((0, 1, 1))]
    assert cdc(frames, gaps=(1,)) == pytest.approx(LN2)


def test_cdc_counts_only_changed_channels():
    # Red (1,0,0) and blue (0,0,1): R and B disjoint, G identical -> (ln2 + 0 + ln2) / 3.
    frames = [constant_image((1, 0, 0)), constant_image((0, 0, 1))]
    assert cdc(frames, gaps=(1,)) == pytest.approx(2 * LN2 / 3)


def test_cdc_averages_gaps():
    # A, A, B: gap 1 pairs (A,A)=0 and (A,B)=ln2 -> ln2/2; gap 2 pair (A,B) = ln2.
    a, b = constant_image((1, 0, 0)), constant_image((0, 1, 1))
    assert cdc([a, a, b], gaps=(1, 2)) == pytest.approx((LN2 / 2 + LN2) / 2)


# --- clip report --------------------------------------------------------------------------


def test_clip_report_of_perfect_prediction():
    clip = translated_clip(n=3)
    report = clip_report(clip, clip)
    assert set(report) == {"psnr", "ssim", "colourfulness", "colourfulness_ratio", "auc", "warp_error", "warp_error_chroma", "cdc"}
    assert all(type(v) is float for v in report.values())
    assert report["psnr"] == math.inf
    assert report["ssim"] == pytest.approx(1.0)
    assert report["auc"] == pytest.approx(1.0)
    assert report["colourfulness_ratio"] == pytest.approx(1.0)
    assert report["warp_error"] < 2e-4
