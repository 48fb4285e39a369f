"""Reference colours: carry a hand-coloured frame's chroma through its shot.

A reference is a colour image (a frame coloured by hand, or any colour photo of the scene)
given for one frame index: ``--reference shot1.png@0``. Its chroma is aligned to that frame
(DIS flow between the reference's luma and the frame's, so a photo of the scene that is not
pixel-aligned still lands in place), then carried forward and backward frame by frame with the
same flow the smoother uses. Its confidence decays with distance, drops to zero where the
forward-backward check says the flow is unreliable (occlusions), and a scene cut ends its reach.
The generator receives the result as hint chroma and hint mask, and the final chroma leans on
the hint by its confidence, so the user's colours hold where they can be trusted.

Hints are built from the render-size luma of the frames each reference can reach, window by
window as the run goes (``hint_windows``), so memory stays bounded however many references a
film has. A frame range (``--frames``, a ``--resume`` segment, a farm chunk) also reads the
frames between it and a reference that lies outside it but within reach, so its hints are
those a run over the whole film gives it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch

from vidcolor.color import rgb_to_ycbcr
from vidcolor.errors import InputError, UsageError
from vidcolor.flow import checked_flow, is_scene_cut, warp
from vidcolor.io.decode import read_image
from vidcolor.io.probe import IMAGE_EXTENSIONS

DECAY_PER_FRAME = 0.99  # confidence kept per frame of distance (about 0.47 after 3 s at 25 fps)
MIN_CONFIDENCE = 0.05  # below this a reference stops propagating
MAX_REACH = 150  # frames on each side of a reference


@dataclass(frozen=True)
class Reference:
    """A colour image given for one frame index."""

    path: str
    frame: int


def parse_reference(text: str) -> Reference:
    """Parse ``IMG[@FRAME]`` (frame 0 when omitted).

    Args:
        text: the ``--reference`` value.

    Returns:
        A ``Reference``.
    """
    path, sep, frame = text.rpartition("@")
    if sep and frame.isdigit() and path:
        return Reference(path, int(frame))
    if sep and Path(path).suffix.lower() in IMAGE_EXTENSIONS:  # "shot.png@twelve"; "my@file.png" is a name
        raise UsageError(f"--reference {text!r}: the frame after '@' must be a frame number, e.g. shot.png@120")
    return Reference(text, 0)


def read_reference(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read a reference image at render size as BT.601 luma and chroma.

    Args:
        path: the image file (any size; it is resized).
        shape: (render height, render width).

    Returns:
        (luma ``(h, w)``, chroma ``(2, h, w)``) float32.
    """
    try:
        rgb = read_image(path)
    except InputError:
        raise InputError(f"reference {path}: not found or not an image (give a PNG, JPEG or TIFF)") from None
    small = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    ycc = rgb_to_ycbcr(torch.from_numpy(small).permute(2, 0, 1)).numpy()
    return ycc[0], ycc[1:]


