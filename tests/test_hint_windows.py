"""Reference hints built window by window: the whole pass's hints, bounded memory, two threads."""

from __future__ import annotations

import functools
import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.test_reference import chroma_planes, run, scene, write_clip
from vidcolor.errors import InputError
from vidcolor.io.decode import iter_frames
from vidcolor.io.probe import probe
from vidcolor.pipeline import hint_windows, reference
from vidcolor.pipeline.batch import luma_to_unit, render_shape
from vidcolor.pipeline.hint_windows import HintWindows
from vidcolor.pipeline.reference import Reference, ReferenceHints, ReferenceImage, reach

REACH = 12  # MAX_REACH for these tests: shorter than the shots, longer than the windows


@pytest.fixture(autouse=True)
def short_reach(monkeypatch):
    monkeypatch.setattr(reference, "MAX_REACH", REACH)


def shots(lengths: list[int]) -> list[np.ndarray]:
    """RGB frames of shots that each pan across their own scene (a cut between shots)."""
    return [np.roll(scene(10 + s), 2 * i, axis=1) for s, n in enumerate(lengths) for i in range(n)]


def luma_and_chroma(rgb: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    small = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    return ycc[..., 0], np.stack((ycc[..., 2] - 0.5, ycc[..., 1] - 0.5))


def images_for(frames: list[np.ndarray], at: list[int], shape: tuple[int, int]) -> tuple[list[Reference], list]:
    refs = [Reference(f"ref{i}.png", i) for i in at]
    return refs, [ReferenceImage(ref, *luma_and_chroma(frames[ref.frame], shape), None) for ref in refs]


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """Four shots of 15 frames (three cuts), lossless; with its decoded render-size luma."""
    path = tmp_path_factory.mktemp("windows") / "shots.mkv"
    frames = shots([15, 15, 15, 15])
    write_clip(path, frames)
    info = probe(path, verdict=False)
    video = info.video
    shape = render_shape(video.height, video.width, 32)

    def to_luma(y):
        return luma_to_unit(y, video.bit_depth, video.full_range, shape)

    def decode(start, end):
        return iter_frames(path, info, start, end)

    lumas = {f.index: to_luma(f.y) for f in iter_frames(path, info)}
    return SimpleNamespace(frames=frames, shape=shape, decode=decode, to_luma=to_luma, lumas=lumas)


def whole_pass(refs, images, lumas, first, last) -> ReferenceHints:
    """The hints of the pre-pass that windows replace: every reached frame at once."""
    wanted = reach(refs, first, last)
    return ReferenceHints.build(images, {i: lumas[i] for i in wanted}, keep=range(first, last + 1))


def assert_same_hints(got, expected) -> None:
    assert (got is None) == (expected is None)
    if expected is not None:
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


# References inside shots and next to cuts, windows of 5 frames with a 12-frame reach: each
# window carries references in from up to two windows away, on either side.
AT = [2, 9, 14, 16, 27, 33, 44, 52, 59]
SPARSE = [5, 24, 58]  # windows with no reference between windows with one


@pytest.mark.parametrize("at, first, last, window", [(AT, 0, 59, 5), (AT, 21, 40, 5), (AT, 18, 18, 5),
                                                     (AT, 3, 59, 3), (SPARSE, 0, 59, 4), (SPARSE, 13, 50, 7)])
def test_windowed_hints_equal_the_whole_pass(cut_clip, at, first, last, window):
    refs, images = images_for(cut_clip.frames, at, cut_clip.shape)
    expected = whole_pass(refs, images, cut_clip.lumas, first, last)
    assert len(expected) > (last - first + 1) // 3  # the references reach many frames
    windows = HintWindows(refs, images, first, last, cut_clip.decode, cut_clip.to_luma, window=window)
    generate, smooth = windows.reader(), windows.reader()
    for index in range(first, last + 1 + 3):  # the smooth stage lags three frames behind
        if index <= last:
            assert_same_hints(generate.get(index), expected.get(index))
        if index - 3 >= first:
            assert_same_hints(smooth.get(index - 3), expected.get(index - 3))
    windows.close()


def test_a_run_in_small_windows_writes_the_same_film(tmp_path, monkeypatch):
    """Through run.py: both stages read the windows; output bit for bit as with one window."""
    frames = shots([9, 15])
    src = tmp_path / "shots.mkv"
    write_clip(src, frames)
    refs = []
    for at in (4, 13, 22):
        path = tmp_path / f"ref{at}.png"
        cv2.imwrite(str(path), frames[at][..., ::-1])
        refs.append(f"{path}@{at}")
    import vidcolor.pipeline.run as run_module

    for name, window in (("one", 1000), ("small", 4)):
        monkeypatch.setattr(run_module, "HintWindows", functools.partial(HintWindows, window=window))
        run(src, tmp_path / f"{name}.mkv", refs, smooth=0.5)
        run(src, tmp_path / f"{name}_range.mkv", refs, smooth=0.5, frames="15-20")
    for a, b in ((tmp_path / "one.mkv", tmp_path / "small.mkv"), (tmp_path / "one_range.mkv", tmp_path / "small_range.mkv")):
        one, small = chroma_planes(a), chroma_planes(b)
        assert len(one) == len(small) and all(np.array_equal(x, y) for x, y in zip(one, small))


def test_memory_stays_bounded_however_long_the_clip():
    """600 frames, a reference every 7: at most two windows of hints and one window's reach of luma."""
    window, count = 10, 600
    texture = cv2.cvtColor(scene(3), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    lumas = [np.roll(texture, i, axis=1) for i in range(count)]  # pans, never cuts
    refs = [Reference("r.png", f) for f in range(3, count, 7)]
    rng = np.random.default_rng(0)
    images = [ReferenceImage(ref, lumas[ref.frame], rng.uniform(-0.2, 0.2, (2, *texture.shape)).astype(np.float32),
                             None)
              for ref in refs]
    peak = {"hints": 0, "lumas": 0, "decoded": 0}

    def measure():
        held_hints, held_lumas = windows.held()
        peak["hints"], peak["lumas"] = max(peak["hints"], held_hints), max(peak["lumas"], held_lumas)

    def decode(start, end):
        for i in range(start, min(end, count - 1) + 1):
            measure()  # while a window is being built, its luma is at its largest
            peak["decoded"] += 1
            yield SimpleNamespace(index=i, y=lumas[i])

    windows = HintWindows(refs, images, 0, count - 1, decode, lambda y: y, window=window)
    generate, smooth = windows.reader(), windows.reader()
    reached = 0
    for index in range(count + 6):
        if index < count:
            reached += generate.get(index) is not None
        if index >= 6:
            smooth.get(index - 6)
        measure()
    assert reached == count  # every frame got a hint: the bound is not met by doing nothing
    assert peak["decoded"] == count  # one forward pass, no frame decoded twice
    assert peak["hints"] <= 2 * window
    assert peak["lumas"] <= window + 2 * REACH
    windows.close()
    assert windows.held() == (0, 0)


def test_two_threads_read_in_order(cut_clip):
    refs, images = images_for(cut_clip.frames, AT, cut_clip.shape)
    expected = whole_pass(refs, images, cut_clip.lumas, 0, 59)
    windows = HintWindows(refs, images, 0, 59, cut_clip.decode, cut_clip.to_luma, window=4)
    readers = [windows.reader(), windows.reader()]
    got: list[list] = [[], []]
    errors = []

    def read(n: int) -> None:
        try:
            got[n] = [readers[n].get(i) for i in range(60)]
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for hints in got:
        for index, hint in enumerate(hints):
            assert_same_hints(hint, expected.get(index))
    with pytest.raises(RuntimeError, match="in order"):
        readers[0].get(3)  # a window both readers moved past is gone


def test_an_error_building_a_window_reaches_every_reader(cut_clip):
    refs, images = images_for(cut_clip.frames, AT, cut_clip.shape)

    def decode(start, end):
        for frame in cut_clip.decode(start, end):
            if frame.index == 25:
                raise InputError("shots.mkv: damaged at frame 25")
            yield frame

    windows = HintWindows(refs, images, 0, 59, decode, cut_clip.to_luma, window=5)
    generate, smooth = windows.reader(), windows.reader()
    assert generate.get(0) is not None  # window 0-4 reads up to frame 16 (the reference there)
    with pytest.raises(InputError, match="frame 25"):
        generate.get(15)  # window 15-19 reads up to frame 27 (the reference there)
    assert smooth.get(4) is not None  # a window built before the error still serves
    with pytest.raises(InputError, match="frame 25"):
        smooth.get(15)
    windows.close()


def test_no_references_reads_nothing():
    def decode(start, end):
        raise AssertionError("nothing should be decoded without references")

    windows = HintWindows([], [], 0, 99, decode, lambda y: y, window=10)
    reader = windows.reader()
    assert all(reader.get(i) is None for i in range(100))
    assert windows.held() == (0, 0)


def _vidcolor_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vidcolor-")]


@pytest.mark.parametrize("error", [InputError("reference luma: cannot decode"), KeyboardInterrupt()])
def test_a_failing_window_stops_the_run_cleanly(tmp_path, monkeypatch, error):
    """A window built mid-run that fails stops every stage and leaves no file, as any stage error."""
    frames = shots([30])
    src = tmp_path / "pan.mkv"
    write_clip(src, frames)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), frames[0][..., ::-1])
    import vidcolor.pipeline.run as run_module

    monkeypatch.setattr(run_module, "HintWindows", functools.partial(HintWindows, window=6))
    real = hint_windows.ReferenceHints.build
    builds = {"n": 0}

    def failing(*args, **kwargs):
        builds["n"] += 1
        if builds["n"] == 2:  # the second window: the stages are running
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(hint_windows.ReferenceHints, "build", failing)
    out = tmp_path / "out.mkv"
    with pytest.raises(type(error)):
        run(src, out, [f"{ref}@0"])
    assert builds["n"] == 2
    assert _vidcolor_threads() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pan.mkv", "ref.png"]
