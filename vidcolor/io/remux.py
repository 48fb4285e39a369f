"""Packet-level copying: audio/subtitle/data streams next to a new video, and chunk merging.

Nothing here decodes or re-encodes. Copied packets keep their payload byte for byte; only
their stream index (and, where a muxer has its own time base, their timestamps' units)
change. Packets are fed in time order next to the video so files are properly interleaved.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import av

from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import WRITE_FAILURE_ADVICE, atomic_output, write_failure
from vidcolor.io.decode import iter_frames
from vidcolor.io.inputs import ffmpeg_path, open_input, pick_video_stream
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.probe import probe
from vidcolor.io.streams import codec_name
from vidcolor.io.stamp import parse_stamp, source_fingerprint, stamp_of
from vidcolor.io.stream_aspect import set_container_sample_aspect_ratio

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


# ---------------------------------------------------------------------------------------------
# Merging chunks


@dataclass(frozen=True)
class MergeReport:
    """What ``merge_chunks`` wrote."""

    frames: int
    chunks: int
    copied_streams: int
    lost: int = 0  # source frames in no chunk because the source's decoder cannot produce them


@dataclass
class _Chunk:
    path: str
    pts: list[int]  # sorted (presentation order)
    time_base: Fraction
    codec: str
    width: int
    height: int
    pix_fmt: str
    extradata: bytes
    reorder_depth: int = 0  # how many frames decode order runs ahead of presentation
    stamp: str | None = None  # which source and settings made it (vidcolor.io.stamp)

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def _decode_order_pts(container, stream, path: str) -> list[int]:
    """Video packet pts in file (decode) order; every packet of a chunk must carry one."""
    stamps = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if packet.pts is None:
            raise UsageError(f"chunk {path} has video packets without timestamps; re-render it with vidcolor")
        stamps.append(packet.pts)
    return stamps


def reorder_depth(decode_order_pts: list[int]) -> int:
    """Smallest K such that each packet's pts is at least the pts K frames earlier in presentation order.

    Args:
        decode_order_pts: distinct pts of packets in decode order.

    Returns:
        K >= 0 (0 when there is no reordering, e.g. intra-only codecs; 2 for x264's usual
        B-frames).
    """
    rank = {stamp: i for i, stamp in enumerate(sorted(decode_order_pts))}
    return max([0] + [i - rank[stamp] for i, stamp in enumerate(decode_order_pts)])


def decode_timestamps(presentation_pts: list[int], depth: int) -> list[int]:
    """Decoding timestamps, as an encoder sets them, for packets whose sorted pts are ``presentation_pts``.

    The i-th packet (decode order) decodes at the pts of the frame ``depth`` places before the
    i-th in presentation order; the first ``depth`` packets get evenly spaced times just before
    the first frame. Such dts are strictly increasing and never pass their packet's pts.

    Why in frames, not one time span before each pts: FFmpeg's MP4/MOV muxer starts the edit
    list at the smallest pts - dts among packets with a negative dts (FFmpeg 8, found by
    experiment). After a long gap in a variable-rate film, one time span as long as the gap
    gave the B-frames before it negative dts and a smaller pts - dts than the first frame's, so
    the edit list began before the first frame and FFmpeg's demuxer (ffprobe, PyAV)
    moved the video to that start: a film starting at 0.033 s came out at 0. For the same
    reason the first dts stay at or above 0 where the first pts leaves room for them.

    Args:
        presentation_pts: the packets' pts in presentation (sorted) order.
        depth: ``reorder_depth`` of the packets (the largest of all merged chunks).

    Returns:
        One dts per packet, in decode order.
    """
    if not depth or not presentation_pts:
        return list(presentation_pts)
    first = presentation_pts[0]
    steps = [b - a for a, b in zip(presentation_pts, presentation_pts[1:])]
    step = min(steps) if steps else 1
    if first > 0:
        step = max(1, min(step, first // depth))
    lead = [first - (depth - i) * step for i in range(depth)]
    return (lead + presentation_pts)[: len(presentation_pts)]


def _read_chunk(path: str) -> _Chunk:
    """Describe one chunk from its header and packet timestamps."""
    with open_input(path) as container:
        stream = pick_video_stream(container)
        if stream is None:
            raise InputError(f"chunk {path} has no video stream; re-render it")
        ctx = stream.codec_context
        decode_order = _decode_order_pts(container, stream, path)
        chunk = _Chunk(path=str(path), pts=sorted(decode_order), time_base=Fraction(stream.time_base),
                       codec=ctx.codec.canonical_name, width=ctx.width, height=ctx.height,
                       pix_fmt=ctx.format.name if ctx.format else "?", extradata=bytes(ctx.extradata or b""),
                       reorder_depth=reorder_depth(decode_order), stamp=stamp_of(dict(container.metadata)))
    if not chunk.pts:
        raise UsageError(f"chunk {path} holds no frames; re-render it")
    return chunk


_MUST_MATCH = {"codec": "codec", "width": "width", "height": "height", "pix_fmt": "pixel format",
               "time_base": "time base", "extradata": "encoder parameters"}


def _check_same_encoding(chunks: list[_Chunk]) -> None:
    """Refuse chunks whose codec, size, pixel format, time base or encoder setup differ."""
    first = chunks[0]
    for chunk in chunks[1:]:
        for attr, label in _MUST_MATCH.items():
            expected, found = getattr(first, attr), getattr(chunk, attr)
            if expected != found:
                detail = "differ" if attr == "extradata" else f"{found} instead of {expected}"
                raise UsageError(f"chunk {chunk.path} does not match {first.path}: {label} {detail}; "
                                 "re-render it with the same options")


def _check_same_stamp(chunks: list[_Chunk], source: str | None) -> None:
    """Refuse chunks rendered from different sources or with different settings, as their
    stamps record (``vidcolor.io.stamp``); with ``source``, warn when it is not the file the
    chunks were rendered from (a remux or new audio is fine; the frame times are checked next).

    Chunks from before stamps existed carry none; they merge as before, but not among
    stamped ones (nothing would tell whether they match).
    """
    stamped = [c for c in chunks if c.stamp]
    if not stamped:
        return
    first = stamped[0]
    for chunk in chunks:
        if not chunk.stamp:
            raise UsageError(f"chunk {chunk.path} carries no record of its source and settings, unlike {first.path}; "
                             "re-render it with this vidcolor and the same options")
        (src_a, set_a), (src_b, set_b) = parse_stamp(first.stamp), parse_stamp(chunk.stamp)
        if src_a != src_b:
            raise UsageError(f"chunk {chunk.path} was rendered from another source than {first.path}; "
                             "re-render it from the same film")
        if set_a != set_b:
            raise UsageError(f"chunk {chunk.path} was rendered with other settings than {first.path} (model, codec, "
                             "--crf, --render-size, --smooth, --style, --reference...); re-render it with the same options")
    if source is not None and parse_stamp(first.stamp)[0] != source_fingerprint(source):
        # Not refused: a remux of the film, or the film with a restored or replaced audio track,
        # differs in its bytes but not in its frames, and the coverage check that follows
        # still refuses a film whose frame times are not the chunks'.
        log.warning("%s is not byte for byte the file the chunks were rendered from (chunk %s): its audio, "
                    "subtitles and tags are used as long as its frame times match the chunks'; if it is another "
                    "film of the same length, give --audio-from the film the chunks were rendered from",
                    source, first.path)


def _check_no_gap(chunks: list[_Chunk]) -> None:
    """Without the source, a hole between consecutive chunks still shows in their timestamps:
    the step from one chunk's last frame to the next one's first is far longer than any frame
    step on either side (a missing 200-frame chunk is an 8 s jump at 25 fps)."""
    steps = [b - a for c in chunks for a, b in zip(c.times, c.times[1:])]
    if not steps:
        return  # one-frame chunks only: nothing to compare a boundary with
    typical = sorted(steps)[len(steps) // 2]
    for before, after in zip(chunks, chunks[1:]):
        near = [b - a for c in (before, after) for a, b in zip(c.times, c.times[1:])]
        longest = max(near) if near else typical
        jump = after.times[0] - before.times[-1]
        if jump > longest * Fraction(3, 2) and jump > typical * Fraction(3, 2):
            missing = round(jump / typical) - 1
            raise UsageError(f"chunks leave a gap: nothing between {before.path} (ends at {float(before.times[-1]):.3f} s)"
                             f" and {after.path} (starts at {float(after.times[0]):.3f} s), about {missing} frame"
                             f"{'' if missing == 1 else 's'}; add the missing chunk, give --audio-from SOURCE to check "
                             "against the film, or pass --allow-gaps if the film really has that pause")


def _codec_for_check(chunk: _Chunk) -> str | None:
    """Our codec name for a chunk's stream, for the container check (None: not one we write)."""
    return {"h264": "x264", "hevc": "x265", "prores": "prores", "ffv1": "ffv1"}.get(chunk.codec)


