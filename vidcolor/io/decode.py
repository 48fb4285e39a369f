"""Decode video frames as YUV planes, straight from the decoder (no RGB round trip).

Luma must reach the encoder untouched, so frames are handed out as the decoder's own planes:
8-bit formats as uint8, deeper ones as uint16 holding native code values, line padding
cropped. Exotic formats (packed, semi-planar, RGB, palette) are converted once to the nearest
planar yuv format of the same depth (``pixel_formats.planar_equivalent``).
Still images are read by ``stills``.
"""

from __future__ import annotations

import itertools
import os
import shlex
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator

import av
import numpy as np

from vidcolor.errors import InputError, TimestampError
from vidcolor.io.inputs import open_input
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.packet_scan import RETIME_ADVICE, scan_timestamps
from vidcolor.io.pixel_formats import planar_equivalent
from vidcolor.io.streams import describe_media
from vidcolor.io.timing import clamp_frame_range


@dataclass
class Frame:
    """One decoded frame as planes at their native size and depth."""

    index: int  # 0-based position in presentation order in the whole stream
    pts: int  # in the stream's time base
    y: np.ndarray  # (H, W) uint8, or uint16 native code values for > 8 bits
    cb: np.ndarray | None  # chroma at native (subsampled) size; None for gray input
    cr: np.ndarray | None
    interlaced: bool
    duration: int | None = None  # how long it shows, in the stream's time base; None: unknown


@dataclass
class DecodeStats:
    """Counters filled while decoding, for logs and for the caller's sanity checks."""

    decoded: int = 0  # frames handed out
    corrupt_packets: int = 0  # packets the decoder rejected (skipped)
    dropped: int = 0  # frames of the requested range that never came out of the decoder
    concealed: int = 0  # frames decoded with damage the decoder patched (FFmpeg's corrupt flag)


# ---------------------------------------------------------------------------------------------
# Planes


