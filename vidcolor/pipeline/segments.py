"""A film cut into frame ranges: planning them, naming their files, finding the finished ones.

Both ``colorize --resume`` (segments) and ``farm`` (chunks) render a film as frame ranges ``S-E``
(inclusive, 0-based, frames counted by a demux-only timestamp scan of the source), each into its
own video-only file::

    FOLDER/NAME.SSSSSS-EEEEEE.EXT        e.g. film_colour.chunks/film.000000-001199.mkv

``NAME`` is the source's file name without its extension, ``EXT`` the final output's, and the
numbers are zero-padded to six digits (wider only past frame 999999), so the files sort in
frame order and a shell glob such as ``chunks/film.*.mkv`` hands them to ``merge``.

They are written under a temporary name (``.NAME.SSSSSS-EEEEEE.partial-XXXXXXXX.EXT``) and
renamed when complete, so a file under its final name is always a finished one; a worker that
dies leaves at most a hidden partial file, which the next run removes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from vidcolor.errors import UsageError

FrameRange = tuple[int, int]  # (start, end), inclusive, 0-based

MANIFEST_NAME = "farm.json"
_DIGITS = 6


def plan_chunks(frame_count: int, chunk_frames: int) -> list[FrameRange]:
    """Split ``frame_count`` frames into consecutive inclusive ranges of ``chunk_frames``.

    The last range ends at the last frame (it may be shorter); together the ranges cover
    ``0 .. frame_count - 1`` exactly once.

    Args:
        frame_count: frames in the source (at least 1).
        chunk_frames: frames per chunk (at least 1).

    Returns:
        ``[(0, chunk_frames - 1), (chunk_frames, 2 * chunk_frames - 1), ..., (S, frame_count - 1)]``.

    Raises:
        UsageError: for a non-positive chunk size or frame count.
    """
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be a positive integer, got {chunk_frames!r}")
    if isinstance(frame_count, bool) or not isinstance(frame_count, int) or frame_count < 1:
        raise UsageError(f"nothing to plan: the source has {frame_count!r} frames")
    return [(start, min(start + chunk_frames, frame_count) - 1) for start in range(0, frame_count, chunk_frames)]


def format_range(frame_range: FrameRange) -> str:
    """``(12, 34)`` as ``"000012-000034"`` (the part of a chunk name between the dots)."""
    start, end = frame_range
    return f"{start:0{_DIGITS}d}-{end:0{_DIGITS}d}"


def chunk_name(name: str, frame_range: FrameRange, ext: str) -> str:
    """The file name of one chunk.

    Args:
        name: the source's stem (``"film"`` for ``film.mkv``).
        frame_range: ``(start, end)``.
        ext: the container extension, with or without the dot (``".mkv"``).

    Returns:
        ``"NAME.SSSSSS-EEEEEE.EXT"``, e.g. ``"film.000000-001199.mkv"``.
    """
    ext = ext if ext.startswith(".") else f".{ext}"
    return f"{name}.{format_range(frame_range)}{ext}"


_CHUNK_RE = re.compile(r"^(?P<name>.+)\.(?P<start>\d{%d,})-(?P<end>\d{%d,})(?P<ext>\.[^./]+)$" % (_DIGITS, _DIGITS), re.ASCII)


def parse_chunk_name(filename: str | os.PathLike) -> tuple[str, FrameRange, str] | None:
    """Read ``NAME.SSSSSS-EEEEEE.EXT`` back.

    Args:
        filename: a file name or path (only the last part is read).

    Returns:
        ``(name, (start, end), ext)``, or None when the name is not a chunk name (hidden
        partial files included).
    """
    base = Path(filename).name
    if base.startswith("."):
        return None
    match = _CHUNK_RE.match(base)
    if match is None:
        return None
    start, end = int(match["start"]), int(match["end"])
    if start > end:
        return None
    return match["name"], (start, end), match["ext"]


@dataclass(frozen=True)
class ChunkLayout:
    """Where the chunks of one source go: ``folder/NAME.SSSSSS-EEEEEE.EXT``."""

    folder: Path
    name: str
    ext: str

    @classmethod
    def for_job(cls, source: str | os.PathLike, output: str | os.PathLike,
                chunk_dir: str | os.PathLike | None = None) -> "ChunkLayout":
        """The layout ``farm`` uses: chunks named after the source, in the output's container.

        Args:
            source: the input video.
            output: the merged output (its extension is the chunks' container).
            chunk_dir: the chunk folder; None means ``OUTPUT_STEM.chunks`` beside the output.

        Returns:
            A ChunkLayout.
        """
        out = Path(output)
        folder = Path(chunk_dir) if chunk_dir is not None else out.with_name(f"{out.stem}.chunks")
        return cls(folder=folder, name=Path(source).stem, ext=out.suffix)

    def path(self, frame_range: FrameRange) -> Path:
        """The final path of one chunk."""
        return self.folder / chunk_name(self.name, frame_range, self.ext)

    def paths(self, plan: Iterable[FrameRange]) -> list[Path]:
        """Final paths of the planned chunks, in plan order."""
        return [self.path(r) for r in plan]

    def finished(self, plan: Sequence[FrameRange]) -> list[FrameRange]:
        """Planned chunks whose file exists under its final name (so is complete).

        Args:
            plan: the planned ranges.

        Returns:
            The finished ranges, in plan order.
        """
        return [r for r in plan if self.path(r).is_file()]

    def unfinished(self, plan: Sequence[FrameRange]) -> list[FrameRange]:
        """Planned chunks still to render, in plan order."""
        return [r for r in plan if not self.path(r).is_file()]

    def partial_files(self, plan: Sequence[FrameRange]) -> list[Path]:
        """Temporary files of planned chunks left behind by workers that died mid-chunk.

        Args:
            plan: the planned ranges.

        Returns:
            Paths of ``.NAME.SSSSSS-EEEEEE.partial-*.EXT`` files in the chunk folder.
        """
        if not self.folder.is_dir():
            return []
        stems = {f".{Path(chunk_name(self.name, r, self.ext)).stem}.partial-" for r in plan}
        found = []
        for entry in self.folder.iterdir():
            if entry.suffix == self.ext and any(entry.name.startswith(s) for s in stems):
                found.append(entry)
        return sorted(found)

    def chunk_files(self) -> list[Path]:
        """Finished chunks of this source in the folder, whatever their frame range (sorted)."""
        if not self.folder.is_dir():
            return []
        found = []
        for entry in self.folder.iterdir():
            parsed = parse_chunk_name(entry.name)
            if parsed is not None and parsed[0] == self.name and parsed[2] == self.ext and entry.is_file():
                found.append(entry)
        return sorted(found)

    def foreign_chunk_files(self) -> list[Path]:
        """Finished chunks in the folder named after another source (or container), sorted:
        the folder's one manifest is theirs, not this source's."""
        if not self.folder.is_dir():
            return []
        ours = set(self.chunk_files())
        return sorted(e for e in self.folder.iterdir()
                      if e not in ours and parse_chunk_name(e.name) is not None and e.is_file())

    def strays(self, plan: Sequence[FrameRange]) -> list[Path]:
        """Finished chunks of this source whose range is not in ``plan`` (another ``--chunk-frames``)."""
        planned = set(self.paths(plan))
        return [p for p in self.chunk_files() if p not in planned]

    def all_partial_files(self) -> list[Path]:
        """Temporary files of any chunk of this source (``.NAME.S-E.partial-*.EXT``), sorted."""
        if not self.folder.is_dir():
            return []
        prefix = f".{self.name}."
        return sorted(e for e in self.folder.iterdir() if e.name.startswith(prefix) and ".partial-" in e.name
                      and e.name.endswith(self.ext) and parse_chunk_name(e.name[1:].split(".partial-")[0] + self.ext))

    def manifest_path(self) -> Path:
        """The manifest file of the chunk folder."""
        return self.folder / MANIFEST_NAME

