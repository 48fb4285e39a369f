"""Bad input, bad output places, bad models and bad configs, through the real CLI.

Every refusal is one line, ``vidcolor: error: ...``, that names the file and says what to do,
with the exit code of the README's table, no traceback, and nothing left under the output
name (no temporary ``.partial`` file either). Inputs that are valid but unusual (1x1, 8x8, odd
sizes, rotation, video only, 7680x4320, a still image named .mkv) either work or are refused
before any work. Damage that the decoder can skip (corrupt packets in the middle, a cut tail)
lets the run finish and say how many packets and frames were lost.

The corpus is made here, in tmp_path, with PyAV, numpy and byte surgery.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.media import damage_video_packets, fill_frame, make_clip, read_packets, read_planes, synth_planes
from tests.test_pipeline import tiny_generator
from vidcolor.cli import main
from vidcolor.config import load
from vidcolor.errors import ConfigError, UsageError
from vidcolor.io.encode import OutputWriter
from vidcolor.io.probe import probe
from vidcolor.io.timing import clamp_frame_range, parse_frame_range
from vidcolor.models.weights import save_generator

ROOT = Path(__file__).resolve().parents[1]
ODD_NAME = "my films é 日本"  # a folder name with spaces and non-ASCII characters


# ----- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    stem = tmp_path_factory.mktemp("model") / "tiny"
    save_generator(tiny_generator(), stem, {"note": "test model"})
    return str(stem) + ".json"


def colorize_args(src, out, model: str, *extra: str) -> list[str]:
    return ["colorize", str(src), "-o", str(out), "--model", model, "--render-size", "32", "--quiet", *extra]


def invoke(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result, code: int, *needles: str) -> str:
    """The single error line of a refused run (checked), for more specific asserts."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stdout.strip() == "", result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vidcolor: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    if out.parent.is_dir():
        leftovers = [p.name for p in out.parent.iterdir() if ".partial" in p.name or p.name == out.name]
        assert leftovers == []


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
    return env


def run_cli_subprocess(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], cwd=ROOT, capture_output=True,
                          encoding="utf-8", env=subprocess_env(), timeout=240, **kwargs)


def top_level_boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of each top-level MP4 box."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        boxes.append((pos, size, kind))
        pos += size
    return boxes


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux an MP4 with its index (moov) before the media data, as streaming files have."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", container_options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def video_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        for k in range(12):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, k * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_zero_frame_video(path: Path) -> Path:
    """A Matroska file with a video track that holds no frame (and a little audio)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=48000)
        audio.layout = "mono"
        for k in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, k * 1024
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def write_lost_reordering(path: Path, frames: int = 12) -> Path:
    """H.264 with B-frames muxed with pts = dts, as a muxer that lost the reordering writes it (or
    an MP4 whose time base is too coarse for the frame rate): decoded frames' pts go backwards."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast", "bf": "2"})
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        video.codec_context.time_base = video.time_base = Fraction(1, 25)
        packets = []
        for i in range(frames):
            frame = av.VideoFrame(96, 64, "yuv420p")
            fill_frame(frame, synth_planes(i, 96, 64, frames, "yuv420p", "grey"))
            frame.pts, frame.time_base = i, Fraction(1, 25)
            packets += video.encode(frame)
        for k, packet in enumerate(packets + video.encode(None)):
            packet.pts = packet.dts = k
            container.mux(packet)
    return path


