"""Reference colours: carry a hand-coloured frame's chroma through its shot.

A reference is a colour image (a frame coloured by hand, or a colour picture with the same
framing) given for one frame index: ``--reference shot1.png@0``. Its chroma is aligned to that
frame (DIS flow between the reference's luma and the frame's, so a picture that is shifted or
scaled a little still lands in place), then carried forward and backward frame by frame with the
same flow the smoother uses. Its confidence decays with distance, drops to zero where the
forward-backward check says the flow is unreliable (occlusions), and a scene cut ends its reach.
The generator receives the result as hint chroma and hint mask, and the final chroma leans on
the hint by its confidence, so the user's colours hold where they can be trusted.

A reference is taken as a player shows its frame: a phone clip stored sideways with a display
rotation gets its references turned back into the stored orientation, and a photo's EXIF
orientation is applied when it is read. Transparent areas of a reference give no hint (alpha is
confidence), so a restorer can paint some objects on a layer and leave the rest to the model.
A reference that matches too little of its frame (another shot, a wrong frame number) is left
out with a warning; one with no colour, a tiny one, or two for one frame get a warning too.

Hints are built from the render-size luma of the frames each reference can reach, window by
window as the run goes (``hint_windows``), so memory stays bounded however many references a
film has. A frame range (``--frames``, a ``--resume`` segment, a farm chunk) also reads the
frames between it and a reference that lies outside it but within reach, so its hints are
those a run over the whole film gives it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch

from vidcolor.color import rgb_to_ycbcr
from vidcolor.errors import InputError, UsageError
from vidcolor.flow import checked_flow, is_scene_cut, warp
from vidcolor.io.media_files import IMAGE_EXTENSIONS
from vidcolor.hashing import file_sha256
from vidcolor.io.stills import read_still

DECAY_PER_FRAME = 0.99  # confidence kept per frame of distance (about 0.47 after 3 s at 25 fps)
MIN_CONFIDENCE = 0.05  # below this a reference stops propagating
MAX_REACH = 150  # frames on each side of a reference
# Share of a reference's opaque pixels that must line up with its frame (the forward-backward
# check) for it to be used. Measured at render size 192 on the trial clip and the seven colour
# clips: the true frame 0.71-0.99 (0.65 and up re-exposed, blurred, JPEG-compressed or 3 frames
# off), another shot 0.00-0.07, an upside-down or mirrored frame up to 0.18.
MIN_MATCH = 0.2
# A reference whose chroma stays below this (of 0.5; about 4 code values of 255) on all but
# 0.1% of its opaque pixels has no colour to give: the grey frame given instead of the painted one.
MIN_CHROMA = 0.015
# A reference smaller than 1/8 of the render size on a side is blurred when scaled up and lines
# up poorly (trial clip, render 336x192, chroma error: 80x45 0.83, 40x22 2.17, 8x8 4.37; full
# size 0.51, no reference 4.16).
MIN_SIZE_FRACTION = 1 / 8

log = logging.getLogger("vidcolor")
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log a warning once per process: a ``--resume`` run renders every segment of a film, and a
    farm worker several chunks, with the same references; one line each is enough."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


@dataclass(frozen=True)
class Reference:
    """A colour image given for one frame index."""

    path: str
    frame: int


def parse_reference(text: str) -> Reference:
    """Parse ``IMG[@FRAME]``: FRAME in digits 0-9, an index in the whole source (also under
    ``--frames``), 0 when omitted.

    Args:
        text: the ``--reference`` value.

    Returns:
        A ``Reference``.
    """
    path, sep, frame = text.rpartition("@")
    if sep and frame.isascii() and frame.isdigit() and path:  # isdigit() alone takes '²' (int() fails) and '٣'
        return Reference(path, int(frame))
    if sep and Path(path).suffix.lower() in IMAGE_EXTENSIONS:  # "shot.png@twelve"; "my@file.png" is a name
        raise UsageError(f"--reference {text!r}: the frame after '@' must be a frame number in digits 0-9, "
                         "e.g. shot.png@120")
    return Reference(text, 0)


@dataclass(frozen=True)
class ReferenceImage:
    """A reference read at render size, in the video's stored orientation.

    Attributes:
        reference: the image and the frame it was given for.
        luma: ``(h, w)`` BT.601 luma.
        chroma: ``(2, h, w)`` BT.601 chroma.
        alpha: ``(h, w)`` opacity in [0, 1], or None when no pixel is transparent (the usual
            case then skips compositing and gives bit for bit the hints of an opaque image).
    """

    reference: Reference
    luma: np.ndarray
    chroma: np.ndarray
    alpha: np.ndarray | None

    @property
    def name(self) -> str:
        """``IMG@FRAME``, for messages."""
        return f"{self.reference.path}@{self.reference.frame}"


def _as_stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an image as a player shows the video into the orientation its frames are stored in.

    A player (and FFmpeg's autorotation, checked against it) turns stored frames ``rotation``
    degrees counterclockwise, so the reference is turned back clockwise.
    """
    turn = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}.get(rotation % 360)
    return image if turn is None else cv2.rotate(image, turn)


