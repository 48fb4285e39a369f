"""``vidcolor probe``'s text: what ``probe`` found, in a few lines a person reads."""

from __future__ import annotations

from fractions import Fraction

import av

from vidcolor.io.media_info import MediaInfo, VideoStreamInfo
from vidcolor.io.pixel_formats import SUBSAMPLING_NAMES, is_rgb_like
from vidcolor.wording import count_of


def _format_rate(rate: Fraction | None) -> str:
    if rate is None:
        return "unknown rate"
    if rate.denominator == 1:
        return f"{rate.numerator} fps"
    return f"{float(rate):.3f} fps ({rate.numerator}/{rate.denominator})"


def _subsampling_name(video: VideoStreamInfo) -> str:
    if video.is_gray:
        return "gray"
    return SUBSAMPLING_NAMES.get(tuple(video.chroma_shift), f"chroma shift {video.chroma_shift}")


def _matrix_words(video: VideoStreamInfo) -> str:
    """The matrix as read: an RGB source has none of its own ("gbr"), decode picks one."""
    if is_rgb_like(video.pix_fmt):
        return f"none (RGB, read as YCbCr with {video.matrix})"
    return f"{video.colorspace or 'unspecified'} (using {video.matrix})"


def _video_lines(video: VideoStreamInfo) -> list[str]:
    if video.frame_count == 0:
        return [f"video #{video.index}: {video.codec} {video.width}x{video.height}, no frames"]
    timing = "variable frame rate" if video.is_vfr else "constant frame rate"
    sar = f", pixel aspect {video.sample_aspect_ratio}" if video.sample_aspect_ratio else ""
    return [
        f"video #{video.index}: {video.codec} {video.width}x{video.height} {video.pix_fmt} "
        f"({video.bit_depth}-bit {_subsampling_name(video)}){sar}",
        f"  timing: {count_of(video.frame_count, 'frame')}, {_format_rate(video.avg_rate)}, {timing}, "
        f"time base {video.time_base.numerator}/{video.time_base.denominator}",
        f"  colour: primaries {video.color_primaries or 'unspecified'}, "
        f"transfer {video.color_trc or 'unspecified'}, matrix {_matrix_words(video)}, "
        f"{'full' if video.full_range else 'limited'} range",
        f"  scan: {'interlaced' if video.interlaced else 'progressive'}, rotation {video.rotation} degrees",
    ]


# Image types by FFmpeg's codec name, as people call them.
_IMAGE_TYPES = {"mjpeg": "JPEG", "jpegls": "JPEG-LS", "jpeg2000": "JPEG 2000", "targa": "Targa", "webp": "WebP",
                "exr": "OpenEXR"}


def _still_line(video: VideoStreamInfo) -> str:
    """A still image in one line: its type, size and samples (no timing, scan or matrix)."""
    kind = _IMAGE_TYPES.get(video.codec, video.codec.upper())
    fmt = av.video.format.VideoFormat(video.pix_fmt)
    if is_rgb_like(video.pix_fmt):
        samples = "RGB"
    elif video.is_gray:
        samples = "grey"
    else:
        samples = f"YCbCr {_subsampling_name(video)}"
    alpha = " with transparency" if any(c.is_alpha for c in fmt.components) else ""
    return f"still image: {kind} {video.width}x{video.height}, {video.bit_depth}-bit {samples}{alpha}"


def _verdict_line(info: MediaInfo) -> str:
    if info.verdict is None:
        reason = info.chroma_stats.get("reason")
        return f"verdict: not computed ({reason})" if reason else "verdict: not computed"
    stats = info.chroma_stats
    if "mean_magnitude" not in stats:
        return f"verdict: {info.verdict} ({stats.get('reason', 'no chroma')})"
    sampled = "" if info.is_still else f", {count_of(stats['frames_sampled'], 'frame')} sampled"
    return (f"verdict: {info.verdict} (mean |chroma| {stats['mean_magnitude']:.4f}, "
            f"offset {stats['offset']:.4f}, spread {stats['spread']:.4f}{sampled})")


def format_report(info: MediaInfo) -> str:
    """Human-readable, multi-line description for ``vidcolor probe``.

    Args:
        info: what ``probe`` returned.

    Returns:
        Text without a trailing newline.
    """
    lines = [f"file: {info.path}"]
    if info.is_still and info.video is not None and info.video.frame_count == 1:
        lines.append(_still_line(info.video))
    else:
        duration = f"{info.duration_s:.3f} s" if info.duration_s is not None else "unknown duration"
        lines.append(f"container: {info.format_name}, {duration}")
        if info.video is not None:
            lines += _video_lines(info.video)
    if info.damage:
        lines.append(f"  damage: {info.damage}")
    if info.timing_problem:
        lines.append(f"  timing problem: {info.timing_problem}")
    for other in info.others:
        lines.append(f"{other.kind} #{other.index}: {other.description}")
    lines.append(_verdict_line(info))
    return "\n".join(lines)
