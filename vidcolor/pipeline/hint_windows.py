"""Reference hints window by window, so a film's hints are never all in memory at once.

The stages ask for the hint of each frame in increasing order: the generate stage, and a few
batches later the smooth stage, from their own threads. ``HintWindows`` builds the hints of a
window of ``WINDOW_FRAMES`` frames when the first of its frames is asked for, from the render-size
luma of the frames that the references reaching the window need (``reach``), and frees a window
once every stage has moved past it. A window is built in the thread of the stage that asks first
(the generate stage); the other waits only when it needs that window. The luma is decoded in one
forward pass over the run, each frame once as in the whole-film pre-pass this replaces, keeping
only frames that a window still to come reads (at most ``MAX_REACH`` before it). Memory is then
bounded by the hints of the windows between the two stages (two: the smooth stage lags a couple
of batches and a 16-frame queue behind) and one
window's reach (at most ``WINDOW_FRAMES + 2 * MAX_REACH`` lumas), whatever the film's length
or its number of references.

A window's hints are those of a pass over the whole run, bit for bit: a reference is carried
frame by frame from its own frame, ``reach`` lists every frame between it and the window, and
``ReferenceHints.build`` combines references in the same order.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import numpy as np

from vidcolor.io.decode import Frame
from vidcolor.pipeline import reference
from vidcolor.pipeline.reference import Reference, ReferenceHints, reach

# Frames per window. A window carries the references that reach into it from their own frames
# again, so short windows repeat flow work: with a reference every 100 frames and no cut (each
# reaching its full 150 frames both ways, the worst case) 1.65 times one pass's flows at 100
# frames, 1.32 at 200, 1.21 at 300; cuts that end references' reach make it less. Long windows
# hold more: about 2.7 MB a window frame at render size 192 for 16:9 (hints of two windows, one
# window's build, its lumas), 4.8 MB at 256. 200 frames: about 0.55 GB at 192, 1 GB at 256.
WINDOW_FRAMES = 200

Hint = tuple[np.ndarray, np.ndarray]


class HintWindows:
    """Per-frame reference hints for the frames ``first..last``, built window by window.

    Args:
        references: the references (their frames decide what is read).
        images: the references read at render size, as ``ReferenceHints.build`` takes them.
        first: first frame of the run (warm-up frames included).
        last: last frame of the run.
        decode: ``decode(start, end)`` yields the decoded frames ``start..end`` in order (only
            their ``index`` and ``y`` are read; the end may lie past the film's last frame);
            called at most once.
        to_luma: a decoded frame's Y plane to render-size luma ``(h, w)`` float32.
        window: frames per window.
    """

    def __init__(self, references: list[Reference], images: list, first: int, last: int,
                 decode: Callable[[int, int], Iterator[Frame]], to_luma: Callable[[np.ndarray], np.ndarray],
                 window: int = WINDOW_FRAMES):
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.references, self.images = list(references), list(images)
        self.first, self.last, self.window = first, last, window
        self._decode, self._to_luma = decode, to_luma
        self._state = threading.Lock()  # windows, positions: held briefly
        self._building = threading.Lock()  # one build at a time: the luma pass only moves forward
        self._windows: dict[int, ReferenceHints] = {}
        self._positions: list[int] = []  # each reader's current window
        self._next_window = 0  # windows before it were built or passed: asking for one is out of order
        self._error: BaseException | None = None
        self._lumas: dict[int, np.ndarray] = {}
        self._frames: Iterator[Frame] | None = None
        self._decoded = -1  # last frame index the luma pass has read
        self._decode_done = False

    def reader(self) -> "HintReader":
        """A handle for one stage; make one per stage before the stages start.

        Returns:
            A ``HintReader``; a window is freed once every reader has asked for a later frame.
        """
        with self._state:
            self._positions.append(0)
            return HintReader(self, len(self._positions) - 1)

    def held(self) -> tuple[int, int]:
        """How many frames' hints and lumas are in memory now (for tests and logs).

        Returns:
            (frames with a hint, frames with a luma).
        """
        with self._state:
            return sum(len(w) for w in self._windows.values()), len(self._lumas)

    def close(self) -> None:
        """Stop the luma pass (closes the decoder) and drop everything held; call it once the
        stages have stopped."""
        with self._building, self._state:
            self._windows.clear()
            self._release()

    def _get(self, reader: int, index: int) -> Hint | None:
        if not self.images:
            return None  # no reference: nothing to read or build
        k = (index - self.first) // self.window
        with self._state:
            if k < self._positions[reader]:
                raise RuntimeError(f"hint of frame {index} asked after a later window's (frames go in order)")
            self._positions[reader] = k
            for done in [w for w in self._windows if w < min(self._positions)]:
                del self._windows[done]  # every stage has moved past it
            hints = self._windows.get(k)
        if hints is None:
            hints = self._built(k)
        return hints.get(index)

    def _built(self, k: int) -> ReferenceHints:
        """Window ``k``'s hints, built now unless the other stage built them while we waited."""
        with self._building:
            if self._error is not None:
                raise self._error  # the same error the first stage hit: the run stops on it
            with self._state:
                hints = self._windows.get(k)
            if hints is not None:
                return hints
            if k < self._next_window:
                raise RuntimeError(f"hint window {k} asked after it was freed (frames go in order)")
            try:
                hints = self._build(k)
            except BaseException as exc:
                self._error = exc
                self._release()
                raise
            with self._state:
                self._windows[k] = hints
                self._next_window = k + 1
            return hints

    def _build(self, k: int) -> ReferenceHints:
        """Decode the luma window ``k`` reads and propagate the references that reach it."""
        start = self.first + k * self.window
        end = min(self.last, start + self.window - 1)
        wanted = reach(self.references, start, end)
        hints = ReferenceHints({})
        if wanted:
            self._read_through(wanted)
            lumas = {i: self._lumas[i] for i in wanted if i in self._lumas}
            hints = ReferenceHints.build(self.images, lumas, keep=range(start, end + 1))
        # A later window reads at most MAX_REACH frames before its start.
        for old in [i for i in self._lumas if i <= end - reference.MAX_REACH]:
            del self._lumas[old]
        if end == self.last:
            self._release()  # the run's last window: nothing more to read
        return hints

    def _read_through(self, wanted: set[int]) -> None:
        """Decode on to the last frame a window reads, keeping the luma of the frames it reads.

        A later window reads no other frame decoded now: a reference carried into it across
        such a frame also reaches this window's end, so this window reads that frame too.
        """
        if self._decode_done:
            return
        if self._frames is None:
            # The first window with references reads from its lowest frame, the lowest of the run.
            self._frames = self._decode(min(wanted), self.last + reference.MAX_REACH)
        high = max(wanted)
        while self._decoded < high:
            frame = next(self._frames, None)
            if frame is None:
                self._stop_decoding()  # the film ends (or frames past here cannot be decoded)
                return
            if frame.index in wanted:
                self._lumas[frame.index] = self._to_luma(frame.y)
            self._decoded = frame.index

    def _release(self) -> None:
        """Close the decoder and drop the lumas."""
        self._stop_decoding()
        self._lumas.clear()

    def _stop_decoding(self) -> None:
        frames, self._frames, self._decode_done = self._frames, None, True
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # a generator: runs the decoder's cleanup (closes the file) now


class HintReader:
    """One stage's view of ``HintWindows``: hints asked for in increasing frame order."""

    def __init__(self, windows: HintWindows, number: int):
        self._windows = windows
        self._number = number

    def get(self, index: int) -> Hint | None:
        """The hint of a frame, or None where no reference reaches.

        Args:
            index: the frame; each call's frame is at or after the previous call's.

        Returns:
            (chroma ``(2, h, w)``, confidence ``(1, h, w)``) float32, or None.
        """
        return self._windows._get(self._number, index)
