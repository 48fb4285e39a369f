"""Packet-level copying: audio/subtitle/data streams next to a new video (merging: ``merge``).

Nothing here decodes or re-encodes. Copied packets keep their payload byte for byte; only
their stream index (and, where a muxer has its own time base, their timestamps' units)
change. Packets are fed in time order next to the video so files are properly interleaved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import av

from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import WRITE_FAILURE_ADVICE, write_failure
from vidcolor.io.inputs import ffmpeg_path, open_input, pick_video_stream
from vidcolor.io.streams import codec_name

log = logging.getLogger("vidcolor")

COPY_KINDS = ("audio", "subtitle", "data")

# Output containers by extension (muxer names). No .webm: it takes only VP8/VP9/AV1, none of
# which we encode, so offering it only led to a refusal for every codec.
CONTAINER_FORMATS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
}
_MP4_FAMILY = {"mp4", "mov"}


def container_format(path: str | os.PathLike) -> str:
    """The muxer for an output path, from its extension.

    Args:
        path: output file name.

    Returns:
        A muxer name such as ``"mp4"`` or ``"matroska"``.

    Raises:
        UsageError: for an extension vidcolor does not write.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        known = ", ".join(sorted(CONTAINER_FORMATS))
        raise UsageError(f"cannot write {path}: unknown output extension {suffix or '(none)'!r}; use one of {known}")
    return CONTAINER_FORMATS[suffix]


def muxer_options(format_name: str, time_base: Fraction) -> dict[str, str]:
    """Muxer options that keep the video time base exact.

    MP4/MOV otherwise pick their own track timescale (e.g. 1/25 becomes 1/12800, 1/1000
    becomes 1/16000); asking for the source's denominator keeps every pts unchanged (a time
    base like 1001/30000 becomes 1/30000 with pts scaled by 1001: the same instants). The
    movie timescale gets the same denominator: the edit list that holds a stream's start
    (a chunk that begins mid-film, an audio encoder's delay) counts in it, and at its default
    of milliseconds a chunk of a 24000/1001 film starting at frame 300 (12.5125 s) would begin
    at 12.512 s. Matroska always counts in milliseconds and has no such option.

    Args:
        format_name: the muxer.
        time_base: the video's time base.

    Returns:
        Options for ``av.open(..., container_options=...)``.
    """
    if format_name in _MP4_FAMILY and time_base:
        timescale = str(Fraction(time_base).denominator)
        return {"video_track_timescale": timescale, "movie_timescale": timescale}
    return {}


def open_output(path: str | os.PathLike, time_base: Fraction, format_name: str | None = None, file=None):
    """Open an output container (a path, or a file object such as BytesIO with ``format_name``).

    Args:
        path: the output path (the format comes from its extension unless given).
        time_base: video time base, for ``muxer_options``.
        format_name: muxer name; None guesses from ``path``.
        file: write here instead of ``path`` (header checks use a BytesIO).

    Returns:
        An open PyAV output container.

    Raises:
        OutputError: when the file cannot be created.
    """
    format_name = format_name or container_format(path)
    target = file if file is not None else ffmpeg_path(path)
    try:
        return av.open(target, mode="w", format=format_name,
                       container_options=muxer_options(format_name, time_base))
    except (av.error.FFmpegError, OSError) as exc:
        if getattr(exc, "errno", None) in WRITE_FAILURE_ADVICE:
            raise write_failure(path, exc) from exc  # read-only folder, full disk...
        raise OutputError(f"cannot create {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def packet_time(packet) -> Fraction | None:
    """A packet's presentation (else decoding) time in seconds.

    Args:
        packet: a demuxed PyAV packet.

    Returns:
        The time as a Fraction, or None when the packet has no timestamp.
    """
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None or packet.time_base is None:
        return None
    return stamp * Fraction(packet.time_base)


def _other_streams(container) -> list:
    """Every stream of an input but the video stream vidcolor colorizes."""
    video = pick_video_stream(container)
    return [s for s in container.streams if video is None or s.index != video.index]


def _is_cover(stream) -> bool:
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def _kept_as(stream) -> str:
    """How a stream beside the colorized video reaches the output.

    Returns:
        ``"copy"`` (packet for packet), ``"timecode"`` (a QuickTime timecode track, kept as a
        tag), ``"chapters"`` (MP4's chapter text track, kept as chapters), ``"cover"`` (an
        attached picture), ``"attachment"`` (a Matroska attachment), ``"second video"``, or
        ``"no codec"`` (a data stream FFmpeg cannot name, so no muxer can take its packets).
    """
    if stream.type == "video":
        return "cover" if _is_cover(stream) else "second video"
    if stream.type == "attachment":
        return "attachment"
    if stream.type == "data":
        if "timecode" in stream.metadata:
            return "timecode"
        if stream.discard == av.stream.Discard.all:  # the MP4 demuxer hides the chapter track this way
            return "chapters"
        if stream.codec_context is None:
            return "no codec"
    return "copy"


# Tags that describe how the source file was written (its muxer, its track statistics);
# the output's muxer writes its own, so copying them would make the output lie.
_FILE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "number_of_frames",
              "number_of_bytes", "bps", "handler_name", "vendor_id"}
