"""What the streams of a media file are: the video stream's layout, timing and colour
(``describe_media``), and a line for each other stream. Nothing here converts pixels to RGB.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

from vidcolor.errors import InputError
from vidcolor.io.color_metadata import color_names
from vidcolor.io.inputs import check_readable_file, error_reason, mp4_damage, open_input, pick_video_stream
from vidcolor.io.media_info import MediaInfo, StreamInfo, VideoStreamInfo
from vidcolor.io.packet_scan import is_variable_rate, repeated_timestamps, scan_timestamps
from vidcolor.io.pixel_formats import format_layout, is_rgb_like, planar_equivalent
from vidcolor.matrices import matrix_from_ffmpeg

_FIELD_ORDER_INTERLACED = {2, 3, 4, 5}  # AV_FIELD_TT, BB, TB, BT
FIELD_ORDER_TB, FIELD_ORDER_BT = 4, 5


def describe_media(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file: container, video stream and other streams, without the verdict.

    Args:
        path: the media file.

    Returns:
        A MediaInfo whose ``verdict`` is None (``probe.probe`` adds it).

    Raises:
        InputError: missing, empty or non-media file, a directory, or no video stream (a video
            stream without frames is described, with ``frame_count`` 0).
    """
    p = check_readable_file(path)
    with open_input(p) as container:
        stream = pick_video_stream(container)
        if stream is None:
            raise InputError(f"{p} has no video stream; vidcolor needs a video or an image")
        try:
            video = _describe_video(container, stream, str(p))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read the video stream of {p} ({error_reason(exc)})") from exc
        others = tuple(_describe_other(s) for s in container.streams
                       if s.index != stream.index and s.type != "video")
        duration = container.duration / 1_000_000 if container.duration is not None else None
        damage = mp4_damage(p) if video.frame_count == 0 else None  # an index or media data cut short
        return MediaInfo(path=str(p), format_name=container.format.name, duration_s=duration,
                         video=video, others=others, verdict=None, chroma_stats={}, damage=damage,
                         timing_problem=repeated_timestamps(str(p), stream.index, video.time_base))


def _describe_other(stream) -> StreamInfo:
    """A StreamInfo for an audio, subtitle, data or attachment stream."""
    kind = stream.type if stream.type in ("audio", "subtitle", "data", "attachment") else "data"
    codec = codec_name(stream)
    if kind == "audio":
        ctx = stream.codec_context
        layout = getattr(getattr(ctx, "layout", None), "name", None) or f"{getattr(ctx, 'channels', '?')} ch"
        description = f"{codec} {ctx.sample_rate} Hz {layout}"
    elif kind == "attachment":
        name = stream.metadata.get("filename", "?")
        description = f"attachment {name} ({getattr(stream, 'mimetype', None) or 'unknown type'})"
    else:
        description = f"{codec} {kind}"
    language = stream.metadata.get("language")
    if language and language != "und":
        description += f" [{language}]"
    return StreamInfo(index=stream.index, kind=kind, codec=codec, time_base=stream.time_base,
                      description=description)


def codec_name(stream) -> str:
    """A stream's codec as ffprobe names it (``"subrip"``, not ``"srt"``).

    Args:
        stream: a PyAV stream.

    Returns:
        The codec name, the codec tag where no decoder is known, or ``"unknown"``.
    """
    try:
        ctx = stream.codec_context
        if ctx is not None and ctx.codec is not None:
            return ctx.codec.canonical_name  # the codec's name as ffprobe shows it ("subrip", not "srt")
    except (AttributeError, av.error.FFmpegError, ValueError, RuntimeError):
        pass
    tag = getattr(stream, "codec_tag", None)
    return str(tag).strip("\x00") if tag else "unknown"


def _first_frame(container, stream):
    """Decode the first frame of ``stream`` (None if nothing decodes), for flags and side data."""
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:
        return None
    return None