# ----- the corpus ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    files: dict[str, Path] = {}

    files["empty"] = d / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["text"] = d / "notes.mp4"
    files["text"].write_text("Reel 3: the harbour scenes, to be scanned again.\n")

    mp4 = make_clip(d / "good.mp4", frames=8, content="grey").path
    data = mp4.read_bytes()
    boxes = {kind: (pos, size) for pos, size, kind in top_level_boxes(data)}
    assert list(boxes)[-1] == b"moov"  # PyAV writes the index last, like a camera
    moov_at = boxes[b"moov"][0]
    cuts = {"in-ftyp": 20, "in-media-30pct": int(moov_at * 0.3), "in-media-70pct": int(moov_at * 0.7),
            "in-moov": len(data) - 100}
    for name, cut in cuts.items():
        files[f"truncated-{name}"] = d / f"cut_{name}.mp4"
        files[f"truncated-{name}"].write_bytes(data[:cut])
    files["moov-missing"] = d / "no_index.mp4"
    files["moov-missing"].write_bytes(data[:moov_at])

    # Index first: a cut in the media data leaves the index, which promises frames that are gone.
    fast = faststart_copy(mp4, d / "fast.mp4")
    fdata = fast.read_bytes()
    mdat_at = {kind: pos for pos, _, kind in top_level_boxes(fdata)}[b"mdat"]
    files["faststart-cut-before-frames"] = d / "fast_cut_head.mp4"
    files["faststart-cut-before-frames"].write_bytes(fdata[:mdat_at + 40])
    files["faststart-cut-tail"] = d / "fast_cut_tail.mp4"
    files["faststart-cut-tail"].write_bytes(fdata[:len(fdata) - len(video_payloads(fast)[-1]) // 2 - 1500])

    files["audio-only"] = write_audio_only(d / "audio_only.mp4")
    files["zero-frames"] = write_zero_frame_video(d / "zero_frames.mkv")

    mkv = make_clip(d / "h264.mkv", frames=6, content="grey").path
    raw = mkv.read_bytes()
    assert raw.count(b"V_MPEG4/ISO/AVC") == 1
    files["unknown-codec"] = d / "unknown_codec.mkv"
    files["unknown-codec"].write_bytes(raw.replace(b"V_MPEG4/ISO/AVC", b"V_VIDCOLOR/XYZW"))

    files["directory"] = d / "a folder.mp4"
    files["directory"].mkdir()
    files["missing"] = d / "never_made.mp4"
    files["image-sequence"] = d / "frames_%04d.png"  # a scan's frames, as FFmpeg names a sequence
    files["image-sequence-glob"] = d / "frames_*.png"

    odd = d / ODD_NAME
    odd.mkdir()
    files["non-ascii-text"] = odd / "old reel ü.mp4"
    files["non-ascii-text"].write_text("not a video")
    return files


UNREADABLE = [
    ("empty", ["is empty (0 bytes)", "re-copy"]),
    ("text", ["cannot read", "is it a video file?"]),
    ("truncated-in-ftyp", ["cut short", "re-copy it"]),
    ("truncated-in-media-30pct", ["cut short", "moov atom", "re-copy it"]),
    ("truncated-in-media-70pct", ["cut short", "moov atom", "re-copy it"]),
    ("truncated-in-moov", ["has no frames", "cut short (truncated); re-copy it"]),
    ("moov-missing", ["index (moov atom) is missing", "re-copy it"]),
    ("faststart-cut-before-frames", ["no frame of the video stream can be decoded", "cut short", "re-copy it"]),
    ("audio-only", ["has no video stream"]),
    ("zero-frames", ["the video stream has no frames"]),
    ("unknown-codec", ["no decoder for its video codec", "convert the video first"]),
    ("directory", ["is a directory", "give a video file"]),
    ("missing", ["does not exist", "check the path"]),
    ("image-sequence", ["does not exist", "image sequences are not read directly",
                        "ffmpeg -framerate 24 -i ", "frames_%04d.png -c:v ffv1 reel.mkv", "-start_number"]),
    ("image-sequence-glob", ["does not exist", "image sequences are not read directly",
                             "ffmpeg -framerate 24 -pattern_type glob -i ", "frames_*.png' -c:v ffv1 reel.mkv"]),
    ("non-ascii-text", ["cannot read", "is it a video file?"]),
]


@pytest.mark.parametrize("case,needles", UNREADABLE, ids=[c for c, _ in UNREADABLE])
def test_unreadable_input_is_one_line_exit_3(tmp_path, corpus, model_path, case, needles):
    src = corpus[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "film_colour.mp4"
    line = error_line(invoke(colorize_args(src, out, model_path)), 3, *needles)
    assert str(src) in line
    assert_nothing_written(out)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("case", ["empty", "text", "moov-missing", "unknown-codec", "directory"])
def test_probe_refuses_the_same_files(corpus, case):
    line = error_line(invoke(["probe", corpus[case]]), 3)
    assert str(corpus[case]) in line


@pytest.mark.parametrize("case, damage", [("zero-frames", None),
                                          ("truncated-in-moov", "it is cut short (truncated); re-copy it")])
def test_probe_lists_the_streams_of_a_video_without_frames(corpus, case, damage):
    """It only said "the video stream has no frames; nothing to colorize" (colorize's words)."""
    result = invoke(["probe", corpus[case]])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"video #0: \w+ \d+x\d+, no frames", lines[2]), lines
    assert lines[-1] == "verdict: not computed (no frames)"
    assert "nothing to colorize" not in result.stdout
    if case == "zero-frames":
        assert lines[3].startswith("audio #1: pcm_s16le 48000 Hz")
    damage_lines = [line for line in lines if line.startswith("  damage: ")]
    assert (len(damage_lines) == 1 and damage in damage_lines[0]) if damage else damage_lines == []


def test_no_traceback_reaches_stderr_of_a_real_process(tmp_path, corpus, model_path):
    """Through ``python cli.py``: the text file and the missing index, each one line on stderr."""
    out = tmp_path / ODD_NAME / "colour ü.mp4"
    out.parent.mkdir()
    for case, needle in (("non-ascii-text", "is it a video file?"), ("moov-missing", "moov atom")):
        proc = run_cli_subprocess(colorize_args(corpus[case], out, model_path))
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vidcolor: error: ") and str(corpus[case]) in lines[0]
        assert needle in lines[0]
        assert_nothing_written(out)


def test_debug_shows_the_traceback(tmp_path, corpus, model_path):
    result = invoke(["--debug", *colorize_args(corpus["text"], tmp_path / "o.mp4", model_path)])
    assert result.exit_code == 3
    assert "Traceback" in result.stderr and "vidcolor: error:" in result.stderr


# ----- damage the decoder can get past ----------------------------------------------------------


def test_corrupt_packets_in_the_middle_are_skipped_and_counted(tmp_path, model_path):
    """Two packets in the middle of an FFV1 film are garbage: the other ten frames come out,
    with their own Y planes and timestamps, and stderr says what was lost."""
    clip = make_clip(tmp_path / "damaged reel.mkv", frames=12, lossless=True, content="grey")
    damage_video_packets(clip.path, [5, 6])
    out = tmp_path / "out.mkv"
    proc = run_cli_subprocess(colorize_args(clip.path, out, model_path, "--codec", "ffv1"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "wrote" in proc.stdout and "10 frames" in proc.stdout
    assert "error" not in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "corrupt" in line]
    assert len(warning) == 1, proc.stderr
    assert str(clip.path) in warning[0]
    assert "2 corrupt packets skipped" in warning[0] and "2 frames could not be decoded" in warning[0]
    planes = read_planes(out)
    kept = [i for i in range(12) if i not in (5, 6)]
    assert [p[0] for p in planes] == [clip.pts[i] for i in kept]
    for (_, y, _, _), i in zip(planes, kept):
        assert np.array_equal(y, clip.planes[i][0])
    assert not any(".partial" in p.name for p in tmp_path.iterdir())


def test_cut_tail_keeps_the_frames_before_the_cut(tmp_path, corpus, model_path, caplog):
    caplog.set_level(logging.WARNING, logger="vidcolor")
    src = corpus["faststart-cut-tail"]
    out = tmp_path / "out.mp4"
    result = invoke(colorize_args(src, out, model_path))
    assert result.exit_code == 0, result.output
    written = len(read_planes(out))
    assert 1 <= written < 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(src) in warnings[0]
    dropped = re.search(r"(\d+) frames could not be decoded", warnings[0])
    assert dropped and 1 <= int(dropped.group(1)) <= 8 - written, warnings[0]


# ----- valid but unusual input -------------------------------------------------------------------


def test_timestamps_going_backwards_are_one_line_exit_3_and_a_note_in_probe(tmp_path, model_path):
    """Was an internal error (exit 1) from the writer: "pts 4 is not after the previous frame's 5"."""
    src = write_lost_reordering(tmp_path / "lost_reorder.mp4")
    out = tmp_path / "out.mp4"
    line = error_line(invoke(colorize_args(src, out, model_path)), 3, str(src), "timestamps go backwards at frame 3,",
                      "0.080 s (after a frame at 0.120 s)", f"ffmpeg -r 24 -i {src} -c:v ffv1 -c:a copy retimed.mkv")
    assert "internal error" not in line
    assert_nothing_written(out)
    report = invoke(["probe", src])
    assert report.exit_code == 0, report.output
    assert "  timing problem: the video's timestamps go backwards at frame 3" in report.stdout
    assert "verdict: not computed (the timing is damaged)" in report.stdout


def test_timestamps_going_backwards_past_the_probe_stop_the_run(tmp_path, model_path):
    """Where probe did not see it (no verdict, or its samples missed it), the decoder stops the run."""
    from vidcolor.config import ColorizeConfig
    from vidcolor.errors import TimestampError
    from vidcolor.pipeline.run import run_video

    src = write_lost_reordering(tmp_path / "lost_reorder.mp4")
    out = tmp_path / "out.mkv"
    cfg = ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, quiet=True)
    with pytest.raises(TimestampError, match="go backwards at frame 3"):
        run_video(cfg, info=probe(src, verdict=False))
    assert_nothing_written(out)


def test_video_only_file_works(tmp_path, model_path):
    clip = make_clip(tmp_path / "silent.mp4", frames=6, content="grey")
    out = tmp_path / "out.mp4"
    result = invoke(colorize_args(clip.path, out, model_path))
    assert result.exit_code == 0, result.output
    assert [p[0] for p in read_planes(out)] == clip.pts
    assert read_packets(out, "audio") == []


def test_film_named_like_an_image_is_a_film(tmp_path, model_path):
    """A film misnamed .png or .dpx is colorized as the film, not taken for a still of its
    first frame (FFmpeg, which reads DPX scans, would read it too)."""
    film = make_clip(tmp_path / "reel.mp4", frames=4, content="grey").path
    for name in ("reel.png", "reel.dpx"):
        misnamed = tmp_path / name
        misnamed.write_bytes(film.read_bytes())
        out = tmp_path / f"{name}.mkv"
        result = invoke(colorize_args(misnamed, out, model_path))
        assert result.exit_code == 0, result.output
        assert len(read_planes(out)) == 4


def test_still_image_named_mkv_becomes_a_one_frame_video(tmp_path, model_path):
    """A PNG with a video extension: FFmpeg reads what it really is, so it is colorized as a
    one-frame video of the same size (what the extension asked for)."""
    grey = (np.add.outer(np.arange(48), np.arange(64)) * 2 % 256).astype(np.uint8)
    src = tmp_path / "scan.mkv"
    src.write_bytes(cv2.imencode(".png", grey)[1].tobytes())
    out = tmp_path / "scan_colour.mkv"
    result = invoke(colorize_args(src, out, model_path, "--codec", "ffv1"))
    assert result.exit_code == 0, result.output
    planes = read_planes(out)
    assert len(planes) == 1
    assert planes[0][1].shape == (48, 64)
    assert np.array_equal(planes[0][1], grey)  # luma kept, code for code
    assert probe(out, verdict=False).video.full_range  # a PNG's grey levels are full range


@pytest.mark.parametrize("size", [(4000, 16), (16, 4000)])
def test_very_wide_and_very_tall_frames_work(tmp_path, model_path, size):
    """At the default render size a 4000x16 strip made a 48000-px render, which OpenCV's remap
    refused mid-run (an internal error); the render's long side is capped now."""
    src = make_clip(tmp_path / "strip.mkv", width=size[0], height=size[1], frames=3, lossless=True, content="grey").path
    out = tmp_path / "out.mkv"
    result = invoke(colorize_args(src, out, model_path, "--codec", "ffv1", "--render-size", "192"))
    assert result.exit_code == 0, result.output
    planes, source = read_planes(out), read_planes(src)
    assert len(planes) == 3
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(planes, source))  # every Y plane kept


@pytest.mark.parametrize("size", [(1, 1), (97, 63)])
def test_sizes_x264_cannot_hold_are_refused_before_any_work(tmp_path, model_path, size):
    """4:2:0 x264 needs even sizes: refused at once (exit 2) with the way out, nothing written."""
    src = make_clip(tmp_path / "odd.mkv", width=size[0], height=size[1], frames=3, lossless=True, content="grey").path
    out = tmp_path / "out.mp4"
    line = error_line(invoke(colorize_args(src, out, model_path)), 2,
                      f"the video is {size[0]}x{size[1]}", "use --codec ffv1")
    assert str(out) in line
    assert_nothing_written(out)


@pytest.mark.parametrize("size,pix_fmt", [((1, 1), "yuv420p"), ((1, 1), "gray"), ((97, 63), "yuv420p"),
                                          ((8, 8), "yuv420p"),
                                          # FFV1's own choice of slices cannot cut 3x3 4:2:0 (it
                                          # refused to open: "use .mkv", already .mkv)
                                          ((3, 3), "gray")])
def test_tiny_and_odd_sizes_with_ffv1_keep_every_y_plane(tmp_path, model_path, size, pix_fmt):
    clip = make_clip(tmp_path / "small.mkv", width=size[0], height=size[1], frames=4, pix_fmt=pix_fmt,
                     lossless=True, content="grey")
    out = tmp_path / "out.mkv"
    result = invoke(colorize_args(clip.path, out, model_path, "--codec", "ffv1"))
    assert result.exit_code == 0, result.output
    planes = read_planes(out)
    assert [p[0] for p in planes] == clip.pts
    for (_, y, cb, _), (y_in, _, _) in zip(planes, clip.planes):
        assert y.shape == (size[1], size[0]) and np.array_equal(y, y_in)
        assert cb is not None


@pytest.mark.parametrize("size,pix_fmt", [((8, 8), "yuv420p"), ((97, 63), "yuv444p"), ((96, 63), "yuv422p")])
def test_small_and_odd_sizes_x264_can_hold_work(tmp_path, model_path, size, pix_fmt):
    clip = make_clip(tmp_path / "small.mp4", width=size[0], height=size[1], frames=4, pix_fmt=pix_fmt, content="grey")
    out = tmp_path / "out.mp4"
    result = invoke(colorize_args(clip.path, out, model_path))
    assert result.exit_code == 0, result.output
    info = probe(out, verdict=False).video
    assert (info.width, info.height, info.frame_count) == (size[0], size[1], 4)


@pytest.mark.parametrize("ext,rotation", [(".mp4", 90), (".mkv", 270)])
def test_rotated_video_keeps_its_display_matrix(tmp_path, model_path, ext, rotation):
    clip = make_clip(tmp_path / f"phone{ext}", width=96, height=64, frames=4, rotation=rotation, content="grey")
    assert probe(clip.path, verdict=False).video.rotation == rotation
    out = tmp_path / f"out{ext}"
    result = invoke(colorize_args(clip.path, out, model_path))
    assert result.exit_code == 0, result.output
    info = probe(out, verdict=False).video
    assert info.rotation == rotation
    assert (info.width, info.height) == (96, 64)  # coded size kept; players rotate on display


def test_path_with_spaces_and_non_ascii_characters(tmp_path, model_path):
    folder = tmp_path / ODD_NAME
    folder.mkdir()
    clip = make_clip(folder / "old reel ü.mp4", frames=4, content="grey")
    out = folder / "colour ü 彩色.mkv"
    result = invoke(colorize_args(clip.path, out, model_path))
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    assert len(read_planes(out)) == 4


def test_names_with_a_colon_are_files_not_urls(tmp_path, model_path, monkeypatch):
    """FFmpeg takes "2024-01-01T10:00.mp4" for a URL of protocol "2024-01-01T10"; given
    relative to the working folder, such names still read and write as files."""
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "2024-01-01T10:00.mp4", frames=4, content="grey", audio="aac")
    for out, extra in (("reel:colour.mp4", ()), ("take:2.mkv", ("--resume", "--segment-frames", "2"))):
        result = invoke(colorize_args("2024-01-01T10:00.mp4", out, model_path, *extra))
        assert result.exit_code == 0, result.output
        assert len(read_planes(tmp_path / out)) == 4
    assert "reel:colour.mp4" in invoke(["probe", "reel:colour.mp4"]).stdout


