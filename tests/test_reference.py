"""Reference colours: a hand-coloured frame steers its shot, and a cut ends its reach."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from tests.media import read_planes
from tests.test_pipeline import tiny_generator
from vidcolor.cli import main
from vidcolor.config import ColorizeConfig
from vidcolor.errors import InputError, UsageError
from vidcolor.models.weights import save_generator
from vidcolor.pipeline.reference import MAX_REACH, Reference, parse_reference, reach
from vidcolor.pipeline.run import colorize

W, H = 96, 64


def scene(seed: int) -> np.ndarray:
    """A colourful textured RGB image (uint8)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    img = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-6, 7, (H, W, 1))
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def write_clip(path: Path, images: list[np.ndarray]) -> None:
    """Lossless yuv444p clip of the given RGB images (so the truth's chroma is exact)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv444p")
            frame.pts = i
            frame.time_base = Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def chroma_error(out: Path, src: Path, frames: slice) -> float:
    errs = [np.abs(o[2].astype(int) - s[2].astype(int)).mean() + np.abs(o[3].astype(int) - s[3].astype(int)).mean()
            for o, s in list(zip(read_planes(out), read_planes(src)))[frames]]
    return float(np.mean(errs)) / 2


def chroma_planes(path: Path) -> list[np.ndarray]:
    return [np.stack((cb, cr)).astype(np.int32) for _, _, cb, cr in read_planes(path)]


def run(src, out, refs=(), render_size=32, **kw):
    colorize(ColorizeConfig(input=str(src), output=str(out), render_size=render_size, codec="ffv1", quiet=True, force=True,
                            references=tuple(refs), **kw), model=tiny_generator())


def test_parse_reference():
    assert parse_reference("shot.png@120").frame == 120
    assert parse_reference("shot.png") == parse_reference("shot.png@0")
    assert parse_reference("my@file.png").path == "my@file.png"
    with pytest.raises(UsageError):
        parse_reference("shot.png@twelve")


def test_reference_equal_to_truth_reproduces_its_chroma(tmp_path):
    truth = scene(0)
    src = tmp_path / "static.mkv"
    write_clip(src, [truth] * 10)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.resize(truth, (2 * W, 2 * H))[..., ::-1])  # a bigger reference is resized
    run(src, tmp_path / "auto.mkv", render_size=64)
    run(src, tmp_path / "guided.mkv", [f"{ref}@0"], render_size=64)
    # The reference frame itself comes out within a few code values of the truth...
    assert chroma_error(tmp_path / "guided.mkv", src, slice(0, 1)) < 4.0
    # ...and the whole shot stays far closer to it than the automatic result, fading slowly
    # with distance (this test model ignores hints, so only the propagated reference helps).
    for i in range(10):
        guided = chroma_error(tmp_path / "guided.mkv", src, slice(i, i + 1))
        assert guided < 0.25 * chroma_error(tmp_path / "auto.mkv", src, slice(i, i + 1)), (i, guided)


def test_reference_reach_ends_at_a_scene_cut(tmp_path):
    a, b = scene(1), scene(2)
    src = tmp_path / "cut.mkv"
    write_clip(src, [a] * 8 + [b] * 8)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), a[..., ::-1])
    run(src, tmp_path / "auto.mkv")
    run(src, tmp_path / "guided.mkv", [f"{ref}@0"])
    auto, guided = read_planes(tmp_path / "auto.mkv"), read_planes(tmp_path / "guided.mkv")
    assert chroma_error(tmp_path / "guided.mkv", src, slice(0, 8)) < 0.3 * chroma_error(tmp_path / "auto.mkv", src, slice(0, 8))
    for (_, _, cb0, cr0), (_, _, cb1, cr1) in list(zip(auto, guided))[8:]:
        assert np.array_equal(cb0, cb1) and np.array_equal(cr0, cr1)


def test_several_references_and_a_backward_reach(tmp_path):
    a, b = scene(3), scene(4)
    src = tmp_path / "two.mkv"
    write_clip(src, [a] * 6 + [b] * 6)
    ra, rb = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(ra), a[..., ::-1])
    cv2.imwrite(str(rb), b[..., ::-1])
    run(src, tmp_path / "auto.mkv")
    run(src, tmp_path / "guided.mkv", [f"{ra}@5", f"{rb}@11"])  # each reaches back to its shot's start
    for shot in (slice(0, 6), slice(6, 12)):
        assert chroma_error(tmp_path / "guided.mkv", src, shot) < 0.25 * chroma_error(tmp_path / "auto.mkv", src, shot)


def test_bad_references_are_refused_before_any_work(tmp_path):
    src = tmp_path / "c.mkv"
    write_clip(src, [scene(0)] * 4)
    model = tmp_path / "m"
    save_generator(tiny_generator(), model)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for ref, code in ((tmp_path / "missing.png", 3), (text, 3)):
        result = CliRunner().invoke(main, ["colorize", str(src), "-o", str(tmp_path / "o.mkv"), "--force", "--model",
                                           str(model) + ".json", "--render-size", "32", "--reference", f"{ref}@0"])
        assert result.exit_code == code, result.output
        assert result.output.strip().startswith("vidcolor: error: reference") and str(ref) in result.output
        assert not (tmp_path / "o.mkv").exists()
    with pytest.raises(UsageError, match="only 4 frames"):
        run(src, tmp_path / "o.mkv", [f"{text}@40"])
    with pytest.raises(InputError):
        run(src, tmp_path / "o.mkv", [str(text)])


def test_reach_reads_past_a_range_only_for_a_reference_within_reach():
    assert reach([Reference("r.png", 10)], 0, 25) == set(range(0, 26))  # inside: nothing more
    assert reach([Reference("r.png", 30)], 0, 25) == set(range(0, 31))  # after the end: up to it
    assert reach([Reference("r.png", 3)], 20, 40) == set(range(3, 41))  # before the start: from it
    assert reach([Reference("r.png", 25 + MAX_REACH + 1)], 0, 25) == set()  # out of reach: nothing
    assert max(reach([Reference("r.png", 25 + MAX_REACH)], 0, 25)) == 25 + MAX_REACH


@pytest.mark.parametrize("frames", ["0-7", "8-15", "16-23"])
def test_frame_range_gets_the_colours_of_references_outside_it(tmp_path, frames):
    """A chunk carries in references after its end and before its warm-up, as a whole run does.

    One panning shot with references at frames 2 and 21; with smoothing 0.5 a chunk decodes 9
    warm-up frames. Chunk 0-7 has frame 21 past its end; chunk 16-23 starts its warm-up at 7,
    after frame 2. Both used to get no hint from those references (chroma off by tens of codes).
    """
    base = scene(5)
    images = [np.roll(base, i, axis=1) for i in range(24)]
    src = tmp_path / "pan.mkv"
    write_clip(src, images)
    refs = []
    for frame in (2, 21):
        path = tmp_path / f"ref{frame}.png"
        cv2.imwrite(str(path), images[frame][..., ::-1])
        refs.append(f"{path}@{frame}")
    run(src, tmp_path / "whole.mkv", refs, smooth=0.5)
    run(src, tmp_path / "chunk.mkv", refs, smooth=0.5, frames=frames)
    start, end = (int(x) for x in frames.split("-"))
    whole, chunk = chroma_planes(tmp_path / "whole.mkv")[start:end + 1], chroma_planes(tmp_path / "chunk.mkv")
    assert len(chunk) == end - start + 1
    worst = max(int(np.abs(a - b).max()) for a, b in zip(whole, chunk))
    assert worst <= 1, (frames, worst)  # the README's promise: within one code value of a single run
