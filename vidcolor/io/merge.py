"""Merging chunks: video-only chunks (and the source's other streams) remuxed into one film.

Nothing is decoded or re-encoded. Chunks are checked before anything is written: the same
encoding and stamp, every source frame in exactly one chunk (or, without the source, no overlap
and no gap), and an output container that holds the source's streams.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av

from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.atomic import WRITE_FAILURE_ADVICE, atomic_output, write_failure
from vidcolor.io.codecs import Codec, codec_for_stream
from vidcolor.io.decode import iter_frames
from vidcolor.io.encode import check_output_supported
from vidcolor.io.inputs import open_input, pick_video_stream
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.probe import probe
from vidcolor.io.remux import PacketCopier, open_output, warn_dropped
from vidcolor.io.stamp import parse_stamp, source_fingerprint, stamp_of
from vidcolor.io.stream_aspect import set_container_sample_aspect_ratio

log = logging.getLogger("vidcolor")


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


def _chunk_codec(chunk: _Chunk) -> Codec:
    """The codec that wrote a chunk's stream (NVENC's streams count as their software twin's).

    Raises:
        UsageError: a chunk whose video vidcolor does not write (not a chunk of ``colorize --frames``).
    """
    record = codec_for_stream(chunk.codec)
    if record is None:
        raise UsageError(f"chunk {chunk.path} holds {chunk.codec} video, which vidcolor does not write; merge takes "
                         "chunks written by colorize --frames, --resume or farm")
    return record


def _check_container(chunks: list[_Chunk], output: str, audio_from: str) -> None:
    """Refuse, before writing, an output container that cannot hold the source's streams next to
    the chunks' video: the check ``farm`` and ``colorize`` make (``check_output_supported``);
    it also logs what the output leaves out."""
    check_output_supported(output, probe(audio_from, verdict=False), _chunk_codec(chunks[0]).name, copy_streams=True)


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
    _chunk_codec(described[0])  # chunks of a codec vidcolor does not write are refused, not merged blindly
    _check_same_stamp(described, audio_from)
    lost = 0
    if audio_from is not None:
        lost = _check_coverage(described, audio_from)
    else:
        _check_no_overlap(described)
        if not allow_gaps:
            _check_no_gap(described)
    checked = warn and audio_from is not None
    if checked:
        _check_container(described, output, audio_from)
    inputs = [c.path for c in described] + ([audio_from] if audio_from else [])
    with atomic_output(output, overwrite=overwrite, input_paths=inputs) as temp:
        frames, copied = _write_merged(described, temp, audio_from, output if warn and not checked else None,
                                       final=output)
    return MergeReport(frames=frames, chunks=len(described), copied_streams=copied, lost=lost)