def _write_8k(path: Path, frames: int = 1) -> None:
    """A 7680x4320 grey clip stored raw, so making and reading it costs no codec time."""
    width, height = 7680, 4320
    y = ((np.arange(width, dtype=np.uint32)[None, :] // 32 + np.arange(height, dtype=np.uint32)[:, None] // 32) % 200
         + 28).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(y, 8 * i, axis=1), format="gray")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.slow
def test_8k_frames(tmp_path, model_path):
    src = tmp_path / "8k.mkv"
    _write_8k(src)
    out = tmp_path / "8k_colour.mkv"
    result = invoke(colorize_args(src, out, model_path, "--codec", "ffv1"))
    assert result.exit_code == 0, result.output
    info = probe(out, verdict=False).video
    assert (info.width, info.height, info.frame_count) == (7680, 4320, 1)


# ----- output problems (exit 4) ----------------------------------------------------------------


@pytest.fixture()
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "in.mkv", frames=8, content="grey").path


def test_output_equal_to_input_is_refused(tmp_path, clip, model_path):
    before = clip.read_bytes()
    link = tmp_path / "hard link.mkv"
    os.link(clip, link)
    sym = tmp_path / "sym.mkv"
    sym.symlink_to(clip)
    for out, extra in ((clip, ()), (clip, ("--overwrite",)), (link, ("--overwrite",)), (sym, ("--overwrite",))):
        line = error_line(invoke(colorize_args(clip, out, model_path, *extra)), 4, "same file as the input",
                          "choose another output name")
        assert str(out) in line
    assert clip.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_output_that_is_a_directory_is_refused(tmp_path, clip, model_path):
    folder = tmp_path / "renders"
    folder.mkdir()
    line = error_line(invoke(colorize_args(clip, folder, model_path, "--overwrite")), 4, "is a directory")
    assert str(folder) in line and list(folder.iterdir()) == []