def _carry(chroma: np.ndarray, confidence: np.ndarray, luma_from: np.ndarray, luma_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move chroma and confidence from one frame to the next with flow; unreliable pixels drop."""
    back, mask = checked_flow(luma_to, luma_from)  # for each pixel of the new frame: where it was
    moved = warp(np.ascontiguousarray(chroma.transpose(1, 2, 0)), back).transpose(2, 0, 1)
    return moved, warp(confidence, back) * mask * DECAY_PER_FRAME


def _align(ref_luma: np.ndarray, ref_chroma: np.ndarray, frame_luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align a reference to its frame (flow from frame to reference) with a confidence map."""
    to_ref, mask = checked_flow(frame_luma, ref_luma)
    aligned = warp(np.ascontiguousarray(ref_chroma.transpose(1, 2, 0)), to_ref).transpose(2, 0, 1)
    return aligned, mask


def propagate(ref_luma: np.ndarray, ref_chroma: np.ndarray, lumas: dict[int, np.ndarray], frame: int,
              within: range | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Hints of one reference for every frame it reaches.

    Args:
        ref_luma: ``(h, w)`` luma of the reference image.
        ref_chroma: ``(2, h, w)`` its chroma.
        lumas: render-size luma of the frames around ``frame`` (index -> ``(h, w)``).
        frame: the frame the reference belongs to.
        within: the frames whose hints are wanted; a walk stops once it is past them (``lumas``
            may hold frames beyond them that other references cross). None: no limit.

    Returns:
        An iterator of (frame index, chroma ``(2, h, w)``, confidence ``(h, w)``).
    """
    if frame not in lumas:
        return
    chroma, confidence = _align(ref_luma, ref_chroma, lumas[frame])
    yield frame, chroma, confidence
    for direction in (1, -1):
        c, m, t = chroma, confidence, frame
        while (t + direction) in lumas and abs(t + direction - frame) <= MAX_REACH:
            nxt = t + direction
            if within is not None and (nxt >= within.stop if direction > 0 else nxt < within.start):
                break  # moving away from the wanted frames: nothing more to give
            if is_scene_cut(lumas[t], lumas[nxt]):
                break  # a cut ends the reference's reach
            c, m = _carry(c, m, lumas[t], lumas[nxt])
            if float(m.max()) < MIN_CONFIDENCE:
                break
            yield nxt, c, m
            t = nxt


class ReferenceHints:
    """Per-frame hints from several references (combined by confidence).

    Args:
        hints: frame index -> (chroma ``(2, h, w)``, confidence ``(1, h, w)``) float32.
    """

    def __init__(self, hints: dict[int, tuple[np.ndarray, np.ndarray]]):
        self.hints = hints

    def __len__(self) -> int:
        return len(self.hints)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The hint of a frame, or None where no reference reaches."""
        return self.hints.get(index)

    @classmethod
    def build(cls, references: Iterable[tuple[Reference, np.ndarray, np.ndarray]], lumas: dict[int, np.ndarray],
              keep: range | None = None) -> "ReferenceHints":
        """Propagate every reference and combine them per frame.

        Args:
            references: (reference, its luma, its chroma) at render size.
            lumas: render-size luma of every frame any reference can reach (see ``reach``).
            keep: the frames to keep hints for (the run's frames); None keeps every frame reached.

        Returns:
            The combined hints: chroma averaged by confidence, confidence the highest one.
        """
        weighted: dict[int, np.ndarray] = {}
        total: dict[int, np.ndarray] = {}
        best: dict[int, np.ndarray] = {}
        for ref, ref_luma, ref_chroma in references:
            for index, chroma, confidence in propagate(ref_luma, ref_chroma, lumas, ref.frame, keep):
                if keep is not None and index not in keep:
                    continue  # read only to carry the reference into the range
                weighted[index] = weighted.get(index, 0) + chroma * confidence
                total[index] = total.get(index, 0) + confidence
                best[index] = confidence if index not in best else np.maximum(best[index], confidence)
        hints = {}
        for index in weighted:
            chroma = weighted[index] / np.maximum(total[index], 1e-6)
            hints[index] = (chroma.astype(np.float32), best[index][None].astype(np.float32))
        return cls(hints)


def reach(references: Iterable[Reference], first: int, last: int) -> set[int]:
    """Frames whose luma must be read to carry every reference into ``first..last``.

    A reference is carried frame by frame from its own frame, so one that lies outside the
    range but within ``MAX_REACH`` of it also needs the frames between it and the range: a
    frame range then gets the hints a run over the whole film gives it. Frames beyond the
    range are read only for such a reference, and at most ``MAX_REACH`` of them on each side.

    Args:
        references: the references.
        first: first frame processed (warm-up frames included).
        last: last frame processed.

    Returns:
        The set of indices whose luma must be read.
    """
    out: set[int] = set()
    for ref in references:
        lo, hi = max(first, ref.frame - MAX_REACH), min(last, ref.frame + MAX_REACH)
        if lo > hi:
            continue  # too far from the range to reach any of its frames
        out.update(range(min(lo, ref.frame), max(hi, ref.frame) + 1))
    return out


def reference_identity(text: str) -> str:
    """What decides a reference's colours, for a manifest of finished segments or chunks.

    The image is named by its file name only (``./r.png@30``, ``r.png@30`` and ``/abs/r.png@30``
    are the same setting, as the source is recorded by name) and by the sha256 of its content,
    so a reference painted again under the same name counts as another setting.

    Args:
        text: the ``--reference`` value, ``IMG[@FRAME]``.

    Returns:
        ``"NAME@FRAME sha256:HEX"``.

    Raises:
        InputError: the image cannot be read.
    """
    ref = parse_reference(text)
    digest = hashlib.sha256()
    try:
        with open(ref.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        raise InputError(f"reference {ref.path}: not found or not an image (give a PNG, JPEG or TIFF)") from None
    return f"{Path(ref.path).name}@{ref.frame} sha256:{digest.hexdigest()}"


def blend(chroma: np.ndarray, hint: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Lean the model's chroma on the reference hint by the hint's confidence.

    Args:
        chroma: ``(2, h, w)`` model chroma.
        hint: (chroma ``(2, h, w)``, confidence ``(1, h, w)``) or None.

    Returns:
        ``(2, h, w)`` chroma.
    """
    if hint is None:
        return chroma
    hint_chroma, confidence = hint
    return chroma + confidence * (hint_chroma - chroma)