def read_reference(ref: Reference, shape: tuple[int, int], rotation: int = 0) -> ReferenceImage:
    """Read a reference image at render size as BT.601 luma, chroma and opacity, warning (once)
    when it has no colour or is too small to line up.

    Args:
        ref: the reference (any size; it is resized).
        shape: (render height, render width) of the stored frames.
        rotation: the video's display rotation in degrees (``VideoStreamInfo.rotation``); the image
            is taken as a player shows the video and turned into the stored orientation.

    Returns:
        A ``ReferenceImage``.
    """
    try:
        still = read_still(ref.path)
    except InputError:
        raise InputError(f"reference {ref.path}: not found or not an image (give a PNG, JPEG or TIFF)") from None
    rgb = _as_stored(still.rgb, rotation)
    if rgb.shape[0] < shape[0] * MIN_SIZE_FRACTION or rgb.shape[1] < shape[1] * MIN_SIZE_FRACTION:
        _warn_once(f"reference {ref.path} is {rgb.shape[1]}x{rgb.shape[0]}, much smaller than the {shape[1]}x{shape[0]} "
                   "picture the model sees: its colours come out blurred and may not line up; give a larger image")
    size = (shape[1], shape[0])
    opacity = None
    if still.alpha is not None and still.alpha.min() < 1.0:
        alpha = _as_stored(still.alpha, rotation)
        opacity = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        # Resized premultiplied, so the colour transparent pixels hold (often black) does not
        # bleed into the opaque pixels beside them.
        small = cv2.resize(rgb * alpha[..., None], size, interpolation=cv2.INTER_AREA)
        small = np.clip(small / np.maximum(opacity, 1e-6)[..., None], 0.0, 1.0)
    else:
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ycc = rgb_to_ycbcr(torch.from_numpy(small).permute(2, 0, 1)).numpy()
    image = ReferenceImage(ref, ycc[0], ycc[1:], opacity)
    _check_colour(image)
    return image


def _check_colour(image: ReferenceImage) -> None:
    """Warn about a reference that gives no colour: fully transparent, or grey."""
    opaque = image.alpha > 0.5 if image.alpha is not None else np.ones(image.luma.shape, bool)
    if not opaque.any():
        _warn_once(f"reference {image.name} is fully transparent: it gives no colour")
        return
    saturation = np.hypot(image.chroma[0][opaque], image.chroma[1][opaque])
    if float(np.percentile(saturation, 99.9)) < MIN_CHROMA:
        _warn_once(f"reference {image.name} has almost no colour (the grey frame instead of the coloured one?): "
                   "the frames it reaches come out nearly grey")


def read_references(references: Iterable[Reference], shape: tuple[int, int], rotation: int = 0) -> list[ReferenceImage]:
    """Read every reference (``read_reference``) and warn when two are for the same frame.

    Args:
        references: the references, in the order given.
        shape: (render height, render width) of the stored frames.
        rotation: the video's display rotation in degrees.

    Returns:
        A ``ReferenceImage`` per reference.
    """
    images = [read_reference(ref, shape, rotation) for ref in references]
    by_frame: dict[int, list[str]] = {}
    for image in images:
        by_frame.setdefault(image.reference.frame, []).append(image.reference.path)
    for frame, paths in sorted(by_frame.items()):
        if len(paths) > 1:  # more likely a typo in FRAME than a wish to mix them
            _warn_once(f"{len(paths)} references are for frame {frame} ({', '.join(paths)}): their colours are "
                       "averaged; check their frame numbers")
    return images