def test_previews_sheets_and_reports_never_clobber_a_file(tmp_path, clip, model_path):
    """Side outputs (``--preview``, ``styles --sheet``, ``eval --json``) are checked like the
    output itself, before any work: never over an input, a reference or the output, not over
    an existing file without --overwrite, only as a type that can be written."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((24, 32), 90, np.uint8))
    photo_bytes, clip_bytes = photo.read_bytes(), clip.read_bytes()
    (tmp_path / "shots.png").mkdir()
    out = tmp_path / "out.mkv"
    for preview, extra, code, needle in (
            (photo, (), 4, "exists; pass --overwrite"),
            (photo, ("--reference", f"{photo}@0", "--overwrite"), 4, "same file as the input"),
            (out, ("--overwrite",), 2, "cannot write an image as .mkv"),
            (tmp_path / "out.png", ("-o", tmp_path / "out.png"), 4, "same file as the output"),
            (tmp_path / "shots.png", (), 4, "is a directory; give a file name such as"),
            (tmp_path / "sheet.mp4", (), 2, "cannot write an image as .mp4; use .png, .jpg or .tif"),
            (tmp_path / "missing" / "p.png", (), 4, "does not exist")):
        error_line(invoke(colorize_args(clip, out, model_path, "--preview", preview, *extra)), code, str(preview), needle)
        assert_nothing_written(out)
    error_line(invoke(["styles", "--model", model_path, "--sheet", photo, "--image", photo]), 4, "same file as the input")
    error_line(invoke(["styles", "--model", model_path, "--sheet", clip, "--image", photo]), 2, "--sheet")
    error_line(invoke(["eval", "--model", model_path, clip, "--max-frames", "2", "--json", clip]), 2,
               "--json", "ending in .json")
    json_clip = tmp_path / "clip.json"
    json_clip.write_bytes(clip_bytes)
    error_line(invoke(["eval", "--model", model_path, json_clip, "--json", json_clip]), 4, "same file as the input")
    assert photo.read_bytes() == photo_bytes and clip.read_bytes() == clip_bytes


def test_still_images_refuse_video_only_options(tmp_path, model_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((24, 32), 90, np.uint8))
    out = tmp_path / "photo_colour.png"
    for extra, needle in ((("--frames", "0-3"), "--frames is for videos"),
                          (("--reference", f"{photo}@0"), "--reference is for videos"),
                          (("--preview", tmp_path / "p.png"), "--preview is for videos")):
        error_line(invoke(colorize_args(photo, out, model_path, *extra)), 2, needle, "is a still image")
    error_line(invoke(colorize_args(photo, tmp_path / "photo.mp4", model_path)), 2, "cannot write an image as .mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_still_images_take_encoding_options_with_a_note(tmp_path, model_path, caplog):
    """A batch may pass --codec or --resume to every file of a folder: a still is colorized,
    with one note that those options did nothing for it."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((24, 32), 90, np.uint8))
    with caplog.at_level(logging.WARNING, logger="vidcolor"):
        result = invoke(colorize_args(photo, tmp_path / "out.png", model_path, "--codec", "ffv1", "--resume"))
    assert result.exit_code == 0, result.output
    assert "--codec, --resume have no effect on a still image" in caplog.text


