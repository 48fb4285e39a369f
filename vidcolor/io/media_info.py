"""What probing a media file found: the video stream, the other streams, and the file as a whole.

Plain frozen records with no reading of their own, so every io module can take and return them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class VideoStreamInfo:
    """The video stream vidcolor works on, as the decoder delivers it."""

    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    is_gray: bool
    chroma_shift: tuple[int, int]
    time_base: Fraction
    avg_rate: Fraction | None
    frame_count: int
    is_vfr: bool
    color_primaries: str | None
    color_trc: str | None
    colorspace: str | None
    full_range: bool
    matrix: str
    interlaced: bool
    rotation: int
    # Added beyond the first interface (defaulted, so existing callers are unaffected):
    sample_aspect_ratio: Fraction | None = None  # non-square pixels (DV, anamorphic), kept on output
    planar_pix_fmt: str = ""  # the planar format decode.iter_frames delivers (== pix_fmt unless exotic)
    field_order: int = 0  # FFmpeg's AVFieldOrder of interlaced sources (0: unknown or progressive)


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream, copied packet for packet to the output."""

    index: int
    kind: str
    codec: str
    time_base: Fraction | None
    description: str


@dataclass(frozen=True)
class MediaInfo:
    """Everything ``probe`` learnt about a file."""

    path: str
    format_name: str
    duration_s: float | None
    video: VideoStreamInfo | None
    others: tuple[StreamInfo, ...]
    verdict: str | None
    chroma_stats: dict = field(default_factory=dict)
    timing_problem: str | None = None  # timestamps that go backwards, seen while decoding for the verdict
    damage: str | None = None  # why a video stream with no frames has none (an MP4 cut short), where known

    @property
    def is_still(self) -> bool:
        """Whether FFmpeg read the file as a single image (its image demuxers)."""
        return is_image_format(self.format_name)


def is_image_format(format_name: str) -> bool:
    """Whether an FFmpeg demuxer reads still images (``image2`` and the ``*_pipe`` ones).

    Args:
        format_name: the input container's format name.

    Returns:
        True for a still image.
    """
    return format_name == "image2" or format_name.endswith("_pipe")
