"""Farm chunks: planning frame ranges, naming chunk files, and telling which are finished.

A chunk is a frame range ``S-E`` (inclusive, 0-based, frames counted by a demux-only timestamp
scan of the source) rendered by ``colorize --frames S-E`` into its own video-only file::

    CHUNK_DIR/NAME.SSSSSS-EEEEEE.EXT        e.g. film_colour.chunks/film.000000-001199.mkv

``NAME`` is the source's file name without its extension, ``EXT`` the final output's, and the
numbers are zero-padded to six digits (wider only past frame 999999), so chunk files sort in
frame order and a shell glob such as ``chunks/film.*.mkv`` hands them to ``merge``.

Chunks are written under a temporary name (``.NAME.SSSSSS-EEEEEE.partial-XXXXXXXX.EXT``) and
renamed when complete, so a chunk file under its final name is always a finished one; a worker
that dies leaves at most a hidden partial file, which the next ``farm`` run removes.

A small manifest (``farm.json``) in the chunk folder records what the chunks were rendered from
and with (source, model, codec, reference images by content and the options that change pixels),
so a later run with other settings refuses to reuse them instead of merging a mixture. It is
written before the first chunk and removed only once no chunk is left. Each chunk also carries
a stamp of its source and settings in its container tags (``vidcolor.io.stamp``), so chunks
with a stamp that is not the job's, or with neither a stamp nor a manifest, are never reused.
A lock file (``farm.lock``: pid and host) keeps two runs out of one folder. Nothing here
imports Ray or torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from vidcolor.errors import OutputError, UsageError
from vidcolor.io.atomic import atomic_output, process_alive
from vidcolor.io.codecs import effective_crf
from vidcolor.io.stamp import make_stamp, read_stamp, settings_fingerprint, source_fingerprint

FrameRange = tuple[int, int]  # (start, end), inclusive, 0-based

MANIFEST_NAME = "farm.json"
LOCK_NAME = "farm.lock"
# Version 2: settings compare what changes pixels (effective CRF and style), farm records
# --chunk-frames, chunks carry stamps. A folder of version 1 is refused as an older vidcolor's
# (its unstamped chunks would pass its record, then fail merge's stamp check).
MANIFEST_FORMAT = "vidcolor-farm-chunks-2"
_OLDER_FORMATS = {"vidcolor-farm-chunks"}
FAILED_ONCE_SUFFIX = ".failed-once"  # marker of the farm test hook (see ray_executor)
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


def _shown(value: Any) -> str:
    return "not set" if value is None else repr(value)


def model_identity(model: Any) -> dict[str, Any]:
    """What identifies a model's weights, for manifests and chunk stamps.

    Args:
        model: a model name or path (identified by its card's sha256, else the weights' size
            and mtime: cheap, no hashing of the file), or a loaded generator (hashed).

    Returns:
        ``{"model": ..., "model_sha256": ...}``.

    Raises:
        ModelError: a model name or path whose card is missing or corrupt.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return {"model": "<in-memory generator>", "model_sha256": digest.hexdigest()}
    from vidcolor.models.weights import read_model_card, resolve_model_path

    card = read_model_card(model)  # ModelError now, before any work, for a missing model
    weights, _ = resolve_model_path(model)
    sha = card.get("sha256")
    if not sha and weights.is_file():
        st = weights.stat()
        sha = f"size {st.st_size}, mtime {st.st_mtime_ns}"
    return {"model": weights.stem, "model_sha256": sha}


