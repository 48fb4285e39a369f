"""End-to-end colorize runs on synthetic clips: the film comes out intact.

Checks the "faithful output" invariants (README, "What it does"): frame count, every pts and the time
base; the Y plane bit for bit (FFV1); audio packets byte for byte; colour metadata; nothing
left under the final name when a run fails or is killed; smoothing lowers flicker.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.media import BT601_LUMA, ffprobe_json, make_clip, read_packets, read_planes, read_rgb
from vidcolor.cli import main
from vidcolor.config import ColorizeConfig
from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.probe import probe
from vidcolor.metrics.temporal import warp_error
from vidcolor.models.generator import Generator
from vidcolor.models.weights import save_generator
from vidcolor.pipeline.run import colorize, colorize_video

ROOT = Path(__file__).resolve().parents[1]


def tiny_generator(seed: int = 0) -> Generator:
    """A small random generator whose chroma output is visibly non-zero."""
    torch.manual_seed(seed)
    g = Generator(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4)
    with torch.no_grad():
        g.chroma_head.weight.normal_(0, 0.05)
        g.chroma_head.bias.copy_(torch.tensor([0.5, -0.3, -0.2, 0.25]))
    return g.eval()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    stem = tmp_path_factory.mktemp("model") / "tiny"
    save_generator(tiny_generator(), stem, {"note": "test model"})
    return str(stem) + ".json"


def run(src, dst, model_path, **options) -> None:
    options.setdefault("render_size", 32)
    options.setdefault("quiet", True)
    options.setdefault("force", True)
    colorize(ColorizeConfig(input=str(src), output=str(dst), model=model_path, **options))


def assert_same_timing(src: Path, out: Path) -> None:
    a, b = probe(src, verdict=False).video, probe(out, verdict=False).video
    src_planes, out_planes = read_planes(src), read_planes(out)
    assert len(out_planes) == len(src_planes) == a.frame_count == b.frame_count
    assert [p[0] for p in out_planes] == [p[0] for p in src_planes]
    assert b.time_base == a.time_base
    assert (b.width, b.height) == (a.width, a.height)
    ff = ffprobe_json(out)
    if ff is not None:  # an independent reader agrees
        stream = [s for s in ff["streams"] if s["codec_type"] == "video"][0]
        assert Fraction(stream["time_base"]) == a.time_base
        assert (int(stream["width"]), int(stream["height"])) == (a.width, a.height)


@pytest.mark.parametrize(
    "ext,rate,vfr",
    [
        (".mp4", Fraction(25), False),
        (".mkv", Fraction(30000, 1001), False),
        (".mov", Fraction(30000, 1001), True),
        (".mp4", Fraction(24), True),
    ],
)
def test_timing_kept_in_each_container(tmp_path, model_path, ext, rate, vfr):
    src = make_clip(tmp_path / f"in{ext}", frames=10, rate=rate, vfr=vfr, content="grey").path
    out = tmp_path / f"out{ext}"
    run(src, out, model_path)
    assert_same_timing(src, out)
    # The output is really coloured: chroma is no longer neutral.
    _, _, cb, cr = read_planes(out)[3]
    assert np.abs(cb.astype(np.int32) - 128).mean() > 2 or np.abs(cr.astype(np.int32) - 128).mean() > 2


@pytest.mark.parametrize(
    "pix_fmt,size",
    [("yuv420p", (96, 64)), ("yuv420p10le", (96, 64)), ("gray", (96, 64)), ("yuv444p", (96, 64)), ("yuv420p", (642, 362))],
)
def test_ffv1_keeps_every_y_plane_bit_for_bit(tmp_path, model_path, pix_fmt, size):
    frames = 4 if size[0] > 100 else 8
    src = make_clip(tmp_path / "in.mkv", width=size[0], height=size[1], frames=frames, pix_fmt=pix_fmt,
                    lossless=True, content="grey").path
    out = tmp_path / "out.mkv"
    run(src, out, model_path, codec="ffv1")
    assert_same_timing(src, out)
    for (_, y_in, _, _), (_, y_out, cb, cr) in zip(read_planes(src), read_planes(out)):
        assert y_out.dtype == y_in.dtype
        assert np.array_equal(y_out, y_in)
        assert cb is not None and cr is not None  # grey in, colour out
    info = probe(out, verdict=False).video
    want_depth = 10 if "10" in pix_fmt else 8
    assert info.bit_depth == want_depth


@pytest.mark.parametrize("ext,audio", [(".mkv", "aac"), (".mov", "pcm_s16le"), (".mp4", "aac")])
def test_audio_packets_copied_byte_for_byte(tmp_path, model_path, ext, audio):
    clip = make_clip(tmp_path / f"in{ext}", frames=12, audio=audio, content="grey")
    out = tmp_path / f"out{ext}"
    run(clip.path, out, model_path)
    assert read_packets(out, "audio") == read_packets(clip.path, "audio") != []
    ff = ffprobe_json(out)
    if ff is not None:
        kinds = sorted(s["codec_type"] for s in ff["streams"])
        assert kinds == ["audio", "video"]


def test_colour_metadata_kept(tmp_path, model_path):
    meta = {"primaries": "bt709", "trc": "bt709", "colorspace": "bt709", "range": "tv"}
    src = make_clip(tmp_path / "in.mkv", frames=6, color_meta=meta, content="grey").path
    out = tmp_path / "out.mkv"
    run(src, out, model_path, codec="ffv1")
    a, b = probe(src, verdict=False).video, probe(out, verdict=False).video
    for attr in ("color_primaries", "color_trc", "colorspace", "full_range"):
        assert getattr(b, attr) == getattr(a, attr), attr


def test_prores_and_x265_outputs(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mov", frames=6, content="grey").path
    for codec, name in (("prores", "out.mov"), ("x265", "out.mp4")):
        out = tmp_path / name
        run(src, out, model_path, codec=codec)
        assert_same_timing(src, out)


def test_tinted_source_gets_one_line_that_its_tint_is_replaced(tmp_path, model_path, caplog):
    for content, lines in (("sepia", 1), ("grey", 0)):
        caplog.clear()
        src = make_clip(tmp_path / f"{content}.mkv", frames=4, content=content).path
        run(src, tmp_path / f"{content}_out.mkv", model_path, force=False)
        notes = [r.getMessage() for r in caplog.records if "tint" in r.getMessage()]
        assert notes == [f"{src} is tinted (sepia or a colour cast): the tint is not kept, the colours are made "
                         "anew from its luma"] * lines


def test_12_bit_source_keeps_12_bits_where_the_codec_can_and_warns_where_not(tmp_path, model_path, caplog):
    src = make_clip(tmp_path / "in.mkv", frames=4, pix_fmt="yuv420p12le", lossless=True, content="grey").path
    for codec, pix_fmt in (("x265", "yuv420p12le"), ("ffv1", "yuv420p12le"), ("x264", "yuv420p10le")):
        caplog.clear()
        out = tmp_path / f"{codec}.mkv"
        run(src, out, model_path, codec=codec)
        assert probe(out, verdict=False).video.pix_fmt == pix_fmt
        cut = [r.getMessage() for r in caplog.records if "12-bit" in r.getMessage()]
        if codec == "x264":  # one line, before the run, naming the codecs that keep 12 bits
            assert cut == [f"{src}: the source is 12-bit and x264 writes at most 10 bits, so every sample "
                           "(luma included) is cut to 10 bits; --codec x265 or ffv1 keeps all 12"]
        else:
            assert cut == []


def assert_grey_levels_kept_and_coloured(src: Path, out: Path, frames: slice = slice(None)) -> None:
    """As a player shows them (RGB by the files' own tags), ``out`` has the BT.601 luma of
    ``src``'s ``frames``, up to a codec's loss, and colour."""
    source, output = read_rgb(src)[frames], read_rgb(out)
    assert len(output) == len(source)
    for a, b in zip(source, output):
        shown = ((b > 0) & (b < 255)).all(axis=-1)  # colours beyond RGB are clipped by the player
        assert shown.mean() > 0.5
        error = np.abs(a @ BT601_LUMA - b @ BT601_LUMA)[shown]
        assert error.mean() < 1.5 and error.max() < 8  # the source's grey levels...
        assert np.abs(b[..., 0] - b[..., 2]).mean() > 3  # ...coloured


GBR = {"colorspace": "gbr"}  # how ffmpeg tags RGB (libx264rgb writes it itself)


@pytest.mark.parametrize("pix_fmt, encoder, meta, codec, ext", [
    ("rgb24", "libx264rgb", None, "x264", "mp4"), ("bgr0", "ffv1", GBR, "ffv1", "mkv"),
    ("gbrp10le", "ffv1", None, "x265", "mkv"), ("bgr0", "ffv1", GBR, "prores", "mov")])
def test_rgb_source_keeps_its_grey_levels_and_gets_colour(tmp_path, model_path, pix_fmt, encoder, meta, codec, ext):
    """An RGB film, tagged gbr or untagged, is written as YCbCr 4:4:4 tagged with the matrix
    decode converted it with (not as Y/Cb/Cr planes tagged gbr), so a player shows the
    source's grey levels, coloured."""
    src = make_clip(tmp_path / f"in.{'mp4' if encoder == 'libx264rgb' else 'mkv'}", frames=6, pix_fmt=pix_fmt,
                    codec=encoder, color_meta=meta, content="grey").path
    out = tmp_path / f"out.{ext}"
    run(src, out, model_path, codec=codec, crf=4)  # nearly lossless: the colours are tested, not x264
    video = probe(out, verdict=False).video
    assert video.colorspace == "smpte170m" and video.matrix == probe(src, verdict=False).video.matrix == "bt601"
    assert video.full_range == (codec != "prores")  # ProRes has no full range: its luma is rescaled
    assert_grey_levels_kept_and_coloured(src, out)


@pytest.mark.parametrize("pix_fmt, codec", [("bgr0", "ffv1"), ("yuvj420p", "mjpeg")])
def test_full_range_film_in_avi_ffv1_keeps_its_grey_levels(tmp_path, model_path, pix_fmt, codec):
    """Neither AVI nor FFV1 stores a range, so players read limited range: a full-range source
    (RGB, JPEG range) written there full range came out about 10 code values off; it is now
    rescaled to limited range, as for ProRes."""
    src = make_clip(tmp_path / "in.mkv", frames=4, pix_fmt=pix_fmt, codec=codec, content="grey").path
    out = tmp_path / "out.avi"
    run(src, out, model_path, codec="ffv1")
    assert not probe(out, verdict=False).video.full_range
    assert_grey_levels_kept_and_coloured(src, out)


def test_frame_range_writes_a_video_only_chunk_with_source_timestamps(tmp_path, model_path):
    clip = make_clip(tmp_path / "in.mkv", frames=20, audio="aac", lossless=True, content="grey")
    out = tmp_path / "chunk.mkv"
    run(clip.path, out, model_path, codec="ffv1", frames="5-9")
    planes = read_planes(out)
    assert [p[0] for p in planes] == [p[0] for p in read_planes(clip.path)][5:10]
    assert read_packets(out, "audio") == []
    # An end past the last frame is clamped (farm managers overshoot on the last chunk).
    out2 = tmp_path / "last.mkv"
    run(clip.path, out2, model_path, codec="ffv1", frames="15-99")
    assert len(read_planes(out2)) == 5


def test_interlaced_source_gets_one_hint_and_keeps_its_field_order(tmp_path, model_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=6, field_order=4)  # top field first
    kept = tmp_path / "kept.mkv"
    run(clip.path, kept, model_path)
    hints = [r.getMessage() for r in caplog.records if "--deinterlace" in r.getMessage()]
    assert len(hints) == 1 and "interlaced" in hints[0]
    assert probe(kept, verdict=False).video.field_order == 4
    caplog.clear()
    progressive = tmp_path / "progressive.mkv"
    run(clip.path, progressive, model_path, deinterlace=True)
    assert "--deinterlace" not in caplog.text
    assert not probe(progressive, verdict=False).video.interlaced


class FlickeringGenerator(Generator):
    """A generator whose chroma jumps from call to call, like an unstable per-frame model."""

    def forward(self, luma, *args, **kwargs):
        out = super().forward(luma, *args, **kwargs)
        noise = torch.randn(luma.shape[0], 2, 1, 1) * 0.08
        out["chroma"] = (out["chroma"] + noise).clamp(-0.5, 0.5)
        return out


def _rgb_frames(path: Path) -> list[np.ndarray]:
    frames = []
    for _, y, cb, cr in read_planes(path):
        yuv = cv2.merge([y, cv2.resize(cb, y.shape[::-1]), cv2.resize(cr, y.shape[::-1])])
        frames.append(cv2.cvtColor(yuv, cv2.COLOR_YCrCb2RGB)[..., :].astype(np.float32) / 255.0)
    return frames


def test_smoothing_lowers_flicker(tmp_path):
    torch.manual_seed(1)
    model = FlickeringGenerator(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4).eval()
    src = make_clip(tmp_path / "in.mkv", width=96, height=64, frames=16, lossless=True, content="grey").path
    errors = {}
    for alpha in (0.0, 0.8):
        out = tmp_path / f"out_{alpha}.mkv"
        torch.manual_seed(2)  # the same flicker for both runs
        colorize(ColorizeConfig(input=str(src), output=str(out), render_size=32, smooth=alpha, codec="ffv1",
                                quiet=True, force=True, batch_size="1"), model=model)
        errors[alpha] = warp_error(_rgb_frames(out))
    assert errors[0.8] < 0.5 * errors[0.0], errors


def test_existing_output_and_output_equal_to_input_are_refused(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, content="grey").path
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        run(src, out, model_path)
    assert out.read_bytes() == b"keep me"
    before = src.read_bytes()
    with pytest.raises(OutputError):
        run(src, src, model_path, overwrite=True)
    assert src.read_bytes() == before
    run(src, out, model_path, overwrite=True)
    assert out.stat().st_size > 100


def test_colour_input_needs_force(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, content="colour").path
    with pytest.raises(UsageError, match="--force"):
        run(src, tmp_path / "out.mp4", model_path, force=False)
    assert not (tmp_path / "out.mp4").exists()


def test_failure_mid_run_leaves_no_file(tmp_path, model_path, monkeypatch):
    src = make_clip(tmp_path / "in.mkv", frames=12, content="grey").path
    out = tmp_path / "out.mkv"
    import vidcolor.pipeline.run as run_module

    calls = {"n": 0}
    real = run_module.chroma_to_planes

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "chroma_to_planes", failing)
    with pytest.raises(OSError):
        run(src, out, model_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def _wait_for_partial(folder: Path, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if any(".partial" in p.name for p in folder.iterdir()):
            return
        time.sleep(0.05)
    raise AssertionError("the run never started writing")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_killed_run_leaves_nothing_under_the_final_name(tmp_path, model_path, sig, code):
    # Long enough (several seconds) that the signal always lands mid-run, even on a fast machine.
    src = make_clip(tmp_path / "in.mkv", width=160, height=96, frames=600, content="grey").path
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "film.mkv"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "colorize", str(src), "-o", str(out), "--model", model_path,
         "--render-size", "32", "--quiet", "--batch-size", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a test runner started in the background (``cmd &`` in a script)
        # ignores SIGINT, children inherit that, and Python then never raises KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )
    _wait_for_partial(out_dir)
    time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert not out.exists()
    if sig != signal.SIGKILL:  # a clean stop also removes the temporary file
        assert list(out_dir.iterdir()) == []
        assert "Traceback" not in err and err.strip().startswith("vidcolor: error:")


def test_cli_colorize_and_probe(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mp4", frames=8, audio="aac", content="grey").path
    runner = CliRunner()
    result = runner.invoke(main, ["probe", str(src)])
    assert result.exit_code == 0, result.output
    assert "verdict: grey" in result.output and "25 fps" in result.output
    out = tmp_path / "out.mp4"
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(main, ["colorize", str(src), "-o", str(out), "--model", model_path, "--render-size", "32",
                                  "--preview", str(sheet), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "8 frames" in result.output
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] > 480  # input beside output


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["colorize", "/nonexistent/film.mp4", "-o", "x.mp4"], 3, "does not exist"),
        (["probe", "/nonexistent/film.mp4"], 3, "does not exist"),
        (["colorize", "{src}", "-o", "{tmp}/o.mp4", "--render-size", "50"], 2, "render-size"),
        (["colorize", "{src}", "-o", "{tmp}/o.mp4", "--smooth", "1.5"], 2, "smooth"),
        (["colorize", "{src}", "-o", "{tmp}/o.mp4", "--frames", "9-3"], 2, "frame"),
        (["colorize", "{src}", "-o", "{tmp}/missing/o.mp4"], 4, "does not exist"),
        (["colorize", "{src}", "-o", "{tmp}/o.mp4", "--model", "{tmp}/nomodel.json"], 5, "not found"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, model_path, args, code, needle):
    src = make_clip(tmp_path / "in.mp4", frames=4, content="grey").path
    args = [a.format(src=src, tmp=tmp_path) for a in args]
    if args[0] == "colorize" and "--model" not in args:
        args += ["--model", model_path]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("vidcolor: error:"), result.output
    assert needle in lines[0]


def test_still_image_keeps_size_and_luma(tmp_path, model_path):
    rng = np.random.default_rng(0)
    grey = (np.add.outer(np.arange(61), np.arange(83)) * 1.5 % 255).astype(np.uint8)
    grey = np.clip(grey.astype(int) + rng.integers(-5, 5, grey.shape), 0, 255).astype(np.uint8)
    src = tmp_path / "old photo é.png"  # spaces and non-ASCII in the name
    cv2.imencode(".png", grey)[1].tofile(str(src))
    out = tmp_path / "colour.png"
    report = colorize(ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, quiet=True))
    assert report.frames == 1
    rgb = cv2.imread(str(out))[..., ::-1].astype(np.float32)
    assert rgb.shape[:2] == grey.shape
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(luma - grey).max() <= 2.0  # luma kept up to RGB rounding
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 3  # and it has colour


def test_sideways_stored_photo_comes_out_upright(tmp_path, model_path):
    """A phone photo stored sideways with an EXIF Orientation tag came out sideways (the tag
    was ignored, and the output carries none): it now comes out as viewers show the input."""
    from tests.media import write_oriented_image

    upright = (np.add.outer(np.arange(30), np.arange(48) * 3) % 255).astype(np.uint8)  # 48 wide, 30 high
    src = tmp_path / "phone.jpg"
    write_oriented_image(src, np.dstack([np.rot90(upright)] * 3), orientation=6)  # stored turned left
    out = tmp_path / "phone_colour.png"
    colorize(ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, quiet=True))
    rgb = cv2.imread(str(out))[..., ::-1].astype(np.float32)
    assert rgb.shape[:2] == upright.shape
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(luma - upright).mean() < 3.0  # the picture upright (JPEG loses a little)


def test_still_keeps_its_bit_depth_and_transparency(tmp_path, model_path, caplog):
    """A 16-bit scan comes out 16-bit with its luma to within a 16-bit step or two; a grey
    cut-out with alpha keeps the alpha; where the output type cannot store either, a warning says so."""
    ramp = (np.add.outer(np.arange(40), np.arange(56)) * 700 + 3000).astype(np.uint16)
    src16 = tmp_path / "scan16.png"
    cv2.imwrite(str(src16), ramp)
    out16 = tmp_path / "scan16_colour.png"
    colorize(ColorizeConfig(input=str(src16), output=str(out16), model=model_path, render_size=32, quiet=True))
    written = cv2.imread(str(out16), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    rgb = written[..., ::-1].astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - ramp).max() <= 2.0  # in 16-bit steps: the 8-bit path was off by up to 128
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 3 * 257

    alpha = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))
    cutout = tmp_path / "cutout.png"
    cv2.imwrite(str(cutout), np.dstack([np.full((24, 32, 3), 90, np.uint8), alpha]))  # grey BGRA
    for out, alpha_kept in ((tmp_path / "cutout_colour.png", True), (tmp_path / "cutout_colour.jpg", False)):
        with caplog.at_level("WARNING", logger="vidcolor"):
            colorize(ColorizeConfig(input=str(cutout), output=str(out), model=model_path, render_size=32, quiet=True))
        written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        if alpha_kept:
            assert written.shape[2] == 4 and np.array_equal(written[..., 3], alpha)
        else:
            assert written.shape[2] == 3 and "stores no transparency; the source's alpha is dropped" in caplog.text


