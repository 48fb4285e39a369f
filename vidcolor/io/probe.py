"""What is in a media file: streams, timing, colour metadata, and a grey/tinted/colour verdict.

Everything here reads the file with PyAV and never converts pixels to RGB. The frame count
and the variable-frame-rate flag come from a demux-only scan of packet timestamps, which is
exact and much cheaper than decoding.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from vidcolor.errors import InputError, TimestampError
from vidcolor.matrices import matrix_from_ffmpeg
from vidcolor.wording import count_of

# ffmpeg's names for the colour enums (libavutil/pixdesc.c), indexed by their values.
# "unspecified" and "reserved" values are absent and read as None.
PRIMARIES_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRC_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
COLORSPACE_NAMES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}
RANGE_FULL = 2  # AVCOL_RANGE_JPEG
RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG

# Stills: what OpenCV reads, and the film-scan formats it does not (DPX, Targa), read by FFmpeg.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".pgm", ".ppm", ".pnm", ".dpx", ".tga"}
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mts", ".m2ts", ".ts", ".mxf", ".y4m"}

# Planar formats we hand out as they are: yuv (optionally JPEG-range) or gray, little endian.
_NATIVE_FORMAT = re.compile(r"^(yuvj?(420|422|444|440|411|410)p|gray)((9|10|12|14|16)le)?$")
_SUBSAMPLING_FAMILY = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (2, 0): "411", (0, 1): "440", (2, 2): "410"}
_SUBSAMPLING_NAMES = {shift: f"{family[0]}:{family[1]}:{family[2]}" for shift, family in _SUBSAMPLING_FAMILY.items()}
_FIELD_ORDER_INTERLACED = {2, 3, 4, 5}  # AV_FIELD_TT, BB, TB, BT
FIELD_ORDER_TB, FIELD_ORDER_BT = 4, 5

# Verdict thresholds in unit chroma (code minus mid, divided by the chroma range), tuned
# on synthetic clips: encoder noise on neutral chroma stays under ~0.005 on average.
GREY_MEAN_MAGNITUDE = 0.01
GREY_P95_MAGNITUDE = 0.025
TINT_SPREAD_RATIO = 0.5  # a tint's spread stays under half its offset
# The statistics are taken on the means of square blocks, about this many along the long side:
# colour (and a tint) covers areas, so it survives the averaging, while the zero-mean, spatially
# random chroma noise of black-and-white film telecined on colour equipment averages away (a
# 320x180 clip with noise of 2.7 codes: mean |chroma| 0.017 on pixels, over GREY_MEAN_MAGNITUDE;
# 0.004 on its 5x5-pixel blocks).
_BLOCKS_ALONG = 32


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


# ---------------------------------------------------------------------------------------------
# Opening files


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
        damage = _mp4_damage(p)
        if damage is not None:
            raise InputError(f"cannot read {p}: {damage}") from exc
        raise InputError(f"cannot read {p} as media ({_reason(exc)}); is it a video file?") from exc


_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid"}


def _mp4_damage(path: Path) -> str | None:
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


def _reason(exc: BaseException) -> str:
    """A short reason from an FFmpeg/OS error, without PyAV's errno prefix."""
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


# ---------------------------------------------------------------------------------------------
# Timestamps


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


def _repeated_timestamps(path: str, stream_index: int, time_base: Fraction) -> str | None:
    """Why the timing is damaged when two frames share a timestamp, else None.

    Frames shown at the same instant cannot both be kept in order: the decoder would stop at
    the second one mid-run. The packet scan sees them anywhere in the file (sampling for the
    verdict may not), so ``colorize`` can refuse before any work.
    """
    from vidcolor.io.decode import RETIME_ADVICE  # decode imports this module

    pts = scan_timestamps(path, stream_index)
    repeated = [a for a, b in zip(pts, pts[1:]) if a == b]
    if not repeated:
        return None
    count = len(repeated)
    frames = f"{count} frames repeat" if count > 1 else "1 frame repeats"
    return (f"{frames} the timestamp of the frame before (the first at {float(repeated[0] * time_base):.3f} s), "
            "so its timing is damaged; " + RETIME_ADVICE.format(path=shlex.quote(path)))


def _is_variable_rate(pts: list[int]) -> bool:
    """True when frame durations differ by more than timestamp rounding (one tick)."""
    durations = [b - a for a, b in zip(pts, pts[1:])]
    if len(durations) < 2:
        return False
    return max(durations) - min(durations) > 1


# ---------------------------------------------------------------------------------------------
# Pixel formats


def _depth_suffix(bits: int) -> str:
    for depth in (8, 9, 10, 12, 14, 16):
        if bits <= depth:
            return "" if depth == 8 else f"{depth}le"
    return "16le"


