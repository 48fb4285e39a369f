"""merge_chunks: lossless remux of frame-range chunks plus the source's other streams."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.media import (
    CHAPTER_TITLES,
    TIMECODE,
    cover_png,
    damage_video_packets,
    ffprobe_video_pts,
    make_clip,
    passthrough,
    read_packet_times,
    read_packets,
    read_planes,
)
from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.io.merge import decode_timestamps, merge_chunks, reorder_depth
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.probe import probe

RANGES = [(0, 3), (4, 8), (9, 11)]
# A variable-rate film whose first frame is at 1/30 s (not 0) with a 0.3 s gap after its third
# frame (frames cut out), in 1/60 s: with B-frames before the gap, merged MP4/MOV chunks used to
# start at 0.
LATE_START_WITH_GAP = [2, 4, 6, *range(24, 44, 2)]


def _chunks(tmp_path, source, ext: str, codec: str, ranges=RANGES, crf=None):
    paths = []
    for start, end in ranges:
        path = tmp_path / f"chunk_{start:04d}_{end:04d}.{ext}"
        extra = {"crf": crf} if crf is not None else {}
        passthrough(source, path, codec=codec, frame_range=(start, end), video_only=True, **extra)
        paths.append(str(path))
    return paths


@pytest.fixture
def ffv1_source(tmp_path):
    return make_clip(tmp_path / "film.mkv", frames=12, lossless=True, audio="aac", subtitle=True, vfr=True)


def test_merged_ffv1_chunks_keep_the_pixel_aspect_ratio(tmp_path):
    source = make_clip(tmp_path / "dv.mkv", frames=12, sample_aspect_ratio=Fraction(32, 27))
    merged = tmp_path / "merged.mkv"
    merge_chunks(_chunks(tmp_path, source.path, "mkv", "ffv1"), str(merged), audio_from=str(source.path))
    assert probe(merged, verdict=False).video.sample_aspect_ratio == Fraction(32, 27)


def test_merged_ffv1_chunks_equal_the_single_file(tmp_path, ffv1_source):
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1")
    assert probe(chunks[1], verdict=False).others == ()  # chunks are video only
    single = tmp_path / "single.mkv"
    passthrough(ffv1_source.path, single, codec="ffv1")
    merged = tmp_path / "merged.mkv"
    report = merge_chunks(list(reversed(chunks)), str(merged), audio_from=str(ffv1_source.path))
    assert (report.frames, report.chunks, report.copied_streams) == (12, 3, 2)
    assert scan_timestamps(merged) == scan_timestamps(single) == ffv1_source.pts
    for (pts_m, y_m, cb_m, cr_m), (pts_s, y_s, cb_s, cr_s) in zip(read_planes(merged), read_planes(single)):
        assert pts_m == pts_s
        np.testing.assert_array_equal(y_m, y_s)
        np.testing.assert_array_equal(cb_m, cb_s)
        np.testing.assert_array_equal(cr_m, cr_s)
    assert read_packets(merged, "audio") == ffv1_source.audio_packets
    assert read_packet_times(merged, "audio") == read_packet_times(ffv1_source.path, "audio")
    assert read_packet_times(merged, "subtitle") == read_packet_times(ffv1_source.path, "subtitle")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.parametrize("ext, codec, source_kwargs", [
    ("mp4", "x264", {"audio": "aac", "vfr": True}),
    ("mkv", "x264", {"audio": "aac", "vfr": True}),  # B-frames, and Matroska keeps no dts
    ("mov", "prores", {"codec": "prores_ks", "pix_fmt": "yuv422p10le", "audio": "pcm_s16le"}),
    # NTSC rates: a chunk that starts mid-film starts at an instant no whole millisecond is,
    # which MP4's edit list must hold exactly (it counts in the movie timescale).
    ("mp4", "x264", {"audio": "aac", "rate": Fraction(24000, 1001)}),
    ("mov", "x264", {"audio": "aac", "rate": Fraction(30000, 1001)}),
])
def test_merge_of_lossy_chunks_keeps_pictures_pts_and_audio(tmp_path, ext, codec, source_kwargs):
    source = make_clip(tmp_path / f"film.{ext}", frames=12, **source_kwargs)
    chunks = _chunks(tmp_path, source.path, ext, codec)
    merged = tmp_path / f"merged.{ext}"
    report = merge_chunks(chunks, str(merged), audio_from=str(source.path))
    assert report.frames == 12
    assert probe(merged, verdict=False).video.time_base == source.time_base
    assert scan_timestamps(merged) == source.pts
    pictures = [y for chunk in chunks for _, y, _, _ in read_planes(chunk)]
    merged_pictures = [y for _, y, _, _ in read_planes(merged)]
    assert len(merged_pictures) == 12
    for a, b in zip(pictures, merged_pictures):
        np.testing.assert_array_equal(a, b)  # packets copied, not re-encoded
    assert read_packets(merged, "audio") == source.audio_packets


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_merge_keeps_a_late_start_with_b_frames_before_a_gap(tmp_path, fixed_b_frames, ext):
    """The merged film starts when the source does (1/30 s), by vidcolor's reading, PyAV's
    decoding and ffprobe: merged dts used to be one time span before each pts, which after the
    gap gave B-frames negative dts and an edit list that began before the first frame (the
    video came out one frame early against the audio; ffprobe: "Missing key frame")."""
    source = make_clip(tmp_path / f"film.{ext}", vfr=True, rate=Fraction(30), audio="aac", pts=LATE_START_WITH_GAP)
    assert source.pts[0] > 0
    chunks = _chunks(tmp_path, source.path, ext, "x264", ranges=[(0, 6), (7, 12)])
    merged = tmp_path / f"merged.{ext}"
    merge_chunks(chunks, str(merged), audio_from=str(source.path))
    assert scan_timestamps(merged) == source.pts
    assert [p[0] for p in read_planes(merged)] == source.pts
    if (probed := ffprobe_video_pts(merged)) is not None:
        assert probed == (source.pts, source.time_base)
    assert read_packet_times(merged, "audio") == read_packet_times(source.path, "audio")


@pytest.mark.parametrize("decode_order", [
    [2, 24, 4, 6, 30, 26, 28],  # a P-frame after a gap decoded before the B-frames before it
    [0, 3, 1, 2, 6, 4, 5],      # I P B B from 0
    [5, 9, 7, 6, 8],            # B-pyramid, starting after 0
    [1, 5, 3, 2, 4],            # starting after 0 but too early for the lead dts to stay >= 0
    [0, 1, 2, 3],               # intra-only
])
def test_decode_timestamps_are_valid_and_start_with_the_first_frame(decode_order):
    """dts increase, never pass their pts, and no packet with a negative dts has a smaller
    pts - dts than the first (FFmpeg's MP4 muxer starts the edit list at the smallest)."""
    dts = decode_timestamps(sorted(decode_order), reorder_depth(decode_order))
    assert all(a < b for a, b in zip(dts, dts[1:]))
    assert all(d <= p for d, p in zip(dts, decode_order))
    first = decode_order[0] - dts[0]
    assert all(p - d >= first for p, d in zip(decode_order, dts) if d < 0)
    if decode_order[0] >= reorder_depth(decode_order):
        assert min(dts) >= 0  # a film starting after 0 gets no negative dts where it has room


def test_merge_without_source_checks_only_overlap(tmp_path, ffv1_source):
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1")
    merged = tmp_path / "video_only.mkv"
    report = merge_chunks(chunks, str(merged))
    assert (report.frames, report.copied_streams) == (12, 0)
    assert probe(merged, verdict=False).others == ()
    with pytest.raises(UsageError, match="overlap"):
        merge_chunks([chunks[0], chunks[1], chunks[1]], str(tmp_path / "dup.mkv"))


def test_gap_is_refused_with_the_missing_frames(tmp_path, ffv1_source):
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1")
    with pytest.raises(UsageError, match=r"gap: frames 4-8 "):
        merge_chunks([chunks[0], chunks[2]], str(tmp_path / "m.mkv"), audio_from=str(ffv1_source.path))
    assert not (tmp_path / "m.mkv").exists()


def test_frames_the_source_cannot_decode_are_no_gap(tmp_path, caplog):
    """Chunks of a damaged reel lack the frames no decoder can produce: the merge accepts
    that (and says so), while a frame that does decode but is in no chunk is still a gap."""
    source = make_clip(tmp_path / "reel.mkv", frames=12, lossless=True, audio="aac")
    damage_video_packets(source.path, [5, 6])
    chunks = _chunks(tmp_path, source.path, "mkv", "ffv1")
    assert sum(len(read_planes(c)) for c in chunks) == 10
    with caplog.at_level("WARNING", logger="vidcolor"):
        report = merge_chunks(chunks, str(tmp_path / "m.mkv"), audio_from=str(source.path))
    assert (report.frames, report.lost) == (10, 2)
    assert "frames 5-6 cannot be decoded" in caplog.text
    assert scan_timestamps(tmp_path / "m.mkv") == [p for i, p in enumerate(source.pts) if i not in (5, 6)]
    assert read_packets(tmp_path / "m.mkv", "audio") == source.audio_packets
    with pytest.raises(UsageError, match=r"gap: frames 9-11 "):  # 5-6 are the source's loss, not a gap
        merge_chunks(chunks[:2], str(tmp_path / "short.mkv"), audio_from=str(source.path))


def test_overlap_is_refused_with_the_doubled_frames(tmp_path, ffv1_source):
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1", ranges=[(0, 5), (4, 11)])
    with pytest.raises(UsageError, match=r"overlap: frames 4-5 "):
        merge_chunks(chunks, str(tmp_path / "m.mkv"), audio_from=str(ffv1_source.path))


def test_mismatched_chunk_is_named(tmp_path, ffv1_source):
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1", ranges=[(0, 5)])
    odd = tmp_path / "odd.mkv"
    passthrough(ffv1_source.path, odd, codec="x264", frame_range=(6, 11), video_only=True)
    with pytest.raises(UsageError, match="odd.mkv") as excinfo:
        merge_chunks(chunks + [str(odd)], str(tmp_path / "m.mkv"), audio_from=str(ffv1_source.path))
    assert "codec" in str(excinfo.value)


def test_chunks_with_other_encoder_settings_are_refused(tmp_path):
    source = make_clip(tmp_path / "film.mkv", frames=8)
    first = _chunks(tmp_path, source.path, "mkv", "x264", ranges=[(0, 3)], crf=16)
    second = _chunks(tmp_path, source.path, "mkv", "x264", ranges=[(4, 7)], crf=30)
    with pytest.raises(UsageError, match="encoder parameters|does not match"):
        merge_chunks(first + second, str(tmp_path / "m.mkv"), audio_from=str(source.path))


def test_chunk_from_another_source_is_refused(tmp_path, ffv1_source):
    other = make_clip(tmp_path / "other.mkv", frames=12, lossless=True)  # constant rate: other pts
    chunks = _chunks(tmp_path, other.path, "mkv", "ffv1")
    with pytest.raises(UsageError, match="does not have"):
        merge_chunks(chunks, str(tmp_path / "m.mkv"), audio_from=str(ffv1_source.path))


def test_merge_errors(tmp_path, ffv1_source):
    with pytest.raises(UsageError, match="at least one chunk"):
        merge_chunks([], str(tmp_path / "m.mkv"))
    with pytest.raises(InputError):
        merge_chunks([str(tmp_path / "missing.mkv")], str(tmp_path / "m.mkv"))
    chunks = _chunks(tmp_path, ffv1_source.path, "mkv", "ffv1")
    (tmp_path / "exists.mkv").write_bytes(b"x")
    with pytest.raises(OutputError, match="--overwrite"):
        merge_chunks(chunks, str(tmp_path / "exists.mkv"), audio_from=str(ffv1_source.path))
    with pytest.raises(OutputError, match="same file"):
        merge_chunks(chunks, chunks[0], overwrite=True)


def test_merge_keeps_the_sources_tags_chapters_attachments_and_timecode(tmp_path):
    import av

    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True, audio="aac", subtitle=True, tags=True,
                       chapters=True, attachments=True, timecode=True)
    merged = tmp_path / "merged.mkv"
    merge_chunks(_chunks(tmp_path, source.path, "mkv", "ffv1"), str(merged), audio_from=str(source.path))
    with av.open(str(merged)) as container:
        by_type = {s.type + ("/cover" if s.disposition & av.stream.Disposition.attached_pic else ""): s
                   for s in container.streams}
        assert by_type["audio"].metadata["language"] == "eng"
        assert by_type["subtitle"].metadata["language"] == "fre"
        assert by_type["subtitle"].disposition & av.stream.Disposition.forced
        assert by_type["attachment"].metadata["filename"] == "font.ttf"
        assert by_type["video/cover"].metadata["filename"] == "cover.png"
        assert {k.lower(): v for k, v in container.streams.video[0].metadata.items()}["timecode"] == TIMECODE
        assert [c["metadata"]["title"] for c in container.chapters()] == list(CHAPTER_TITLES)
        assert container.metadata["title"] == "Test film"
    assert read_packets(merged, "audio") == source.audio_packets


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_merge_of_a_source_with_a_timecode_track(tmp_path, ext):
    import av

    # MP4 as the source: it holds the cover art, a timecode track and a chapter track.
    source = make_clip(tmp_path / "film.mp4", frames=12, audio="aac", timecode=True, chapters=True, attachments=True)
    merged = tmp_path / f"merged.{ext}"
    merge_chunks(_chunks(tmp_path, source.path, ext, "x264"), str(merged), audio_from=str(source.path))
    with av.open(str(merged)) as container:
        assert container.streams.video[0].metadata["timecode"] == TIMECODE
        assert [c["metadata"]["title"] for c in container.chapters()] == list(CHAPTER_TITLES)
        covers = [s for s in container.streams if s.disposition & av.stream.Disposition.attached_pic]
        if ext == "mp4":  # MOV keeps no cover art (a warning says so)
            assert [bytes(p) for p in container.demux(covers[0]) if p.size][:1] == [cover_png()]
    assert read_packets(merged, "audio") == source.audio_packets


