"""The generate stage: run the generator on batches, on the CPU or on a CUDA device.

On CUDA, host-to-device and device-to-host copies run on two side streams (one each way: a
stream runs its work in order, so an upload queued behind the last batch's download would wait
for that batch's forward pass) and are ordered with events, so the copy of batch k+1 overlaps
the forward pass of batch k without synchronising the whole device; the forward pass runs
under autocast, and the luma is resized to render size there (``LumaResizer``) rather than on
the host. An out-of-memory error halves the batch and retries instead of ending the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidcolor.devices import is_out_of_memory
from vidcolor.errors import ModelError
from vidcolor.models.generator import Generator
from vidcolor.pipeline.batch import Batch, LumaResizer

log = logging.getLogger("vidcolor")


@dataclass
class Pending:
    """A batch whose chroma is on its way back to the host."""

    batch: Batch
    chroma: torch.Tensor  # [N, C, h, w] float32 on the host: 2 chroma channels, or 4/6 coefficient maps with maps=True
    event: Any = None  # torch.cuda.Event on CUDA, None on the CPU
    luma: torch.Tensor | None = None  # render-size luma made on the device, copied back with the chroma

    def result(self) -> tuple[Batch, np.ndarray]:
        """Wait for the copy and return (batch, chroma as a ``(N, C, h, w)`` array); a batch
        sent as full-size codes has its render-size ``luma`` filled in."""
        if self.event is not None:
            self.event.synchronize()
        if self.luma is not None:
            self.batch.luma = self.luma
        return self.batch, self.chroma.numpy()


# --batch-size auto on the CPU: enough frames to keep the generator busy without holding
# frames back from x264 (the batch the CPU throughput figures are measured with).
CPU_AUTO_BATCH = 8
# --batch-size auto on CUDA: at most this many frames per call (past it a bigger batch buys no
# speed at render sizes of a few hundred pixels, only memory), using at most this share of
# the free device memory.
AUTO_BATCH_CAP = 64
AUTO_BATCH_MEMORY_SHARE = 0.5


def batch_that_fits(free_bytes: int, base_bytes: int, per_frame_bytes: int, cap: int = AUTO_BATCH_CAP,
                    share: float = AUTO_BATCH_MEMORY_SHARE) -> int:
    """The largest batch whose forward pass fits in a share of the free device memory.

    Args:
        free_bytes: free device memory now.
        base_bytes: memory a forward pass needs whatever the batch (weights' workspace).
        per_frame_bytes: extra memory per frame of the batch.
        cap: the largest batch worth running.
        share: the share of ``free_bytes`` the forward pass may use (the rest is headroom for
            the copies in flight and other processes).

    Returns:
        A batch size between 1 and ``cap``.
    """
    room = free_bytes * share - base_bytes
    if per_frame_bytes <= 0:
        return cap
    return int(max(1, min(cap, room // per_frame_bytes)))


def _pad_batch(t: torch.Tensor, size: int) -> torch.Tensor:
    """``t`` with its last item repeated until it holds ``size`` items."""
    return torch.cat([t, t[-1:].expand(size - t.shape[0], *t.shape[1:])])


class ChromaGenerator:
    """Runs the generator on batches: its chroma head (colorize mode) or RGB head (style mode).

    Args:
        model: the generator.
        device: where to run it.
        style: [num_styles] style mixing weights (None: natural colour).
        autocast: use fp16 (CUDA) for the forward pass; checked to stay within one code value.
        head: "chroma" (2 channels out) or "rgb" (3 channels out).
        maps: return the head's per-pixel coefficient maps (4 or 6 channels, see
            ``Generator.coefficient_maps``) instead of its output: style mode smooths those.
        compile: run the model through ``torch.compile`` (one graph per batch shape: short
            batches are padded to the run's batch size). If compiling fails, for example on a
            node without a C compiler, the run goes on uncompiled with a warning.
    """

    def __init__(self, model: Generator, device: torch.device, style: torch.Tensor | None = None, autocast: bool = True,
                 head: str = "chroma", maps: bool = False, compile: bool = False):
        assert head in ("chroma", "rgb"), f"unknown head {head!r}"
        self.head = head
        self.maps = maps
        # Channels-last: the convolutions' fast layout on the CPU (oneDNN, about 27% faster
        # here) and on CUDA tensor cores; the model's results do not depend on it.
        model = model.to(device).eval()
        if isinstance(model, Generator):  # folded batch norms (stand-in modules in tests have none)
            model = model.for_inference()
        self.model = model.to(memory_format=torch.channels_last)
        self.device = device
        self.cuda = device.type == "cuda"
        self.autocast = autocast and self.cuda
        self.style = None if style is None else style.to(device)
        self.upload_stream = torch.cuda.Stream(device) if self.cuda else None
        self.download_stream = torch.cuda.Stream(device) if self.cuda else None
        self.max_batch: int | None = None  # lowered after an out-of-memory error
        self.frame_bytes: float | None = None  # device memory a frame of a batch costs (auto_batch_size)
        self._eager = self.model.coefficient_maps if maps else self.model
        self._run = torch.compile(self._eager, dynamic=False) if compile else self._eager
        self.compiled = compile
        self._compile_checked = not compile  # True once a compiled call has succeeded
        self._graph_batch = 0  # the batch size the compiled graph was made for

    def _call_model(self, *args: Any, **kwargs: Any) -> dict:
        """The model (compiled or not); a compiled call for a new batch size (the first, or the
        first after an out-of-memory back-off) falls back to eager on failure."""
        if self._compile_checked:
            return self._run(*args, **kwargs)
        try:
            out = self._run(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager model still works
            if is_out_of_memory(exc):
                raise  # the batch is too big, not the compiler at fault: _forward_split backs off
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            log.warning("torch.compile failed (%s: %s); running the model uncompiled", type(exc).__name__, reason[:200])
            self._run, self.compiled = self._eager, False
            out = self._run(*args, **kwargs)
        self._compile_checked = True
        return out

    def _forward(self, luma: torch.Tensor, hint_chroma: torch.Tensor | None, hint_mask: torch.Tensor | None,
                 eager: bool = False) -> torch.Tensor:
        n = luma.shape[0]
        compiled = self.compiled and not eager
        if compiled:
            # A compiled graph is specialised to its batch size: pad a short batch (the last of
            # a run) with copies of its last frame instead of compiling another graph.
            self._graph_batch = max(self._graph_batch, n)
            if n < self._graph_batch:
                luma, hint_chroma, hint_mask = (None if t is None else _pad_batch(t, self._graph_batch)
                                                for t in (luma, hint_chroma, hint_mask))
            # The graph also assumes its inputs' strides: give every batch the same plain layout
            # (a stacked or padded batch may differ in the stride of a size-1 dimension).
            luma, hint_chroma, hint_mask = (None if t is None else t.clone(memory_format=torch.contiguous_format)
                                            for t in (luma, hint_chroma, hint_mask))
        style = None if self.style is None else self.style.expand(luma.shape[0], -1)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
            run = self._call_model if compiled else self._eager
            out = run(luma, hint_chroma, hint_mask, style=style, heads=(self.head,))[self.head]
            return out[:n].float().contiguous()  # plain layout for numpy and OpenCV downstream

    def _forward_split(self, luma, hint_chroma, hint_mask) -> torch.Tensor:
        """Forward in slices of at most ``max_batch``, halving it on out-of-memory errors."""
        n = luma.shape[0]
        while True:
            step = min(self.max_batch or n, n)
            try:
                parts = []
                for i in range(0, n, step):
                    sl = slice(i, i + step)
                    parts.append(self._forward(luma[sl], None if hint_chroma is None else hint_chroma[sl],
                                               None if hint_mask is None else hint_mask[sl]))
                return torch.cat(parts) if len(parts) > 1 else parts[0]
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                if step <= 1:
                    raise ModelError("out of memory even with a batch of one frame; lower --render-size or use --device cpu") from None
                self.max_batch = self._graph_batch = step // 2
                # A compiled model is traced again for the smaller batch: let that compile fall
                # back to the plain model too if it fails.
                self._compile_checked = not self.compiled
                log.warning("out of memory with %d frames per batch; continuing with %d", step, self.max_batch)
            # Drop the finished slices and empty the cache here, outside the except block: in
            # it the traceback still holds the failed pass's activations, so less would be freed.
            parts = []
            if self.cuda:
                torch.cuda.empty_cache()

    def auto_batch_size(self, render: tuple[int, int], hints: bool = False) -> int:
        """``--batch-size auto``: ``CPU_AUTO_BATCH`` on the CPU; on CUDA, measure the forward
        pass at 2 and 4 frames and take the largest batch that fits (``batch_that_fits``).

        Args:
            render: (height, width) the model sees.
            hints: whether batches carry reference hints.

        Returns:
            The batch size to use (on CUDA between 1 and ``AUTO_BATCH_CAP``).
        """
        if not self.cuda:
            return CPU_AUTO_BATCH
        peaks = []
        # The 1-frame pass is a warm-up whose peak goes unused: the first matmul allocates
        # cuBLAS's workspace for good, which would count in that pass only (and make a frame's
        # cost, measured from the 2- and 4-frame passes, come out negative).
        for n in (1, 2, 4):
            luma = torch.zeros(n, 1, *render, device=self.device)
            hint_chroma = torch.zeros(n, 2, *render, device=self.device) if hints else None
            hint_mask = torch.zeros(n, 1, *render, device=self.device) if hints else None
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            try:
                self._forward(luma, hint_chroma, hint_mask, eager=True)  # no graphs compiled for these sizes
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                torch.cuda.empty_cache()
                return 1  # ModelError follows from the run itself if even one frame does not fit
            torch.cuda.synchronize(self.device)
            peaks.append(torch.cuda.max_memory_allocated(self.device) - before)
        per_frame = (peaks[2] - peaks[1]) / 2
        self.frame_bytes = per_frame  # kept for logs and tests
        free, _ = torch.cuda.mem_get_info(self.device)
        size = batch_that_fits(free, peaks[1] - 2 * per_frame, per_frame)
        log.info("--batch-size auto: %d frames (%.1f MiB a frame, %.0f MiB free)", size, per_frame / 2**20, free / 2**20)
        return size

    def submit(self, batch: Batch, resizer: LumaResizer | None = None) -> Pending:
        """Start the generator on a batch; call ``result()`` on the returned object to get it.

        Args:
            batch: luma (and hints) at render size, or full-size Y ``codes`` (and hints).
            resizer: makes the luma from ``batch.codes`` on the model's device (needed with codes).

        Returns:
            A ``Pending`` result.
        """
        if batch.codes is not None and resizer is None:
            raise ValueError("a batch of Y codes needs a LumaResizer")
        if not self.cuda:
            luma = batch.luma if batch.codes is None else resizer(batch.codes)
            return Pending(batch, self._forward_split(luma, batch.hint_chroma, batch.hint_mask), luma=luma)
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.upload_stream):
            source = batch.luma if batch.codes is None else batch.codes
            luma = source.to(self.device, non_blocking=True)
            hint_chroma = None if batch.hint_chroma is None else batch.hint_chroma.to(self.device, non_blocking=True)
            hint_mask = None if batch.hint_mask is None else batch.hint_mask.to(self.device, non_blocking=True)
            copied_in = torch.cuda.Event()
            copied_in.record(self.upload_stream)
        main.wait_event(copied_in)
        for t in (luma, hint_chroma, hint_mask):
            if t is not None:
                # Made on the side stream, read on the main one: without this the allocator
                # could hand the memory to the next batch's copy while this forward still reads it.
                t.record_stream(main)
        if batch.codes is not None:
            luma = resizer(luma)
        chroma = self._forward_split(luma, hint_chroma, hint_mask)
        computed = torch.cuda.Event()
        computed.record(main)
        host = torch.empty(chroma.shape, dtype=torch.float32, pin_memory=True)
        host_luma = None if batch.codes is None else torch.empty(luma.shape, dtype=torch.float32, pin_memory=True)
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            host.copy_(chroma, non_blocking=True)
            chroma.record_stream(self.download_stream)  # keep the device buffer alive until copied
            if host_luma is not None:  # the smoother needs the render-size luma on the host
                host_luma.copy_(luma, non_blocking=True)
                luma.record_stream(self.download_stream)
            # Blocking: result() then sleeps until the copy lands instead of spinning a core
            # that x264 and the decoder need.
            done = torch.cuda.Event(blocking=True)
            done.record(self.download_stream)
        return Pending(batch, host, done, host_luma)