def _describe_video(container, stream, path: str) -> VideoStreamInfo:
    """Build the VideoStreamInfo of ``stream`` (scans timestamps, decodes one frame)."""
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None:
        raise InputError(f"{path}: no decoder for its video codec in this FFmpeg build; convert the video first")
    stream.thread_type = "AUTO"
    first = _first_frame(container, stream)
    decoder_fmt = first.format.name if first is not None else (ctx.format.name if ctx.format else None)
    if decoder_fmt is None:
        if not scan_timestamps(path, stream.index):
            return _frameless_video(stream, ctx)
        damage = mp4_damage(Path(path))  # an index or media data cut short
        raise InputError(f"{path}: no frame of the video stream can be decoded (its pixel format is unknown); "
                         f"{damage or 'the file is damaged: re-copy or re-export it'}")
    try:
        planar = planar_equivalent(decoder_fmt)
        depth, gray, shift = format_layout(planar)
    except (ValueError, av.error.FFmpegError) as exc:
        raise InputError(f"{path}: unsupported pixel format {decoder_fmt}; convert the video first") from exc
    width = first.width if first is not None else ctx.width
    height = first.height if first is not None else ctx.height
    primaries, trc, colorspace, full = color_names(ctx, first, decoder_fmt)
    pts = scan_timestamps(path, stream.index)
    interlaced, field_order = _field_order(ctx, first)
    rate = _frame_rate(stream, pts)
    return VideoStreamInfo(
        index=stream.index,
        codec=codec_name(stream),
        width=width,
        height=height,
        pix_fmt=decoder_fmt,
        bit_depth=depth,
        is_gray=gray,
        chroma_shift=shift,
        time_base=Fraction(stream.time_base),
        avg_rate=Fraction(rate) if rate else None,
        frame_count=len(pts),
        is_vfr=is_variable_rate(pts),
        color_primaries=primaries,
        color_trc=trc,
        colorspace=colorspace,
        full_range=full or decoder_fmt.startswith("yuvj") or is_rgb_like(decoder_fmt),
        matrix=matrix_from_ffmpeg(colorspace, height),
        interlaced=interlaced,
        rotation=int(round(first.rotation)) % 360 if first is not None else 0,
        sample_aspect_ratio=_sample_aspect_ratio(stream),
        planar_pix_fmt=planar,
        field_order=field_order,
    )


def _frameless_video(stream, ctx) -> VideoStreamInfo:
    """The VideoStreamInfo of a video stream without a single frame: what its codec parameters
    say, ``frame_count`` 0 (``run.check_video_input`` refuses it before anything reads the rest)."""
    height = ctx.height or 0
    return VideoStreamInfo(
        index=stream.index, codec=codec_name(stream), width=ctx.width or 0, height=height,
        pix_fmt=ctx.format.name if ctx.format else "unknown", bit_depth=8, is_gray=False, chroma_shift=(1, 1),
        time_base=Fraction(stream.time_base or Fraction(1, 1000)), avg_rate=None, frame_count=0, is_vfr=False,
        color_primaries=None, color_trc=None, colorspace=None, full_range=False,
        matrix=matrix_from_ffmpeg(None, height), interlaced=False, rotation=0,
    )


def _field_order(ctx, first_frame) -> tuple[bool, int]:
    """Whether the source is interlaced, and its field order.

    The container's or codec's flag comes first; else the first frame's interlaced flag. PyAV
    does not expose a frame's top-field-first flag, so a source flagged interlaced only per
    frame gets the order its format prescribes (standard-definition DV is bottom field first)
    or none (0), which leaves the output without a field-order flag rather than a wrong one.

    Returns:
        (interlaced, FFmpeg's AVFieldOrder or 0 when unknown).
    """
    order = int(getattr(ctx, "field_order", 0) or 0)
    if order in _FIELD_ORDER_INTERLACED:
        return True, order
    if first_frame is None or not first_frame.interlaced_frame:
        return False, 0
    top_first = getattr(first_frame, "top_field_first", None)  # not in PyAV 18
    if top_first is not None:
        return True, FIELD_ORDER_TB if top_first else FIELD_ORDER_BT
    if ctx.name == "dvvideo" and first_frame.height in (480, 576):
        return True, FIELD_ORDER_BT
    return True, 0


def _frame_rate(stream, pts: list[int]) -> Fraction | None:
    """The stream's frame rate: FFmpeg's average rate, unless the frames' own timestamps say
    otherwise (a raw DV file reports 60000 fps with its 1/60000 time base while its frames
    are 2002 ticks apart), then FFmpeg's guess where it agrees with them, else theirs."""
    measured = _rate_from_pts(pts, stream.time_base)

    def agrees(rate) -> bool:
        return bool(rate) and (measured is None or abs(Fraction(rate) / measured - 1) < Fraction(1, 100))

    for rate in (stream.average_rate, stream.guessed_rate):
        if agrees(rate):
            return Fraction(rate)
    return measured.limit_denominator(1001 * 1000) if measured else None


def _rate_from_pts(pts: list[int], time_base) -> Fraction | None:
    if len(pts) < 2 or not time_base or pts[-1] == pts[0]:
        return None
    return Fraction(len(pts) - 1) / ((pts[-1] - pts[0]) * Fraction(time_base))


def _sample_aspect_ratio(stream) -> Fraction | None:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar == 1:
        return None
    return Fraction(sar)