def _check_container(chunks: list[_Chunk], output: str, audio_from: str) -> bool:
    """Refuse, before writing, an output container that cannot hold the source's streams next to
    the chunks' video: the check ``farm`` and ``colorize`` make (``check_output_supported``).
    Returns whether it ran (it also logs what the output leaves out)."""
    from vidcolor.io.encode import check_output_supported

    codec = _codec_for_check(chunks[0])
    if codec is None:
        return False
    check_output_supported(output, probe(audio_from, verdict=False), codec, copy_streams=True)
    return True


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted frame indices as runs of consecutive ones: ``[3, 4, 5, 9]`` -> ``[(3, 5), (9, 9)]``."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _ranges(indices: list[int]) -> str:
    """Compact text for sorted frame indices: ``"3-5, 9"``."""
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in _runs(indices))


def _undecodable(source: str, frames: list[int]) -> set[int]:
    """Which of ``frames`` the source's decoder cannot produce (damaged or missing packets).

    Each run of consecutive frames is decoded afresh, from the keyframe before it, as a
    chunk's render decodes it.

    Args:
        source: the source file.
        frames: sorted frame indices.

    Returns:
        The indices that did not come out of the decoder.
    """
    info = probe(source, verdict=False)
    lost: set[int] = set()
    for first, last in _runs(frames):
        try:
            decoded = {frame.index for frame in iter_frames(source, info, first, last)}
        except InputError:  # not one frame of the run decodes
            decoded = set()
        lost.update(i for i in range(first, last + 1) if i not in decoded)
    return lost


