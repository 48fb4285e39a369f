"""What is in a media file: streams, timing, colour metadata, and a grey/tinted/colour verdict.

``probe`` joins the description of the streams (``streams.describe_media``) and the verdict
(``verdict.chroma_verdict``); the pieces live in their own modules:

- ``inputs``: opening files for FFmpeg, one-line reasons where it cannot.
- ``packet_scan``: frame timestamps from packets (frame count, variable rate, repeats).
- ``pixel_formats`` and ``color_metadata``: the stream's layout and colour tags.
- ``streams``: the video stream and the others, as ``MediaInfo`` (``media_info``).
- ``verdict``: grey, tinted or colour, from a few decoded frames.
- ``report``: ``vidcolor probe``'s text. ``media_files``: which files are stills or videos.
"""

from __future__ import annotations

import os
from dataclasses import replace

from vidcolor.errors import TimestampError
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.streams import describe_media
from vidcolor.io.verdict import chroma_verdict

__all__ = ["MediaInfo", "probe"]


def probe(path: str | os.PathLike, verdict: bool = True, sample_frames: int = 12) -> MediaInfo:
    """Describe a media file: container, video stream, other streams, and a chroma verdict.

    Args:
        path: the media file.
        verdict: also decode ``sample_frames`` frames to tell grey, tinted and colour apart.
        sample_frames: frames sampled, spread over the clip, for the verdict.

    Returns:
        A MediaInfo.

    Raises:
        InputError: missing, empty or non-media file, a directory, or no video stream (a video
            stream without frames is described, with ``frame_count`` 0).
    """
    info = describe_media(path)
    if verdict:
        try:
            result, stats = chroma_verdict(info, sample_frames)
        except TimestampError as exc:  # reported by the caller (probe's report, colorize's refusal)
            result, stats = None, {"frames_sampled": 0, "reason": "the timing is damaged"}
            info = replace(info, timing_problem=info.timing_problem or exc.detail)
        info = replace(info, verdict=result, chroma_stats=stats)
    return info
