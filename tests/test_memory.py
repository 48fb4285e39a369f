"""Memory stays flat over a long run: the stages hold a bounded number of frames, whatever
the film's length. RSS is read from /proc after the 200th and the 2000th frame written.

The clip is written frame by frame (never held whole in memory), so the heap the run starts
with has no freed room in which a leak could hide; a second run that deliberately keeps every
written frame shows that the check would catch a real leak.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from tests.test_pipeline import tiny_generator
from vidcolor.config import ColorizeConfig
from vidcolor.io.encode import OutputWriter
from vidcolor.models.weights import save_generator
from vidcolor.pipeline.run import colorize

FRAMES = 2200
SAMPLE_AT = (200, 2000)
WIDTH, HEIGHT = 256, 192  # big enough that keeping every frame would show
# What keeping every frame written between the two samples would cost (4:2:0 planes).
LEAK_KIB = (SAMPLE_AT[1] - SAMPLE_AT[0]) * WIDTH * HEIGHT * 3 // 2 // 1024

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self/status").exists(),
                       reason="reads RSS from /proc"),
]


def rss_kib() -> int:
    """Resident set size of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def release_free_memory() -> None:
    """Hand freed heap back to the system (glibc), so earlier tests' garbage cannot hide a leak."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def write_long_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A grey film with grain-like texture panning across, encoded as it is made."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((height, 2 * width)) * 160 + 48).astype(np.uint8), (5, 5), 0)
    neutral = np.full((height // 2, width), 128, np.uint8)  # the two chroma planes of 4:2:0, stacked
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 50
        for i in range(frames):
            x = (2 * i) % width
            frame = av.VideoFrame.from_ndarray(np.concatenate((texture[:, x:x + width], neutral)), format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("long")
    save_generator(tiny_generator(), folder / "tiny", {"note": "test model"})
    return write_long_clip(folder / "long.mkv", FRAMES, WIDTH, HEIGHT), str(folder / "tiny.json")


def rss_during_run(long_clip, out: Path, monkeypatch, keep_frames: bool) -> dict[int, int]:
    """Colorize the long clip in-process, sampling RSS as frames are written."""
    src, model = long_clip
    samples: dict[int, int] = {}
    kept: list = []
    real_write = OutputWriter.write

    def write(self, y, cb, cr, pts, duration=None):
        real_write(self, y, cb, cr, pts, duration)
        if keep_frames:
            kept.append((y, cb, cr))
        if self.frames_written in SAMPLE_AT:
            samples[self.frames_written] = rss_kib()

    monkeypatch.setattr(OutputWriter, "write", write)
    release_free_memory()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and kind to a busy CI machine
    try:
        report = colorize(ColorizeConfig(input=str(src), output=str(out), model=model, render_size=32, codec="ffv1",
                                         batch_size="16", quiet=True, force=True))
    finally:
        torch.set_num_threads(threads)
    assert report.frames == FRAMES
    return samples


def test_rss_after_2000_frames_is_within_10_percent_of_rss_after_200(tmp_path, long_clip, monkeypatch):
    samples = rss_during_run(long_clip, tmp_path / "long_colour.mkv", monkeypatch, keep_frames=False)
    early, late = samples[SAMPLE_AT[0]], samples[SAMPLE_AT[1]]
    message = f"RSS {early} KiB after {SAMPLE_AT[0]} frames, {late} KiB after {SAMPLE_AT[1]}"
    assert abs(late - early) <= 0.10 * early, message
    # Also in absolute terms, since a big process (the whole suite) dilutes a percentage.
    assert late - early < LEAK_KIB // 4, message


def test_the_check_catches_a_leak(tmp_path, long_clip, monkeypatch):
    """The same run keeping every written frame shows most of those frames in RSS: the
    measurement sees a leak of that size (alone, this process grows by far more than 10%)."""
    samples = rss_during_run(long_clip, tmp_path / "leaky.mkv", monkeypatch, keep_frames=True)
    early, late = samples[SAMPLE_AT[0]], samples[SAMPLE_AT[1]]
    assert late - early > LEAK_KIB // 2, f"RSS {early} KiB after {SAMPLE_AT[0]} frames, {late} KiB after {SAMPLE_AT[1]}"