def _format_exists(name: str) -> bool:
    try:
        av.video.format.VideoFormat(name)
        return True
    except (ValueError, av.error.FFmpegError):
        return False


def planar_equivalent(pix_fmt: str) -> str:
    """The planar yuv/gray format that ``iter_frames`` delivers for a decoder format.

    Planar yuv/gray formats are kept; packed, semi-planar, RGB, palette, alpha or big-endian
    formats map to the nearest planar yuv format of the same bit depth (RGB and palette to
    4:4:4, since they have full-resolution colour).

    Args:
        pix_fmt: the decoder's pixel format name, e.g. ``"nv12"``.

    Returns:
        A format name such as ``"yuv420p"``, ``"yuv444p10le"`` or ``"gray"``.
    """
    if _NATIVE_FORMAT.match(pix_fmt):
        return pix_fmt
    fmt = av.video.format.VideoFormat(pix_fmt, 64, 64)
    components = [c for c in fmt.components if not c.is_alpha]
    bits = max((c.bits for c in components), default=8)
    suffix = _depth_suffix(bits)
    if fmt.is_rgb or fmt.has_palette:
        family = "444"
    elif len(components) == 1:
        return f"gray{suffix}"
    else:
        chroma = components[1]
        shift = (int(round(math.log2(64 / chroma.width))), int(round(math.log2(64 / chroma.height))))
        family = _SUBSAMPLING_FAMILY.get(shift, "444")
    name = f"yuv{family}p{suffix}"
    return name if _format_exists(name) else f"yuv444p{suffix}"


def format_layout(pix_fmt: str) -> tuple[int, bool, tuple[int, int]]:
    """Bit depth, grayness and chroma subsampling of a planar format.

    Args:
        pix_fmt: a planar yuv or gray format name.

    Returns:
        ``(bit_depth, is_gray, (log2 horizontal, log2 vertical) chroma subsampling)``.
    """
    fmt = av.video.format.VideoFormat(pix_fmt, 64, 64)
    components = [c for c in fmt.components if not c.is_alpha]
    depth = components[0].bits
    if len(components) == 1:
        return depth, True, (0, 0)
    chroma = components[1]
    shift = (int(round(math.log2(64 / chroma.width))), int(round(math.log2(64 / chroma.height))))
    return depth, False, shift


# ---------------------------------------------------------------------------------------------
# Colour metadata


_UNSPECIFIED = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}


def _color_value(ctx, first_frame, attr: str) -> int:
    """A colour enum from the codec context, falling back to the first frame when unspecified."""
    value = int(getattr(ctx, attr, _UNSPECIFIED[attr]) or 0)
    if value == _UNSPECIFIED[attr] and first_frame is not None:
        value = int(getattr(first_frame, attr, value) or 0)
    return value


def _color_names(ctx, first_frame, decoder_fmt: str) -> tuple[str | None, str | None, str | None, bool]:
    """(primaries, transfer, colorspace, full_range) as ffmpeg names; None when unspecified."""
    primaries = PRIMARIES_NAMES.get(_color_value(ctx, first_frame, "color_primaries"))
    trc = TRC_NAMES.get(_color_value(ctx, first_frame, "color_trc"))
    space = _color_value(ctx, first_frame, "colorspace")
    is_rgb = av.video.format.VideoFormat(decoder_fmt).is_rgb
    # 0 means "RGB" in ffmpeg's enum, but it is also the zero a YUV stream reports when untagged.
    colorspace = COLORSPACE_NAMES.get(space) if (space != 0 or is_rgb) else None
    full = _color_value(ctx, first_frame, "color_range") == RANGE_FULL
    return primaries, trc, colorspace, full


# ---------------------------------------------------------------------------------------------
# Streams


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
        damage = _mp4_damage(Path(path))  # an index or media data cut short
        raise InputError(f"{path}: no frame of the video stream can be decoded (its pixel format is unknown); "
                         f"{damage or 'the file is damaged: re-copy or re-export it'}")
    try:
        planar = planar_equivalent(decoder_fmt)
        depth, gray, shift = format_layout(planar)
    except (ValueError, av.error.FFmpegError) as exc:
        raise InputError(f"{path}: unsupported pixel format {decoder_fmt}; convert the video first") from exc
    width = first.width if first is not None else ctx.width
    height = first.height if first is not None else ctx.height
    primaries, trc, colorspace, full = _color_names(ctx, first, decoder_fmt)
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
        is_vfr=_is_variable_rate(pts),
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


