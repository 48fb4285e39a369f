"""probe, scan_timestamps, media_kind, format_report and the frame-range helpers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.media import ffprobe_json, make_clip
from vidcolor.errors import InputError, UsageError
from vidcolor.io.media_files import media_kind
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.pixel_formats import planar_equivalent
from vidcolor.io.probe import probe
from vidcolor.io.report import format_report
from vidcolor.io.verdict import GREY_MEAN_MAGNITUDE, chroma_to_unit, summarize_chroma
from vidcolor.io.timing import clamp_frame_range, frame_durations, parse_frame_range


# ------------------------------------------------------------------------------- containers


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_probe_reads_basic_clip_in_each_container(tmp_path, ext):
    clip = make_clip(tmp_path / f"clip.{ext}", frames=10, audio="aac")
    info = probe(clip.path, verdict=False)
    video = info.video
    assert (video.width, video.height, video.codec) == (96, 64, "h264")
    assert (video.pix_fmt, video.bit_depth, video.is_gray, video.chroma_shift) == ("yuv420p", 8, False, (1, 1))
    assert video.frame_count == 10
    assert video.time_base == clip.time_base
    assert video.avg_rate == 25
    assert not video.is_vfr
    assert not video.interlaced and video.rotation == 0
    assert info.verdict is None
    assert [o.kind for o in info.others] == ["audio"]
    assert info.others[0].codec == "aac" and "48000 Hz" in info.others[0].description
    assert info.duration_s == pytest.approx(0.4, abs=0.1)


def test_probe_ntsc_rate_and_frame_count(tmp_path):
    clip = make_clip(tmp_path / "ntsc.mov", frames=8, rate=Fraction(30000, 1001))
    video = probe(clip.path, verdict=False).video
    assert video.avg_rate == Fraction(30000, 1001)
    assert video.frame_count == 8 and not video.is_vfr
    assert scan_timestamps(clip.path) == clip.pts == [i * 1001 for i in range(8)]


def test_probe_variable_frame_rate(tmp_path):
    clip = make_clip(tmp_path / "vfr.mp4", frames=10, vfr=True)
    video = probe(clip.path, verdict=False).video
    assert video.is_vfr
    assert video.frame_count == 10
    assert scan_timestamps(clip.path) == clip.pts


def test_probe_vfr_false_for_millisecond_rounding(tmp_path):
    # 29.97 fps in Matroska: durations alternate 33/34 ms, which is rounding, not VFR.
    clip = make_clip(tmp_path / "ntsc.mkv", frames=8, rate=Fraction(30000, 1001))
    video = probe(clip.path, verdict=False).video
    assert not video.is_vfr
    assert set(frame_durations(clip.pts)) <= {33, 34}


@pytest.mark.parametrize(
    "pix_fmt, depth, gray, shift",
    [("yuv420p10le", 10, False, (1, 1)), ("gray", 8, True, (0, 0)), ("gray10le", 10, True, (0, 0)),
     ("yuv444p", 8, False, (0, 0)), ("yuv422p", 8, False, (1, 0))],
)
def test_probe_pixel_formats(tmp_path, pix_fmt, depth, gray, shift):
    clip = make_clip(tmp_path / "f.mkv", frames=3, pix_fmt=pix_fmt, lossless=True)
    video = probe(clip.path, verdict=False).video
    assert (video.pix_fmt, video.bit_depth, video.is_gray, video.chroma_shift) == (pix_fmt, depth, gray, shift)


def test_probe_odd_size_and_rotation(tmp_path):
    clip = make_clip(tmp_path / "big.mp4", width=642, height=362, frames=3, rotation=90)
    video = probe(clip.path, verdict=False).video
    assert (video.width, video.height) == (642, 362)
    assert video.rotation == 90


def test_probe_dv_flagged_interlaced_only_per_frame(tmp_path):
    """DV stores no field order in the stream, only an interlaced flag on each frame (and PyAV
    gives no top-field-first flag): probe says interlaced, bottom field first as DV is."""
    path = tmp_path / "tape.dv"
    with av.open(str(path), "w", format="dv") as out:
        stream = out.add_stream("dvvideo", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 720, 480, "yuv411p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((480, 720, 3), 60 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv411p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    video = probe(path, verdict=False).video
    assert video.interlaced and video.field_order == 5  # AV_FIELD_BT
    # FFmpeg's average rate for raw DV is its time base's (60000 fps), not its frames' (was
    # written into the output, and MP4/MOV refused it).
    assert video.avg_rate == Fraction(30000, 1001)


def test_probe_colour_metadata(tmp_path):
    meta = {"primaries": "bt709", "trc": "bt709", "colorspace": "bt709", "range": "pc"}
    clip = make_clip(tmp_path / "tagged.mkv", frames=3, color_meta=meta)
    video = probe(clip.path, verdict=False).video
    assert (video.color_primaries, video.color_trc, video.colorspace) == ("bt709", "bt709", "bt709")
    assert video.full_range and video.matrix == "bt709"
    untagged = probe(make_clip(tmp_path / "plain.mkv", frames=3).path, verdict=False).video
    assert (untagged.color_primaries, untagged.color_trc, untagged.colorspace) == (None, None, None)
    assert not untagged.full_range and untagged.matrix == "bt601"


def test_probe_subtitle_stream_listed(tmp_path):
    clip = make_clip(tmp_path / "subs.mkv", frames=4, subtitle=True, audio="pcm_s16le")
    others = probe(clip.path, verdict=False).others
    assert [(o.kind, o.codec) for o in others] == [("audio", "pcm_s16le"), ("subtitle", "subrip")]


def test_probe_agrees_with_ffprobe(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6, audio="aac")
    data = ffprobe_json(clip.path)
    if data is None:
        pytest.skip("ffprobe not installed")
    info = probe(clip.path, verdict=False)
    stream = next(s for s in data["streams"] if s["codec_type"] == "video")
    assert stream["pix_fmt"] == info.video.pix_fmt
    assert int(stream["nb_frames"]) == info.video.frame_count
    assert Fraction(stream["time_base"]) == info.video.time_base


def test_planar_equivalent_of_exotic_formats():
    assert planar_equivalent("yuv420p") == "yuv420p"
    assert planar_equivalent("yuvj422p") == "yuvj422p"
    assert planar_equivalent("nv12") == "yuv420p"
    assert planar_equivalent("p010le") == "yuv420p10le"
    assert planar_equivalent("yuyv422") == "yuv422p"
    assert planar_equivalent("rgb24") == "yuv444p"
    assert planar_equivalent("pal8") == "yuv444p"
    assert planar_equivalent("gray16be") == "gray16le"
    assert planar_equivalent("yuva420p") == "yuv420p"


# ------------------------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    "content, codec, expected",
    [("grey", None, "grey"), ("sepia", None, "tinted"), ("colour", None, "colour"),
     ("grey", "ffv1", "grey"), ("sepia", "ffv1", "tinted"), ("flicker", None, "colour")],
)
def test_verdict(tmp_path, content, codec, expected):
    clip = make_clip(tmp_path / "v.mkv", frames=8, content=content, codec=codec)
    info = probe(clip.path, sample_frames=4)
    assert info.verdict == expected, info.chroma_stats
    assert info.chroma_stats["frames_sampled"] == 4


def test_verdict_ignores_zero_mean_chroma_noise(tmp_path):
    """Black-and-white film telecined on colour equipment: chroma noise of 2.7 codes, random from
    pixel to pixel, read as "colour" (colorize then asked for --force); block means average it away."""
    clip = make_clip(tmp_path / "telecine.mkv", width=160, height=96, frames=4, content="noisy_grey", lossless=True)
    info = probe(clip.path, sample_frames=4)
    assert info.verdict == "grey", info.chroma_stats
    _, cb, cr = clip.planes[0]
    per_pixel = np.hypot(chroma_to_unit(cb, 8, False), chroma_to_unit(cr, 8, False))
    assert per_pixel.mean() > GREY_MEAN_MAGNITUDE  # judged pixel by pixel, it was colour


SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


@pytest.mark.skipif(not SHARED_VIDEO.is_dir(), reason="needs ../shared/data/video")
@pytest.mark.parametrize("folder, expected", [("color", "colour"), ("bw", "grey")])
def test_verdict_on_real_clips(folder, expected):
    clips = sorted((SHARED_VIDEO / folder).glob("*.mp4"))
    if not clips:
        pytest.skip(f"no clips in {SHARED_VIDEO / folder}")
    for clip in clips:
        info = probe(clip, sample_frames=4)
        assert info.verdict == expected, (clip.name, info.chroma_stats)


def test_verdict_gray_format_is_grey_without_decoding(tmp_path):
    clip = make_clip(tmp_path / "g.mkv", frames=3, pix_fmt="gray", lossless=True)
    assert probe(clip.path).verdict == "grey"


def test_verdict_samples_spread_over_long_clip(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=20, content="sepia", gop=5)
    info = probe(clip.path, sample_frames=3)  # 20 > 4 * 3: seeks per sample
    assert info.verdict == "tinted"
    assert info.chroma_stats["frames_sampled"] == 3


def test_summarize_chroma_on_arrays():
    rng = np.random.default_rng(0)
    neutral = [(rng.normal(0, 0.002, (16, 16)), rng.normal(0, 0.002, (16, 16)))]
    assert summarize_chroma(neutral)[0] == "grey"
    telecine = [(rng.normal(0, 0.012, (90, 160)), rng.normal(0, 0.012, (90, 160)))]  # 2.7 codes, random per pixel
    assert summarize_chroma(telecine)[0] == "grey"
    assert summarize_chroma([(c + 0.03, c) for c, _ in telecine])[0] == "tinted"  # a cast under the same noise
    tint = [(np.full((16, 16), -0.06) + rng.normal(0, 0.003, (16, 16)), np.full((16, 16), 0.05))]
    assert summarize_chroma(tint)[0] == "tinted"
    hues = np.linspace(0, 2 * np.pi, 256).reshape(16, 16)
    assert summarize_chroma([(0.2 * np.cos(hues), 0.2 * np.sin(hues))])[0] == "colour"


def test_format_report_mentions_the_essentials(tmp_path):
    clip = make_clip(tmp_path / "r.mp4", frames=4, audio="aac", content="sepia")
    text = format_report(probe(clip.path, sample_frames=2))
    for needle in ("h264", "96x64", "yuv420p", "4 frames", "25 fps", "audio #1", "verdict: tinted"):
        assert needle in text


def test_format_report_counts_one_frame_and_names_rgb_without_a_matrix_tag(tmp_path):
    one = format_report(probe(make_clip(tmp_path / "one.mkv", frames=1).path))
    assert "timing: 1 frame, " in one and "1 frame sampled" in one and "1 frames" not in one
    rgb = format_report(probe(make_clip(tmp_path / "rgb.mkv", frames=2, pix_fmt="bgr0", lossless=True).path))
    assert "matrix none (RGB, read as YCbCr with bt601)" in rgb and "gbr" not in rgb.split("matrix")[1]


def test_format_report_of_a_still_image_reads_as_one(tmp_path):
    """It said "container: png_pipe, unknown duration", "1 frames" and "matrix gbr (using bt601)"."""
    import cv2

    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 2] = np.arange(64, dtype=np.uint8) * 4
    cv2.imwrite(str(tmp_path / "photo.png"), rgb)
    cv2.imwrite(str(tmp_path / "scan.tif"), (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16))
    photo = format_report(probe(tmp_path / "photo.png"))
    assert photo.splitlines()[1] == "still image: PNG 64x48, 8-bit RGB"
    assert photo.splitlines()[2].startswith("verdict: colour (") and "sampled" not in photo
    for jargon in ("png_pipe", "container", "duration", "frames", "gbr", "time base", "rotation"):
        assert jargon not in photo, jargon
    assert format_report(probe(tmp_path / "scan.tif")).splitlines()[1] == "still image: TIFF 64x48, 16-bit grey"


# ------------------------------------------------------------------------------- errors


def test_probe_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


def test_probe_directory(tmp_path):
    with pytest.raises(InputError, match="directory"):
        probe(tmp_path)


def test_probe_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        probe(tmp_path / "empty.mp4")


def test_probe_text_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="notes.mp4"):
        probe(tmp_path / "notes.mp4")


def test_probe_garbage_bytes(tmp_path):
    (tmp_path / "noise.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError):
        probe(tmp_path / "noise.mkv")


def test_probe_audio_only(tmp_path):
    path = tmp_path / "audio.mka"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        probe(path)


def test_error_message_is_one_line(tmp_path):
    (tmp_path / "bad.mov").write_text("nope")
    with pytest.raises(InputError) as excinfo:
        probe(tmp_path / "bad.mov")
    assert "\n" not in str(excinfo.value)


# ------------------------------------------------------------------------------- media kind


def test_media_kind(tmp_path):
    cv2 = pytest.importorskip("cv2")
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.full((8, 8, 3), 128, np.uint8))
    assert media_kind(image) == "image"
    (tmp_path / "fake.jpg").write_text("not an image")
    assert media_kind(tmp_path / "fake.jpg") == "video"  # probe then reports a clear error
    clip = make_clip(tmp_path / "c.mkv", frames=2)
    assert media_kind(clip.path) == "video"


# ------------------------------------------------------------------------------- timing


def test_parse_frame_range():
    assert parse_frame_range("0-99") == (0, 99)
    assert parse_frame_range(" 5 - 5 ") == (5, 5)
    for bad in ["10-5", "a-b", "-3", "", "3", "1-2-3", "-1-4"]:
        with pytest.raises(UsageError):
            parse_frame_range(bad)


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_parse_frame_range_round_trips(a, b):
    start, end = min(a, b), max(a, b)
    assert parse_frame_range(f"{start}-{end}") == (start, end)


def test_clamp_frame_range():
    assert clamp_frame_range(0, 1000, 12) == (0, 11)
    assert clamp_frame_range(3, 5, 12) == (3, 5)
    with pytest.raises(UsageError, match="past the last frame"):
        clamp_frame_range(12, 20, 12)


def test_frame_durations():
    assert frame_durations([0, 2, 6, 8]) == [2, 4, 2, 2]
    assert frame_durations([5]) == [0]
    assert frame_durations([]) == []


def test_io_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vidcolor.io; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