def test_read_only_output_folder(tmp_path, clip, model_path, monkeypatch):
    folder = tmp_path / "read only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # Root ignores permission bits: answer as the kernel does for anyone else.
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path) == folder and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    out = folder / "out.mkv"
    try:
        line = error_line(invoke(colorize_args(clip, out, model_path)), 4, "not writable")
        assert str(out) in line
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("code,needle", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_output_that_cannot_be_created(tmp_path, clip, model_path, monkeypatch, code, needle):
    """The folder looks writable but creating the file fails (a read-only mount, an ACL)."""
    import vidcolor.io.remux as remux

    real_open = remux.av.open

    def refusing_open(target, *args, **kwargs):
        if kwargs.get("mode") == "w" and isinstance(target, str):
            raise OSError(code, os.strerror(code), target)
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(remux.av, "open", refusing_open)
    out = tmp_path / "out.mkv"
    line = error_line(invoke(colorize_args(clip, out, model_path)), 4, needle)
    assert str(out) in line and ".partial" not in line
    assert_nothing_written(out)


def _fail_after(count: int, exc: Exception):
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1
        if calls["n"] > count:
            raise exc

    return check


@pytest.mark.parametrize("where", ["muxer", "writer", "trailer"])
def test_full_disk_gives_exit_4_and_removes_the_partial_output(tmp_path, clip, model_path, monkeypatch, where):
    """ENOSPC from the muxer (as FFmpeg reports it), from the writer itself, or when the
    trailer is written: one line naming the final output, exit 4, no file left."""
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    if where == "muxer":
        check = _fail_after(3, disk_full)
        real = OutputWriter._mux_video

        def mux(self, packets):
            check()
            return real(self, packets)

        monkeypatch.setattr(OutputWriter, "_mux_video", mux)
    elif where == "writer":
        check = _fail_after(3, disk_full)
        real_write = OutputWriter.write

        def write(self, *args, **kwargs):
            check()
            return real_write(self, *args, **kwargs)

        monkeypatch.setattr(OutputWriter, "write", write)
    else:
        def close(self):
            self.abort()
            raise disk_full

        monkeypatch.setattr(OutputWriter, "close", close)
    out = tmp_path / "out" / "film.mkv"
    out.parent.mkdir()
    line = error_line(invoke(colorize_args(clip, out, model_path, "--batch-size", "1")), 4,
                      "the disk is full", "free some space")
    assert str(out) in line and ".partial" not in line
    assert list(out.parent.iterdir()) == []


def test_full_disk_for_a_still_image(tmp_path, model_path, monkeypatch):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), (np.add.outer(np.arange(40), np.arange(50)) * 2 % 256).astype(np.uint8))

    class FullDisk:
        def tofile(self, path):
            Path(path).write_bytes(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(cv2, "imencode", lambda *args, **kwargs: (True, FullDisk()))
    out = tmp_path / "out" / "photo_colour.png"
    out.parent.mkdir()
    line = error_line(invoke(colorize_args(src, out, model_path)), 4, "the disk is full")
    assert str(out) in line
    assert list(out.parent.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_file_size_limit_is_a_real_write_failure(tmp_path, model_path):
    """A real OS refusal in a real process: the file size limit (ulimit -f) makes write() fail
    with EFBIG part-way through, as a full disk makes it fail with ENOSPC."""
    import resource
    import signal

    src = make_clip(tmp_path / "in.mkv", width=160, height=96, frames=30, lossless=True, content="grey").path
    out = tmp_path / "out" / "film.mkv"
    out.parent.mkdir()

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = run_cli_subprocess(colorize_args(src, out, model_path, "--codec", "ffv1"), preexec_fn=limit)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidcolor: error: cannot write ") and str(out) in lines[0]
    assert "too large" in lines[0]
    assert list(out.parent.iterdir()) == []


def test_disk_full_outside_an_output_is_still_exit_4(monkeypatch, tmp_path):
    """An ENOSPC that escapes a command (a run folder, a checkpoint) is an output problem."""
    import vidcolor.training.trainer as trainer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "0001-base"))

    monkeypatch.setattr(trainer, "start_run", full)
    photos = tmp_path / "photos"  # data that passes the checks made before a run starts
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), np.full((64, 64, 3), (40, 120, 200), np.uint8))
    result = invoke(["train", "--runs", tmp_path / "runs", "--data", photos])
    line = error_line(result, 4, "the disk is full")
    assert str(tmp_path / "runs" / "0001-base") in line


