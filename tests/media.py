"""Tiny synthetic media for tests, written with PyAV (import as ``from tests.media import ...``).

``make_clip`` writes a short clip with texture and motion (gradients, a moving square, a
per-frame shift and grain) so codecs and optical flow behave like real footage, optionally
with audio, subtitles, colour tags, rotation or a variable frame rate. It returns what it
wrote, so tests can compare a round trip with the original. ``read_planes``, ``read_rgb``,
``read_packets`` and ``ffprobe_json`` read files back independently of ``vidcolor.io``.

Keep clips tiny (about 64x48 to 160x96, 6 to 20 frames): the test machine is small.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CONTENTS = ("moving", "grey", "noisy_grey", "sepia", "colour", "flicker", "cut")

# ffmpeg enum values for colour tags (libavutil/pixfmt.h), by ffmpeg name.
_PRIMARIES = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "film": 8, "bt2020": 9}
_TRC = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "linear": 8,
        "iec61966-2-1": 13, "bt2020-10": 14, "smpte2084": 16, "arib-std-b67": 18}
_COLORSPACE = {"gbr": 0, "bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020nc": 9}
_RANGE = {"tv": 1, "mpeg": 1, "limited": 1, "pc": 2, "jpeg": 2, "full": 2}

_AUDIO_RATE = 48000
_AUDIO_FRAME = 1024


@dataclass
class Clip:
    """What ``make_clip`` wrote."""

    path: Path
    width: int
    height: int
    pix_fmt: str
    codec: str
    pts: list[int]  # video pts as read back from the file (the container's time base)
    time_base: Fraction  # the video stream's time base as read back
    written_pts: list[int]  # pts handed to the encoder, in ``codec_time_base``
    codec_time_base: Fraction
    # (y, cb, cr) encoded; for RGB formats the full-range BT.601 4:4:4 planes converted to RGB
    planes: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]
    audio_packets: list[bytes] = field(default_factory=list)
    subtitle_packets: list[bytes] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.planes)


def _format_info(pix_fmt: str) -> tuple[int, bool, tuple[int, int]]:
    """(bit depth, is gray, chroma shift) of a planar format."""
    fmt = av.video.format.VideoFormat(pix_fmt, 64, 64)
    comps = fmt.components
    depth = comps[0].bits
    if len(comps) == 1:
        return depth, True, (0, 0)
    return depth, False, (int(np.log2(64 // comps[1].width)), int(np.log2(64 // comps[1].height)))


def _luma(i: int, width: int, height: int, frames: int, content: str, rng: np.random.Generator) -> np.ndarray:
    """Normalised luma in [0, 1] for frame ``i``: textured gradients, a moving square, grain."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    second_scene = content == "cut" and i >= frames // 2
    shift = 2.0 * i  # the whole picture pans a little every frame
    if second_scene:
        base = 0.15 + 0.5 * (yy / max(height - 1, 1))
        base += 0.12 * np.sin(np.hypot(xx - width / 2 - shift, yy - height / 2) / 3.0)
    else:
        base = 0.2 + 0.55 * ((xx + shift) % width) / max(width - 1, 1)
        base += 0.1 * np.sin(2 * np.pi * (xx + 3 * i) / 17.0) * np.cos(2 * np.pi * (yy - 2 * i) / 13.0)
    side = max(4, height // 3)
    x0 = int((5 + 3 * i) % max(width - side, 1))
    y0 = int((3 + 2 * i) % max(height - side, 1))
    base[y0 : y0 + side, x0 : x0 + side] = 0.9 if not second_scene else 0.1
    base += rng.normal(0.0, 0.02, size=base.shape).astype(np.float32)  # film grain
    return np.clip(base, 0.0, 1.0)


def _chroma(i: int, luma_sub: np.ndarray, content: str, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit chroma (about [-0.5, 0.5]) at chroma-plane size for frame ``i``."""
    h, w = luma_sub.shape
    if content in ("grey", "noisy_grey"):
        # Neutral, with the faint chroma noise of a scanned black-and-white print; "noisy_grey":
        # the stronger noise (2.7 codes, random per pixel, zero on average) of black-and-white
        # film telecined on colour equipment.
        rng = np.random.default_rng(1000 + i)
        sigma = 0.003 if content == "grey" else 2.7 / 224
        return (rng.normal(0.0, sigma, (h, w)).astype(np.float32),
                rng.normal(0.0, sigma, (h, w)).astype(np.float32))
    if content == "sepia":
        # A constant warm tint (Cb < 0, Cr > 0), slightly stronger in the highlights.
        gain = 0.85 + 0.3 * luma_sub
        return (-0.05 * gain).astype(np.float32), (0.04 * gain).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = i / 20.0
    if content == "cut" and i >= frames // 2:
        phase += 0.37  # the second shot has other hues
    cb = 0.25 * np.sin(2 * np.pi * (xx / max(w, 1) + phase))
    cr = 0.25 * np.cos(2 * np.pi * (1.3 * yy / max(h, 1) - phase))
    if content == "flicker":
        cb = cb + (0.08 if i % 2 else -0.08)
    return cb.astype(np.float32), cr.astype(np.float32)


def _to_codes(unit: np.ndarray, depth: int, full_range: bool, chroma: bool) -> np.ndarray:
    scale = float(1 << (depth - 8))
    top = float((1 << depth) - 1)
    if chroma:
        codes = 128.0 * scale + unit * (top if full_range else 224.0 * scale)
    else:
        codes = unit * top if full_range else 16.0 * scale + unit * 219.0 * scale
    dtype = np.uint8 if depth <= 8 else np.uint16
    return np.clip(np.round(codes), 0, top).astype(dtype)


def synth_planes(i: int, width: int, height: int, frames: int, pix_fmt: str, content: str,
                 full_range: bool = False, seed: int = 0):
    """Planes ``(y, cb, cr)`` of frame ``i`` as code values of ``pix_fmt`` (cb/cr None for gray)."""
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {CONTENTS}")
    depth, gray, (sx, sy) = _format_info(pix_fmt)
    rng = np.random.default_rng(seed * 1000 + i)
    luma = _luma(i, width, height, frames, content, rng)
    y = _to_codes(luma, depth, full_range or pix_fmt.startswith("yuvj"), chroma=False)
    if gray:
        return y, None, None
    ch, cw = -(-height // (1 << sy)), -(-width // (1 << sx))
    luma_sub = luma[:: 1 << sy, :: 1 << sx][:ch, :cw]
    cb, cr = _chroma(i, luma_sub, content, frames)
    full = full_range or pix_fmt.startswith("yuvj")
    return y, _to_codes(cb, depth, full, True), _to_codes(cr, depth, full, True)


def fill_frame(frame: av.VideoFrame, planes) -> None:
    """Copy (y, cb, cr) arrays into a PyAV frame's planes, honouring line padding."""
    for plane, array in zip(frame.planes, [p for p in planes if p is not None]):
        item = array.dtype.itemsize
        padded = np.zeros((plane.height, plane.line_size // item), dtype=array.dtype)
        padded[:, : plane.width] = array
        plane.update(padded.tobytes())


def _default_codec(path: Path, lossless: bool) -> str:
    if lossless:
        return "ffv1"
    return "libx264"


def _video_options(codec: str) -> dict[str, str]:
    if codec in ("libx264", "libx264rgb"):
        return {"crf": "18", "preset": "veryfast"}
    if codec == "libx265":
        return {"crf": "20", "preset": "ultrafast", "x265-params": "log-level=error"}
    if codec == "ffv1":
        return {"level": "3", "slicecrc": "1"}
    if codec == "prores_ks":
        return {"profile": "3"}
    return {}


def _timing(frames: int, rate: Fraction, vfr: bool) -> tuple[Fraction, list[int]]:
    """Codec time base and pts: 1/rate for CFR; a finer base with irregular durations for VFR."""
    rate = Fraction(rate)
    if vfr:
        tb = 1 / (2 * rate)
        durations = [2, 4, 2, 6, 3, 2, 5]
        pts, t = [], 0
        for i in range(frames):
            pts.append(t)
            t += durations[i % len(durations)]
        return tb, pts
    return 1 / rate, list(range(frames))


def _apply_color_meta(target, color_meta: dict | None, full_range: bool) -> None:
    meta = color_meta or {}
    if "primaries" in meta:
        target.color_primaries = _PRIMARIES[meta["primaries"]]
    if "trc" in meta:
        target.color_trc = _TRC[meta["trc"]]
    if "colorspace" in meta:
        target.colorspace = _COLORSPACE[meta["colorspace"]]
    if "range" in meta:
        target.color_range = _RANGE[meta["range"]]
    elif full_range:
        target.color_range = 2


def _encode_audio(container, codec: str, seconds: float) -> tuple[av.audio.stream.AudioStream, list]:
    """Add an audio stream and return it with its encoded packets (muxed later)."""
    stream = container.add_stream(codec, rate=_AUDIO_RATE)
    stream.layout = "stereo"
    ctx = stream.codec_context
    fmt = ctx.format.name if ctx.format else "s16"
    total = int(seconds * _AUDIO_RATE) + _AUDIO_FRAME
    t = np.arange(total, dtype=np.float32) / _AUDIO_RATE
    wave = 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * np.random.default_rng(7).normal(size=total)
    return stream, (wave.astype(np.float32), fmt)


def _audio_packets(stream, wave_fmt) -> list[av.Packet]:
    wave, fmt = wave_fmt
    packets: list[av.Packet] = []
    frame_size = stream.codec_context.frame_size or _AUDIO_FRAME
    for start in range(0, len(wave) - frame_size + 1, frame_size):
        chunk = wave[start : start + frame_size]
        stereo = np.stack([chunk, chunk * 0.5])
        if fmt == "s16":
            data = (stereo.T.reshape(1, -1) * 32767).astype(np.int16)
        elif fmt == "s16p":
            data = (stereo * 32767).astype(np.int16)
        elif fmt == "fltp":
            data = stereo.astype(np.float32)
        else:
            data = stereo.T.reshape(1, -1).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        frame.sample_rate = _AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, _AUDIO_RATE)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _subtitle_packets(container, path: Path, seconds: float) -> tuple[av.stream.Stream, list[av.Packet]]:
    """A two-cue subtitle stream: SubRip in Matroska, mov_text in MP4/MOV."""
    mp4_like = path.suffix.lower() in (".mp4", ".mov", ".m4v")
    stream = container.add_mux_stream("mov_text" if mp4_like else "subrip")
    stream.time_base = Fraction(1, 1000)
    packets = []
    span = max(int(seconds * 1000), 200)
    for k, text in enumerate(["first line", "second line"]):
        payload = text.encode()
        if mp4_like:
            payload = len(payload).to_bytes(2, "big") + payload
        packet = av.Packet(payload)
        packet.stream = stream
        packet.pts = packet.dts = k * span // 2
        packet.duration = span // 3
        packet.time_base = Fraction(1, 1000)
        packets.append(packet)
    return stream, packets


CHAPTER_TITLES = ("Opening", "Ending")
TIMECODE = "01:00:00:00"
FONT_BYTES = b"\x00\x01\x00\x00 not really a font, only its bytes are compared"


def _tag_streams(audio_stream, subtitle_stream) -> None:
    """Language and title tags, and a forced subtitle, as a film with several languages has."""
    if audio_stream is not None:
        audio_stream.metadata.update({"language": "eng", "title": "English stereo"})
    if subtitle_stream is not None:
        subtitle_stream.metadata.update({"language": "fre", "title": "Forced French"})
        subtitle_stream.disposition = av.stream.Disposition.forced


def cover_png() -> bytes:
    """A tiny PNG (an 8x8 red square), encoded with PyAV, for cover art and image attachments."""
    ctx = av.codec.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 8, 8, "rgb24", Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(np.full((8, 8, 3), (255, 0, 0), dtype=np.uint8), format="rgb24")
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def _add_extras(container, path: Path, seconds: float, chapters: bool, attachments: bool, second_video: bool) -> list:
    """Chapters, attachments or cover art, and a second video stream; returns packets to mux."""
    packets = []
    if chapters:
        half = max(int(seconds * 500), 1)
        container.metadata["title"] = "Test film"
        container.set_chapters([{"id": k + 1, "start": k * half, "end": (k + 1) * half, "time_base": Fraction(1, 1000),
                                 "metadata": {"title": title}} for k, title in enumerate(CHAPTER_TITLES)])
    if attachments and path.suffix.lower() in (".mkv", ".webm"):
        container.add_attachment("font.ttf", "application/x-truetype-font", FONT_BYTES)
        container.add_attachment("cover.png", "image/png", cover_png())  # read back as an attached picture
    elif attachments:
        cover = container.add_stream("png")
        cover.width, cover.height, cover.pix_fmt = 8, 8, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        cover.time_base = Fraction(1, 1000)
        packet = av.Packet(cover_png())
        packet.stream, packet.pts, packet.dts, packet.time_base = cover, 0, 0, cover.time_base
        packets.append(packet)
    if second_video:
        extra = container.add_stream("ffv1", rate=25)
        extra.width, extra.height, extra.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((24, 16), dtype=np.uint8), format="yuv420p")
        frame.pts, frame.time_base = 0, Fraction(1, 25)
        packets.append((extra, frame))
    return packets


def make_clip(path, width: int = 96, height: int = 64, frames: int = 12, rate: Fraction = Fraction(25),
              pix_fmt: str = "yuv420p", codec: str | None = None, lossless: bool = False,
              audio: str | None = None, vfr: bool = False, content: str = "moving",
              color_meta: dict | None = None, subtitle: bool = False, rotation: int = 0,
              gop: int = 4, seed: int = 0, tags: bool = False, chapters: bool = False,
              attachments: bool = False, timecode: bool = False, second_video: bool = False,
              field_order: int = 0, pts: list[int] | None = None,
              sample_aspect_ratio: Fraction | None = None) -> Clip:
    """Write a small synthetic clip with PyAV.

    Args:
        path: output file; the extension picks the container (.mp4, .mov, .mkv, ...).
        width, height: frame size.
        frames: number of frames.
        rate: nominal frame rate (e.g. ``Fraction(30000, 1001)``).
        pix_fmt: encoder pixel format (``yuv420p``, ``yuv420p10le``, ``gray``, ``yuv444p``...), or
            an RGB one (``rgb24``, ``bgr0``, ``gbrp10le``...): the picture is then made as 8-bit
            full-range BT.601 YCbCr 4:4:4 and converted to RGB.
        codec: ffmpeg encoder name; None picks ``ffv1`` when ``lossless`` else ``libx264``.
        lossless: use FFV1 (planes read back equal ``Clip.planes``).
        audio: None, ``"aac"`` or ``"pcm_s16le"`` (48 kHz stereo, as long as the video).
        vfr: irregular frame durations.
        content: ``moving`` (colour, moving), ``grey`` (neutral chroma), ``noisy_grey`` (zero-mean
            chroma noise of 2.7 codes, as a telecine adds), ``sepia`` (constant
            warm tint), ``colour`` (varied hues), ``flicker`` (chroma alternates per frame),
            ``cut`` (a scene cut in the middle).
        color_meta: ffmpeg names under ``primaries``, ``trc``, ``colorspace``, ``range``.
        subtitle: add a two-cue subtitle stream.
        rotation: display-matrix rotation in degrees.
        gop: keyframe interval for inter codecs (small, so seeking is exercised).
        seed: grain seed.
        tags: language and title tags on the audio and subtitle streams, the subtitle forced.
        chapters: two chapters (``CHAPTER_TITLES``) and a container title.
        attachments: Matroska: a font and a PNG attachment; MP4/MOV: PNG cover art.
        timecode: the video's ``TIMECODE`` (MOV/MP4 then hold a timecode track).
        second_video: a second, one-frame video stream.
        field_order: FFmpeg's field order flag for the video (4: top field first).
        pts: the frames' timestamps in the codec time base (1/rate, or 1/(2 rate) with
            ``vfr``) instead of the generated ones, e.g. a film whose first frame is not at 0
            (audio still starts at 0) or with a long gap; ``frames`` is then ``len(pts)``.
        sample_aspect_ratio: non-square pixels (e.g. 32/27, anamorphic DV), stored in the
            bitstream by x264/x265.

    Returns:
        A Clip describing what was written.
    """
    path = Path(path)
    codec = codec or _default_codec(path, lossless)
    tb, generated = _timing(frames, rate, vfr)
    pts = generated if pts is None else list(pts)
    frames = len(pts)
    full_range = (color_meta or {}).get("range") in ("pc", "jpeg", "full")
    seconds = float((pts[-1] + 1) * tb) if pts else 0.0
    rgb = av.video.format.VideoFormat(pix_fmt).is_rgb
    plane_fmt = "yuv444p" if rgb else pix_fmt  # RGB: made as YCbCr, then converted per frame
    planes = [synth_planes(i, width, height, frames, plane_fmt, content, full_range or rgb, seed)
              for i in range(frames)]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=Fraction(rate), options=_video_options(codec))
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = tb
        video.time_base = tb
        if codec not in ("ffv1", "prores_ks"):
            video.codec_context.gop_size = gop
        else:
            video.codec_context.gop_size = 1
        _apply_color_meta(video.codec_context, color_meta, full_range)
        if rotation:
            video.set_display_rotation(rotation)
        if timecode:
            video.metadata["timecode"] = TIMECODE
        if field_order:
            video.codec_context.field_order = field_order
        if sample_aspect_ratio:
            video.codec_context.sample_aspect_ratio = sample_aspect_ratio
        audio_stream = audio_src = None
        if audio:
            audio_stream, audio_src = _encode_audio(container, audio, seconds)
        sub_packets, sub_stream = [], None
        if subtitle:
            sub_stream, sub_packets = _subtitle_packets(container, path, seconds)
        if tags:
            _tag_streams(audio_stream, sub_stream)
        extras = _add_extras(container, path, seconds, chapters, attachments, second_video)
        for i, (stamp, frame_planes) in enumerate(zip(pts, planes)):
            frame = av.VideoFrame(width, height, plane_fmt)
            fill_frame(frame, frame_planes)
            if rgb:
                frame = frame.reformat(format=pix_fmt, src_colorspace="itu601", src_color_range=_RANGE["full"])
            _apply_color_meta(frame, color_meta, full_range)
            frame.pts, frame.time_base = stamp, tb
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        audio_bytes = []
        if audio_stream is not None:
            packets = _audio_packets(audio_stream, audio_src)
            audio_bytes = [bytes(p) for p in packets if p.size]
            container.mux(packets)
        for packet in sub_packets:
            container.mux(packet)
        for extra in extras:
            if isinstance(extra, tuple):  # (stream, frame) of the second video
                container.mux(extra[0].encode(extra[1]) + extra[0].encode(None))
            else:
                container.mux(extra)
    read_pts, read_tb = _read_video_pts(path)
    return Clip(path=path, width=width, height=height, pix_fmt=pix_fmt, codec=codec, pts=read_pts,
                time_base=read_tb, written_pts=pts, codec_time_base=tb, planes=planes,
                audio_packets=audio_bytes, subtitle_packets=[bytes(p) for p in sub_packets])


def _read_video_pts(path) -> tuple[list[int], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
        return pts, Fraction(stream.time_base)


def _plane(plane, item: int) -> np.ndarray:
    dtype = np.uint8 if item == 1 else np.dtype("<u2")
    data = np.frombuffer(bytes(plane), dtype=dtype).reshape(plane.height, -1)
    return data[:, : plane.width].astype(np.uint8 if item == 1 else np.uint16)


def read_planes(path, stream: int = 0) -> list[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Decode every frame of a video stream as ``(pts, y, cb, cr)`` in the decoder's own format.

    Args:
        path: the file.
        stream: which video stream (0 = the first).

    Returns:
        One tuple per frame in presentation order; cb/cr None for gray formats.
    """
    out = []
    with av.open(str(path)) as container:
        video = container.streams.video[stream]
        for frame in container.decode(video):
            item = 1 if frame.format.components[0].bits <= 8 else 2
            planes = [_plane(p, item) for p in frame.planes]
            cb, cr = (planes[1], planes[2]) if len(planes) >= 3 else (None, None)
            out.append((frame.pts, planes[0], cb, cr))
    out.sort(key=lambda item: item[0])
    return out


BT601_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB weights of BT.601 luma


def read_rgb(path) -> list[np.ndarray]:
    """Decode every frame as a player shows it: RGB converted by FFmpeg with the file's own
    matrix and range tags (so wrong tags show as wrong colours and luma).

    Args:
        path: the file.

    Returns:
        ``(H, W, 3)`` float32 RGB in 0..255 per frame, in presentation order.
    """
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]


def read_packets(path, kind: str = "audio") -> list[bytes]:
    """Payloads of every non-empty packet of the first stream of ``kind``, in file order.

    Args:
        path: the file.
        kind: ``"audio"``, ``"subtitle"``, ``"data"`` or ``"video"``.

    Returns:
        Packet payloads as bytes (empty list when there is no such stream).
    """
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [bytes(p) for p in container.demux(streams[0]) if p.size]


def damage_video_packets(path, which: list[int], seed: int = 5) -> None:
    """Overwrite the payloads of the given video packets (file order) with random bytes, in place:
    a reel with damage the decoder skips (for FFV1, those frames cannot be decoded).

    Args:
        path: the file.
        which: indices of non-empty video packets.
        seed: for the random bytes.
    """
    with av.open(str(path)) as container:
        payloads = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(Path(path).read_bytes())
    rng = np.random.default_rng(seed)
    for k in which:
        # Found by content, so only the payload changes and the container's framing stays intact.
        at = data.find(payloads[k])
        assert at > 0, f"packet {k} not found in {path}"
        data[at : at + len(payloads[k])] = rng.integers(0, 256, len(payloads[k]), dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(data))


def read_packet_times(path, kind: str = "audio") -> list[tuple[Fraction, bytes]]:
    """``(pts in seconds, payload)`` of every non-empty packet of the first stream of ``kind``."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        tb = Fraction(streams[0].time_base)
        return [(p.pts * tb, bytes(p)) for p in container.demux(streams[0]) if p.size]


def ffprobe_json(path) -> dict | None:
    """``ffprobe -show_format -show_streams -show_packets`` as a dict; None when ffprobe is absent.

    Args:
        path: the file.

    Returns:
        The parsed JSON, or None without ffprobe.
    """
    exe = shutil.which("ffprobe") or ("/usr/bin/ffprobe" if Path("/usr/bin/ffprobe").exists() else None)
    if exe is None:
        return None
    result = subprocess.run(
        [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_packets", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(result.stdout)


def ffprobe_video_pts(path) -> tuple[list[int], Fraction] | None:
    """Sorted video packet pts and the stream time base according to ffprobe (None without it)."""
    data = ffprobe_json(path)
    if data is None:
        return None
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    num, den = (int(v) for v in re.split("/", video["time_base"]))
    pts = sorted(int(p["pts"]) for p in data["packets"] if p["stream_index"] == video["index"] and "pts" in p)
    return pts, Fraction(num, den)


def ffprobe_duration(path) -> Fraction | None:
    """The file's duration as ffprobe reports it (what players show), in seconds; None
    without ffprobe."""
    data = ffprobe_json(path)
    if data is None:
        return None
    return Fraction(data["format"]["duration"])


def exif_orientation_block(orientation: int, little_endian: bool = False) -> bytes:
    """An EXIF block holding only an Orientation tag (1 to 8), as cameras write it: a TIFF
    header and one IFD entry."""
    order = "<" if little_endian else ">"
    return ((b"II" if little_endian else b"MM") + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
            + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0))


def write_oriented_image(path, bgr: np.ndarray, orientation: int, little_endian: bool = False) -> None:
    """Write an image (BGR or BGRA, as stored) with an EXIF Orientation tag, like a phone photo
    stored sideways; viewers (and OpenCV's own ``cv2.imread`` in colour mode) turn it upright.

    Args:
        path: .jpg, .png or .webp.
        bgr: the pixels as stored.
        orientation: the EXIF Orientation, 1 to 8.
        little_endian: write the EXIF block in Intel byte order (Motorola otherwise).
    """
    import cv2

    block = np.frombuffer(exif_orientation_block(orientation, little_endian), np.uint8)
    ok, data = cv2.imencodeWithMetadata(Path(path).suffix, bgr, [cv2.IMAGE_METADATA_EXIF], [block])
    assert ok, path
    data.tofile(str(path))


def ffmpeg_shown_frame(path) -> np.ndarray | None:
    """The first frame as FFmpeg shows it (rotated by the display matrix, as players do), RGB
    uint8; None without the ffmpeg program."""
    exe = shutil.which("ffmpeg") or ("/usr/bin/ffmpeg" if Path("/usr/bin/ffmpeg").exists() else None)
    if exe is None:
        return None
    result = subprocess.run([exe, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-c:v", "png",
                             "-"], capture_output=True, timeout=60, check=True)
    import cv2

    return cv2.imdecode(np.frombuffer(result.stdout, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def passthrough(source, output, codec: str = "ffv1", frame_range: tuple[int, int] | None = None, **writer_kwargs):
    """Decode ``source`` with vidcolor.io and write its planes back with ``OutputWriter``.

    Planes are shifted to the output depth; gray sources get neutral chroma, and chroma is
    resampled (nearest) when the output subsampling differs. Luma is passed through untouched,
    as colorize mode does.

    Args:
        source: input file.
        output: output file (written directly, not atomically).
        codec: ``x264``, ``x265``, ``prores`` or ``ffv1``.
        frame_range: ``(start, end)`` frames to write (also passed to the writer).
        **writer_kwargs: more ``OutputWriter`` arguments (``video_only``, ``crf``...).

    Returns:
        The OutputWriter's OutputFormat.
    """
    from vidcolor.io import OutputWriter, iter_frames, probe, shift_bits

    info = probe(source, verdict=False)
    depth = info.video.bit_depth
    start, end = frame_range if frame_range else (0, None)
    with OutputWriter(output, info, codec=codec, frame_range=frame_range, **writer_kwargs) as writer:
        fmt = writer.format
        for frame in iter_frames(source, info, start=start, end=end):
            y = shift_bits(frame.y, depth, fmt.bit_depth)
            writer.write(y, *_output_chroma(frame, depth, fmt), frame.pts, frame.duration)
    return fmt


def _output_chroma(frame, depth: int, fmt):
    ch, cw = fmt.chroma_size
    if frame.cb is None:
        mid = np.full((ch, cw), 1 << (fmt.bit_depth - 1), dtype=fmt.dtype)
        return mid, mid.copy()
    from vidcolor.io import shift_bits

    planes = []
    for plane in (frame.cb, frame.cr):
        rows = (np.arange(ch) * plane.shape[0] // ch)[:, None]
        cols = (np.arange(cw) * plane.shape[1] // cw)[None, :]
        planes.append(shift_bits(plane[rows, cols], depth, fmt.bit_depth))
    return planes