def test_merge_names_what_it_leaves_out(tmp_path, caplog):
    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True, second_video=True)
    merge_chunks(_chunks(tmp_path, source.path, "mkv", "ffv1"), str(tmp_path / "m.mkv"), audio_from=str(source.path))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "one video stream" in warnings[0]


# ----- stamps, gaps without the source, containers, full disks --------------------------------


def _stamped(tmp_path, source, ranges, stamp, name="chunk"):
    paths = []
    for start, end in ranges:
        path = tmp_path / f"{name}_{start:04d}_{end:04d}.mkv"
        passthrough(source, path, codec="ffv1", frame_range=(start, end), video_only=True, tags={"comment": stamp})
        paths.append(str(path))
    return paths


def test_merge_refuses_chunks_stamped_with_another_source_or_other_settings(tmp_path):
    """Chunks record their source and settings (a stamp in their tags): a chunk of another film
    of the same size and rate, or rendered with other options, used to merge silently."""
    from vidcolor.io.stamp import make_stamp, source_fingerprint

    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True, audio="aac")
    other = make_clip(tmp_path / "other.mkv", frames=12, lossless=True, audio="aac", content="grey")
    ours = make_stamp(source_fingerprint(source.path), "a" * 16)
    good = _stamped(tmp_path, source.path, RANGES, ours)
    report = merge_chunks(good, str(tmp_path / "ok.mkv"), audio_from=str(source.path))
    assert report.frames == 12
    with av_open(tmp_path / "ok.mkv") as merged:  # the film takes the source's tags, not the stamp
        assert "vidcolor chunk" not in str(dict(merged.metadata))
    settings = _stamped(tmp_path, source.path, [(4, 8)], make_stamp(source_fingerprint(source.path), "b" * 16), "s")
    with pytest.raises(UsageError, match=r"s_0004_0008.mkv was rendered with other settings than .*chunk_0000_0003"):
        merge_chunks([good[0], *settings, good[2]], str(tmp_path / "m.mkv"))
    film = _stamped(tmp_path, source.path, [(4, 8)], make_stamp(source_fingerprint(other.path), "a" * 16), "f")
    with pytest.raises(UsageError, match=r"f_0004_0008.mkv was rendered from another source"):
        merge_chunks([good[0], *film, good[2]], str(tmp_path / "m.mkv"), audio_from=str(source.path))
    (tmp_path / "bare").mkdir()
    bare = _chunks(tmp_path / "bare", source.path, "mkv", "ffv1", ranges=[(4, 8)])
    with pytest.raises(UsageError, match=r"carries no record of its source and settings"):
        merge_chunks([good[0], *bare, good[2]], str(tmp_path / "m.mkv"))
    assert not (tmp_path / "m.mkv").exists()


