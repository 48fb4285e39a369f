"""OutputWriter round trips (timing, luma, colour tags, copied streams), format rules,
container checks and atomic output."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.media import (
    CHAPTER_TITLES,
    FONT_BYTES,
    TIMECODE,
    cover_png,
    ffprobe_duration,
    ffprobe_json,
    ffprobe_video_pts,
    make_clip,
    passthrough,
    read_packet_times,
    read_packets,
    read_planes,
)
from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import atomic_output
from vidcolor.io.encode import OutputWriter, check_output_supported, depth_loss, output_format, shift_bits
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.probe import probe

ROOT = Path(__file__).resolve().parents[1]
TAGS_709 = {"primaries": "bt709", "trc": "bt709", "colorspace": "bt709", "range": "tv"}
TAGS_601_FULL = {"primaries": "smpte170m", "trc": "smpte170m", "colorspace": "smpte170m", "range": "pc"}


def _timing(path):
    video = probe(path, verdict=False).video
    return video.time_base, scan_timestamps(path)


def _assert_same_timing(source, output):
    source_tb, source_pts = _timing(source)
    out_tb, out_pts = _timing(output)
    assert out_tb == source_tb
    assert out_pts == source_pts
    # The last frame keeps its own duration, so the film is as long as its source (within the
    # millisecond a Matroska file, or an MP4 with the default timescale, rounds to).
    if (length := ffprobe_duration(output)) is not None:
        assert abs(length - ffprobe_duration(source)) <= Fraction(1, 1000)
    via_ffprobe = ffprobe_video_pts(output)
    if via_ffprobe is not None:
        assert via_ffprobe == (source_pts, source_tb)


def _colour(path):
    v = probe(path, verdict=False).video
    return v.color_primaries, v.color_trc, v.colorspace, v.full_range


# ------------------------------------------------------------------------------- format rules


def _video(tmp_path, pix_fmt, name="s.mkv"):
    return probe(make_clip(tmp_path / name, frames=1, pix_fmt=pix_fmt, lossless=True).path, verdict=False).video


def test_output_format_rules(tmp_path):
    yuv420 = _video(tmp_path, "yuv420p", "a.mkv")
    ten = _video(tmp_path, "yuv420p10le", "b.mkv")
    gray = _video(tmp_path, "gray", "c.mkv")
    gray10 = _video(tmp_path, "gray10le", "d.mkv")
    full444 = _video(tmp_path, "yuv444p", "e.mkv")
    twelve = _video(tmp_path, "yuv422p12le", "f.mkv")
    assert output_format(yuv420, "x264").pix_fmt == "yuv420p"
    assert output_format(ten, "x264").pix_fmt == "yuv420p10le"
    assert output_format(gray, "x264").pix_fmt == "yuv420p"
    assert output_format(full444, "x265").pix_fmt == "yuv444p"
    assert output_format(twelve, "x264").pix_fmt == "yuv422p10le"
    assert output_format(twelve, "x265").pix_fmt == "yuv422p12le"  # x265 keeps 12 bits (it used to cut to 10)
    assert output_format(yuv420, "prores").pix_fmt == "yuv422p10le"
    assert output_format(full444, "prores").pix_fmt == "yuv444p10le"
    assert output_format(ten, "ffv1").pix_fmt == "yuv420p10le"
    assert output_format(gray10, "ffv1").pix_fmt == "yuv420p10le"
    assert output_format(full444, "ffv1").pix_fmt == "yuv444p"
    assert output_format(twelve, "ffv1").pix_fmt == "yuv422p12le"
    fmt = output_format(probe(make_clip(tmp_path / "odd.mkv", width=65, height=33, frames=1, lossless=True).path).video, "ffv1")
    assert fmt.chroma_size == (17, 33) and fmt.bit_depth == 8 and fmt.chroma_shift == (1, 1)
    with pytest.raises(UsageError):
        output_format(yuv420, "mpeg2")


def test_depth_loss_names_the_codecs_that_keep_every_bit(tmp_path):
    twelve = _video(tmp_path, "yuv420p12le", "a.mkv")
    sixteen = _video(tmp_path, "gray16le", "b.mkv")
    assert depth_loss(twelve, "x264") == ("the source is 12-bit and x264 writes at most 10 bits, so every sample "
                                          "(luma included) is cut to 10 bits; --codec x265 or ffv1 keeps all 12")
    assert "--codec x265 or ffv1 keeps all 12" in depth_loss(twelve, "prores")
    assert depth_loss(twelve, "x265") is None and depth_loss(twelve, "ffv1") is None
    assert depth_loss(sixteen, "x265").endswith("cut to 12 bits; --codec ffv1 keeps all 16")
    assert depth_loss(_video(tmp_path, "yuv420p10le", "c.mkv"), "x264") is None


def test_prores_is_limited_range_and_other_codecs_keep_full_range(tmp_path):
    full = probe(make_clip(tmp_path / "j.mkv", frames=1, pix_fmt="yuvj420p").path, verdict=False).video
    assert full.full_range
    assert not output_format(full, "prores").full_range  # ProRes has no range flag: decoders read it as limited
    assert all(output_format(full, codec).full_range for codec in ("x264", "x265", "ffv1", "nvenc-h264"))


@pytest.mark.parametrize("height, meta, tag", [(48, {"colorspace": "gbr"}, "smpte170m"), (720, None, "bt709")])
def test_rgb_source_is_written_as_ycbcr_tagged_with_the_matrix_decode_used(tmp_path, height, meta, tag):
    """An RGB source (tagged gbr, or untagged: then BT.709 from 720 lines) is decoded to full-range
    YCbCr 4:4:4; the output says which matrix, instead of gbr (which makes decoders read the
    planes as G, B, R) or nothing (which makes them guess BT.601)."""
    from vidcolor.io.decode import iter_frames

    clip = make_clip(tmp_path / "rgb.mkv", width=64, height=height, frames=2, pix_fmt="bgr0", lossless=True,
                     color_meta=meta)
    source = probe(clip.path, verdict=False)
    out = tmp_path / "out.mkv"
    fmt = passthrough(clip.path, out, codec="ffv1")
    assert fmt.pix_fmt == "yuv444p" and fmt.full_range
    video = probe(out, verdict=False).video
    assert (video.pix_fmt, video.colorspace, video.full_range) == ("yuv444p", tag, True)
    assert video.matrix == source.video.matrix
    for (_, y, _, _), frame in zip(read_planes(out), iter_frames(clip.path, source), strict=True):
        np.testing.assert_array_equal(y, frame.y)  # luma as decode made it, bit for bit


@given(st.integers(8, 16), st.integers(8, 16), st.integers(0, 255))
def test_shift_bits_round_trips_when_widening(low, high, value):
    low, high = min(low, high), max(low, high)
    plane = np.array([[value << (low - 8)]], dtype=np.uint8 if low == 8 else np.uint16)
    wide = shift_bits(plane, low, high)
    assert wide.dtype == (np.uint8 if high == 8 else np.uint16)
    np.testing.assert_array_equal(shift_bits(wide, high, low), plane)


def test_shift_bits_is_exact():
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    up = shift_bits(codes, 8, 10)
    assert up.dtype == np.uint16 and up.max() == 1020
    back = shift_bits(up, 10, 8)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, codes)
    assert shift_bits(np.array([1023], np.uint16), 10, 8)[0] == 255
    assert shift_bits(codes, 8, 8).dtype == np.uint8


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext, codec, kwargs", [
    ("mp4", "x264", {}),
    ("mp4", "x264", {"rate": Fraction(30000, 1001)}),
    ("mp4", "x264", {"vfr": True}),
    ("mov", "prores", {"codec": "prores_ks", "pix_fmt": "yuv422p10le", "rate": Fraction(30000, 1001)}),
    ("mov", "x264", {"vfr": True}),
    ("mkv", "ffv1", {"lossless": True, "vfr": True}),
    ("mkv", "x264", {"rate": Fraction(24000, 1001)}),
    ("mkv", "x264", {"pix_fmt": "yuv420p10le", "lossless": True}),
    ("mp4", "x265", {"vfr": True}),
])
def test_round_trip_keeps_frames_pts_and_time_base(tmp_path, ext, codec, kwargs):
    clip = make_clip(tmp_path / f"in.{ext}", frames=10, **kwargs)
    out = tmp_path / f"out.{ext}"
    passthrough(clip.path, out, codec=codec)
    _assert_same_timing(clip.path, out)
    assert len(read_planes(out)) == 10


def _avi_show_times(path) -> list[int]:
    """When an AVI shows each picture, in its time base: AVI stores no pts, so a picture shows
    at the time (index) of the packet it came out of the decoder with, as players and ffprobe's
    best-effort timestamps have it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threads would delay the output by themselves
        times = []
        for packet in container.demux(stream):
            if packet.size:
                times += [packet.dts] * len(stream.decode(packet))
        return times