@pytest.mark.parametrize("codec, pix_fmt, ext, bits", [("dpx", "gbrp10le", "dpx", 16), ("dpx", "gray16le", "dpx", 16),
                                                       ("targa", "gray", "tga", 8)])
def test_film_scans_opencv_cannot_read_are_stills(tmp_path, model_path, codec, pix_fmt, ext, bits):
    """DPX (the film-scan format) and Targa were taken for one-frame videos (written as .mkv,
    and `-o scan.png` refused); they are stills, read through FFmpeg, 16-bit kept."""
    from vidcolor.commands.common import default_output

    ramp = np.add.outer(np.arange(48), np.arange(64)).astype(np.float64) / 110  # 0..1
    src = tmp_path / f"scan.{ext}"
    with av.open(str(src), "w", format="image2") as container:
        stream = container.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        if pix_fmt == "gbrp10le":
            plane = (ramp * 1023).round().astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(np.stack([plane] * 3, axis=-1), format="gbrp10le")
        else:
            top = 65535 if pix_fmt == "gray16le" else 255
            frame = av.VideoFrame.from_ndarray((ramp * top).round().astype(np.uint16 if top > 255 else np.uint8),
                                               format=pix_fmt)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    out = Path(default_output(str(src)))
    assert out.name == "scan_colour.png"
    report = colorize(ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, quiet=True))
    assert report.frames == 1
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    top = (1 << bits) - 1
    assert written.dtype == (np.uint16 if bits == 16 else np.uint8) and written.shape == (48, 64, 3)
    luma = written[..., ::-1].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / top
    assert np.abs(luma - ramp).max() < 3 / 255  # the scan's grey levels
    assert np.abs(written[..., 2].astype(float) - written[..., 0]).mean() > 2 * top / 255  # coloured