def plane_array(plane, bytes_per_sample: int) -> np.ndarray:
    """Copy one frame plane into a (height, width) array, dropping the line padding.

    Args:
        plane: a PyAV VideoPlane.
        bytes_per_sample: 1 for 8-bit formats, 2 for deeper ones (little endian).

    Returns:
        uint8 or uint16 array owning its memory (the frame buffer is reused by the decoder).
    """
    dtype = np.uint8 if bytes_per_sample == 1 else np.dtype("<u2")
    rows = np.frombuffer(plane, dtype=dtype)
    rows = rows[: plane.height * (plane.line_size // bytes_per_sample)]
    rows = rows.reshape(plane.height, plane.line_size // bytes_per_sample)
    return np.array(rows[:, : plane.width], dtype=np.uint8 if bytes_per_sample == 1 else np.uint16)


_SWSCALE_MATRIX = {"bt601": "itu601", "bt709": "itu709", "bt2020": "bt2020"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _to_planar(frame: av.VideoFrame, target: str, matrix: str) -> av.VideoFrame:
    """Convert an exotic decoder format to ``target`` (no-op for planar formats)."""
    if frame.format.name == target:
        return frame
    if frame.format.is_rgb or frame.format.has_palette:
        # RGB becomes full-range YCbCr with the stream's matrix, so no code value is clipped;
        # probe reports such streams as full range with that matrix.
        return frame.reformat(format=target, dst_colorspace=_SWSCALE_MATRIX.get(matrix, "itu601"),
                              dst_color_range=_FULL_RANGE)
    return frame.reformat(format=target)


def frame_planes(frame: av.VideoFrame, target: str,
                 matrix: str = "bt601") -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Y, Cb, Cr planes of a decoded frame in the planar format ``target``.

    Args:
        frame: a decoded PyAV frame.
        target: the planar format to deliver (see ``pixel_formats.planar_equivalent``).
        matrix: the stream's matrix, used only to convert RGB or palette frames.

    Returns:
        ``(y, cb, cr)``; chroma is None for gray formats.
    """
    planar = _to_planar(frame, target, matrix)
    bytes_per_sample = 1 if planar.format.components[0].bits <= 8 else 2
    y = plane_array(planar.planes[0], bytes_per_sample)
    if len(planar.planes) < 3:
        return y, None, None
    return y, plane_array(planar.planes[1], bytes_per_sample), plane_array(planar.planes[2], bytes_per_sample)


# ---------------------------------------------------------------------------------------------
# Decoding


def _decoded_frames(container, stream, stats: DecodeStats) -> Iterator[av.VideoFrame]:
    """Every frame the decoder gives, skipping packets it rejects as corrupt."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            stats.corrupt_packets += 1  # an unreadable tail: keep what decoded so far
            return
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.FFmpegError):
            stats.corrupt_packets += 1
            continue
        yield from frames


def _deinterlaced(frames: Iterable[av.VideoFrame], stream) -> Iterator[av.VideoFrame]:
    """Run frames through yadif (one output frame per input frame, timestamps kept)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    yadif = graph.add("yadif", "mode=send_frame:parity=auto:deint=all")
    sink = graph.add("buffersink")
    source.link_to(yadif)
    yadif.link_to(sink)
    graph.configure()

    time_base = Fraction(stream.time_base)

    def drain() -> Iterator[av.VideoFrame]:
        while True:
            try:
                frame = graph.pull()
            except (BlockingIOError, av.error.EOFError):
                return
            except av.error.FFmpegError as exc:
                if getattr(exc, "errno", None) == 11:  # EAGAIN
                    return
                raise
            # yadif counts in half-frame units (its time base is halved): back to the stream's.
            if frame.pts is not None and frame.time_base and Fraction(frame.time_base) != time_base:
                scale = Fraction(frame.time_base) / time_base
                frame.pts = int(round(frame.pts * scale))
                frame.duration = int(round((frame.duration or 0) * scale))
                frame.time_base = time_base
            yield frame

    for frame in frames:
        graph.push(frame)
        yield from drain()
    graph.push(None)
    yield from drain()


def _stamp(frame: av.VideoFrame) -> int | None:
    """A decoded frame's pts (else its packet's dts); None for streams without timestamps."""
    return frame.pts if frame.pts is not None else frame.dts


def _seek_candidates(start: int) -> list[int]:
    """Frame indices to seek to, nearest first: start, then further back, finally 0."""
    candidates, back = [start], 1
    while start - back > 0:
        candidates.append(start - back)
        back *= 4
    candidates.append(0)
    return sorted(set(candidates), reverse=True)


def _frames_from(container, stream, pts_list: list[int], start: int,
                 stats: DecodeStats) -> Iterator[av.VideoFrame] | None:
    """Decoded frames beginning at or before frame ``start``, or None when seeking fails.

    Seeks to the keyframe before ``start``; if the demuxer lands after it (seeking by dts
    with B-frames can), or on a frame that decodes damaged, seeks further back until the
    first frame decoded is whole and not later.
    """
    if start == 0:
        return _decoded_frames(container, stream, stats)
    target = pts_list[start]
    for index in _seek_candidates(start):
        try:
            container.seek(pts_list[index], stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            continue
        frames = _decoded_frames(container, stream, stats)
        first = next(frames, None)
        if first is None:
            continue
        stamp = _stamp(first)
        if stamp is None:
            return None  # without timestamps frames are counted, which needs decoding from the start
        if first.is_corrupt and index > 0:
            # A keyframe flag on a frame the decoder cannot start from (an open-GOP I-frame
            # without a recovery point): what follows is damaged until the next true IDR
            # frame, so start further back.
            continue
        if stamp <= target or index == 0:
            return itertools.chain([first], frames)
    return None  # no seek worked


def iter_frames(path: str | os.PathLike, info: MediaInfo | None = None, start: int = 0,
                end: int | None = None, deinterlace: bool = False,
                stats: DecodeStats | None = None) -> Iterator[Frame]:
    """Decode frames ``start..end`` (inclusive, presentation order) as YUV planes.

    Corrupt packets are skipped and counted in ``stats``; decoding goes on after them.

    Args:
        path: the media file.
        info: its MediaInfo (probed here when None).
        start: first frame index (0-based).
        end: last frame index, inclusive; None for the last frame (clamped to it).
        deinterlace: run a yadif filter (only when asked).
        stats: counters to fill, or None.

    Returns:
        An iterator of Frame, whose ``index`` is the true index in the whole stream.

    Raises:
        InputError: unreadable input, or no frame of the range could be decoded.
        UsageError: a range that starts past the last frame.
    """
    info = info or describe_media(path)
    stats = stats if stats is not None else DecodeStats()
    video = info.video
    if video is None:
        raise InputError(f"{path} has no video stream; vidcolor needs a video or an image")
    pts_list = scan_timestamps(path, video.index)
    if not pts_list:
        raise InputError(f"{path}: the video stream has no frames")
    start, end = clamp_frame_range(start, len(pts_list) - 1 if end is None else end, len(pts_list))
    target = video.planar_pix_fmt or planar_equivalent(video.pix_fmt)
    yield from _decode_range(path, video, pts_list, start, end, target, deinterlace, stats)


def _open_at(path, video, pts_list: list[int], start: int, stats: DecodeStats):
    """Open the file and position the decoder at or before frame ``start``.

    Returns:
        ``(container, stream, frames)``; the caller closes the container.
    """
    container = open_input(path)
    stream = container.streams[video.index]
    stream.thread_type = "AUTO"
    frames = _frames_from(container, stream, pts_list, start, stats)
    if frames is None:
        # Raw bitstreams cannot seek, and a failed seek may leave the reader anywhere: start over.
        container.close()
        container = open_input(path)
        stream = container.streams[video.index]
        stream.thread_type = "AUTO"
        frames = _decoded_frames(container, stream, stats)
    return container, stream, frames


def _duration(av_frame: av.VideoFrame, index: int, pts: int, pts_list: list[int], stream) -> int | None:
    """How long a frame shows, in the stream's time base: up to the next frame's pts, and for the
    last frame its own (packet) duration, which the muxer needs for the film's end time."""
    if index + 1 < len(pts_list) and pts_list[index] == pts:
        return pts_list[index + 1] - pts
    if index + 1 >= len(pts_list) and av_frame.duration:
        frame_base = Fraction(av_frame.time_base or stream.time_base)
        return int(round(av_frame.duration * frame_base / Fraction(stream.time_base)))
    return None


def _backwards(path, video, stamp: int, previous: int, position: int | None) -> TimestampError:
    """The error for a frame whose timestamp is not after the previous frame's."""
    tb = video.time_base
    where = f"frame {position}, " if position is not None else ""
    verb = "repeat" if stamp == previous else "go backwards"
    return TimestampError(path, f"the video's timestamps {verb} at {where}{float(stamp * tb):.3f} s "
                                f"(after a frame at {float(previous * tb):.3f} s), so its timing is damaged; "
                                + RETIME_ADVICE.format(path=shlex.quote(str(path))))


def _size_changes(path, video, shape: tuple[int, int]) -> InputError:
    """The error for a frame of another size than the stream's (the output has one size)."""
    return InputError(f"{path}: the frame size changes from {video.width}x{video.height} to {shape[1]}x{shape[0]} "
                      "mid-stream; vidcolor needs one frame size per file (split it where the size changes)")


def _decode_range(path, video, pts_list, start, end, target, deinterlace, stats) -> Iterator[Frame]:
    """The generator body of ``iter_frames`` (arguments already checked)."""
    index_of = {pts: i for i, pts in enumerate(pts_list)}
    first_pts, last_pts = pts_list[start], pts_list[end]
    wanted = end - start + 1
    delivered = 0
    container, stream, frames = _open_at(path, video, pts_list, start, stats)
    try:
        if deinterlace:
            frames = _deinterlaced(frames, stream)
        previous_index = start - 1
        counted = -1  # frames seen: the index of streams without timestamps (they never seek)
        previous_stamp = None
        try:
            for av_frame in frames:
                counted += 1
                stamp = _stamp(av_frame)
                if stamp is not None and previous_stamp is not None and stamp <= previous_stamp:
                    # A decoder gives frames in presentation order, so their pts must rise; a muxer
                    # that lost B-frame reordering (pts = dts) makes them jump back. Checked on
                    # pre-roll frames too, so probe's seeks for its verdict notice it.
                    if (av_frame.height, av_frame.width) != (video.height, video.width):
                        raise _size_changes(path, video, (av_frame.height, av_frame.width))  # joined captures
                    raise _backwards(path, video, stamp, previous_stamp, counted if start == 0 else None)
                previous_stamp = stamp if stamp is not None else previous_stamp
                if stamp is None:
                    if counted >= len(pts_list):
                        break
                    index, pts = counted, pts_list[counted]
                else:
                    pts = stamp
                    index = index_of.get(pts, previous_index + 1)
                if pts < first_pts:
                    continue  # pre-roll from the keyframe before the range
                if pts > last_pts:
                    break
                y, cb, cr = frame_planes(av_frame, target, video.matrix)
                if y.shape != (video.height, video.width):
                    # A stream that changes size mid-way (concatenated captures): the output
                    # stream has one size, so stop here with a clear reason.
                    raise _size_changes(path, video, y.shape)
                previous_index = index
                delivered += 1
                stats.decoded += 1
                stats.concealed += bool(av_frame.is_corrupt)
                yield Frame(index=index, pts=pts, y=y, cb=cb, cr=cr, interlaced=bool(av_frame.interlaced_frame),
                            duration=_duration(av_frame, index, pts, pts_list, stream))
        except av.error.FFmpegError as exc:
            if delivered == 0:
                raise InputError(f"cannot decode {path} ({exc}); the file may be damaged") from exc
            stats.corrupt_packets += 1
    finally:
        container.close()
    stats.dropped += max(0, wanted - delivered)
    if delivered == 0:
        raise InputError(
            f"no frame of {path} could be decoded ({stats.corrupt_packets} corrupt packets); "
            "the file is damaged or its codec is unsupported"
        )