def test_avi_shows_every_frame_at_its_source_time(tmp_path):
    """x264's B-frames made the decoder hold back two frames, and AVI, without pts, then showed
    every frame two frames late (80 ms at 25 fps)."""
    clip = make_clip(tmp_path / "in.avi", frames=8, codec="mjpeg", pix_fmt="yuvj420p")  # intra, like many AVIs
    out = tmp_path / "out.avi"
    passthrough(clip.path, out, codec="x264")
    assert _avi_show_times(clip.path) == clip.pts == list(range(8))
    assert _avi_show_times(out) == clip.pts


def test_avi_from_a_fine_time_base_counts_its_real_frames(tmp_path):
    """From an MP4's 1/12800 time base FFmpeg's AVI muxer padded every frame with empty index
    entries (50 frames were counted as 1200); a constant-rate film is written in frame periods."""
    clip = make_clip(tmp_path / "in.mp4", frames=8, content="grey")
    source_tb, source_pts = _timing(clip.path)
    assert source_tb < Fraction(1, 1000)
    out = tmp_path / "out.avi"
    passthrough(clip.path, out, codec="x264")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 8 and Fraction(stream.time_base) == Fraction(1, 25)
        out_tb = Fraction(stream.time_base)
    assert [t * out_tb for t in _avi_show_times(out)] == [p * source_tb for p in source_pts]