def test_merge_takes_audio_from_a_remux_or_a_new_audio_track_with_a_warning(tmp_path, caplog):
    """The film with a restored audio track (other bytes, the same frames) is what a restorer
    merges with; it used to be refused as "another file". A film of other length still is."""
    from vidcolor.io.stamp import make_stamp, source_fingerprint

    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True, audio="aac")
    good = _stamped(tmp_path, source.path, RANGES, make_stamp(source_fingerprint(source.path), "a" * 16))
    new_audio = make_clip(tmp_path / "restored.mkv", frames=12, lossless=True, audio="aac", seed=5)
    report = merge_chunks(good, str(tmp_path / "m.mkv"), audio_from=str(new_audio.path))
    assert report.frames == 12 and "not byte for byte the file" in caplog.text
    assert read_packets(tmp_path / "m.mkv", "audio") == new_audio.audio_packets
    longer = make_clip(tmp_path / "longer.mkv", frames=20, lossless=True, audio="aac")
    with pytest.raises(UsageError):
        merge_chunks(good, str(tmp_path / "n.mkv"), audio_from=str(longer.path))
    assert not (tmp_path / "n.mkv").exists()


def av_open(path):
    import av

    return av.open(str(path))


def test_merge_without_source_refuses_a_gap_between_chunks(tmp_path):
    """A missing middle chunk shows in the chunks' own timestamps; merging without --audio-from
    used to write an 8 s freeze with no word. --allow-gaps accepts a real pause."""
    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True)
    chunks = _chunks(tmp_path, source.path, "mkv", "ffv1")
    with pytest.raises(UsageError, match=r"gap: nothing between .*chunk_0000_0003.mkv \(ends at 0.120 s\) and "
                                         r".*chunk_0009_0011.mkv \(starts at 0.360 s\), about 5 frames"):
        merge_chunks([chunks[2], chunks[0]], str(tmp_path / "m.mkv"))
    assert not (tmp_path / "m.mkv").exists()
    report = merge_chunks([chunks[0], chunks[2]], str(tmp_path / "m.mkv"), allow_gaps=True)
    assert report.frames == 7
    assert merge_chunks(chunks, str(tmp_path / "all.mkv")).frames == 12  # no gap: no complaint