# ----- models (exit 5) -------------------------------------------------------------------------


def _model_variant(folder: Path, model_path: str, name: str, weights=None, meta=None) -> Path:
    src = Path(model_path)
    w = src.with_suffix(".safetensors").read_bytes()
    j = json.loads(src.read_text())
    (folder / f"{name}.safetensors").write_bytes(weights(w) if weights else w)
    text = meta(j) if meta else j
    (folder / f"{name}.json").write_text(text if isinstance(text, str) else json.dumps(text))
    return folder / f"{name}.json"


def _without_checksum(meta: dict) -> dict:
    meta.pop("sha256")
    return meta


MODELS = {
    "corrupt": (lambda w: w[:-64] + bytes(b ^ 0x5A for b in w[-64:]), None, ".safetensors",
                "do not match their checksum"),
    "truncated": (lambda w: w[: len(w) // 2], None, ".safetensors", "corrupt or truncated"),
    "truncated-no-checksum": (lambda w: w[: len(w) // 2], _without_checksum, ".safetensors",
                              "not a readable safetensors file"),
    "empty-weights": (lambda w: b"", _without_checksum, ".safetensors", "not a readable safetensors file"),
    "corrupt-json": (None, lambda j: '{"format": "vidcolor-gen', ".json", "not valid JSON"),
    "other-architecture": (None, lambda j: {**j, "config": {**j["config"], "base_channels": 16}}, ".safetensors",
                           "do not match the model"),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_bad_weights_exit_5(tmp_path, clip, model_path, case):
    weights, meta, named, needle = MODELS[case]
    bad = _model_variant(tmp_path, model_path, f"bad_{case}", weights, meta)
    out = tmp_path / "out.mkv"
    line = error_line(invoke(colorize_args(clip, out, str(bad))), 5, needle)
    assert str(bad.with_suffix(named)) in line
    assert_nothing_written(out)


def test_missing_weights_exit_5(tmp_path, clip, model_path):
    bad = _model_variant(tmp_path, model_path, "lonely")
    bad.with_suffix(".safetensors").unlink()
    out = tmp_path / "out.mkv"
    line = error_line(invoke(colorize_args(clip, out, str(bad))), 5, "weights file not found")
    assert str(bad.with_suffix(".safetensors")) in line
    assert_nothing_written(out)


# ----- configs (exit 2) ------------------------------------------------------------------------


CONFIGS = {
    "unknown-key": ('name = "x"\nstepz_colorize = 3\n', ["unknown config key 'stepz_colorize'", "valid:"]),
    "unknown-nested-key": ("[loss]\nlambda_l2 = 1.0\n", ["unknown config key 'loss.lambda_l2'"]),
    "wrong-type": ('steps_colorize = "many"\n', ["'steps_colorize' must be an integer"]),
    "wrong-nested-type": ('[model]\nbase_channels = 8.5\n', ["'model.base_channels' must be an integer"]),
    "not-toml": ("steps_colorize = = 3\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config_exit_2_naming_the_file_and_key(tmp_path, case):
    text, needles = CONFIGS[case]
    config = tmp_path / "my config.toml"
    config.write_text(text)
    runs = tmp_path / "runs"
    line = error_line(invoke(["train", "--config", config, "--data", tmp_path, "--runs", runs]), 2, *needles)
    assert str(config) in line
    assert not runs.exists()


def test_bad_override_is_blamed_on_the_override(tmp_path):
    config = tmp_path / "fine.toml"
    config.write_text('name = "fine"\n')
    runs = tmp_path / "runs"
    line = error_line(invoke(["train", "--config", config, "--set", "loss.lambda_l2=1", "--runs", runs]), 2,
                      "'loss.lambda_l2'", "--set")
    assert str(config) not in line
    assert not runs.exists()


# ----- property-based: the frame-range parser and the config loader ------------------------------


spaces = st.text(alphabet=" \t", max_size=3)


@given(st.integers(0, 10**12), st.integers(0, 10**12), spaces, spaces, spaces, spaces)
def test_property_frame_ranges_parse_or_refuse(a, b, s1, s2, s3, s4):
    text = f"{s1}{a}{s2}-{s3}{b}{s4}"
    if a <= b:
        assert parse_frame_range(text) == (a, b)
    else:
        with pytest.raises(UsageError, match="after the end"):
            parse_frame_range(text)


@given(st.text(max_size=40))
def test_property_any_text_is_a_range_or_a_usage_error(text):
    try:
        start, end = parse_frame_range(text)
    except UsageError as exc:
        assert "\n" not in str(exc)  # one line, even for text with newlines
        return
    assert 0 <= start <= end
    assert parse_frame_range(f"{start}-{end}") == (start, end)


def test_absurdly_long_frame_numbers_are_a_usage_error():
    with pytest.raises(UsageError, match="too long"):
        parse_frame_range("1" * 5000 + "-" + "2" * 5000)
    with pytest.raises(UsageError):
        parse_frame_range("١-٣")  # digits, but not ASCII ones


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_property_clamped_ranges_fit_the_clip(start, length, count):
    end = start + length
    if start >= count:
        with pytest.raises(UsageError, match="past the last frame"):
            clamp_frame_range(start, end, count)
        return
    s, e = clamp_frame_range(start, end, count)
    assert s == start and start <= e <= count - 1 and e == min(end, count - 1)


toml_values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(),
                        st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=8),
                        st.lists(st.integers(0, 9), max_size=3))


def _toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value) if not isinstance(value, list) else "[" + ", ".join(map(repr, value)) + "]"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True), toml_values, max_size=5),
       st.sampled_from(["", "loss", "model", "discriminator"]))
def test_property_config_files_load_or_name_the_file(tmp_path_factory, entries, section):
    """Any TOML table of keys and values either loads or is a ConfigError naming the file."""
    path = tmp_path_factory.mktemp("cfg") / "random.toml"
    header = f"[{section}]\n" if section else ""
    path.write_text(header + "".join(f"{k} = {_toml_literal(v)}\n" for k, v in entries.items()))
    try:
        load(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.binary(max_size=64))
