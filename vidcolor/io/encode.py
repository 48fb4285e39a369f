"""Encode YUV planes to a file that keeps the source's timing, colour tags and other streams.

The writer takes planes at the output's bit depth and size, with pts in the source's time
base, and keeps that time base and every pts (constant or variable frame rate). Audio,
subtitle and data streams of the source are copied packet for packet and interleaved with
the video by time.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Mapping

import av
import numpy as np

from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import WRITE_FAILURE_ADVICE, write_failure
from vidcolor.io.codecs import AUTO, CODECS, HARDWARE_CODECS, PORTABLE_CODEC, codec_record, portable_codec
from vidcolor.io.color_metadata import COLORSPACE_NAMES, PRIMARIES_NAMES, RANGE_FULL, RANGE_LIMITED, TRC_NAMES
from vidcolor.io.inputs import open_input
from vidcolor.io.media_info import MediaInfo, VideoStreamInfo
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.pixel_formats import SUBSAMPLING_FAMILY, is_rgb_like
from vidcolor.io.remux import (
    PacketCopier,
    StreamPlan,
    apply_plan,
    container_format,
    describe_stream,
    open_output,
    plan_streams,
    warn_dropped,
)
from vidcolor.io.stream_aspect import set_container_sample_aspect_ratio
from vidcolor.matrices import MATRIX_TAGS

log = logging.getLogger("vidcolor")

_FAMILIES = SUBSAMPLING_FAMILY
_SHIFTS = {family: shift for shift, family in _FAMILIES.items()}


@dataclass(frozen=True)
class OutputFormat:
    """Pixel layout of the encoded video; ``write`` takes planes in exactly this layout."""

    pix_fmt: str
    bit_depth: int
    chroma_shift: tuple[int, int]
    width: int
    height: int
    full_range: bool
    matrix: str

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(height, width) of each chroma plane (rounded up, as FFmpeg does for odd sizes)."""
        sx, sy = self.chroma_shift
        return -(-self.height // (1 << sy)), -(-self.width // (1 << sx))

    @property
    def dtype(self) -> type:
        """numpy dtype of the planes: uint8 for 8 bits, uint16 above."""
        return np.uint8 if self.bit_depth <= 8 else np.uint16


def _pix_fmt_name(family: str, depth: int) -> str:
    return f"yuv{family}p" + ("" if depth == 8 else f"{depth}le")


def _supported_formats(encoder: str) -> set[str]:
    try:
        return {f.name for f in av.codec.Codec(encoder, "w").video_formats or ()}
    except (av.error.FFmpegError, ValueError) as exc:  # an FFmpeg build without this encoder
        raise UsageError(f"this FFmpeg build has no {encoder} encoder; choose another --codec") from exc


def output_format(video: VideoStreamInfo, codec: str, container: str | None = None) -> OutputFormat:
    """The pixel layout ``codec`` writes for a source.

    x264/x265 keep the subsampling and bit depth (gray becomes 4:2:0 since the output has
    colour) up to their deepest: x264 10 bits, x265 12 (``Codec.max_depth``; ``depth_loss``
    words the cut). NVENC writes 8-bit 4:2:0, or 4:4:4 for 4:4:4 sources
    (deeper sources are refused by ``resolve_codec``). ProRes is 4:2:2 10-bit (4:4:4 10-bit
    for 4:4:4 sources), always limited range: its bitstream has no range flag and decoders
    read it as limited, so a full-range source's luma is rescaled (``pipeline.run.output_luma``).
    FFV1 keeps the source's family and depth exactly (gray becomes 4:2:0 of the same depth),
    so luma can be compared bit for bit. RGB sources, which decode turns into full-range
    YCbCr 4:4:4, are written as YCbCr 4:4:4 (tagged by ``color_tags``) with every codec.
    FFV1 in AVI is limited range too: neither stores a range, so it would be read as limited.

    Args:
        video: the source's video stream.
        codec: a key of ``codecs.CODECS``.
        container: the output's muxer name, where known (``"avi"`` changes the range).

    Returns:
        An OutputFormat.

    Raises:
        UsageError: for an unknown codec.
    """
    record = codec_record(codec)
    family = "420" if video.is_gray else _FAMILIES.get(tuple(video.chroma_shift), "444")
    family, depth = record.layout(family, video.bit_depth)
    pix_fmt = _pix_fmt_name(family, depth)
    if pix_fmt not in _supported_formats(record.encoder):
        family = "444"
        pix_fmt = _pix_fmt_name(family, depth)
    range_unstored = not record.stores_range or container in record.range_lost_in
    full_range = video.full_range and not range_unstored
    return OutputFormat(pix_fmt=pix_fmt, bit_depth=depth, chroma_shift=_SHIFTS[family], width=video.width,
                        height=video.height, full_range=full_range, matrix=video.matrix)


def depth_loss(video: VideoStreamInfo, codec: str) -> str | None:
    """What a codec cuts from a deep source, as one line for a warning before any work.

    Args:
        video: the source's video stream.
        codec: a key of ``codecs.CODECS``.

    Returns:
        None when the output keeps every bit of the source; else the line, naming the codecs
        that would keep them.
    """
    kept = output_format(video, codec).bit_depth
    if kept >= video.bit_depth:
        return None
    keepers = [name for name, record in CODECS.items()
               if record.keeps_deep_sources and name != codec and record.max_depth >= video.bit_depth]
    advice = f"; --codec {' or '.join(keepers)} keeps all {video.bit_depth}" if keepers else ""
    return (f"the source is {video.bit_depth}-bit and {codec} writes at most {kept} bits, so every sample "
            f"(luma included) is cut to {kept} bits{advice}")


def shift_bits(plane: np.ndarray, from_bits: int, to_bits: int) -> np.ndarray:
    """Change a plane's bit depth by an exact shift (left to widen, right to narrow).

    Args:
        plane: integer code values at ``from_bits``.
        from_bits: current depth.
        to_bits: wanted depth.

    Returns:
        uint8 for ``to_bits <= 8``, else uint16.
    """
    dtype = np.uint8 if to_bits <= 8 else np.uint16
    if to_bits >= from_bits:
        return (plane.astype(np.uint16) << (to_bits - from_bits)).astype(dtype)
    return (plane.astype(np.uint16) >> (from_bits - to_bits)).astype(dtype)


@functools.lru_cache(maxsize=None)
def encoder_opens(codec: str) -> bool:
    """Whether this machine can open the encoder behind ``codec`` (hardware encoders need the
    GPU and its driver, not only a build of FFmpeg that knows them).

    Args:
        codec: our codec name.

    Returns:
        True when a small encoder context opens.
    """
    return codec in CODECS and _context_opens(CODECS[codec].encoder, 256, 256, "yuv420p")


@functools.lru_cache(maxsize=None)
def _context_opens(encoder: str, width: int, height: int, pix_fmt: str, options: tuple = ()) -> bool:
    """Whether an FFmpeg encoder opens for this size, pixel format and ``(name, value)`` options."""
    try:
        ctx = av.codec.CodecContext.create(encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.options = dict(options)
        ctx.open()
        return True
    except (av.error.FFmpegError, OSError, ValueError, KeyError):
        return False


NVENC_MAX_SIDE = 4096  # the largest width or height NVIDIA's H.264 encoder takes


def check_hardware_codec(codec: str, video: VideoStreamInfo | None) -> None:
    """Refuse a source an NVENC codec cannot encode (checks that need no GPU).

    Args:
        codec: our codec name (anything but NVENC passes).
        video: the source's video stream, or None.

    Raises:
        UsageError: a source deeper than 8 bits, or larger than NVENC takes.
    """
    if codec not in HARDWARE_CODECS or video is None:
        return
    if video.bit_depth > 8:
        raise UsageError(f"--codec {codec} writes 8-bit video and the source is {video.bit_depth}-bit; "
                         "use x265, prores or ffv1 to keep its depth")
    if max(video.width, video.height) > NVENC_MAX_SIDE:
        raise UsageError(f"--codec {codec} takes frames up to {NVENC_MAX_SIDE} pixels a side and the source is "
                         f"{video.width}x{video.height}; use x264, x265, prores or ffv1")


_AUTO_HARDWARE = "nvenc-h264"  # what auto picks beside a CUDA model


def resolve_codec(codec: str, video: VideoStreamInfo | None, cuda: bool, portable: bool) -> str:
    """The encoder a run uses: ``auto`` picked, a hardware codec checked before any work.

    ``auto`` is NVENC H.264 when the model runs on CUDA, NVENC can write the source as x264
    would (8-bit, the same chroma subsampling, at most 4096 pixels a side) and ``h264_nvenc``
    opens; x264 otherwise, and always for ``portable`` outputs (farm chunks and resumable
    segments): chunks from nodes with and without NVENC would not merge.

    Args:
        codec: ``--codec`` as given.
        video: the source's video stream (None: no check of the source).
        cuda: whether the model runs on a CUDA device.
        portable: the output is a chunk to be merged with others.

    Returns:
        A key of ``codecs.CODECS``.

    Raises:
        UsageError: an unknown codec, or a hardware codec this machine or source cannot use.
    """
    if codec == AUTO:
        if not cuda or portable or video is None:
            return portable_codec(codec)
        try:
            check_hardware_codec(_AUTO_HARDWARE, video)
        except UsageError:
            return PORTABLE_CODEC
        same_layout = output_format(video, _AUTO_HARDWARE).chroma_shift == output_format(video, PORTABLE_CODEC).chroma_shift
        return _AUTO_HARDWARE if same_layout and encoder_opens(_AUTO_HARDWARE) else PORTABLE_CODEC
    if codec not in CODECS:
        raise UsageError(f"unknown codec {codec!r}; use one of {AUTO}, {', '.join(CODECS)}")
    check_hardware_codec(codec, video)
    if codec in HARDWARE_CODECS and not encoder_opens(codec):
        raise UsageError(f"--codec {codec}: NVIDIA's hardware encoder cannot be opened on this machine "
                         "(no NVIDIA GPU or driver); use --codec auto or x264")
    return codec


# ---------------------------------------------------------------------------------------------
# Stream setup


def _enum_value(names: dict[int, str], name: str | None) -> int | None:
    if name is None:
        return None
    for value, known in names.items():
        if known == name:
            return value
    return None


def color_tags(video: VideoStreamInfo, fmt: OutputFormat) -> dict[str, int]:
    """The output's colour tags as FFmpeg enum values, for codec contexts and frames: the
    source's primaries and transfer, and the matrix and range of the planes written.

    Args:
        video: the source's video stream.
        fmt: the output layout (its range; its matrix for RGB sources).

    Returns:
        ``{attribute: value}`` for color_primaries, color_trc, colorspace (when tagged) and
        color_range (always: full or limited).
    """
    tags = {"color_range": RANGE_FULL if fmt.full_range else RANGE_LIMITED}
    # An RGB source's planes were made YCbCr by decode with fmt.matrix: keeping its "gbr" tag
    # (or none) would make decoders read Y, Cb, Cr as G, B, R (or guess another matrix).
    colorspace = MATRIX_TAGS[fmt.matrix] if is_rgb_like(video.pix_fmt) else video.colorspace
    for attr, names, name in (("color_primaries", PRIMARIES_NAMES, video.color_primaries),
                              ("color_trc", TRC_NAMES, video.color_trc),
                              ("colorspace", COLORSPACE_NAMES, colorspace)):
        value = _enum_value(names, name)
        if value is not None:
            tags[attr] = value
    return tags


def encoder_options(codec: str, crf: int | None, fmt: OutputFormat) -> dict[str, str]:
    """Private options of the encoder behind ``codec`` (``Codec.options``), with its
    ``small_frame_options`` where the encoder does not open without them for this frame.

    Args:
        codec: our codec name.
        crf: quality for x264/x265 (None: 16 for x264, 18 for x265), NVENC's cq (None: 18 for
            H.264, 20 for HEVC); codecs without a quality setting ignore it.
        fmt: the output layout (ProRes picks its profile from it).

    Returns:
        Options for ``add_stream``.

    Raises:
        UsageError: for an unknown codec.
    """
    record = codec_record(codec)
    options = record.options(crf, fmt)
    if record.small_frame_options and not _context_opens(record.encoder, fmt.width, fmt.height, fmt.pix_fmt,
                                                         tuple(options.items())):
        options.update(record.small_frame_options)
    return options


def add_video_stream(container, video: VideoStreamInfo, codec: str, crf: int | None, fmt: OutputFormat):
    """Add and configure the encoder stream: size, format, time base, rate, colour tags, rotation
    (and no B-frames in AVI).

    Args:
        container: an open output container with nothing muxed yet.
        video: the source's video stream.
        codec: our codec name.
        crf: x264/x265 quality, or None for the default.
        fmt: the output layout.

    Returns:
        The PyAV video stream.
    """
    record = codec_record(codec)
    stream = container.add_stream(record.encoder, rate=video.avg_rate or None, options=encoder_options(codec, crf, fmt))
    ctx = stream.codec_context
    stream.width, stream.height, stream.pix_fmt = fmt.width, fmt.height, fmt.pix_fmt
    ctx.time_base = video.time_base
    stream.time_base = video.time_base
    if video.avg_rate:
        ctx.framerate = video.avg_rate
    if record.intra_only:
        ctx.gop_size = 1
    if container.format.name == "avi":
        # AVI stores no pts: a picture shows at its packet's place in decode order, so with an
        # encoder that reorders (B-frames: x264, NVENC) every frame showed late by the decoder's
        # reorder delay.
        ctx.max_b_frames = 0
    for attr, value in color_tags(video, fmt).items():
        setattr(ctx, attr, value)
    if video.sample_aspect_ratio:
        ctx.sample_aspect_ratio = video.sample_aspect_ratio  # H.264/H.265/ProRes-in-MOV store it from here
        # Matroska and AVI store it from the container's stream, which PyAV leaves unset: an FFV1
        # output (whose bitstream has no ratio players read) lost it and played squeezed.
        if not set_container_sample_aspect_ratio(stream, video.sample_aspect_ratio) and codec == "ffv1":
            log.warning("this PyAV build cannot store the pixel aspect ratio %s for FFV1, so players will show "
                        "square pixels; x264, x265 and ProRes keep it", video.sample_aspect_ratio)
    if video.field_order:
        # Without --deinterlace every frame still holds both fields, so the output is as
        # interlaced as its source: the flag tells players to deinterlace it (Matroska's FieldOrder).
        ctx.field_order = video.field_order
    if record.mp4_tag and container.format.name in ("mp4", "mov"):
        stream.codec_tag = record.mp4_tag  # e.g. hvc1, the tag Apple players require for HEVC
    if video.rotation:
        stream.set_display_rotation(video.rotation)
    return stream


def _range_span(source: MediaInfo, frame_range: tuple[int, int] | None) -> tuple[Fraction | None, Fraction | None] | None:
    """The time span ``[t0, t1)`` of a frame range: from its first frame to the next range's.

    The first range starts at -infinity and the last ends at +infinity, so packets before the
    first frame (audio priming) or after the last are not lost when chunks are merged.
    """
    if frame_range is None:
        return None
    pts = scan_timestamps(source.path, source.video.index)
    tb = source.video.time_base
    start, end = frame_range
    t0 = pts[start] * tb if start > 0 else None
    t1 = pts[end + 1] * tb if end + 1 < len(pts) else None
    return t0, t1


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip().rstrip(".")


class OutputWriter:
    """Encodes planes and copies the source's other streams into one output file.

    Use as a context manager: a clean exit closes (flushes) the file, an exception aborts.
    """

    def __init__(self, path, source: MediaInfo, codec: str = "x264", crf: int | None = None,
                 copy_streams: bool = True, video_only: bool = False,
                 frame_range: tuple[int, int] | None = None, deinterlaced: bool = False,
                 tags: Mapping[str, str] | None = None):
        """Open ``path`` and set up the video encoder and the stream copies.

        Args:
            path: the output file (usually ``atomic_output``'s temporary name).
            source: the probed source.
            codec: a key of ``codecs.CODECS``.
            crf: x264/x265 quality, NVENC's constant quality (None: default).
            copy_streams: copy the source's audio, subtitle and data streams.
            video_only: write the video alone (farm chunks).
            frame_range: ``(start, end)`` frames this output covers: only copied packets in
                that range's time span are written.
            deinterlaced: the frames written are deinterlaced, so the output is not flagged
                with the source's field order.
            tags: container tags to write (a chunk's stamp, ``vidcolor.io.stamp``).

        Raises:
            UsageError: unknown codec. InputError: source without video. OutputError: the
            file or the encoder cannot be opened.
        """
        if source.video is None:
            raise InputError(f"{source.path} has no video stream")
        self.path = str(path)
        video = replace(source.video, interlaced=False, field_order=0) if deinterlaced else source.video
        self.format = output_format(source.video, codec, container_format(path))
        self._time_base = Fraction(source.video.time_base)
        # AVI counts time in frames: given a fine time base (an MP4's 1/12800), FFmpeg's AVI
        # muxer pads every frame with empty index entries, so more frames read back than were
        # written. A constant-rate film is written in frame periods instead: the same instants.
        self._encoder_base = self._time_base
        if container_format(path) == "avi" and not video.is_vfr and video.avg_rate:
            self._encoder_base = 1 / Fraction(video.avg_rate)
            video = replace(video, time_base=self._encoder_base)
        self._color_tags = color_tags(source.video, self.format)
        self._last_pts: int | None = None
        self._durations: dict[int, int] = {}  # pts -> duration of frames still in the encoder
        self._closed = False
        self._copier: PacketCopier | None = None
        self.frames_written = 0
        self._container = open_output(path, self._time_base)
        try:
            self._container.metadata.update(dict(tags or {}))
            self._stream = add_video_stream(self._container, video, codec, crf, self.format)
            if copy_streams and not video_only:
                self._copier = PacketCopier(source.path, self._container, _range_span(source, frame_range),
                                            video_stream=self._stream)
        except (av.error.FFmpegError, ValueError) as exc:
            self.abort()
            raise OutputError(f"cannot set up {self.path} for {codec}: {_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def copied_streams(self) -> int:
        """Number of audio/subtitle/data streams copied from the source."""
        return self._copier.stream_count if self._copier else 0

    def _check_planes(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> None:
        fmt = self.format
        expected = {"y": (fmt.height, fmt.width), "cb": fmt.chroma_size, "cr": fmt.chroma_size}
        for name, plane in (("y", y), ("cb", cb), ("cr", cr)):
            if plane is None or plane.shape != expected[name] or plane.dtype != fmt.dtype:
                got = "None" if plane is None else f"{plane.shape} {plane.dtype}"
                raise ValueError(f"{name} plane must be {expected[name]} {np.dtype(fmt.dtype).name}, got {got}")

    def _frame(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray, pts: int) -> av.VideoFrame:
        fmt = self.format
        frame = av.VideoFrame(fmt.width, fmt.height, fmt.pix_fmt)
        for plane, data in zip(frame.planes, (y, cb, cr)):
            item = data.dtype.itemsize
            rows = np.frombuffer(plane, dtype=data.dtype).reshape(plane.height, plane.line_size // item)
            rows[:, : plane.width] = data  # written in place: no copy of the padded plane
        for attr, value in self._color_tags.items():
            setattr(frame, attr, value)
        frame.pts = pts if self._encoder_base == self._time_base else round(pts * self._time_base / self._encoder_base)
        frame.time_base = self._encoder_base
        return frame

    def write(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray, pts: int, duration: int | None = None) -> None:
        """Encode one frame.

        Args:
            y: ``(H, W)`` luma at the output depth (uint8, or uint16 native values).
            cb: chroma at ``format.chroma_size``, same dtype.
            cr: as ``cb``.
            pts: the frame's timestamp in the source's time base (strictly increasing).
            duration: how long it shows, in the source's time base (``Frame.duration``). The
                muxer takes the film's end from the last frame's duration; without it, that
                frame lasts one average frame period (wrong for variable-rate sources).

        Raises:
            ValueError: planes of the wrong shape or dtype, or a pts not after the last one.
            OutputError: the encoder or the file fails (e.g. a full disk).
        """
        self._check_planes(y, cb, cr)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts {pts} is not after the previous frame's {self._last_pts}")
        frame = self._frame(y, cb, cr, pts)
        if duration:
            self._durations[pts] = duration
        try:
            self._mux_video(self._stream.encode(frame))
        except (av.error.FFmpegError, OSError) as exc:
            if getattr(exc, "errno", None) in WRITE_FAILURE_ADVICE:
                raise write_failure(self.path, exc) from exc  # full disk, quota, read-only...
            raise OutputError(f"cannot write {self.path}: {_reason(exc)}") from exc
        self._last_pts = pts
        self.frames_written += 1

    def _mux_video(self, packets) -> None:
        for packet in packets:
            self._set_duration(packet)
            self._container.mux(packet)
            if self._copier is not None:
                # Copy what plays up to this video packet's decoding time, to interleave.
                time = packet.dts if packet.dts is not None else packet.pts
                if time is not None:
                    self._copier.feed_until(time * Fraction(packet.time_base or self._time_base))

    def _set_duration(self, packet) -> None:
        """Give a packet its frame's duration (encoders leave it 0), in the packet's time base."""
        if packet.pts is None or not self._durations:
            return
        packet_base = Fraction(packet.time_base or self._time_base)
        duration = self._durations.pop(int(round(packet.pts * packet_base / self._time_base)), None)
        if duration:
            packet.duration = max(1, int(round(duration * self._time_base / packet_base)))

    def close(self) -> None:
        """Flush the encoder, write the remaining copied packets and close the file.

        Raises:
            OutputError: when flushing or writing the trailer fails.
        """
        if self._closed:
            return
        try:
            self._mux_video(self._stream.encode(None))
            if self._copier is not None:
                self._copier.feed_until(None)
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            if getattr(exc, "errno", None) in WRITE_FAILURE_ADVICE:
                raise write_failure(self.path, exc) from exc
            raise OutputError(f"cannot finish {self.path}: {_reason(exc)}") from exc
        finally:
            if self._copier is not None:
                self._copier.close()
        self._closed = True

    def abort(self) -> None:
        """Close everything without caring about errors (the caller deletes the file)."""
        self._closed = True
        for closer in (getattr(self, "_container", None), self._copier):
            if closer is None:
                continue
            try:
                closer.close()
            except Exception:  # noqa: BLE001 - aborting must not raise over the original error
                pass


# ---------------------------------------------------------------------------------------------
# Checking a container before any work


def _header_error(format_name: str, video: VideoStreamInfo, codec: str, source=None,
                  plan: StreamPlan | None = None) -> str | None:
    """Try the header (and trailer) of this stream set in memory; the error text, or None.

    Args:
        format_name: the muxer.
        video: the source's video stream.
        codec: our codec name.
        source: the open source container (needed with ``plan``).
        plan: the copies, attachments, cover art, chapters and tags to add (None: video alone).
    """
    try:
        container = open_output(f"check.{format_name}", video.time_base, format_name=format_name, file=io.BytesIO())
    except OutputError as exc:
        return str(exc)
    try:
        stream = add_video_stream(container, video, codec, None, output_format(video, codec, format_name))
        covers = apply_plan(plan, source, container, stream)[1] if plan is not None else []
        container.start_encoding()
        for packet in covers:
            container.mux(packet)
        container.close()
        return None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        try:
            container.close()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        return _reason(exc)


def check_output_supported(path, source: MediaInfo, codec: str, copy_streams: bool = True) -> None:
    """Refuse, before any work, an output container that cannot hold the codec or a copied stream.

    Writes the header of the real stream set (encoder opened with the real size and format,
    copies of the source's streams) to memory and turns a failure into one line.

    Args:
        path: the output path (its extension picks the container).
        source: the probed source.
        codec: our codec name.
        copy_streams: whether the source's audio/subtitle/data streams will be copied.

    Raises:
        UsageError: unknown codec or extension, a container that refuses the codec or a stream.
        InputError: a source without video.
    """
    codec_record(codec)  # an unknown codec is refused before the source is looked at
    if source.video is None:
        raise InputError(f"{source.path} has no video stream")
    format_name = container_format(path)
    video = source.video
    fmt = output_format(video, codec, format_name)
    # A container takes NVENC's stream as it takes its software twin's (same bitstream); the
    # twin can be opened here even where the hardware cannot (a farm's driver machine).
    codec = codec_record(codec).software_twin or codec
    _check_size_fits_subsampling(path, codec, fmt)
    _check_ffv1_slices(path, codec, fmt)
    error = _header_error(format_name, video, codec, [])
    if error is not None:
        raise UsageError(f"cannot write {codec} ({fmt.pix_fmt} {fmt.width}x{fmt.height}) to {path}: {error}; "
                         f"use {codec_record(codec).containers} or another codec")
    if copy_streams:
        _check_copied_streams(path, format_name, source, codec)


def _check_size_fits_subsampling(path, codec: str, fmt: OutputFormat) -> None:
    """x264/x265/NVENC need a frame size that is a whole number of chroma samples."""
    sx, sy = fmt.chroma_shift
    if codec_record(codec).whole_chroma_samples and (fmt.width % (1 << sx) or fmt.height % (1 << sy)):
        raise UsageError(f"cannot write {path}: {codec} needs a width and height divisible by "
                         f"{1 << sx} and {1 << sy} for {fmt.pix_fmt}, the video is {fmt.width}x{fmt.height}; "
                         "use --codec ffv1 or prores to keep its exact size")


def _check_ffv1_slices(path, codec: str, fmt: OutputFormat) -> None:
    """FFV1 refuses a frame it cannot cut into slices (even one slice, e.g. 3x300 in 4:2:0):
    no container would take it, so the usual "use .mkv" advice would be wrong."""
    if codec == "ffv1" and not _context_opens(CODECS[codec].encoder, fmt.width, fmt.height, fmt.pix_fmt,
                                              tuple(encoder_options(codec, None, fmt).items())):
        raise UsageError(f"cannot write {path}: FFV1 cannot cut a {fmt.width}x{fmt.height} {fmt.pix_fmt} frame into "
                         "slices; use --codec prores, or x264 for even sizes")


# The containers offered instead when one refuses a stream, by muxer name.
_OTHER_CONTAINERS = {"matroska": ".mkv", "mov": ".mov", "mp4": ".mp4"}


def _check_copied_streams(path, format_name: str, source: MediaInfo, codec: str) -> None:
    """Try each copied stream next to the video, then everything together; one line for the first
    failure, naming the containers that would hold it all. Logs what the output leaves out."""
    suffix = Path(path).suffix.lower()
    with open_input(source.path) as container:
        plan = plan_streams(container, format_name)
        warn_dropped(plan, source.path, path)
        alone = replace(plan, copied=(), covers=(), attachments=(), chapters=())
        for stream in plan.copied:
            error = _header_error(format_name, source.video, codec, container, replace(alone, copied=(stream,)))
            if error is not None:
                raise UsageError(f"{suffix} cannot hold stream #{stream.index} ({describe_stream(stream)}) "
                                 f"of {source.path}: {error}; {_advice(container, format_name, source, codec)}")
        error = _header_error(format_name, source.video, codec, container, plan)
        if error is not None:
            raise UsageError(f"cannot write the streams, chapters and attachments of {source.path} together to "
                             f"{path}: {error}; {_advice(container, format_name, source, codec)}")


def _advice(container, format_name: str, source: MediaInfo, codec: str) -> str:
    """Which other containers hold the codec with every stream of the source (tried in memory)."""
    fits = [ext for name, ext in _OTHER_CONTAINERS.items() if name != format_name
            and _header_error(name, source.video, codec, container, plan_streams(container, name)) is None]
    if fits:
        return f"use {' or '.join(fits)}"
    return (f"no container vidcolor writes ({', '.join(_OTHER_CONTAINERS.values())}) holds them all with {codec}; "
            "remux the source without that stream first")