def render_settings(cfg: Any, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The options that decide a chunk's pixels, as JSON-friendly values.

    The same function serves ``farm`` (its manifest and the stamp it hands its tasks) and
    ``colorize --frames`` (the stamp of a hand-made chunk), so both stamp alike.

    Args:
        cfg: a ``ColorizeConfig`` whose ``codec`` is the one the chunk is written with.
        identity: ``model_identity`` of the model.

    Returns:
        A dict: model, codec, crf, render size, smoothing, style, references (by name, frame
        and content), deinterlace.
    """
    from vidcolor.pipeline.reference import reference_identity
    from vidcolor.pipeline.style import effective_style

    style, strength = effective_style(cfg.style, cfg.strength)  # "natural" and strength 0 are no style
    return {**identity, "codec": cfg.codec, "crf": effective_crf(cfg.codec, cfg.crf), "render_size": cfg.render_size,
            "smooth": cfg.smooth, "style": style, "strength": strength,
            "references": [reference_identity(text) for text in cfg.references], "deinterlace": cfg.deinterlace}


def job_settings(source: str | os.PathLike, frame_count: int, render: Mapping[str, Any], **plan: int) -> dict[str, Any]:
    """What a chunk folder's manifest records: the source, how the film is cut, and the
    settings that change pixels.

    Args:
        source: the source film.
        frame_count: its frames.
        render: ``render_settings`` of the job.
        plan: the chunk length, as ``chunk_frames=N`` (farm) or ``segment_frames=N`` (``--resume``).

    Returns:
        JSON-friendly settings (see ``check_manifest``).
    """
    return {"source": Path(source).name, "source_bytes": os.path.getsize(source), "source_frames": frame_count,
            **plan, **render}


def chunk_stamp(source: str | os.PathLike, settings: Mapping[str, Any]) -> str:
    """The stamp chunks of ``source`` rendered with ``settings`` carry (``vidcolor.io.stamp``)."""
    return make_stamp(source_fingerprint(source), settings_fingerprint(settings))


def _refuse_chunks(layout: ChunkLayout, why: str, elsewhere: str) -> UsageError:
    return UsageError(f"{layout.folder} holds chunks {why}, so they cannot be reused; delete them (or the folder) "
                      f"to start over, or {elsewhere}")


def check_manifest(layout: ChunkLayout, settings: Mapping[str, Any], elsewhere: str = "pass another --chunk-dir",
                   stamp: str | None = None) -> None:
    """Refuse to reuse a chunk folder whose finished chunks were made from another source or
    with other settings, or whose chunks nothing vouches for; otherwise (re)write the manifest,
    creating the folder if needed. Call it before the first chunk is rendered.

    A folder with no finished chunk yet (the first run stopped or failed before one was done)
    is simply taken over with the new settings: there is nothing in it to mix up. Chunks are
    vouched for by a manifest with the same settings, or (no manifest: hand-made chunks, or
    a folder whose manifest was lost) by their own stamp being ``stamp``; a chunk whose stamp
    differs from ``stamp`` is refused even under a matching manifest.

    Args:
        layout: the chunk layout.
        settings: JSON-friendly values that decide the chunks' pixels (source identity,
            model identity, codec, crf, render size, smoothing, ...).
        elsewhere: the other way out the refusal suggests, besides deleting the folder.
        stamp: the stamp this job's chunks carry (None: chunks are not checked one by one).

    Raises:
        UsageError: when the folder's manifest records different settings, naming the first,
            or when it holds chunks with a foreign stamp, or neither a manifest nor a stamp, or
            chunks named after another source.
    """
    if layout.folder.exists() and not layout.folder.is_dir():
        raise UsageError(f"{layout.folder} is a file, not a folder for chunks; {elsewhere}")
    layout.folder.mkdir(parents=True, exist_ok=True)
    foreign = layout.foreign_chunk_files()
    if foreign:
        # One manifest per folder: taking it over would orphan those chunks (a renamed source
        # wrote over the first job's manifest, which then refused its own chunks for good).
        raise _refuse_chunks(layout, f"named after another source or container ({foreign[0].name}; renamed "
                                     "since?)", f"{elsewhere} (or give the source its old name to continue that job)")
    path = layout.manifest_path()
    wanted = json.loads(json.dumps(dict(settings)))  # the form it has after a round trip
    chunks = layout.chunk_files()
    saved = None
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if chunks and isinstance(saved, dict) and saved.get("format") in _OLDER_FORMATS:
            raise UsageError(f"the chunks in {layout.folder} were made by an older vidcolor, whose record this one "
                             f"cannot compare; delete that folder to start over, or {elsewhere}")
        if chunks and (not isinstance(saved, dict) or saved.get("format") != MANIFEST_FORMAT):
            raise UsageError(f"{path} is not a vidcolor farm manifest; {elsewhere}")
    if chunks and saved is not None:
        old = saved.get("settings", {})
        for key in sorted(set(old) | set(wanted)):
            if old.get(key) != wanted.get(key):
                raise UsageError(
                    f"the chunks in {layout.folder} were rendered with other settings ({key}: "
                    f"{_shown(old.get(key))} then, {_shown(wanted.get(key))} now); delete that folder to "
                    f"start over, or {elsewhere}")
    if chunks and stamp is not None:
        stamps = {chunk: read_stamp(chunk) for chunk in chunks}
        foreign = [c for c, s in stamps.items() if s is not None and s != stamp]
        if foreign:
            raise _refuse_chunks(layout, f"rendered from another source or with other settings (their stamp says so, "
                                         f"first {foreign[0].name})", elsewhere)
        unstamped = [c for c, s in stamps.items() if s is None]
        if unstamped and saved is None:
            raise _refuse_chunks(layout, f"with no {MANIFEST_NAME} and no stamp saying what made them "
                                         f"(first {unstamped[0].name})", elsewhere)
    elif chunks and saved is None:
        raise _refuse_chunks(layout, f"with no {MANIFEST_NAME} saying what made them (first {chunks[0].name})",
                             elsewhere)
    if saved is not None and chunks:
        return
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"format": MANIFEST_FORMAT, "settings": wanted}, indent=2) + "\n", encoding="utf-8")


def remove_chunks(layout: ChunkLayout, plan: Sequence[FrameRange]) -> None:
    """Delete the chunks of this source (planned or not), their leftovers, then the manifest
    (only once no chunk is left, so chunks never lose it) and the folder if empty.

    Args:
        layout: the chunk layout.
        plan: the planned ranges.
    """
    leftovers = [layout.path(r) for r in plan] + layout.chunk_files() + layout.all_partial_files()
    if layout.folder.is_dir():
        leftovers += [p for p in layout.folder.iterdir() if p.name.endswith(FAILED_ONCE_SUFFIX)]
    for path in leftovers:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    tidy_folder(layout)


def tidy_folder(layout: ChunkLayout) -> None:
    """Remove the manifest when no chunk is left (it describes nothing), then the folder if empty."""
    if layout.chunk_files() or layout.all_partial_files():
        return
    try:
        layout.manifest_path().unlink()
    except FileNotFoundError:
        pass
    try:
        layout.folder.rmdir()
    except OSError:
        pass  # not empty: someone else's files (or a live lock) stay


# ----- one run at a time per folder -----------------------------------------------------------


@contextmanager
def folder_lock(layout: ChunkLayout, what: str = "farm") -> Iterator[None]:
    """Hold ``farm.lock`` in the chunk folder (created if needed) while the block runs.

    A lock of a live process is refused; one left by a process of this machine that is gone
    (SIGKILL, a power cut) is taken over. A lock written on another machine cannot be checked
    from here, so it is refused too, saying how to clear it.

    Args:
        layout: the chunk layout.
        what: the command named in messages.

    Raises:
        OutputError: another run holds the folder.
        UsageError: the chunk folder path is a file.
    """
    if layout.folder.exists() and not layout.folder.is_dir():
        raise UsageError(f"{layout.folder} is a file, not a folder for chunks; pass another --chunk-dir")
    layout.folder.mkdir(parents=True, exist_ok=True)
    path = layout.folder / LOCK_NAME
    host = socket.gethostname()
    mine = json.dumps({"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
                pid, where = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                held, pid, where = {}, -1, host  # unreadable: a writer killed mid-write
            if where == host and (pid <= 0 or not process_alive(pid)):
                path.unlink(missing_ok=True)  # its process is gone: take over
                continue
            since = f" since {held['since']}" if isinstance(held, dict) and held.get("since") else ""
            where_text = f"process {pid}" + ("" if where == host else f" on {where}")
            raise OutputError(f"{layout.folder} is in use by another {what} run ({where_text}{since}); wait for it "
                              f"to finish, or delete {path} if that run is gone")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(mine + "\n")
        break
    else:  # pragma: no cover - a third run took the stale lock between our two tries
        raise OutputError(f"{layout.folder} is in use by another {what} run; try again")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        tidy_folder(layout)  # a run stopped before its first chunk leaves no manifest or folder