def _carry(chroma: np.ndarray, confidence: np.ndarray, luma_from: np.ndarray, luma_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move chroma and confidence from one frame to the next with flow; unreliable pixels drop."""
    back, mask = checked_flow(luma_to, luma_from)  # for each pixel of the new frame: where it was
    moved = warp(np.ascontiguousarray(chroma.transpose(1, 2, 0)), back).transpose(2, 0, 1)
    return moved, warp(confidence, back) * mask * DECAY_PER_FRAME


def _align(ref_luma: np.ndarray, ref_chroma: np.ndarray, frame_luma: np.ndarray,
           alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Align a reference to its frame (flow from frame to reference) with a confidence map: the
    forward-backward check times the reference's opacity, both brought onto the frame."""
    if alpha is not None:
        # The flow sees the painted layer over the frame, as the restorer did: transparent
        # areas (often black) would otherwise pull the flow around them.
        ref_luma = (frame_luma + alpha * (ref_luma - frame_luma)).astype(np.float32)
    to_ref, mask = checked_flow(frame_luma, ref_luma)
    aligned = warp(np.ascontiguousarray(ref_chroma.transpose(1, 2, 0)), to_ref).transpose(2, 0, 1)
    if alpha is not None:
        mask = mask * warp(alpha, to_ref)
    return aligned, mask


def propagate(ref_luma: np.ndarray, ref_chroma: np.ndarray, lumas: dict[int, np.ndarray], frame: int,
              alpha: np.ndarray | None = None, within: range | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Hints of one reference for every frame it reaches.

    Args:
        ref_luma: ``(h, w)`` luma of the reference image.
        ref_chroma: ``(2, h, w)`` its chroma.
        lumas: render-size luma of the frames around ``frame`` (index -> ``(h, w)``).
        frame: the frame the reference belongs to.
        alpha: ``(h, w)`` its opacity (confidence 0 where transparent), or None for opaque.
        within: the frames whose hints are wanted; a walk stops once it is past them (``lumas``
            may hold frames beyond them that other references cross). None: no limit.

    Returns:
        An iterator of (frame index, chroma ``(2, h, w)``, confidence ``(h, w)``), its own
        frame first.
    """
    if frame not in lumas:
        return
    chroma, confidence = _align(ref_luma, ref_chroma, lumas[frame], alpha)
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
    def build(cls, references: Iterable[ReferenceImage], lumas: dict[int, np.ndarray],
              keep: range | None = None) -> "ReferenceHints":
        """Propagate every reference that matches its frame and combine them per frame.

        Args:
            references: the references read at render size.
            lumas: render-size luma of every frame any reference can reach (see ``reach``).
            keep: the frames to keep hints for (the run's frames); None keeps every frame reached.

        Returns:
            The combined hints: chroma averaged by confidence, confidence the highest one.
        """
        weighted: dict[int, np.ndarray] = {}
        total: dict[int, np.ndarray] = {}
        best: dict[int, np.ndarray] = {}
        for image in references:
            reached = propagate(image.luma, image.chroma, lumas, image.reference.frame, image.alpha, keep)
            own = next(reached, None)  # the reference's own frame, aligned
            if own is None or not matches_its_frame(image, own[2]):
                continue
            for index, chroma, confidence in itertools.chain([own], reached):
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


def matches_its_frame(image: ReferenceImage, confidence: np.ndarray) -> bool:
    """Whether enough of a reference lines up with its frame to be used; a warning when not.

    The forward-backward check zeroes what cannot be matched, but on another shot a few
    scattered pixels still pass by chance (flat areas), and the model spreads their wrong
    colours like a restorer's dabs: such a reference is left out instead.

    Args:
        image: the reference.
        confidence: ``(h, w)`` its confidence on its own frame (``propagate``'s first item).

    Returns:
        True when at least ``MIN_MATCH`` of its opaque pixels line up.
    """
    opaque = float(image.alpha.sum()) if image.alpha is not None else image.luma.size
    if opaque < 1e-6:
        return False  # fully transparent: read_reference said so
    matched = float(confidence.sum()) / opaque
    if matched < MIN_MATCH:
        _warn_once(f"reference {image.name} matches only {matched:.0%} of frame {image.reference.frame} (another shot, "
                   "a wrong FRAME, or not the frame as a player shows it?); it is left out")
        return False
    return True


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
    try:
        digest = file_sha256(ref.path)
    except OSError:
        raise InputError(f"reference {ref.path}: not found or not an image (give a PNG, JPEG or TIFF)") from None
    return f"{Path(ref.path).name}@{ref.frame} sha256:{digest}"


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
