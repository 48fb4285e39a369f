"""The stamp a chunk carries: which source and which settings made it.

A chunk (``colorize --frames``, a farm task, a ``--resume`` segment) gets one container tag,
``comment = "vidcolor chunk source=HEX settings=HEX"``: a fingerprint of the source file and
one of the options that decide its pixels. ``farm`` reuses a chunk only when its stamp is the
job's, and ``merge`` refuses chunks whose stamps differ (or that come from another file than
``--audio-from``). The ``comment`` tag is used because every container we write keeps it
(Matroska, MP4, MOV, AVI); the merged film does not inherit it (it takes the source's tags).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping

from vidcolor.errors import InputError
from vidcolor.io.inputs import open_input

STAMP_TAG = "comment"
_PREFIX = "vidcolor chunk"
_STAMP_RE = re.compile(r"^vidcolor chunk source=(?P<source>[0-9a-f]{16}) settings=(?P<settings>[0-9a-f]{16})$")
_SAMPLE = 1 << 20  # bytes read at each end of the source


def source_fingerprint(path: str | os.PathLike) -> str:
    """A cheap fingerprint of a file's content: its size and its first and last MiB.

    Cheap enough for every chunk of a feature film, and independent of the file's name and
    folder (a farm node may mount the film elsewhere).

    Args:
        path: the source file.

    Returns:
        16 hex digits.
    """
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_SAMPLE))
        if size > _SAMPLE:
            f.seek(max(_SAMPLE, size - _SAMPLE))
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A fingerprint of JSON-friendly settings (key order does not matter).

    Args:
        settings: e.g. ``farm.chunks.render_settings(...)``.

    Returns:
        16 hex digits.
    """
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_stamp(source: str, settings: str) -> str:
    """The tag value for a source and a settings fingerprint."""
    return f"{_PREFIX} source={source} settings={settings}"


def parse_stamp(text: str | None) -> tuple[str, str] | None:
    """``(source, settings)`` fingerprints of a stamp, or None for a missing or foreign tag."""
    match = _STAMP_RE.match((text or "").strip())
    return (match["source"], match["settings"]) if match else None


def stamp_of(metadata: Mapping[str, str]) -> str | None:
    """The stamp in a container's tags (Matroska upper-cases tag names), or None."""
    for key, value in metadata.items():
        if key.lower() == STAMP_TAG and parse_stamp(value):
            return value.strip()
    return None


def read_stamp(path: str | os.PathLike) -> str | None:
    """The stamp of a chunk file (reads its header only), or None when it has none.

    Args:
        path: the chunk.

    Returns:
        The stamp text, or None (no stamp, or a file PyAV cannot open).
    """
    try:
        with open_input(path) as container:
            return stamp_of(dict(container.metadata))
    except InputError:
        return None
