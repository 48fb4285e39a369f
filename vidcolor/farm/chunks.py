"""What only ``farm`` adds to a folder of chunks: one run at a time, and the test hook's markers.

Planning, naming and finding chunks (``vidcolor.pipeline.segments``), the folder's manifest
(``vidcolor.pipeline.manifest``) and what identifies a render (``vidcolor.pipeline.render_identity``)
are shared with ``colorize --resume`` and live in the pipeline. A lock file (``farm.lock``: pid
and host) keeps two runs out of one folder. Nothing here imports Ray or torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from vidcolor.errors import OutputError, UsageError
from vidcolor.io.atomic import process_alive
from vidcolor.pipeline import manifest
from vidcolor.pipeline.manifest import tidy_folder
from vidcolor.pipeline.segments import ChunkLayout, FrameRange

LOCK_NAME = "farm.lock"
FAILED_ONCE_SUFFIX = ".failed-once"  # marker of the farm test hook (see ray_executor)


def remove_chunks(layout: ChunkLayout, plan: Sequence[FrameRange]) -> None:
    """Delete the chunks of this source and their leftovers (the test hook's markers too), then
    the manifest and the folder if empty (see ``vidcolor.pipeline.manifest.remove_chunks``).

    Args:
        layout: the chunk layout.
        plan: the planned ranges.
    """
    if layout.folder.is_dir():
        for marker in [p for p in layout.folder.iterdir() if p.name.endswith(FAILED_ONCE_SUFFIX)]:
            marker.unlink(missing_ok=True)
    manifest.remove_chunks(layout, plan)


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