def test_python_api_matches_cli(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mkv", frames=6, lossless=True, content="grey").path
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    report = colorize_video(src, a, model=model_path_to_generator(model_path), render_size=32, codec="ffv1", quiet=True)
    assert report.frames == 6 and report.output == str(a)
    result = CliRunner().invoke(main, ["colorize", str(src), "-o", str(b), "--model", model_path,
                                       "--render-size", "32", "--codec", "ffv1", "--quiet"])
    assert result.exit_code == 0, result.output
    for pa, pb in zip(read_planes(a), read_planes(b)):
        assert all(np.array_equal(x, y) for x, y in zip(pa[1:], pb[1:]))
    with pytest.raises(UsageError):
        colorize_video(src, tmp_path / "c.mkv", not_an_option=1)


def model_path_to_generator(path: str) -> Generator:
    from vidcolor.models.weights import load_generator

    return load_generator(path)[0]


def test_unreadable_inputs_give_input_errors(tmp_path, model_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError):
        run(text, tmp_path / "o.mp4", model_path)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("depth,full_range,matrix,shift", [(8, False, "bt709", (1, 1)), (10, False, "bt2020", (1, 0)),
                                                           (8, True, "bt601", (0, 0))])
def test_chroma_planes_scaled_before_upsampling_match_scaling_after(depth, full_range, matrix, shift):
    """The fast path (matrix and code scaling at render size) writes what scaling at full size would."""
    from vidcolor.color import chroma_unit_to_codes, convert_chroma
    from vidcolor.io.encode import OutputFormat
    from vidcolor.pipeline.batch import upsample_chroma
    from vidcolor.pipeline.planes import MODEL_MATRIX, chroma_to_planes

    rng = np.random.default_rng(1)
    chroma = cv2.GaussianBlur(rng.normal(0, 0.2, (48, 80, 2)).astype(np.float32), (7, 7), 2).transpose(2, 0, 1).copy()
    chroma[:, :6, :6] = 0.8  # beyond the code range: clipping must happen after upsampling
    fmt = OutputFormat("x", depth, shift, 250, 151, full_range, matrix)  # odd height: chroma size rounds up
    cb, cr = chroma_to_planes(chroma, fmt)
    ch, cw = fmt.chroma_size
    up = torch.from_numpy(upsample_chroma(chroma, (ch, cw)))
    expected = chroma_unit_to_codes(convert_chroma(torch.zeros(1, ch, cw), up, MODEL_MATRIX, matrix), depth, full_range)
    got = np.stack([cb, cr]).astype(np.int64)
    assert cb.dtype == fmt.dtype and cb.shape == (ch, cw)
    diff = np.abs(got - expected.numpy().astype(np.int64))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding at .5 boundaries only
    assert got.max() == expected.numpy().max()  # clipped to the same top code