def test_the_video_keeps_its_default_flag(tmp_path):
    """Matroska cleared the new video stream's "default" flag, which the source's had."""
    plain = make_clip(tmp_path / "plain.mkv", frames=3, lossless=True, content="grey").path
    flagged = tmp_path / "flagged.mkv"
    with av.open(str(plain)) as source, av.open(str(flagged), "w") as out:
        copy = out.add_stream_from_template(source.streams.video[0])
        copy.disposition = av.stream.Disposition.default
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = copy
                out.mux(packet)
    out = tmp_path / "out.mkv"
    passthrough(flagged, out)
    for path in (flagged, out):
        with av.open(str(path)) as container:
            assert container.streams.video[0].disposition & av.stream.Disposition.default, path


def test_mp4_keeps_a_coarse_time_base_exactly(tmp_path):
    # MP4 would pick its own timescale (1/1000 -> 1/16000); the writer asks for the source's.
    clip = make_clip(tmp_path / "ms.mkv", frames=8, vfr=True, lossless=True)
    out = tmp_path / "ms.mp4"
    passthrough(clip.path, out, codec="x264")
    _assert_same_timing(clip.path, out)


def test_matroska_rounds_other_time_bases_to_milliseconds(tmp_path):
    # Known limit: Matroska stores milliseconds, so 1/30000 pts are rounded (within 0.5 ms).
    clip = make_clip(tmp_path / "ntsc.mp4", frames=8, rate=Fraction(30000, 1001))
    out = tmp_path / "ntsc.mkv"
    passthrough(clip.path, out, codec="ffv1")
    source_tb, source_pts = _timing(clip.path)
    out_tb, out_pts = _timing(out)
    assert out_tb == Fraction(1, 1000) and len(out_pts) == len(source_pts)
    for a, b in zip(source_pts, out_pts):
        assert abs(a * source_tb - b * out_tb) <= Fraction(1, 2000)


@pytest.mark.parametrize("pix_fmt, out_fmt", [
    ("yuv420p", "yuv420p"), ("yuv420p10le", "yuv420p10le"), ("gray", "yuv420p"),
    ("gray10le", "yuv420p10le"), ("yuv444p", "yuv444p")])
def test_ffv1_keeps_every_luma_plane_bit_for_bit(tmp_path, pix_fmt, out_fmt):
    clip = make_clip(tmp_path / "in.mkv", frames=6, pix_fmt=pix_fmt, lossless=True, width=66, height=42)
    out = tmp_path / "out.mkv"
    fmt = passthrough(clip.path, out, codec="ffv1")
    assert fmt.pix_fmt == out_fmt
    written = read_planes(out)
    assert len(written) == 6
    for (_, y, cb, _), (y_in, _, _) in zip(written, clip.planes):
        assert cb is not None  # colour output even for gray input
        np.testing.assert_array_equal(y, y_in)
    assert probe(out, verdict=False).video.pix_fmt == out_fmt


@pytest.mark.parametrize("ext, codec, tags", [
    ("mkv", "ffv1", TAGS_709), ("mp4", "x264", TAGS_709), ("mov", "prores", TAGS_709),
    ("mkv", "x264", TAGS_601_FULL), ("mp4", "x265", TAGS_601_FULL)])
def test_colour_metadata_is_kept(tmp_path, ext, codec, tags):
    clip = make_clip(tmp_path / f"in.{ext}", frames=3, color_meta=tags)
    out = tmp_path / f"out.{ext}"
    passthrough(clip.path, out, codec=codec)
    assert _colour(out) == _colour(clip.path)
    assert _colour(out)[0] == tags["primaries"]