# What a re-encoded video stream keeps of the source's video tags.
_VIDEO_TAGS = ("language", "title", "timecode")
_COVER_MIMETYPES = {"mjpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "gif": "image/gif",
                    "webp": "image/webp"}
_MP4_COVER_CODECS = {"mjpeg", "png", "bmp"}


def _kept_tags(metadata: dict) -> dict:
    """Metadata without the tags that describe the source file's own layout (``_FILE_TAGS``)."""
    return {k: v for k, v in metadata.items()
            if k.lower() not in _FILE_TAGS and not k.lower().startswith("_statistics")}


@dataclass(frozen=True)
class StreamPlan:
    """What of an input's other streams, chapters and tags an output container keeps.

    ``copied`` streams go packet for packet; ``covers`` are attached pictures re-attached
    (a Matroska attachment, or MP4 cover art); ``attachments`` are Matroska attachments
    (fonts for ASS subtitles); ``dropped`` pairs a stream's description with why it is left out;
    ``lost_flags`` pairs a copied stream's description with the flags the container cannot store.
    """

    copied: tuple
    covers: tuple
    attachments: tuple
    timecode: str | None
    video_tags: dict
    container_tags: dict
    chapters: tuple
    dropped: tuple[tuple[str, str], ...]
    video_disposition: Any = None  # the source video's flags (default...), for the new video stream
    lost_flags: tuple[tuple[str, str], ...] = ()


def _flags_mov_loses(stream) -> list[str]:
    """The disposition flags of ``stream`` a ``.mov`` cannot store.

    FFmpeg's MOV muxer keeps only "default" (as the track's enabled bit); the MP4 muxer
    writes the others as ISO "kind" boxes and Matroska has its own flags.
    """
    keep = av.stream.Disposition.default | av.stream.Disposition.attached_pic
    return [flag.name for flag in av.stream.Disposition if stream.disposition & flag and not keep & flag]


def plan_streams(container, format_name: str, kinds: Sequence[str] = COPY_KINDS) -> StreamPlan:
    """Decide, before anything is written, what of ``container`` besides its video an output keeps.

    Args:
        container: the open source.
        format_name: the output's muxer name (``"matroska"``, ``"mp4"``, ``"mov"``...).
        kinds: stream types copied packet for packet (the others are not looked at).

    Returns:
        A StreamPlan.
    """
    matroska = format_name in ("matroska", "webm")
    copied, covers, attachments, dropped, lost_flags = [], [], [], [], []
    timecode = None
    video = pick_video_stream(container)
    for stream in _other_streams(container):
        if stream.type not in kinds and stream.type not in ("video", "attachment"):
            continue
        kept = _kept_as(stream)
        name = f"stream #{stream.index} ({describe_stream(stream)})"
        if kept == "copy":
            copied.append(stream)
            if format_name == "mov" and (flags := _flags_mov_loses(stream)):
                lost_flags.append((name, "+".join(flags)))
        elif kept == "timecode":
            timecode = timecode or stream.metadata["timecode"]
        elif kept == "cover":
            codec = stream.codec_context.name if stream.codec_context else "?"
            # The MOV muxer takes a cover stream but silently leaves it out of the file.
            if (matroska and codec in _COVER_MIMETYPES) or (format_name == "mp4" and codec in _MP4_COVER_CODECS):
                covers.append(stream)
            else:
                dropped.append((name, f"{format_name} keeps no {codec} cover image (.mkv and .mp4 do)"))
        elif kept == "attachment":
            if matroska:
                attachments.append(stream)
            else:
                dropped.append((name, "only .mkv holds attachments"))
        elif kept == "second video":
            dropped.append((name, "vidcolor writes one video stream"))
        elif kept == "no codec":
            dropped.append((name, "its codec is unknown to FFmpeg, so no container can take its packets"))
    video_tags = {k: v for k, v in (video.metadata.items() if video is not None else ()) if k.lower() in _VIDEO_TAGS}
    timecode = video_tags.pop("timecode", None) or timecode
    return StreamPlan(copied=tuple(copied), covers=tuple(covers), attachments=tuple(attachments), timecode=timecode,
                      video_tags=video_tags, container_tags=_kept_tags(dict(container.metadata)),
                      chapters=tuple(container.chapters()), dropped=tuple(dropped),
                      video_disposition=video.disposition if video is not None else None,
                      lost_flags=tuple(lost_flags))


