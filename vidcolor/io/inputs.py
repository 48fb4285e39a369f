"""Opening input files: checks before FFmpeg is asked, file names FFmpeg must read as paths,
and one-line reasons where it cannot read them.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import av

from vidcolor.errors import InputError


def check_readable_file(path: str | os.PathLike) -> Path:
    """Refuse paths that cannot be media before asking FFmpeg, for clearer messages.

    Args:
        path: the input path.

    Returns:
        The path as a Path.

    Raises:
        InputError: missing file, directory, or empty file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input {p} does not exist; {_sequence_advice(p) or 'check the path'}")
    if p.is_dir():
        raise InputError(f"input {p} is a directory; give a video file")
    if p.stat().st_size == 0:
        raise InputError(f"input {p} is empty (0 bytes); re-export or re-copy it")
    if not os.access(p, os.R_OK):
        raise InputError(f"input {p} is not readable; check its permissions")
    return p


# A name that stands for numbered frames: printf style (frames_%04d.png), hashes (frame.####.dpx)
# or a shell glob left quoted (frames_*.png).
_SEQUENCE_NAME = re.compile(r"%0?\d*d|#{2,}|[*?\[]")


def _sequence_advice(p: Path) -> str | None:
    """How to wrap an image sequence as a video, when ``p`` names one (checked with FFmpeg 5.1)."""
    if not _SEQUENCE_NAME.search(p.name):
        return None
    if re.search(r"[*?\[]", p.name):
        source, numbering = f"-pattern_type glob -i {shlex.quote(str(p))}", ""
    else:  # FFmpeg's own numbering is printf style, and it looks for the first frame among 0 to 4
        source = "-i " + shlex.quote(re.sub(r"#{2,}", lambda hashes: f"%0{len(hashes.group())}d", str(p)))
        numbering = "; add -start_number FIRST before -i when the first frame's number is above 4"
    return (f"image sequences are not read directly: wrap the frames in a lossless video first, e.g. "
            f"ffmpeg -framerate 24 {source} -c:v ffv1 reel.mkv (24: the scan's frame rate{numbering}), "
            "then colorize reel.mkv")


# FFmpeg reads "NAME:rest" as a URL of protocol NAME when NAME has only these characters, so a
# file called "2024-01-01T10:00.mp4" would be refused as an unknown protocol.
_LOOKS_LIKE_URL = re.compile(r"^[A-Za-z0-9+.-]+:")


def ffmpeg_path(path: str | os.PathLike) -> str:
    """A local file's name as FFmpeg must be given it: with ``file:`` in front where the name
    would otherwise read as a URL (a colon after letters, digits, ``+``, ``-`` or ``.``).

    Args:
        path: a local file path.

    Returns:
        The string to hand to ``av.open``.
    """
    text = str(path)
    return f"file:{text}" if _LOOKS_LIKE_URL.match(text) else text


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file for reading, turning FFmpeg errors into one-line InputErrors.

    Args:
        path: the input path.

    Returns:
        An open PyAV input container (the caller closes it).

    Raises:
        InputError: when the file is missing, empty, or not media FFmpeg can read.
    """
    p = check_readable_file(path)
    try:
        return av.open(ffmpeg_path(p), mode="r")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        damage = mp4_damage(p)
        if damage is not None:
            raise InputError(f"cannot read {p}: {damage}") from exc
        raise InputError(f"cannot read {p} as media ({error_reason(exc)}); is it a video file?") from exc


_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid"}


def mp4_damage(path: Path) -> str | None:
    """Why FFmpeg cannot open an MP4/MOV: its index (moov atom) is missing, or it is cut short.

    Walks the top-level boxes only (sizes and types), so it is cheap on any file.

    Args:
        path: a file FFmpeg failed to open.

    Returns:
        The reason and what to do, or None when the file does not look like MP4/MOV (or
        looks intact).
    """
    try:
        size = path.stat().st_size
        kinds: list[bytes] = []
        cut = False
        with open(path, "rb") as f:
            pos = 0
            while pos + 8 <= size and len(kinds) < 100_000:
                f.seek(pos)
                header = f.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")
                elif length == 0:
                    length = size - pos  # the last box runs to the end of the file
                if (not kinds and kind not in _MP4_FIRST_BOXES) or length < 8:
                    break
                kinds.append(kind)
                if pos + length > size:
                    cut = True
                    break
                pos += length
    except OSError:
        return None
    if not kinds or kinds[0] not in _MP4_FIRST_BOXES:
        return None
    if b"moov" not in kinds and b"moof" not in kinds:
        if cut:
            return ("it is cut short (truncated) and its index (moov atom) is missing; re-copy it from the "
                    "source, or rebuild the index with an MP4 repair tool")
        return ("its index (moov atom) is missing, as when a recording stops before the file is finished; "
                "re-copy it from the source, or rebuild the index with an MP4 repair tool")
    if cut:
        return "it is cut short (truncated); re-copy it from the source"
    return None


def error_reason(exc: BaseException) -> str:
    """A short reason from an FFmpeg/OS error, without PyAV's errno prefix.

    Args:
        exc: the error PyAV or the OS raised.

    Returns:
        Its reason, without a trailing full stop.
    """
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().rstrip(".")


def pick_video_stream(container: av.container.InputContainer):
    """The first real video stream (cover art and thumbnails are skipped), or None.

    Args:
        container: an open input container.

    Returns:
        A PyAV VideoStream, or None when the file has no video.
    """
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        return stream
    return None
