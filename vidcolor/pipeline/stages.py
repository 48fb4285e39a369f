"""The threads of a video run and the queues between them.

    decode ──► batch + generate ──► after the model ──► (the calling thread: encode)
    (thread)   (thread)             (thread: smooth, reference, style)

Stages talk through bounded queues, so decode, compute and encode overlap and memory stays
flat however long the film. Any stage's error, Ctrl-C or SIGTERM stops every stage.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from vidcolor.io.decode import DecodeStats, Frame, iter_frames
from vidcolor.pipeline.after_model import AfterModel
from vidcolor.pipeline.batch import LumaResizer, luma_to_unit, make_batch
from vidcolor.pipeline.generate import ChromaGenerator, Pending
from vidcolor.pipeline.hint_windows import HintReader
from vidcolor.pipeline.video_plan import VideoPlan

QUEUE_FRAMES = 16  # frames buffered between two stages
END = object()  # end-of-stream marker passed down the queues


class Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was interrupted."""


class Stages:
    """Threads joined by bounded queues, with one stop flag for all of them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Start ``target(*args)`` in a thread; its exception stops every stage."""

        def guarded() -> None:
            try:
                target(*args)
            except Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                self.errors.append(exc)
                self.stop.set()

        thread = threading.Thread(target=guarded, name=f"vidcolor-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def put(self, q: queue.Queue, item: Any) -> None:
        """Put with back-pressure, giving up when the run stops."""
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        """Get, giving up when the run stops."""
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def drain(self, q: queue.Queue) -> Iterator[Any]:
        """Items of ``q`` until the end marker."""
        while (item := self.get(q)) is not END:
            yield item

    def close(self) -> None:
        """Stop every stage and wait for its thread; re-raise the first stage error."""
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]


def decode_stage(stages: Stages, source: str, plan: VideoPlan, deinterlace: bool, stats: DecodeStats,
                 out: queue.Queue) -> None:
    """Decode the plan's frames (warm-up frames included) into ``out``.

    Args:
        stages: the run's stages.
        source: the input video.
        plan: the run's plan.
        deinterlace: deinterlace while decoding.
        stats: the decoder's damage counts, filled in.
        out: the queue to the generate stage.
    """
    for frame in iter_frames(source, plan.info, plan.decode_start, plan.end, deinterlace, stats):
        stages.put(out, frame)
    stages.put(out, END)


def luma_on_device(generator: ChromaGenerator, plan: VideoPlan) -> LumaResizer | None:
    """The resizer that makes render-size luma on the model's device, where that pays: on CUDA,
    for videos larger than the render size (None: the host resizes, ``luma_to_unit``).

    Args:
        generator: the run's generator.
        plan: the run's plan.

    Returns:
        A ``LumaResizer`` or None.
    """
    video = plan.info.video
    size = (video.height, video.width)
    if not (generator.cuda and LumaResizer.applies(size, plan.render)):
        return None
    return LumaResizer(size, plan.render, video.bit_depth, video.full_range, generator.device)


def generate_stage(stages: Stages, plan: VideoPlan, generator: ChromaGenerator, hints: HintReader,
                   resizer: LumaResizer | None, inq: queue.Queue, out: queue.Queue) -> None:
    """Batch decoded frames and run the model; ``(frame, render-size luma, chroma)`` into ``out``.

    Args:
        stages: the run's stages.
        plan: the run's plan (render size, batch size).
        generator: the model, wrapped for batches and CUDA streams.
        hints: this stage's reader of the reference hints.
        resizer: makes render-size luma on the model's device (``luma_on_device``), or None.
        inq: decoded frames.
        out: the queue to the after-model stage.
    """
    video = plan.info.video
    pin = generator.cuda
    pending: Pending | None = None

    def emit(p: Pending) -> None:
        batch, chroma = p.result()
        lumas = batch.luma.numpy()
        for i, (frame, c) in enumerate(zip(batch.items, chroma)):
            stages.put(out, (frame, lumas[i, 0], c))

    items: list[Frame] = []
    lumas: list[np.ndarray] = []
    frames = stages.drain(inq)
    while True:
        frame = next(frames, None)
        if frame is not None:
            items.append(frame)
            if resizer is None:
                lumas.append(luma_to_unit(frame.y, video.bit_depth, video.full_range, plan.render))
        if items and (len(items) == plan.batch_size or frame is None):
            codes = [f.y for f in items] if resizer is not None else None
            batch = make_batch(items, lumas, [hints.get(f.index) for f in items], pin, codes, plan.render)
            submitted = generator.submit(batch, resizer)
            if pending is not None:
                emit(pending)  # the previous batch's copy-out overlapped this batch's compute
            pending, items, lumas = submitted, [], []
        if frame is None:
            break
    if pending is not None:
        emit(pending)
    stages.put(out, END)


def after_model_stage(stages: Stages, plan: VideoPlan, after: AfterModel, hints: HintReader,
                      inq: queue.Queue, out: queue.Queue) -> None:
    """Run the after-model chain on each frame in order; only the range's frames go on.

    Args:
        stages: the run's stages.
        plan: the run's plan (where the warm-up ends).
        after: the chain (smooth, reference, style).
        hints: this stage's reader of the reference hints.
        inq: the generate stage's frames.
        out: the queue to the encoder.
    """
    for frame, luma, chroma in stages.drain(inq):
        finished = after(luma, chroma, hints.get(frame.index))
        if frame.index >= plan.start:  # warm-up frames only prime the smoother
            stages.put(out, (frame, luma, finished))
    stages.put(out, END)
