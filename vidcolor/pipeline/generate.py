"""The generate stage: run the generator on batches, on the CPU or on a CUDA device.

On CUDA, host-to-device and device-to-host copies run on a side stream and are ordered with
events, so the copy of batch k+1 overlaps the forward pass of batch k without synchronising
the whole device; the forward pass runs under autocast. An out-of-memory error halves the
batch and retries instead of ending the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidcolor.devices import OUT_OF_MEMORY
from vidcolor.errors import ModelError
from vidcolor.models.generator import Generator
from vidcolor.pipeline.batch import Batch

log = logging.getLogger("vidcolor")


@dataclass
class Pending:
    """A batch whose chroma is on its way back to the host."""

    batch: Batch
    chroma: torch.Tensor  # [N, 2, h, w] float32 on the host (filled when ``event`` fires)
    event: Any = None  # torch.cuda.Event on CUDA, None on the CPU

    def result(self) -> tuple[Batch, np.ndarray]:
        """Wait for the copy and return (batch, chroma as a ``(N, 2, h, w)`` array)."""
        if self.event is not None:
            self.event.synchronize()
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
    """

    def __init__(self, model: Generator, device: torch.device, style: torch.Tensor | None = None, autocast: bool = True,
                 head: str = "chroma", maps: bool = False):
        assert head in ("chroma", "rgb"), f"unknown head {head!r}"
        self.head = head
        self.maps = maps
        # Channels-last: the convolutions' fast layout on the CPU (oneDNN, about 27% faster
        # here) and on CUDA tensor cores; the model's results do not depend on it.
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.device = device
        self.cuda = device.type == "cuda"
        self.autocast = autocast and self.cuda
        self.style = None if style is None else style.to(device)
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.max_batch: int | None = None  # lowered after an out-of-memory error

    def _forward(self, luma: torch.Tensor, hint_chroma: torch.Tensor | None, hint_mask: torch.Tensor | None) -> torch.Tensor:
        style = None if self.style is None else self.style.expand(luma.shape[0], -1)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
            run = self.model.coefficient_maps if self.maps else self.model
            out = run(luma, hint_chroma, hint_mask, style=style, heads=(self.head,))[self.head]
            return out.float().contiguous()  # plain layout for numpy and OpenCV downstream

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
            except OUT_OF_MEMORY:
                if self.cuda:
                    torch.cuda.empty_cache()
                if step <= 1:
                    raise ModelError("out of memory even with a batch of one frame; lower --render-size or use --device cpu") from None
                self.max_batch = step // 2
                log.warning("out of memory with %d frames per batch; continuing with %d", step, self.max_batch)

    def auto_batch_size(self, render: tuple[int, int], hints: bool = False) -> int:
        """``--batch-size auto``: ``CPU_AUTO_BATCH`` on the CPU; on CUDA, measure the forward
        pass at 1 and 2 frames and take the largest batch that fits (``batch_that_fits``).

        Args:
            render: (height, width) the model sees.
            hints: whether batches carry reference hints.

        Returns:
            The batch size to use (on CUDA between 1 and ``AUTO_BATCH_CAP``).
        """
        if not self.cuda:
            return CPU_AUTO_BATCH
        peaks = []
        for n in (1, 2):
            luma = torch.zeros(n, 1, *render, device=self.device)
            hint_chroma = torch.zeros(n, 2, *render, device=self.device) if hints else None
            hint_mask = torch.zeros(n, 1, *render, device=self.device) if hints else None
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            try:
                self._forward(luma, hint_chroma, hint_mask)
            except OUT_OF_MEMORY:
                torch.cuda.empty_cache()
                return 1  # ModelError follows from the run itself if even one frame does not fit
            torch.cuda.synchronize(self.device)
            peaks.append(torch.cuda.max_memory_allocated(self.device) - before)
        per_frame = peaks[1] - peaks[0]
        free, _ = torch.cuda.mem_get_info(self.device)
        size = batch_that_fits(free, peaks[0] - per_frame, per_frame)
        log.info("--batch-size auto: %d frames (%.1f MiB a frame, %.0f MiB free)", size, per_frame / 2**20, free / 2**20)
        return size

    def submit(self, batch: Batch) -> Pending:
        """Start the generator on a batch; call ``result()`` on the returned object to get it.

        Args:
            batch: luma (and hints) at render size.

        Returns:
            A ``Pending`` result.
        """
        if not self.cuda:
            return Pending(batch, self._forward_split(batch.luma, batch.hint_chroma, batch.hint_mask))
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.copy_stream):
            luma = batch.luma.to(self.device, non_blocking=True)
            hint_chroma = None if batch.hint_chroma is None else batch.hint_chroma.to(self.device, non_blocking=True)
            hint_mask = None if batch.hint_mask is None else batch.hint_mask.to(self.device, non_blocking=True)
            copied_in = torch.cuda.Event()
            copied_in.record(self.copy_stream)
        main.wait_event(copied_in)
        chroma = self._forward_split(luma, hint_chroma, hint_mask)
        computed = torch.cuda.Event()
        computed.record(main)
        host = torch.empty(chroma.shape, dtype=torch.float32, pin_memory=True)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(computed)
            host.copy_(chroma, non_blocking=True)
            chroma.record_stream(self.copy_stream)  # keep the device buffer alive until copied
            done = torch.cuda.Event()
            done.record(self.copy_stream)
        return Pending(batch, host, done)