def test_untagged_source_stays_untagged(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    passthrough(clip.path, out, codec="x264")
    assert _colour(out) == (None, None, None, False)


def test_unchecked_pyav_gets_no_container_ratio_and_a_warning(tmp_path, monkeypatch, caplog):
    """The ratio is set through PyAV's object layout, checked for one major version; another
    version is not read through (it could crash), and an FFV1 output says what it lost."""
    import av

    monkeypatch.setattr(av, "__version__", "99.0.0")
    clip = make_clip(tmp_path / "anamorphic.mkv", width=96, height=64, frames=2, sample_aspect_ratio=Fraction(32, 27))
    passthrough(clip.path, tmp_path / "out.mkv", codec="ffv1")
    assert "cannot store the pixel aspect ratio 32/27 for FFV1" in caplog.text


@pytest.mark.parametrize("ext, codec", [("mkv", "ffv1"), ("avi", "ffv1"), ("mkv", "x264"), ("mov", "prores"),
                                        ("mp4", "x265")])
def test_pixel_aspect_ratio_is_kept_with_every_codec(tmp_path, ext, codec):
    """Anamorphic DV (32:27): FFV1 in Matroska or AVI lost it, as neither its bitstream nor PyAV's
    stream set the container's ratio, so the film played squeezed."""
    clip = make_clip(tmp_path / "anamorphic.mkv", width=96, height=64, frames=3, sample_aspect_ratio=Fraction(32, 27))
    assert probe(clip.path, verdict=False).video.sample_aspect_ratio == Fraction(32, 27)
    out = tmp_path / f"out.{ext}"
    passthrough(clip.path, out, codec=codec)
    assert probe(out, verdict=False).video.sample_aspect_ratio == Fraction(32, 27)
    if (data := ffprobe_json(out)) is not None:  # what other tools read
        video = next(s for s in data["streams"] if s["codec_type"] == "video")
        assert (video["sample_aspect_ratio"], video["display_aspect_ratio"]) == ("32:27", "16:9")


def test_rotation_is_kept(tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", frames=3, rotation=90)
    out = tmp_path / "out.mp4"
    passthrough(clip.path, out, codec="x264")
    assert probe(out, verdict=False).video.rotation == 90


@pytest.mark.parametrize("ext, audio, codec", [
    ("mkv", "aac", "ffv1"), ("mkv", "pcm_s16le", "x264"), ("mov", "pcm_s16le", "prores"),
    ("mov", "aac", "x264"), ("mp4", "aac", "x264")])
def test_audio_and_subtitles_copied_byte_for_byte(tmp_path, ext, audio, codec):
    clip = make_clip(tmp_path / f"in.{ext}", frames=10, audio=audio, subtitle=True)
    out = tmp_path / f"out.{ext}"
    passthrough(clip.path, out, codec=codec)
    assert read_packets(out, "audio") == clip.audio_packets
    assert read_packet_times(out, "audio") == read_packet_times(clip.path, "audio")
    assert read_packet_times(out, "subtitle") == read_packet_times(clip.path, "subtitle")


def test_copied_packets_are_interleaved(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=20, audio="aac")
    out = tmp_path / "out.mkv"
    passthrough(clip.path, out, codec="ffv1")
    import av

    with av.open(str(out)) as container:
        kinds = [p.stream.type for p in container.demux() if p.size]
    first_audio, last_video = kinds.index("audio"), len(kinds) - 1 - kinds[::-1].index("video")
    assert first_audio < last_video  # not all video first, then all audio


def test_video_only_and_no_copy(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=4, audio="aac", subtitle=True)
    for kwargs in ({"video_only": True}, {"copy_streams": False}):
        out = tmp_path / "out.mkv"
        passthrough(clip.path, out, codec="ffv1", **kwargs)
        assert probe(out, verdict=False).others == ()
        out.unlink()


def test_frame_range_copies_only_that_span_of_audio(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=12, audio="pcm_s16le")
    source_audio = read_packet_times(clip.path, "audio")
    tb, pts = _timing(clip.path)
    spans = []
    for start, end in [(0, 3), (4, 8), (9, 11)]:
        out = tmp_path / f"part{start}.mkv"
        passthrough(clip.path, out, codec="ffv1", frame_range=(start, end))
        assert scan_timestamps(out) == pts[start : end + 1]
        part = read_packet_times(out, "audio")
        lower = pts[start] * tb if start else None
        upper = pts[end + 1] * tb if end + 1 < len(pts) else None
        assert all((lower is None or t >= lower) and (upper is None or t < upper) for t, _ in part)
        spans += part
    assert spans == source_audio  # the pieces cover the audio once, without gaps or repeats


def test_write_checks_planes_and_pts(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=2, lossless=True)
    info = probe(clip.path, verdict=False)
    writer = OutputWriter(tmp_path / "o.mkv", info, codec="ffv1")
    y, cb, cr = clip.planes[0]
    with pytest.raises(ValueError, match="cb plane"):
        writer.write(y, cb[:-1], cr, 0)
    with pytest.raises(ValueError, match="y plane"):
        writer.write(y.astype(np.uint16), cb, cr, 0)
    writer.write(y, cb, cr, 0)
    with pytest.raises(ValueError, match="not after"):
        writer.write(y, cb, cr, 0)
    writer.abort()


def test_nvenc_formats_are_8_bit_420_or_444(tmp_path):
    assert output_format(_video(tmp_path, "yuv420p", "a.mkv"), "nvenc-h264").pix_fmt == "yuv420p"
    assert output_format(_video(tmp_path, "gray", "b.mkv"), "nvenc-hevc").pix_fmt == "yuv420p"
    assert output_format(_video(tmp_path, "yuv422p", "c.mkv"), "nvenc-h264").pix_fmt == "yuv420p"
    assert output_format(_video(tmp_path, "yuv444p", "d.mkv"), "nvenc-hevc").pix_fmt == "yuv444p"


def test_auto_codec_falls_back_to_x264_without_nvenc(tmp_path, monkeypatch):
    """On this machine NVENC cannot open (no NVIDIA driver): auto is x264, an explicit NVENC
    codec is one clear line; where NVENC opens, auto picks it only beside a CUDA model, for
    8-bit sources and never for chunks (so chunks from any node merge)."""
    from vidcolor.io import encode

    v8, v10 = _video(tmp_path, "yuv420p", "a.mkv"), _video(tmp_path, "yuv420p10le", "b.mkv")
    monkeypatch.setattr(encode, "encoder_opens", lambda codec: False)
    assert encode.resolve_codec("auto", v8, cuda=True, portable=False) == "x264"
    with pytest.raises(UsageError, match="cannot be opened on this machine"):
        encode.resolve_codec("nvenc-h264", v8, cuda=True, portable=False)
    monkeypatch.setattr(encode, "encoder_opens", lambda codec: True)
    assert encode.resolve_codec("auto", v8, cuda=True, portable=False) == "nvenc-h264"
    assert encode.resolve_codec("auto", v8, cuda=False, portable=False) == "x264"
    assert encode.resolve_codec("auto", v8, cuda=True, portable=True) == "x264"
    assert encode.resolve_codec("auto", v10, cuda=True, portable=False) == "x264"
    with pytest.raises(UsageError, match="10-bit"):
        encode.resolve_codec("nvenc-hevc", v10, cuda=True, portable=False)
    assert encode.resolve_codec("ffv1", v10, cuda=True, portable=False) == "ffv1"
    # NVENC would narrow 4:2:2 to 4:2:0 where x264 keeps it: auto stays on x264.
    v422 = _video(tmp_path, "yuv422p", "c.mkv")
    assert encode.resolve_codec("auto", v422, cuda=True, portable=False) == "x264"
    # Larger than NVENC takes: auto falls back, a named NVENC codec is refused in one line.
    from dataclasses import replace

    huge = replace(v8, width=7680, height=4320)
    assert encode.resolve_codec("auto", huge, cuda=True, portable=False) == "x264"
    with pytest.raises(UsageError, match="4096"):
        encode.resolve_codec("nvenc-h264", huge, cuda=True, portable=False)
    with pytest.raises(UsageError, match="unknown codec"):
        encode.resolve_codec("divx", v8, cuda=False, portable=False)


def test_encoder_opens_probes_by_opening():
    from vidcolor.io.encode import encoder_opens

    assert encoder_opens("x264") and encoder_opens("ffv1")


def test_explicit_nvenc_without_it_is_one_line_and_no_file(tmp_path):
    from vidcolor.io.encode import encoder_opens

    if encoder_opens("nvenc-h264"):
        pytest.skip("this machine has NVENC")
    from click.testing import CliRunner

    from vidcolor.cli import main

    src = make_clip(tmp_path / "in.mkv", frames=2, content="grey").path
    result = CliRunner().invoke(main, ["colorize", str(src), "-o", str(tmp_path / "o.mp4"), "--codec", "nvenc-h264",
                                       "--model", "default", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "cannot be opened on this machine" in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_unknown_codec_is_a_usage_error(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=1)
    with pytest.raises(UsageError, match="unknown codec"):
        OutputWriter(tmp_path / "o.mkv", probe(clip.path), codec="divx")


# ------------------------------------------------------------------------------- container checks


@pytest.mark.parametrize("source_kwargs, out_name, codec, message", [
    ({}, "out.mp4", "prores", "prores"),
    ({}, "out.mov", "ffv1", "ffv1"),
    ({}, "out.webm", "x264", "unknown output extension '.webm'; use one of .avi, .m4v, .mkv, .mov, .mp4"),
    ({"subtitle": True}, "out.mp4", "x264", "subtitle"),
    ({}, "out.avi", "x265", "x265"),
    ({}, "out.flv", "x264", "extension"),
])
def test_check_output_supported_refuses_before_work(tmp_path, source_kwargs, out_name, codec, message):
    clip = make_clip(tmp_path / "in.mkv", frames=2, **source_kwargs)  # mkv: SubRip subtitles
    with pytest.raises(UsageError, match=message) as excinfo:
        check_output_supported(tmp_path / out_name, probe(clip.path, verdict=False), codec)
    assert "\n" not in str(excinfo.value)
    assert not (tmp_path / out_name).exists()


def test_check_output_supported_accepts_good_combinations(tmp_path):
    clip = make_clip(tmp_path / "in.mov", frames=2, audio="pcm_s16le")
    info = probe(clip.path, verdict=False)
    check_output_supported(tmp_path / "o.mov", info, "prores")
    check_output_supported(tmp_path / "o.mkv", info, "ffv1")
    check_output_supported(tmp_path / "o.mp4", info, "x264")  # this FFmpeg stores PCM in MP4
    subs = make_clip(tmp_path / "subs.mkv", frames=2, subtitle=True)
    check_output_supported(tmp_path / "o.mp4", probe(subs.path, verdict=False), "x264", copy_streams=False)


def test_check_output_refuses_odd_size_for_x264_420(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", width=65, height=33, frames=1, lossless=True)
    info = probe(clip.path, verdict=False)
    with pytest.raises(UsageError, match="x264"):
        check_output_supported(tmp_path / "o.mp4", info, "x264")
    check_output_supported(tmp_path / "o.mkv", info, "ffv1")


def test_ffv1_refuses_a_frame_it_cannot_slice_in_one_line(tmp_path):
    """A frame no FFV1 slicing fits (3 pixels wide, over 288 tall: one slice is not offered) is
    refused up front as FFV1's limit, not with advice to use .mkv."""
    clip = make_clip(tmp_path / "strip.mov", width=3, height=300, frames=1, pix_fmt="gray", codec="png")
    with pytest.raises(UsageError, match=r"FFV1 cannot cut a 3x300 yuv420p frame into slices; use --codec prores") as info:
        check_output_supported(tmp_path / "out.mkv", probe(clip.path, verdict=False), "ffv1")
    assert ".mkv or" not in str(info.value)


# ------------------------------------------------------------------------------- tags, chapters, attachments


def _streams(path) -> list[dict]:
    """Type, tags (keys lower case) and dispositions of each stream, read back with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [{"type": s.type, "tags": {k.lower(): v for k, v in s.metadata.items()},
                 "forced": bool(s.disposition & av.stream.Disposition.forced),
                 "cover": bool(s.disposition & av.stream.Disposition.attached_pic)} for s in container.streams]


def _chapters(path) -> list[tuple[float, str]]:
    import av

    with av.open(str(path)) as container:
        return [(round(float(c["start"] * c["time_base"]), 3), c["metadata"].get("title")) for c in container.chapters()]


def _container_title(path) -> str | None:
    import av

    with av.open(str(path)) as container:
        return container.metadata.get("title")


def _cover_bytes(path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        covers = [s for s in container.streams if s.disposition & av.stream.Disposition.attached_pic]
        return [bytes(p) for s in covers for p in container.demux(s) if p.size][: len(covers)]


@pytest.mark.parametrize("ext", ["mov", "mp4", "mkv"])
def test_timecode_track_becomes_the_outputs_timecode(tmp_path, ext):
    clip = make_clip(tmp_path / "in.mov", frames=6, timecode=True)  # the MOV muxer writes a tmcd track
    assert [s["type"] for s in _streams(clip.path)] == ["video", "data"]
    out = tmp_path / f"out.{ext}"
    check_output_supported(out, probe(clip.path, verdict=False), "x264")  # not refused up front...
    passthrough(clip.path, out, codec="x264")  # ...nor failing at the end (tmcd packets are not copied)
    video = _streams(out)[0]
    assert video["tags"]["timecode"] == TIMECODE  # MP4/MOV write their own tmcd track from it


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_mp4_chapters_and_mov_text_are_kept(tmp_path, ext):
    clip = make_clip(tmp_path / "in.mp4", frames=10, subtitle=True, chapters=True)
    out = tmp_path / f"out.{ext}"
    check_output_supported(out, probe(clip.path, verdict=False), "x264")
    passthrough(clip.path, out, codec="x264")
    assert _chapters(out) == _chapters(clip.path) == [(0.0, CHAPTER_TITLES[0]), (0.2, CHAPTER_TITLES[1])]
    assert read_packet_times(out, "subtitle") == read_packet_times(clip.path, "subtitle")
    # The chapter text track is the muxer's own, not a copy beside it.
    assert [s["type"] for s in _streams(out)].count("data") == 1
    assert _container_title(out) == "Test film"


def test_mov_text_refusal_points_to_containers_that_take_the_source(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4, subtitle=True, chapters=True)
    info = probe(clip.path, verdict=False)
    with pytest.raises(UsageError, match=r"mov_text.*use \.mov or \.mp4") as excinfo:
        check_output_supported(tmp_path / "out.mkv", info, "x264")
    assert "\n" not in str(excinfo.value)
    for suggested in ("out.mov", "out.mp4"):  # the advice does not go in a circle
        check_output_supported(tmp_path / suggested, info, "x264")


def test_matroska_keeps_tags_dispositions_chapters_and_attachments(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=10, audio="aac", subtitle=True, tags=True, chapters=True,
                     attachments=True)
    out = tmp_path / "out.mkv"
    check_output_supported(out, probe(clip.path, verdict=False), "ffv1")
    assert "leaves out" not in caplog.text  # Matroska holds everything
    passthrough(clip.path, out, codec="ffv1")
    streams = {s["type"] + ("/cover" if s["cover"] else ""): s for s in _streams(out)}
    assert streams["audio"]["tags"]["language"] == "eng" and streams["audio"]["tags"]["title"] == "English stereo"
    assert streams["subtitle"]["tags"]["language"] == "fre" and streams["subtitle"]["forced"]
    assert streams["attachment"]["tags"]["filename"] == "font.ttf"
    assert streams["video/cover"]["tags"]["filename"] == "cover.png"
    assert _cover_bytes(out) == [cover_png()]
    assert _chapters(out) == _chapters(clip.path)
    assert _container_title(out) == "Test film"
    assert read_packets(out, "audio") == clip.audio_packets  # still byte for byte
    import av

    with av.open(str(out)) as container:
        font = next(s for s in container.streams if s.type == "attachment")
        assert bytes(font.data) == FONT_BYTES


def test_mp4_cover_art_is_kept(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio="aac", attachments=True)
    for ext in ("mp4", "mkv"):  # MP4 keeps it as cover art, Matroska as an image attachment
        out = tmp_path / f"out.{ext}"
        passthrough(clip.path, out, codec="x264")
        assert _cover_bytes(out) == [cover_png()]
        assert read_packets(out, "audio") == clip.audio_packets


def test_what_is_left_out_is_named_in_one_warning(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=4, attachments=True, second_video=True)
    check_output_supported(tmp_path / "out.mp4", probe(clip.path, verdict=False), "x264")
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "video ffv1" in lines[0] and "one video stream" in lines[0]  # the second video
    assert "font.ttf" in lines[0] and "only .mkv holds attachments" in lines[0]
    assert "cover" not in lines[0]  # a PNG cover becomes the MP4's cover art
    caplog.clear()
    check_output_supported(tmp_path / "out.mov", probe(clip.path, verdict=False), "x264")
    assert "cover image png" in caplog.text  # MOV does not keep it


def test_flags_mov_cannot_store_are_named_and_mp4_keeps_them(tmp_path, caplog):
    """FFmpeg's MOV muxer writes no forced (or hearing-impaired...) flag; the output still gets
    the stream, and the warning says which flags are lost and which containers keep them."""
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio="aac", subtitle=True, tags=True)
    info = probe(clip.path, verdict=False)
    check_output_supported(tmp_path / "out.mov", info, "x264")
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "subtitle mov_text [fre]): forced" in lines[0] and ".mp4 and .mkv" in lines[0]
    assert "audio" not in lines[0]  # the audio has only the default flag, which MOV keeps
    caplog.clear()
    out = tmp_path / "out.mp4"
    check_output_supported(out, info, "x264")
    assert "flags" not in caplog.text
    passthrough(clip.path, out, codec="x264")
    assert next(s for s in _streams(out) if s["type"] == "subtitle")["forced"]


def test_interlaced_source_keeps_its_field_order_unless_deinterlaced(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=4, field_order=4, lossless=True)  # 4: top field first
    info = probe(clip.path, verdict=False)
    assert info.video.interlaced and info.video.field_order == 4
    kept, progressive = tmp_path / "kept.mkv", tmp_path / "progressive.mkv"
    passthrough(clip.path, kept, codec="x264")
    passthrough(clip.path, progressive, codec="x264", deinterlaced=True)
    assert probe(kept, verdict=False).video.field_order == 4
    assert not probe(progressive, verdict=False).video.interlaced


# ------------------------------------------------------------------------------- atomic output


def test_atomic_output_renames_on_success(tmp_path):
    final = tmp_path / "done.mp4"
    with atomic_output(final) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".mp4" and temp.name.startswith(".done.partial-")
        temp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["done.mp4"]


def test_partial_files_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    """SIGKILL (the OOM killer, a power cut) skips every cleanup, leaving a hidden partial file
    that could be gigabytes; the next run to the same output removes it, and only it."""
    import signal
    import subprocess
    import sys

    final = tmp_path / "film_colour.mp4"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys; from vidcolor.io.atomic import atomic_output\n"
        f"with atomic_output({str(final)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half a film'); os.kill(os.getpid(), signal.SIGKILL)")], cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir()]
    assert left.name.startswith(".film_colour.partial-")
    from vidcolor.io.atomic import temporary_name

    live = temporary_name(final)  # this process's: alive
    live.write_bytes(b"a run in progress")
    elsewhere = tmp_path / ".film_colour.partial-1a2b3c4d.4242.00000000.mp4"  # another machine's
    older = tmp_path / ".film_colour.partial-1a2b3c4d.mp4"  # named before process ids were recorded
    other = tmp_path / ".other.partial-1a2b3c4d.1.00000000.mp4"
    for path in (elsewhere, older, other):
        path.write_bytes(b"not ours to remove")
    with atomic_output(final) as temp:
        temp.write_bytes(b"the film")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, elsewhere, older, other, final))


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_output_leaves_nothing_on_error(tmp_path, error):
    final = tmp_path / "out.mkv"
    with pytest.raises(type(error)):
        with atomic_output(final) as temp:
            temp.write_bytes(b"half a file")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_with_writer_failure_leaves_no_file(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=3, lossless=True)
    info = probe(clip.path, verdict=False)
    final = tmp_path / "out.mkv"
    with pytest.raises(ValueError):
        with atomic_output(final, input_paths=[clip.path]) as temp:
            with OutputWriter(temp, info, codec="ffv1") as writer:
                writer.write(*clip.planes[0], 0)
                writer.write(clip.planes[1][0][:-1], *clip.planes[1][1:], 1)  # wrong shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_atomic_output_refusals(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"x")
    with pytest.raises(OutputError, match="same file as the input"):
        with atomic_output(source, overwrite=True, input_paths=[str(source)]):
            pass
    with pytest.raises(OutputError, match="same file as the input"):
        with atomic_output(tmp_path / "." / "in.mp4", overwrite=True, input_paths=[source]):
            pass
    with pytest.raises(OutputError, match="--overwrite"):
        with atomic_output(source):
            pass
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "missing" / "out.mp4"):
            pass
    with atomic_output(source, overwrite=True) as temp:
        temp.write_bytes(b"new")
    assert source.read_bytes() == b"new"


def test_atomic_output_hard_link_is_the_same_file(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"x")
    link = tmp_path / "link.mp4"
    link.hardlink_to(source)
    with pytest.raises(OutputError, match="same file"):
        with atomic_output(link, overwrite=True, input_paths=[source]):
            pass


def test_atomic_output_nothing_written(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"):
        with atomic_output(tmp_path / "out.mp4"):
            pass


def test_writer_on_missing_source_video_raises_input_error(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=1)
    info = probe(clip.path, verdict=False)
    from dataclasses import replace

    with pytest.raises(InputError):
        OutputWriter(tmp_path / "o.mkv", replace(info, video=None))


def test_jpeg_range_source_becomes_tagged_full_range(tmp_path):
    clip = make_clip(tmp_path / "j.mkv", frames=3, pix_fmt="yuvj420p")
    source = probe(clip.path, verdict=False).video
    assert source.pix_fmt == "yuvj420p" and source.full_range
    out = tmp_path / "out.mkv"
    fmt = passthrough(clip.path, out, codec="ffv1")
    assert fmt.pix_fmt == "yuv420p" and fmt.full_range  # encoders want yuv420p plus a range tag
    assert probe(out, verdict=False).video.full_range
    for (_, y_in, _, _), (_, y_out, _, _) in zip(read_planes(clip.path), read_planes(out)):
        np.testing.assert_array_equal(y_in, y_out)


def test_an_unknown_codec_is_an_error_everywhere(tmp_path):
    """A codec name the registry does not hold is refused, never given another codec's options
    (it used to get FFV1's) or another codec's defaults."""
    from vidcolor.io import codecs, encode

    fmt = output_format(_video(tmp_path, "yuv420p", "a.mkv"), "x264")
    for ask in (lambda: encode.encoder_options("divx", None, fmt), lambda: codecs.codec_record("divx"),
                lambda: codecs.effective_crf("divx", 20), lambda: output_format(_video(tmp_path, "yuv420p"), "divx")):
        with pytest.raises(UsageError, match=r"unknown codec 'divx'; use one of x264, x265, prores, ffv1"):
            ask()


def test_the_codec_registry_decides_what_the_options_and_the_farm_use():
    """--codec offers what the registry holds; auto is x264 wherever chunks must merge."""
    from click.testing import CliRunner

    from vidcolor.cli import main
    from vidcolor.io import codecs

    assert codecs.CODEC_CHOICES == ("auto", "x264", "x265", "prores", "ffv1", "nvenc-h264", "nvenc-hevc")
    result = CliRunner().invoke(main, ["colorize", "--help"])
    assert "auto|x264|x265|prores|ffv1|nvenc-h264|nvenc-hevc" in result.output
    assert codecs.portable_codec("auto") == "x264" and codecs.portable_codec("ffv1") == "ffv1"
    assert codecs.codec_for_stream("hevc").name == "x265" and codecs.codec_for_stream("mpeg4") is None
    assert codecs.crf_unused("ffv1") == "lossless" and codecs.crf_unused("auto") is None
    for record in codecs.CODECS.values():  # every record is complete enough to encode with
        assert record.encoder and record.stream_codec and record.containers and record.max_depth >= 8
        assert (record.default_crf is None) == bool(record.crf_unused)