def describe_stream(stream) -> str:
    """A few words for a stream in messages: its type, codec and language.

    Args:
        stream: a PyAV stream.

    Returns:
        E.g. ``"audio aac [eng]"`` or ``"attachment font.ttf"``.
    """
    if stream.type == "attachment":
        return f"attachment {stream.metadata.get('filename', '?')}"
    codec = codec_name(stream)  # as probe and ffprobe name it ("subrip", not "srt")
    kind = "cover image" if _is_cover(stream) else stream.type
    language = stream.metadata.get("language")
    return f"{kind} {codec}" + (f" [{language}]" if language and language != "und" else "")


def warn_dropped(plan: StreamPlan, source: str | os.PathLike, output: str | os.PathLike) -> None:
    """Log one line naming what of ``source`` will not be in ``output``, and why, and one naming
    the stream flags it cannot store (nothing when the plan loses nothing).

    Args:
        plan: what ``plan_streams`` decided.
        source: the source's path (for the message).
        output: the output's path (for the message).
    """
    if plan.dropped:
        items = "; ".join(f"{name}: {why}" for name, why in plan.dropped)
        log.warning("%s leaves out %d stream(s) of %s: %s", output, len(plan.dropped), source, items)
    if plan.lost_flags:
        items = "; ".join(f"{name}: {flags}" for name, flags in plan.lost_flags)
        log.warning("%s keeps these streams of %s without their flags (.mov stores only 'default'; "
                    ".mp4 and .mkv keep them): %s", output, source, items)


def _first_payload(source, stream) -> bytes:
    """The first non-empty packet of ``stream`` (an attached picture is one packet).

    Read through a second opening of the file, so the caller's demuxer is not moved: a seek
    back to the start does not give every format's first packets again.
    """
    with open_input(source.name) as again:
        for packet in again.demux(again.streams[stream.index]):
            if packet.size:
                return bytes(packet)
    return b""


def apply_plan(plan: StreamPlan, source, output, video_stream=None) -> tuple[dict, list]:
    """Add the planned copies, attachments, cover art, chapters and tags to ``output``.

    Must run before anything is muxed (streams, attachments and chapters go in the header).

    Args:
        plan: from ``plan_streams`` on ``source``.
        source: the open source container (attached pictures are read from it).
        output: an open output container.
        video_stream: the output's video stream, which gets the source video's language,
            title and timecode (the MP4/MOV muxer writes its own timecode track from it).

    Returns:
        ``({source stream index: output stream}`` for the streams copied packet for packet,
        ``[packet]`` of cover art to mux once: MP4 keeps an attached picture as a stream).
    """
    mapping, cover_packets = {}, []
    for stream in plan.copied:
        copy = output.add_stream_from_template(stream)
        if stream.codec_context is not None:  # PyAV copies the tags only of codec-less streams
            copy.metadata.update(_kept_tags(dict(stream.metadata)))
            copy.disposition = stream.disposition
        mapping[stream.index] = copy
    for stream in plan.attachments:
        output.add_stream_from_template(stream)
    for stream in plan.covers:
        payload = _first_payload(source, stream)
        if output.format.name == "mp4":
            cover = output.add_stream_from_template(stream)
            cover.disposition = av.stream.Disposition.attached_pic
            packet = av.Packet(payload)
            packet.stream, packet.time_base, packet.pts, packet.dts = cover, cover.time_base, 0, 0
            cover_packets.append(packet)
        else:
            codec = stream.codec_context.name
            filename = stream.metadata.get("filename") or f"cover.{'jpg' if codec == 'mjpeg' else codec}"
            output.add_attachment(filename, stream.metadata.get("mimetype") or _COVER_MIMETYPES[codec], payload)
    if video_stream is not None:
        video_stream.metadata.update(plan.video_tags)
        if plan.video_disposition is not None:  # Matroska otherwise clears the video's "default" flag
            video_stream.disposition = plan.video_disposition
        if plan.timecode:
            video_stream.metadata["timecode"] = plan.timecode
    output.metadata.update(plan.container_tags)
    if plan.chapters:
        output.set_chapters(list(plan.chapters))
    return mapping, cover_packets