def _source_index(times: list[Fraction], t: Fraction, tolerance: Fraction) -> int | None:
    """Index of the source frame at time ``t`` (within ``tolerance``), or None."""
    i = bisect_left(times, t)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(times) and abs(times[j] - t) <= tolerance:
            if best is None or abs(times[j] - t) < abs(times[best] - t):
                best = j
    return best


def _check_coverage(chunks: list[_Chunk], source: str) -> int:
    """Every source frame in exactly one chunk, and no chunk frame the source lacks.

    A frame in no chunk is allowed only when the source itself cannot decode it: a render
    skips such frames (a single run's output leaves them out too), so re-rendering would not
    bring them back.

    Returns:
        The number of source frames left out because they cannot be decoded.
    """
    with open_input(source) as container:
        stream = pick_video_stream(container)
        if stream is None:
            raise InputError(f"{source} has no video stream to check the chunks against")
        source_tb, index = Fraction(stream.time_base), stream.index
    times = [p * source_tb for p in scan_timestamps(source, index)]
    counts = [0] * len(times)
    for chunk in chunks:
        # Timestamps may be rounded to the coarser of the two time bases (e.g. Matroska's ms).
        tolerance = max(chunk.time_base, source_tb) / 2
        strays = []
        for t in chunk.times:
            i = _source_index(times, t, tolerance)
            if i is None:
                strays.append(t)
            else:
                counts[i] += 1
        if strays:
            raise UsageError(f"chunk {chunk.path} has {len(strays)} frames at times {source} does not have "
                             f"(first at {float(strays[0]):.3f} s); was it rendered from another source?")
    missing = [i for i, n in enumerate(counts) if n == 0]
    doubled = [i for i, n in enumerate(counts) if n > 1]
    if doubled:
        raise UsageError(f"chunks overlap: frames {_ranges(doubled)} of {source} appear in more than one chunk")
    if missing:
        lost = _undecodable(source, missing)
        gaps = [i for i in missing if i not in lost]
        if gaps:
            raise UsageError(f"chunks leave a gap: frames {_ranges(gaps)} of {source} are in no chunk; render them")
        log.warning("%s: frames %s cannot be decoded (damaged) and are left out of the merged film, as a single run "
                    "leaves them out: the frame before each gap stays on screen; timing and audio are kept",
                    source, _ranges(missing))
    return len(missing)


def _check_no_overlap(chunks: list[_Chunk]) -> None:
    """Without the source, consecutive chunks must at least not share or interleave frames."""
    for chunk in chunks:
        if len(set(chunk.pts)) != len(chunk.pts):
            raise UsageError(f"chunk {chunk.path} repeats timestamps; re-render it")
    for before, after in zip(chunks, chunks[1:]):
        if before.times[-1] >= after.times[0]:
            raise UsageError(f"chunks {before.path} and {after.path} overlap in time; drop one or re-plan the range")


def _video_packets(chunk: _Chunk) -> Iterator:
    """Non-empty video packets of one chunk, in file order."""
    with open_input(chunk.path) as container:
        stream = pick_video_stream(container)
        for packet in container.demux(stream):
            if packet.size:
                yield packet


def _merged_dts(chunks: list[_Chunk]) -> Iterator[int]:
    """Decoding timestamps for the merged stream, one per packet in file order.

    Each chunk's encoder started its own decode clock, and Matroska keeps no dts at all, so
    chunk dts cannot simply be concatenated: they are set again for the whole film as an
    encoder would (``decode_timestamps``). Presentation is untouched.
    """
    pts = [stamp for chunk in chunks for stamp in chunk.pts]  # chunks are in time order
    yield from decode_timestamps(pts, max(c.reorder_depth for c in chunks))


