"""iter_frames: planes straight from the decoder, frame ranges, damaged input, deinterlacing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import fill_frame, make_clip, read_planes, synth_planes
from vidcolor.errors import InputError, UsageError
from vidcolor.io.decode import DecodeStats, iter_frames
from vidcolor.io.probe import probe


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "gray", "gray10le", "yuv444p", "yuv422p"])
def test_lossless_planes_equal_what_was_written(tmp_path, pix_fmt):
    clip = make_clip(tmp_path / "l.mkv", frames=6, pix_fmt=pix_fmt, lossless=True, width=70, height=46)
    stats = DecodeStats()
    frames = list(iter_frames(clip.path, stats=stats))
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts for f in frames] == clip.pts
    for frame, (y, cb, cr) in zip(frames, clip.planes):
        assert frame.y.dtype == y.dtype and frame.y.flags.c_contiguous
        np.testing.assert_array_equal(frame.y, y)
        if cb is None:
            assert frame.cb is None and frame.cr is None
        else:
            np.testing.assert_array_equal(frame.cb, cb)
            np.testing.assert_array_equal(frame.cr, cr)
    assert stats == DecodeStats(decoded=6, corrupt_packets=0, dropped=0)


def test_ten_bit_values_are_native(tmp_path):
    clip = make_clip(tmp_path / "ten.mkv", frames=2, pix_fmt="yuv420p10le", lossless=True)
    frame = next(iter_frames(clip.path))
    assert frame.y.dtype == np.uint16
    assert 64 <= frame.y.min() and frame.y.max() <= 940  # limited-range 10-bit codes, not scaled to 16 bits


def test_odd_size_chroma_rounds_up(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", width=65, height=33, frames=2, lossless=True)
    frame = next(iter_frames(clip.path))
    assert frame.y.shape == (33, 65) and frame.cb.shape == (17, 33)
    np.testing.assert_array_equal(frame.cb, clip.planes[0][1])


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_frame_range_seeks_and_keeps_true_indices(tmp_path, ext):
    clip = make_clip(tmp_path / f"s.{ext}", frames=20, gop=4)  # x264 with B-frames, keyframe every 4
    everything = list(iter_frames(clip.path))
    assert [f.pts for f in everything] == clip.pts
    info = probe(clip.path, verdict=False)
    for start, end in [(0, 0), (3, 3), (5, 9), (7, 19), (19, 19), (18, 40)]:
        got = list(iter_frames(clip.path, info, start=start, end=end))
        assert [f.index for f in got] == list(range(start, min(end, 19) + 1))
        for frame in got:
            assert frame.pts == everything[frame.index].pts
            np.testing.assert_array_equal(frame.y, everything[frame.index].y)


def test_frame_range_past_the_end_is_refused(tmp_path):
    clip = make_clip(tmp_path / "s.mkv", frames=4)
    with pytest.raises(UsageError):
        list(iter_frames(clip.path, start=4))


def test_vfr_pts_come_through(tmp_path):
    clip = make_clip(tmp_path / "vfr.mkv", frames=9, vfr=True, lossless=True)
    assert [f.pts for f in iter_frames(clip.path)] == clip.pts
    assert [f.pts for f in iter_frames(clip.path, start=4, end=6)] == clip.pts[4:7]


def _write_raw(path, fmt: str, frames: int = 3):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, fmt
        for i in range(frames):
            source = av.VideoFrame(64, 48, "yuv444p")
            fill_frame(source, synth_planes(i, 64, 48, frames, "yuv444p", "colour"))
            frame = source.reformat(format=fmt)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("fmt, ext, planar, chroma", [
    ("yuyv422", "avi", "yuv422p", (48, 32)), ("rgb24", "nut", "yuv444p", (48, 64)),
    ("yuva420p", "nut", "yuv420p", (24, 32)), ("gray16be", "nut", "gray16le", None)])
def test_exotic_formats_become_planar(tmp_path, fmt, ext, planar, chroma):
    path = tmp_path / f"raw.{ext}"
    _write_raw(path, fmt)
    info = probe(path, verdict=False)
    assert info.video.pix_fmt == fmt and info.video.planar_pix_fmt == planar
    frames = list(iter_frames(path, info))
    assert len(frames) == 3 and frames[0].y.shape == (48, 64)
    assert (frames[0].cb.shape if frames[0].cb is not None else None) == chroma


def _corrupt_packets(path, which: list[int]) -> None:
    with av.open(str(path)) as container:
        spans = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for k in which:
        pos, size = spans[k]
        data[pos + size // 4 : pos + size] = rng.integers(0, 256, size - size // 4, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_decoding_survives_corrupt_packets(tmp_path):
    clip = make_clip(tmp_path / "c.mkv", frames=10, lossless=True)
    _corrupt_packets(clip.path, [4, 5])
    stats = DecodeStats()
    frames = list(iter_frames(clip.path, stats=stats))
    assert stats.corrupt_packets >= 1
    assert stats.decoded == len(frames) >= 8
    assert stats.decoded + stats.dropped == 10
    kept = {f.index for f in frames}
    assert {0, 1, 2, 3, 6, 7, 8, 9} <= kept  # true indices survive the loss
    for frame in frames:
        np.testing.assert_array_equal(frame.y, clip.planes[frame.index][0])


def test_nothing_decodable_raises_input_error(tmp_path):
    clip = make_clip(tmp_path / "dead.mkv", frames=4, lossless=True)
    _corrupt_packets(clip.path, [0, 1, 2, 3])
    with pytest.raises(InputError, match="no frame"):
        list(iter_frames(clip.path))


def test_deinterlace_only_when_asked(tmp_path):
    path = tmp_path / "tff.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i in range(6):
            frame = av.VideoFrame(96, 64, "yuv420p")
            fill_frame(frame, synth_planes(i, 96, 64, 6, "yuv420p", "moving"))
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(path, verdict=False)
    assert info.video.interlaced
    plain = list(iter_frames(path, info))
    assert all(f.interlaced for f in plain)
    woven = list(iter_frames(path, info, deinterlace=True))
    assert [f.pts for f in woven] == [f.pts for f in plain]
    assert [f.duration for f in woven] == [f.duration for f in plain]  # in the stream's time base too
    assert not any(f.interlaced for f in woven)
    assert not np.array_equal(woven[3].y, plain[3].y)
    assert [f.index for f in iter_frames(path, info, start=2, end=4, deinterlace=True)] == [2, 3, 4]


def test_read_planes_helper_agrees(tmp_path):
    clip = make_clip(tmp_path / "h.mp4", frames=4)
    ours = list(iter_frames(clip.path))
    theirs = read_planes(clip.path)
    assert [f.pts for f in ours] == [t[0] for t in theirs]
    for frame, (_, y, cb, cr) in zip(ours, theirs):
        np.testing.assert_array_equal(frame.y, y)
        np.testing.assert_array_equal(frame.cr, cr)


def test_raw_bitstream_without_timestamps(tmp_path):
    clip = make_clip(tmp_path / "c.mkv", frames=8)
    raw = tmp_path / "c.h264"
    with av.open(str(clip.path)) as source, av.open(str(raw), "w") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.size:
                packet.stream = stream
                target.mux(packet)
    info = probe(raw, verdict=False)
    assert info.video.frame_count == 8
    everything = list(iter_frames(raw, info))
    assert [f.index for f in everything] == list(range(8))
    assert len({f.pts for f in everything}) == 8  # numbered at the nominal rate
    part = list(iter_frames(raw, info, start=4, end=6))  # cannot seek: decodes from the start
    assert [f.index for f in part] == [4, 5, 6]
    for frame in part:
        np.testing.assert_array_equal(frame.y, everything[frame.index].y)


def test_still_image_is_one_frame(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    info = probe(path)
    frames = list(iter_frames(path, info))
    assert len(frames) == 1 and frames[0].y.shape == (30, 40) and frames[0].cb.shape == (30, 40)


def test_rgb_becomes_full_range_ycbcr_without_clipping(tmp_path):
    path = tmp_path / "rgb.nut"
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, 32:] = 255  # black and white halves
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(path, verdict=False)
    assert info.video.full_range and info.video.matrix == "bt601"
    frame = next(iter_frames(path, info))
    assert (frame.y.min(), frame.y.max()) == (0, 255)  # limited range would give 16 and 235
    assert np.all(np.abs(frame.cb.astype(int) - 128) <= 1)


COCKATOO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "color" / "imageio_cockatoo.mp4"


@pytest.mark.skipif(not COCKATOO.is_file(), reason="needs ../shared/data/video/color/imageio_cockatoo.mp4")
def test_seek_past_a_keyframe_the_decoder_cannot_start_from():
    """This real clip flags frames 76 and 145 as keyframes, but decoding from them gives damaged
    frames (60-70 luma codes off) until the next true IDR frame: a range (a --resume segment, a
    farm chunk) starting after them must decode as a run from the start does."""
    info = probe(COCKATOO, verdict=False)
    straight = {f.index: f.y for f in iter_frames(COCKATOO, info, 0, 150)}
    for start in (77, 101, 146):
        stats = DecodeStats()
        frame = next(iter_frames(COCKATOO, info, start, start, stats=stats))
        assert frame.index == start and np.array_equal(frame.y, straight[start])
        assert stats.concealed == 0


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_stills_are_read_upright_as_viewers_show_them(tmp_path, ext):
    """A photo stored sideways with an EXIF Orientation tag (phones, cameras) was read as stored,
    so a reference or a still input came out sideways; every orientation now reads as OpenCV's
    own orientation-aware reader (and a viewer) shows it, alpha turned with the picture."""
    import cv2

    from tests.media import write_oriented_image
    from vidcolor.io.stills import read_still

    rng = np.random.default_rng(1)
    stored = cv2.resize(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), (36, 24), interpolation=cv2.INTER_NEAREST)
    if ext != ".jpg":  # alpha equal to the blue channel, so the test can see it turned with the picture
        stored = np.dstack([stored, stored[..., 0]])
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}{ext}"
        write_oriented_image(path, stored, orientation, little_endian=orientation % 2 == 0)
        still = read_still(str(path))
        shown = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        assert still.rgb.shape == shown.shape == ((24, 36, 3) if orientation < 5 else (36, 24, 3))
        np.testing.assert_allclose(still.rgb, shown, atol=1e-6, err_msg=f"orientation {orientation}")
        if ext != ".jpg":
            np.testing.assert_array_equal(still.alpha, still.rgb[..., 2])


def test_exif_orientation_of_odd_blocks_is_upright():
    from tests.media import exif_orientation_block
    from vidcolor.io.stills import exif_orientation

    assert exif_orientation(exif_orientation_block(6)) == 6
    assert exif_orientation(b"Exif\0\0" + exif_orientation_block(8, little_endian=True)) == 8  # JPEG APP1 prefix
    assert exif_orientation(exif_orientation_block(6)[:14]) == 1  # truncated
    assert exif_orientation(exif_orientation_block(9)) == 1  # no such orientation
    assert exif_orientation(b"") == exif_orientation(b"garbage") == 1
