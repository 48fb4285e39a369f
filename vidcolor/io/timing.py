"""Frame ranges and frame timing.

A frame range is ``S-E``: inclusive, 0-based indices in presentation order, as used by
``colorize --frames`` and by farm chunks.
"""

from __future__ import annotations

import re

from vidcolor.errors import UsageError

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$", re.ASCII)  # ASCII digits and spaces only


def parse_frame_range(text: str) -> tuple[int, int]:
    """Parse ``"S-E"`` (inclusive, 0-based) into ``(S, E)``.

    Args:
        text: the range as typed by the user, e.g. ``"0-99"``.

    Returns:
        ``(start, end)`` with ``0 <= start <= end``.

    Raises:
        UsageError: when the text is not two non-negative integers with start <= end.
    """
    match = _RANGE.match(text or "")
    if match is None:
        raise UsageError(
            f"bad frame range {text!r}: expected S-E with 0-based inclusive frame numbers, e.g. 0-99"
        )
    try:
        start, end = int(match.group(1)), int(match.group(2))
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise UsageError(f"bad frame range {text[:40]!r}...: the frame numbers are far too long") from None
    if start > end:
        raise UsageError(f"bad frame range {text!r}: the start {start} is after the end {end}")
    return start, end


def clamp_frame_range(start: int, end: int, frame_count: int) -> tuple[int, int]:
    """Fit a frame range to a clip: an end past the last frame becomes the last frame.

    Args:
        start: first frame wanted (0-based).
        end: last frame wanted (inclusive).
        frame_count: number of frames in the clip.

    Returns:
        ``(start, min(end, frame_count - 1))``.

    Raises:
        UsageError: when the range starts past the last frame or is otherwise empty.
    """
    if start < 0 or end < start:
        raise UsageError(f"bad frame range {start}-{end}: expected 0 <= start <= end")
    if start >= frame_count:
        raise UsageError(
            f"frame range {start}-{end} starts past the last frame "
            f"(the clip has {frame_count} frames, 0-{max(frame_count - 1, 0)})"
        )
    return start, min(end, frame_count - 1)


def frame_durations(pts: list[int]) -> list[int]:
    """Duration of each frame, from sorted presentation timestamps.

    Each frame lasts until the next one starts; the last frame is given its predecessor's
    duration because nothing follows it (a single frame gets 0: unknown).

    Args:
        pts: presentation timestamps in presentation order (one time base).

    Returns:
        One duration per timestamp, in the same time base.
    """
    durations = [b - a for a, b in zip(pts, pts[1:])]
    if not pts:
        return []
    durations.append(durations[-1] if durations else 0)
    return durations