def is_rgb_like(pix_fmt: str) -> bool:
    """Whether a decoder format is RGB or palette, which decode converts to full-range YCbCr
    with the stream's ``matrix`` (so the planes written are no longer RGB).

    Args:
        pix_fmt: the decoder's pixel format name, e.g. ``"gbrp"``.

    Returns:
        True for RGB and palette formats.
    """
    fmt = av.video.format.VideoFormat(pix_fmt)
    return bool(fmt.is_rgb or fmt.has_palette)


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


# ---------------------------------------------------------------------------------------------
# Verdict


def chroma_to_unit(plane: np.ndarray, bit_depth: int, full_range: bool) -> np.ndarray:
    """Chroma code values to unit chroma (about [-0.5, 0.5]), as ``vidcolor.color`` does.

    Args:
        plane: Cb or Cr code values.
        bit_depth: bits per sample.
        full_range: True for full (JPEG) range.

    Returns:
        float32 array of the same shape.
    """
    scale = float(1 << (bit_depth - 8))
    mid = 128.0 * scale
    span = float((1 << bit_depth) - 1) if full_range else 224.0 * scale
    return (plane.astype(np.float32) - mid) / span


def block_means(plane: np.ndarray, blocks_along: int = _BLOCKS_ALONG) -> np.ndarray:
    """Means of square blocks, about ``blocks_along`` of them along the long side (a remainder
    row or column of pixels is left out; a plane smaller than that is returned as it is).

    Args:
        plane: ``(H, W)`` values.
        blocks_along: blocks wanted along the longer side.

    Returns:
        ``(H // b, W // b)`` float array of block means, ``b`` the block side (at most the short side).
    """
    h, w = plane.shape
    side = max(1, min(max(h, w) // blocks_along, h, w))
    rows, cols = h // side, w // side
    return plane[: rows * side, : cols * side].reshape(rows, side, cols, side).mean(axis=(1, 3))


def _frame_chroma_stats(cb: np.ndarray, cr: np.ndarray) -> dict:
    """Magnitude, offset and spread of one frame's unit chroma, on block means."""
    cb, cr = block_means(cb), block_means(cr)
    magnitude = np.hypot(cb, cr)
    mean_cb, mean_cr = float(cb.mean()), float(cr.mean())
    spread = float(np.sqrt(np.mean((cb - mean_cb) ** 2 + (cr - mean_cr) ** 2)))
    return {
        "magnitude": magnitude.ravel(),
        "mean_abs_cb": float(np.abs(cb).mean()),
        "mean_abs_cr": float(np.abs(cr).mean()),
        "mean_cb": mean_cb,
        "mean_cr": mean_cr,
        "offset": math.hypot(mean_cb, mean_cr),
        "spread": spread,
    }


def summarize_chroma(frames: list[tuple[np.ndarray, np.ndarray]]) -> tuple[str, dict]:
    """Grey/tinted/colour verdict from unit-chroma planes of a few frames.

    Grey: chroma is neutral everywhere. Tinted: each frame's chroma sits on one non-neutral
    colour (sepia, a blue night tint) with little spread around it. Colour: the rest.
    Spread is measured per frame, so a film tinted differently per scene still reads as tinted.
    Everything is measured on block means (``block_means``), so chroma noise that is random from
    pixel to pixel and zero on average does not count as colour.

    Args:
        frames: ``(cb, cr)`` unit-chroma arrays per sampled frame.

    Returns:
        ``(verdict, stats)`` where stats holds the numbers behind the verdict.
    """
    per_frame = [_frame_chroma_stats(cb, cr) for cb, cr in frames]
    magnitude = np.concatenate([f["magnitude"] for f in per_frame])
    stats = {
        "frames_sampled": len(per_frame),
        "mean_magnitude": float(magnitude.mean()),
        "p95_magnitude": float(np.percentile(magnitude, 95)),
        "mean_abs_cb": float(np.mean([f["mean_abs_cb"] for f in per_frame])),
        "mean_abs_cr": float(np.mean([f["mean_abs_cr"] for f in per_frame])),
        "mean_cb": float(np.mean([f["mean_cb"] for f in per_frame])),
        "mean_cr": float(np.mean([f["mean_cr"] for f in per_frame])),
        "offset": float(np.mean([f["offset"] for f in per_frame])),
        "spread": float(np.mean([f["spread"] for f in per_frame])),
    }
    if stats["mean_magnitude"] < GREY_MEAN_MAGNITUDE and stats["p95_magnitude"] < GREY_P95_MAGNITUDE:
        return "grey", stats
    tinted = all(f["spread"] <= TINT_SPREAD_RATIO * f["offset"] for f in per_frame)
    return ("tinted" if tinted else "colour"), stats


def _sample_indices(frame_count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` frame indices spread evenly over the clip, first and last included."""
    if frame_count <= 0 or wanted <= 0:
        return []
    if frame_count <= wanted:
        return list(range(frame_count))
    if wanted == 1:
        return [frame_count // 2]
    step = (frame_count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _sampled_chroma(info: MediaInfo, sample_frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Unit chroma of frames spread over the clip: one pass for short clips, seeks otherwise."""
    from vidcolor.io.decode import iter_frames  # decode imports this module

    video = info.video
    indices = _sample_indices(video.frame_count, sample_frames)
    wanted = set(indices)
    frames = []
    if video.frame_count <= 4 * max(sample_frames, 1):
        chosen = (f for f in iter_frames(info.path, info) if f.index in wanted)
    else:
        chosen = (f for i in indices for f in iter_frames(info.path, info, start=i, end=i))
    for frame in chosen:
        frames.append((chroma_to_unit(frame.cb, video.bit_depth, video.full_range),
                       chroma_to_unit(frame.cr, video.bit_depth, video.full_range)))
    return frames


def _verdict(info: MediaInfo, sample_frames: int) -> tuple[str | None, dict]:
    video = info.video
    if video is None:
        return None, {}
    if video.frame_count == 0:
        return None, {"frames_sampled": 0, "reason": "no frames"}
    if video.is_gray:
        return "grey", {"frames_sampled": 0, "reason": f"{video.pix_fmt} has no chroma planes"}
    frames = _sampled_chroma(info, sample_frames)
    if not frames:
        return None, {"frames_sampled": 0}
    return summarize_chroma(frames)


# ---------------------------------------------------------------------------------------------
# Public entry points


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
    p = check_readable_file(path)
    with open_input(p) as container:
        stream = pick_video_stream(container)
        if stream is None:
            raise InputError(f"{p} has no video stream; vidcolor needs a video or an image")
        try:
            video = _describe_video(container, stream, str(p))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read the video stream of {p} ({_reason(exc)})") from exc
        others = tuple(_describe_other(s) for s in container.streams
                       if s.index != stream.index and s.type != "video")
        duration = container.duration / 1_000_000 if container.duration is not None else None
        damage = _mp4_damage(p) if video.frame_count == 0 else None  # an index or media data cut short
        info = MediaInfo(path=str(p), format_name=container.format.name, duration_s=duration,
                         video=video, others=others, verdict=None, chroma_stats={}, damage=damage,
                         timing_problem=_repeated_timestamps(str(p), stream.index, video.time_base))
    if verdict:
        try:
            result, stats = _verdict(info, sample_frames)
        except TimestampError as exc:  # reported by the caller (probe's report, colorize's refusal)
            result, stats = None, {"frames_sampled": 0, "reason": "the timing is damaged"}
            info = replace(info, timing_problem=info.timing_problem or exc.detail)
        info = replace(info, verdict=result, chroma_stats=stats)
    return info


def media_kind(path: str | os.PathLike) -> str:
    """``"image"`` for a still image (a known extension, and OpenCV or one of FFmpeg's image
    readers reads it), else ``"video"``.

    Args:
        path: the input path.

    Returns:
        ``"image"`` or ``"video"``.
    """
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
        return "video"
    import cv2  # only needed for stills; keeps `import vidcolor.io` light

    if cv2.haveImageReader(str(p)):  # OpenCV knows the file's signature: no need to decode it here
        return "image"
    from vidcolor.io.decode import read_still  # decode imports this module

    try:
        read_still(str(p))
    except InputError:
        return "video"  # e.g. a film named .png: probing it as a video gives the clear error
    return "image"


def _format_rate(rate: Fraction | None) -> str:
    if rate is None:
        return "unknown rate"
    if rate.denominator == 1:
        return f"{rate.numerator} fps"
    return f"{float(rate):.3f} fps ({rate.numerator}/{rate.denominator})"


def _subsampling_name(video: VideoStreamInfo) -> str:
    if video.is_gray:
        return "gray"
    return _SUBSAMPLING_NAMES.get(tuple(video.chroma_shift), f"chroma shift {video.chroma_shift}")


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


def find_media(paths) -> tuple[list[Path], list[Path]]:
    """Split files and folders (searched recursively, hidden files skipped) into stills and videos.

    A file named directly counts as a video unless it has an image extension, so clips with
    unusual extensions can still be given one by one.

    Args:
        paths: files or folders.

    Returns:
        (image paths, video paths), each sorted and without duplicates.
    """
    images: set[Path] = set()
    videos: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and not f.name.startswith("."):
                    ext = f.suffix.lower()
                    if ext in IMAGE_EXTENSIONS:
                        images.add(f)
                    elif ext in VIDEO_EXTENSIONS:
                        videos.add(f)
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            images.add(p)
        else:
            videos.add(p)
    return sorted(images), sorted(videos)
