"""Frame timestamps from a demux-only scan of packets: exact, and much cheaper than decoding.

The frame count, the variable-frame-rate flag and repeated timestamps all come from here.
"""

from __future__ import annotations

import os
import shlex
from fractions import Fraction
from functools import lru_cache

import av

from vidcolor.errors import InputError
from vidcolor.io.inputs import check_readable_file, open_input, pick_video_stream

# What to do about a file whose timestamps go backwards (checked with FFmpeg 5.1: the frames
# come out in the decoder's order, which is the right one, timed anew at the given rate).
RETIME_ADVICE = ("re-time it at its frame rate and colorize the copy, e.g. ffmpeg -r 24 -i {path} -c:v ffv1 -c:a copy "
                 "retimed.mkv (24: the film's real frame rate, e.g. 25 or 30000/1001)")


def _file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _scan_timestamps_cached(key: tuple[str, int, int], stream_index: int | None) -> tuple[int, ...]:
    path = key[0]
    with open_input(path) as container:
        stream = container.streams[stream_index] if stream_index is not None else pick_video_stream(container)
        if stream is None or stream.type != "video":
            raise InputError(f"{path} has no video stream; vidcolor needs a video or an image")
        stamps: list[int] = []
        missing = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # flush packets, and samples an edit list cuts away
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    missing += 1
                    continue
                stamps.append(stamp)
        except av.error.FFmpegError:
            pass  # a damaged tail: keep what was readable; decode reports the loss
        if missing:
            # Raw bitstreams carry no timestamps: number the frames at the nominal rate.
            stamps = _synthesize_timestamps(len(stamps) + missing, stream)
    return tuple(sorted(stamps))


def _synthesize_timestamps(count: int, stream) -> list[int]:
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    tb = stream.time_base or Fraction(1, 90000)
    step = 1 / (Fraction(rate) * Fraction(tb))
    return [int(round(i * step)) for i in range(count)]


def scan_timestamps(path: str | os.PathLike, stream_index: int | None = None) -> list[int]:
    """Presentation timestamps of every video frame, sorted, from packets only (no decoding).

    Results are cached per file (path, size and modification time), so probe, decode and
    encode can all ask without reading the file again.

    Args:
        path: the media file.
        stream_index: container index of the video stream; None picks the first video stream.

    Returns:
        The pts of each frame in the stream's time base, in presentation order.

    Raises:
        InputError: unreadable file or no video stream.
    """
    check_readable_file(path)
    return list(_scan_timestamps_cached(_file_key(path), stream_index))


def repeated_timestamps(path: str, stream_index: int, time_base: Fraction) -> str | None:
    """Why the timing is damaged when two frames share a timestamp, else None.

    Frames shown at the same instant cannot both be kept in order: the decoder would stop at
    the second one mid-run. The packet scan sees them anywhere in the file (sampling for the
    verdict may not), so ``colorize`` can refuse before any work.

    Args:
        path: the media file.
        stream_index: container index of its video stream.
        time_base: that stream's time base (for the time in the message).

    Returns:
        One line saying where frames repeat and how to re-time the file, or None.
    """
    pts = scan_timestamps(path, stream_index)
    repeated = [a for a, b in zip(pts, pts[1:]) if a == b]
    if not repeated:
        return None
    count = len(repeated)
    frames = f"{count} frames repeat" if count > 1 else "1 frame repeats"
    return (f"{frames} the timestamp of the frame before (the first at {float(repeated[0] * time_base):.3f} s), "
            "so its timing is damaged; " + RETIME_ADVICE.format(path=shlex.quote(path)))


def is_variable_rate(pts: list[int]) -> bool:
    """Whether frame durations differ by more than timestamp rounding (one tick).

    Args:
        pts: sorted frame timestamps.

    Returns:
        True for a variable frame rate.
    """
    durations = [b - a for a, b in zip(pts, pts[1:])]
    if len(durations) < 2:
        return False
    return max(durations) - min(durations) > 1