def _is_cue_end(packet) -> bool:
    """An empty mov_text sample (two zero bytes): the end of the previous subtitle cue."""
    return packet.size == 2 and packet.stream.type == "subtitle" and bytes(packet) == b"\x00\x00" \
        and packet.stream.codec_context.name == "mov_text"


class PacketCopier:
    """Copies the audio, subtitle and data packets of one input into an output container.

    Streams are added to the output in the constructor (so before its header is written);
    ``feed_until(t)`` then muxes every pending packet whose time is <= t, which keeps the
    output interleaved when called after each video packet; ``feed_until(None)`` writes the rest.
    """

    def __init__(self, source_path: str | os.PathLike, output, span: tuple[Fraction | None, Fraction | None] | None = None,
                 kinds: Sequence[str] = COPY_KINDS, video_stream=None):
        """Open ``source_path`` and add to ``output`` what ``plan_streams`` keeps of it.

        Copied streams keep their tags (language, title) and dispositions (default,
        forced); the source's chapters, container tags, attachments and cover art come too,
        and its video's language, title and timecode go on ``video_stream``.

        Args:
            source_path: the file whose streams are copied.
            output: an open output container with nothing muxed yet.
            span: ``(t0, t1)`` in seconds: only packets with t0 <= time < t1 are copied
                (None bounds are open); None copies everything.
            kinds: stream types to copy.
            video_stream: the output's (new) video stream, or None.
        """
        self._source = str(source_path)
        self._input = open_input(source_path)
        self._span = span or (None, None)
        self.copied = 0
        try:
            self.plan = plan_streams(self._input, output.format.name, kinds)
            self._map, self._covers = apply_plan(self.plan, self._input, output, video_stream)
        except BaseException:
            self._input.close()
            raise
        self._output = output
        # MP4/MOV write an empty 2-byte mov_text sample to end each cue; the input's own
        # end markers are dropped so the muxer's are not doubled (the cues stay identical).
        self._drop_cue_ends = output.format.name in _MP4_FAMILY
        streams = list(self.plan.copied)
        self._packets: Iterator = iter(self._input.demux(streams)) if streams else iter(())
        self._pending = None

    @property
    def stream_count(self) -> int:
        """Number of streams being copied."""
        return len(self._map)

    def _in_span(self, time: Fraction | None) -> bool:
        t0, t1 = self._span
        if time is None:
            return True
        return (t0 is None or time >= t0) and (t1 is None or time < t1)

    def _next_packet(self):
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        try:
            for packet in self._packets:
                if packet.size == 0:
                    continue  # demuxer flush packets carry no data
                if self._drop_cue_ends and _is_cue_end(packet):
                    continue
                return packet
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read the audio/subtitle packets of {self._source}: {exc}; "
                             "the file may be damaged") from exc
        return None

    def feed_until(self, until: Fraction | None) -> None:
        """Mux pending packets whose time is <= ``until`` (all of them when None).

        Args:
            until: a time in seconds, usually the last video packet's.
        """
        while self._covers:
            self._output.mux(self._covers.pop())
        while True:
            packet = self._next_packet()
            if packet is None:
                return
            time = packet_time(packet)
            if until is not None and time is not None and time > until:
                self._pending = packet
                return
            if not self._in_span(time):
                continue
            packet.stream = self._map[packet.stream_index]
            self._output.mux(packet)
            self.copied += 1

    def close(self) -> None:
        """Close the input file."""
        self._input.close()
