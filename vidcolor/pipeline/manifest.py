"""The manifest of a folder of segments or chunks: what they were rendered from and with.

A small manifest (``farm.json``) in the folder records the source, how the film is cut and the
settings that change pixels (``vidcolor.pipeline.render_identity``), so a later run with other
settings refuses to reuse the finished files instead of merging a mixture. It is written before
the first file and removed only once no file is left. Each file also carries a stamp of its
source and settings in its container tags (``vidcolor.io.stamp``), so files with a stamp that is
not the job's, or with neither a stamp nor a manifest, are never reused.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from vidcolor.errors import UsageError
from vidcolor.io.atomic import atomic_output
from vidcolor.io.stamp import read_stamp
from vidcolor.pipeline.segments import MANIFEST_NAME, ChunkLayout, FrameRange

# Version 2: settings compare what changes pixels (effective CRF and style), farm records
# --chunk-frames, chunks carry stamps. A folder of version 1 is refused as an older vidcolor's
# (its unstamped chunks would pass its record, then fail merge's stamp check).
MANIFEST_FORMAT = "vidcolor-farm-chunks-2"
_OLDER_FORMATS = {"vidcolor-farm-chunks"}


def _shown(value: Any) -> str:
    return "not set" if value is None else repr(value)


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