def test_property_config_bytes_never_crash(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "bytes.toml"
    path.write_bytes(data)
    try:
        load(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_concealed_frames_are_counted_and_reported(tmp_path, caplog):
    """Damage inside H.264 slices that the decoder patches over (no packet is rejected) is
    still reported: the run finishes and says how many frames were concealed.

    FFmpeg's frame-threaded decoder does not flag every concealed frame (damage in three
    frames of one GOP was flagged in only 21 of 30 decodes); with one damaged frame in each
    of four GOPs, at least one was flagged in all of 120, so the count is a lower bound."""
    import logging

    import av

    from tests.media import make_clip
    from tests.test_pipeline import tiny_generator
    from vidcolor.config import ColorizeConfig
    from vidcolor.pipeline.run import colorize

    clean = make_clip(tmp_path / "clean.mp4", width=160, height=96, frames=40, content="moving", gop=10).path
    damaged = tmp_path / "damaged.mp4"
    with av.open(str(clean)) as src, av.open(str(damaged), "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        for i, packet in enumerate(p for p in src.demux(s_in) if p.size):
            data = bytearray(bytes(packet))
            if not packet.is_keyframe and i in (3, 13, 23, 33) and len(data) > 60:  # one P-frame per GOP
                for k in range(30, len(data), 11):
                    data[k] ^= 0x5A  # flip bits inside the slice data, keep the NAL structure
            copy = av.Packet(bytes(data))
            copy.pts, copy.dts, copy.time_base, copy.is_keyframe = packet.pts, packet.dts, packet.time_base, packet.is_keyframe
            copy.stream = s_out
            dst.mux(copy)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="vidcolor"):
        report = colorize(ColorizeConfig(input=str(damaged), output=str(out), render_size=32, quiet=True, force=True),
                          model=tiny_generator())
    assert report.frames == 40 and report.corrupt_packets == 0
    assert report.concealed >= 1
    assert f"{report.concealed} frames concealed" in caplog.text


def test_frame_size_changing_mid_stream_is_one_clear_line(tmp_path, model_path):
    """Two MPEG-TS captures of different sizes joined end to end (as `cat a.ts b.ts` makes): the
    output has one frame size, so the run stops with a reason instead of an internal error."""
    parts = [make_clip(tmp_path / f"part{i}.ts", width=w, height=h, frames=10, content="grey").path
             for i, (w, h) in enumerate([(96, 64), (128, 80)])]
    src = tmp_path / "joined.ts"
    src.write_bytes(b"".join(p.read_bytes() for p in parts))
    out = tmp_path / "out" / "joined_colour.mp4"
    out.parent.mkdir()
    line = error_line(invoke(colorize_args(src, out, model_path)), 3, "frame size changes from 96x64 to 128x80",
                      "split it where the size changes")
    assert str(src) in line
    assert_nothing_written(out)


def test_default_output_names_are_types_we_write(tmp_path, model_path):
    """Without -o the output keeps the input's type where we write it; a GIF (or .ts, .mpg...)
    becomes .mkv and a still of a type we do not write becomes .png, instead of a default
    name that is itself refused."""
    from vidcolor.commands.common import default_output

    gif = tmp_path / "anim.gif"
    with av.open(str(gif), "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "gray"
        for i in range(3):
            grey = np.full((24, 32), 60 + 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(grey, format="gray")):
                container.mux(packet)
        container.mux(stream.encode())
    scan = tmp_path / "scan.gif.bmp"
    cv2.imwrite(str(scan), np.full((24, 32), 90, np.uint8))
    assert default_output(str(gif)) == str(tmp_path / "anim_colour.mkv")
    assert default_output(str(scan)) == str(tmp_path / "scan.gif_colour.bmp")
    assert default_output(str(tmp_path / "reel.ts")) == str(tmp_path / "reel_colour.mkv")
    assert default_output(str(tmp_path / "film.MOV")) == str(tmp_path / "film_colour.MOV")
    result = invoke(["colorize", gif, "--model", model_path, "--render-size", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(read_planes(tmp_path / "anim_colour.mkv")) == 3


def test_empty_output_name_and_non_file_outputs_are_refused(tmp_path, clip, model_path):
    """``-o ""`` used to mean the default name; ``--overwrite`` used to replace a pipe (or, run
    as root, a device such as /dev/null) with a regular file."""
    error_line(invoke(["colorize", clip, "-o", "", "--model", model_path]), 2, "'--output'", "is empty")
    error_line(invoke(["farm", clip, "-o", " "]), 2, "'--output'", "is empty")
    for args, option in ((colorize_args(clip, tmp_path / "o.mkv", model_path, "--preview", ""), "'--preview'"),
                         (["styles", "--sheet", "", "--image", clip], "'--sheet'"),
                         (["eval", clip, "--json", ""], "'--json'"),
                         (["farm", clip, "--chunk-dir", ""], "'--chunk-dir'")):
        error_line(invoke(args), 2, option, "is empty")  # was silently no preview, sheet or report
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)
    error_line(invoke(colorize_args(clip, fifo, model_path, "--overwrite")), 4, "is not a regular file")
    assert fifo.exists() and not fifo.is_file()


@pytest.mark.parametrize("extra, needle", [
    (("--render-size", "100000"), "--render-size must be a multiple of 16 from 32 to 2048, got 100000"),
    (("--crf", "-5"), "--crf must be 0 (best) to 51, got -5"),
    (("--crf", "100", "--codec", "x265"), "--crf must be 0 (best) to 51, got 100"),
])
def test_values_that_would_fail_deep_inside_are_refused_first(tmp_path, model_path, extra, needle):
    """An absurd render size asked OpenCV for 53 GB (exit 1, "report it"); a CRF out of x264's
    scale was clamped silently, or made x265 fail after the encoder had opened."""
    src = make_clip(tmp_path / "strip.mkv", width=256, height=16, frames=2, content="grey").path
    out = tmp_path / "out.mp4"
    error_line(invoke(colorize_args(src, out, model_path, *extra)), 2, needle)
    assert_nothing_written(out)


def test_crf_with_a_codec_that_has_none_is_a_warning(tmp_path, model_path, caplog):
    src = make_clip(tmp_path / "in.mkv", frames=2, content="grey").path
    with caplog.at_level(logging.WARNING, logger="vidcolor"):
        result = invoke(colorize_args(src, tmp_path / "out.mkv", model_path, "--codec", "ffv1", "--crf", "10"))
    assert result.exit_code == 0, result.output
    assert "--crf has no effect with --codec ffv1 (lossless)" in caplog.text


def test_a_chunk_folder_that_is_a_file_is_one_line(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mkv", frames=2, content="grey").path
    (tmp_path / ".out.segments").write_text("not a folder")
    error_line(invoke(colorize_args(src, tmp_path / "out.mkv", model_path, "--resume")), 2,
               ".out.segments is a file, not a folder for chunks; write to another output")


# --- click's own errors (options and arguments) ---------------------------------------------


@pytest.mark.parametrize("args,needles", [
    (["colorize", "in.mp4", "--codec", "bogus"], ["Invalid value for '--codec'", "'x264'", "colorize --help')"]),
    (["colorize", "in.mp4", "--render-size", "big"], ["--render-size", "colorize --help')"]),
    (["colorize", "in.mp4", "--no-such-option"], ["No such option '--no-such-option'"]),
    (["colorize"], ["Missing argument 'IN'"]),
    (["eval", "--flow", "raft", "clips"], ["Invalid value for '--flow'", "'farneback'", "eval --help')"]),
    (["farm", "in.mp4", "--chunk-frames", "ten"], ["--chunk-frames", "farm --help')"]),
    (["colourise", "in.mp4"], ["No such command 'colourise'", " --help')"]),
])
def test_option_and_argument_errors_are_one_line(args, needles):
    """Click's three-line usage errors become one line like every other error, exit code 2."""
    error_line(invoke(args), 2, *needles)


def test_help_version_and_bare_command_still_work():
    result = invoke(["colorize", "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage: ")
    result = invoke(["--version"])
    assert result.exit_code == 0 and "version" in result.output
    result = invoke([])  # a bare `vidcolor` shows what it can do
    assert "Commands:" in result.output and "colorize" in result.output and "Traceback" not in result.output


def test_option_errors_are_one_line_from_the_installed_command():
    """Through a real process (the console script's path: click's standalone mode and sys.exit);
    the hint names the program as it was called (here the checkout's cli.py)."""
    done = run_cli_subprocess(["colorize", "in.mp4", "--smooth", "much"])
    assert done.returncode == 2
    assert done.stdout == ""
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "vidcolor: error: Invalid value for '--smooth': 'much' is not a valid float. (see 'cli.py colorize --help')"]


def test_atomic_output_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    """Two runs to the same output without --overwrite: the second one's final rename used to
    replace the first one's file silently (the existence check is only at the start). Neither
    run's work is lost: the second one's result is kept under a free name beside it."""
    from vidcolor.errors import OutputError
    from vidcolor.io.atomic import atomic_output

    final = tmp_path / "out.mkv"
    with pytest.raises(OutputError, match=r"out.mkv appeared while this run was writing it .*not replaced; this "
                                          r"run's result is kept as .*out\.vidcolor-[0-9a-f]{6}\.mkv$"):
        with atomic_output(final) as tmp:
            tmp.write_bytes(b"second run")
            final.write_bytes(b"first run")  # the other run finished meanwhile
    assert final.read_bytes() == b"first run"
    names = sorted(p.name for p in tmp_path.iterdir())  # no temporary file left
    assert len(names) == 2 and names[0] == "out.mkv" and names[1].startswith("out.vidcolor-")
    assert (tmp_path / names[1]).read_bytes() == b"second run"
    (tmp_path / names[1]).unlink()
    # A file system without hard links (FAT, SMB, some FUSE mounts): the same, by rename.
    import errno
    import os

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    final.unlink()
    real_link, os.link = os.link, no_links
    try:
        with pytest.raises(OutputError, match=r"this run's result is kept as .*out\.vidcolor-[0-9a-f]{6}\.mkv$"):
            with atomic_output(final) as tmp:
                tmp.write_bytes(b"third run")
                final.write_bytes(b"first run")
        kept = sorted(p for p in tmp_path.iterdir() if p.name.startswith("out.vidcolor-"))
        assert [p.read_bytes() for p in kept] == [b"third run"] and final.read_bytes() == b"first run"
        kept[0].unlink()
        with atomic_output(tmp_path / "fresh.mkv") as tmp:  # no clash: renamed into place
            tmp.write_bytes(b"fresh")
        assert (tmp_path / "fresh.mkv").read_bytes() == b"fresh"
        (tmp_path / "fresh.mkv").unlink()
    finally:
        os.link = real_link
    with atomic_output(final, overwrite=True) as tmp:  # --overwrite still replaces it
        tmp.write_bytes(b"replaced")
    assert final.read_bytes() == b"replaced"
    with atomic_output(tmp_path / "new.mkv") as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "new.mkv").read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 2


def test_repeated_timestamps_are_refused_before_any_work(tmp_path, model_path):
    """Two frames with one timestamp (a muxer's rounding to a coarse time base) stopped the run
    at that frame, however late; the packet scan sees them anywhere, so probe names them and
    colorize refuses at once."""
    from fractions import Fraction

    import av

    src = tmp_path / "repeated.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 25)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                packet.dts, packet.pts = i, i + 1 if i != 9 else i  # frame 9 repeats frame 8's time
                out.mux(packet)
    report = invoke(["probe", src])
    assert "timing problem: 1 frame repeats the timestamp of the frame before (the first at 0.360 s)" in report.stdout
    out = tmp_path / "out.mkv"
    error_line(invoke(colorize_args(src, out, model_path)), 3, "1 frame repeats the timestamp",
               f"ffmpeg -r 24 -i {src}")
    assert_nothing_written(out)