def test_merge_refuses_up_front_a_container_that_cannot_hold_the_sources_subtitles(tmp_path):
    """merge --audio-from SRC_WITH_SRT -o x.mp4 crashed with an internal error (exit 1); it now
    refuses before writing, in the words farm and colorize use."""
    source = make_clip(tmp_path / "film.mkv", frames=12, audio="aac", subtitle=True)
    chunks = _chunks(tmp_path, source.path, "mkv", "x264")
    with pytest.raises(UsageError, match=r"\.mp4 cannot hold stream #2 \(subtitle subrip\) of .*film.mkv.*use .mkv"):
        merge_chunks(chunks, str(tmp_path / "m.mp4"), audio_from=str(source.path))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".m.", "m."))] == []


def test_merge_on_a_full_disk_names_the_output_not_its_temporary_file(tmp_path, monkeypatch):
    import errno

    import av

    import vidcolor.io.merge as merge

    source = make_clip(tmp_path / "film.mkv", frames=12, lossless=True)
    chunks = _chunks(tmp_path, source.path, "mkv", "ffv1")

    def full(chunk):  # what PyAV raises when the muxer meets a full disk
        raise av.error.OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "m.mkv"))
        yield  # a generator, like the real one

    monkeypatch.setattr(merge, "_video_packets", full)
    with pytest.raises(OutputError) as excinfo:
        merge_chunks(chunks, str(tmp_path / "m.mkv"))
    assert str(excinfo.value) == f"cannot write {tmp_path / 'm.mkv'}: the disk is full; free some space or write to another disk"
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_chunks_of_a_codec_vidcolor_does_not_write_are_refused(tmp_path):
    """A chunk vidcolor could not have written (MPEG-4 Part 2 here) is refused in one line
    before anything is written, with or without the source, instead of merging unchecked."""
    source = make_clip(tmp_path / "film.mkv", frames=8, lossless=True, audio="aac")
    chunk = make_clip(tmp_path / "chunk_0000_0007.mkv", frames=8, codec="mpeg4")
    for audio_from in (None, str(source.path)):
        with pytest.raises(UsageError, match=r"holds mpeg4 video, which vidcolor does not write"):
            merge_chunks([str(chunk.path)], str(tmp_path / "m.mkv"), audio_from=audio_from)
    assert not (tmp_path / "m.mkv").exists()