def _write_merged(chunks: list[_Chunk], temp: Path, audio_from: str | None, output_name: str | None = None,
                  final: str | None = None) -> tuple[int, int]:
    """Remux chunks (and the source's other streams, chapters and tags) into ``temp``;
    returns (frames, copied streams). With ``output_name``, warns what of the source it leaves out;
    errors name ``final`` (the output the user asked for), never the temporary file."""
    final = final or output_name or str(temp)
    output = open_output(temp, chunks[0].time_base)
    copier = None
    try:
        with open_input(chunks[0].path) as template_input:
            template = pick_video_stream(template_input)
            out_video = output.add_stream_from_template(template)
            out_video.time_base = chunks[0].time_base
            if template.sample_aspect_ratio and template.sample_aspect_ratio != 1:  # see add_video_stream
                set_container_sample_aspect_ratio(out_video, template.sample_aspect_ratio)
            if template.average_rate:  # MP4/MOV count a timecode track's frames at this rate
                out_video.codec_context.framerate = template.average_rate
        if audio_from is not None:
            copier = PacketCopier(audio_from, output, video_stream=out_video)
            if output_name is not None:
                warn_dropped(copier.plan, audio_from, output_name)
        dts = _merged_dts(chunks)
        frames = 0
        for chunk in chunks:
            for packet in _video_packets(chunk):
                packet.dts = next(dts)
                packet.stream = out_video
                output.mux(packet)
                frames += 1
                if copier is not None:
                    copier.feed_until(packet.dts * chunk.time_base)
        if copier is not None:
            copier.feed_until(None)
        output.close()
        return frames, (copier.stream_count if copier else 0)
    except (av.error.FFmpegError, OSError) as exc:
        if getattr(exc, "errno", None) in WRITE_FAILURE_ADVICE:
            raise write_failure(final, exc) from exc  # "cannot write OUT: the disk is full; ..."
        raise OutputError(f"cannot write merged output {final}: {getattr(exc, 'strerror', None) or exc}") from exc
    except ValueError as exc:  # a stream the container refuses (normally caught up front)
        raise UsageError(f"cannot write {final}: {exc}") from exc
    finally:
        if copier is not None:
            copier.close()
        try:
            output.close()
        except (av.error.FFmpegError, OSError):
            pass


def merge_chunks(chunks: Sequence[str], output: str, audio_from: str | None = None,
                 overwrite: bool = False, warn: bool = True, allow_gaps: bool = False) -> MergeReport:
    """Remux video-only chunks (and another file's audio/subtitles/data) into one file.

    Chunks are ordered by their first timestamp and must share codec, size, pixel format,
    time base, encoder parameters and stamp (source and settings, ``vidcolor.io.stamp``).
    With ``audio_from`` (the source), every source frame must be in exactly one chunk and the
    stamps must name that file; without it, chunks must not overlap, and a jump between two
    chunks far longer than their frame steps is refused as a gap unless ``allow_gaps``.

    Args:
        chunks: chunk files written by ``OutputWriter(video_only=True, frame_range=...)``.
        output: the merged file (written atomically).
        audio_from: the source whose audio, subtitle and data streams are copied, with its
            chapters, attachments, cover art and tags (``PacketCopier``).
        overwrite: replace an existing output.
        warn: check that the output container holds ``audio_from``'s streams and log one line
            naming what it leaves out (False when the caller already did, with
            ``check_output_supported`` before rendering).
        allow_gaps: without ``audio_from``, accept a hole between chunks.

    Returns:
        A MergeReport (frames, chunks, copied_streams).

    Raises:
        UsageError: mismatched chunks, gaps or overlaps, no chunks.
        InputError: unreadable chunk or source.
        OutputError: the output cannot be written.
    """
    if not chunks:
        raise UsageError("merge needs at least one chunk")
    described = sorted((_read_chunk(str(c)) for c in chunks), key=lambda c: c.times[0])
    _check_same_encoding(described)
    _check_same_stamp(described, audio_from)
    lost = 0
    if audio_from is not None:
        lost = _check_coverage(described, audio_from)
    else:
        _check_no_overlap(described)
        if not allow_gaps:
            _check_no_gap(described)
    checked = warn and audio_from is not None and _check_container(described, output, audio_from)
    inputs = [c.path for c in described] + ([audio_from] if audio_from else [])
    with atomic_output(output, overwrite=overwrite, input_paths=inputs) as temp:
        frames, copied = _write_merged(described, temp, audio_from, output if warn and not checked else None,
                                       final=output)
    return MergeReport(frames=frames, chunks=len(described), copied_streams=copied, lost=lost)
