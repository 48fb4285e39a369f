"""colorize --resume: an interrupted long run continues from its last finished segment."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from tests.media import damage_video_packets, ffprobe_duration, ffprobe_video_pts, make_clip, read_packets, read_planes
from tests.test_pipeline import assert_grey_levels_kept_and_coloured, tiny_generator
from tests.test_reference import scene
from vidcolor.config import ColorizeConfig
from vidcolor.errors import UsageError
from vidcolor.io.probe import probe
from vidcolor.pipeline.resumable import segment_layout
from vidcolor.pipeline.run import colorize


def cfg(src, out, **kw) -> ColorizeConfig:
    base = dict(input=str(src), output=str(out), render_size=32, codec="ffv1", quiet=True, force=True, smooth=0.8,
                resume=True, segment_frames=10)
    base.update(kw)
    return ColorizeConfig(**base)


def interrupt_segment(monkeypatch, number: int) -> dict:
    """Make the given segment's render (1-based) raise KeyboardInterrupt, like Ctrl-C mid-run.

    Returns:
        The call counter (``{"n": renders started}``); set it negative to count later renders.
    """
    import vidcolor.pipeline.run as run_module

    real = run_module.run_video
    calls = {"n": 0}

    def interrupted(c, m=None, info=None):
        calls["n"] += 1
        if calls["n"] == number:
            raise KeyboardInterrupt
        return real(c, m, info)

    monkeypatch.setattr(run_module, "run_video", interrupted)
    return calls


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "film.mkv", frames=36, lossless=True, audio="aac", content="moving")
    model = tiny_generator()
    whole = tmp_path / "whole.mkv"
    colorize(cfg(clip.path, whole), model)

    out = tmp_path / "out.mkv"
    calls = interrupt_segment(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out), model)
    layout = segment_layout(cfg(clip.path, out))
    done = sorted(p.name for p in layout.folder.glob("film.*.mkv"))
    assert done == ["film.000000-000009.mkv", "film.000010-000019.mkv"]
    assert not out.exists()

    calls["n"] = -100  # no more crashes; count what the rerun renders
    colorize(cfg(clip.path, out), model)
    assert calls["n"] == -100 + 2  # only the two unfinished segments were rendered again
    assert not layout.folder.exists()  # segments removed after the merge

    a, b = read_planes(whole), read_planes(out)
    assert [p[0] for p in b] == [p[0] for p in read_planes(clip.path)]
    for (pa, ya, cba, cra), (pb, yb, cbb, crb) in zip(a, b):
        assert pa == pb and np.array_equal(ya, yb) and np.array_equal(cba, cbb) and np.array_equal(cra, crb)
    assert read_packets(out, "audio") == read_packets(clip.path, "audio")


def test_rgb_film_resumes_and_renders_chunks_as_tagged_ycbcr(tmp_path):
    """Segments and --frames chunks of an RGB film are YCbCr tagged with decode's matrix (as a
    whole run is), so the merged film shows the source's grey levels, coloured."""
    clip = make_clip(tmp_path / "film.mkv", frames=12, pix_fmt="bgr0", lossless=True, content="grey",
                     color_meta={"colorspace": "gbr"})
    model = tiny_generator()
    out = tmp_path / "out.mp4"
    colorize(cfg(clip.path, out, codec="x264", crf=4, segment_frames=5), model)
    chunk = tmp_path / "chunk.mp4"
    colorize(cfg(clip.path, chunk, codec="x264", crf=4, resume=False, frames="3-7"), model)
    for path, frames in ((out, slice(None)), (chunk, slice(3, 8))):
        assert probe(path, verdict=False).video.colorspace == "smpte170m"
        assert_grey_levels_kept_and_coloured(clip.path, path, frames)


@pytest.mark.parametrize("ext, rate", [("mp4", Fraction(24000, 1001)), ("mov", Fraction(30000, 1001))])
def test_resumed_mp4_at_ntsc_rate_keeps_every_timestamp(tmp_path, ext, rate):
    """Segments of an H.264 film at an NTSC rate begin between milliseconds; they merge into a
    film with the source's exact timestamps and audio."""
    from vidcolor.io.packet_scan import scan_timestamps

    clip = make_clip(tmp_path / f"film.{ext}", frames=24, rate=rate, audio="aac", content="moving")
    out = tmp_path / f"out.{ext}"
    report = colorize(cfg(clip.path, out, codec="x264", segment_frames=7), tiny_generator())
    assert report.frames == 24
    assert scan_timestamps(out) == clip.pts
    assert read_packets(out, "audio") == read_packets(clip.path, "audio")


@pytest.mark.parametrize("resume", [False, True])
def test_variable_rate_film_keeps_its_length(tmp_path, resume):
    """The last frame of a variable-rate film keeps its own duration, so the film ends when the
    source does (it lasted one average frame period), whole or merged from segments."""
    from vidcolor.io.packet_scan import scan_timestamps

    clip = make_clip(tmp_path / "film.mp4", frames=20, vfr=True, audio="aac", content="moving")
    out = tmp_path / "out.mp4"
    colorize(cfg(clip.path, out, codec="x264", segment_frames=6, resume=resume), tiny_generator())
    assert scan_timestamps(out) == clip.pts
    if (length := ffprobe_duration(out)) is not None:
        assert length == ffprobe_duration(clip.path)


def test_resumed_mp4_starting_after_zero_keeps_its_start(tmp_path, fixed_b_frames):
    """A variable-rate film whose first frame is at 1/30 s, with a gap after B-frames: the
    resumed MP4 has the plain run's timestamps (it used to start at 0, one frame early against
    the audio), by PyAV's decoding and by ffprobe."""
    from tests.test_io_merge import LATE_START_WITH_GAP
    from vidcolor.io.packet_scan import scan_timestamps

    clip = make_clip(tmp_path / "film.mp4", vfr=True, rate=Fraction(30), audio="aac", pts=LATE_START_WITH_GAP)
    model = tiny_generator()
    plain, resumed = tmp_path / "plain.mp4", tmp_path / "resumed.mp4"
    colorize(cfg(clip.path, plain, codec="x264", resume=False), model)
    colorize(cfg(clip.path, resumed, codec="x264", segment_frames=7), model)
    assert scan_timestamps(plain) == scan_timestamps(resumed) == clip.pts
    assert [p[0] for p in read_planes(resumed)] == [p[0] for p in read_planes(plain)] == clip.pts
    if (probed := ffprobe_video_pts(resumed)) is not None:
        assert probed == ffprobe_video_pts(plain)


def test_damaged_film_resumes_and_merges_like_a_single_run(tmp_path, monkeypatch, caplog):
    """Two frames of the reel cannot be decoded: the resumed film leaves them out exactly as
    a single run does, instead of refusing the merge with a gap no re-render could fill. The
    report counts the loss, and the frames rendered by this run apart from those kept."""
    clip = make_clip(tmp_path / "reel.mkv", frames=30, lossless=True, audio="aac", content="moving")
    damage_video_packets(clip.path, [12, 13])
    model = tiny_generator()
    single = colorize(cfg(clip.path, tmp_path / "single.mkv", resume=False), model)
    assert (single.frames, single.dropped, single.rendered) == (28, 2, None)

    out = tmp_path / "out.mkv"
    calls = interrupt_segment(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out), model)
    calls["n"] = -100
    with caplog.at_level("WARNING", logger="vidcolor"):
        report = colorize(cfg(clip.path, out), model)
    assert (report.frames, report.dropped, report.rendered) == (28, 2, 18)  # segment 0-9 was kept
    assert report.fps == pytest.approx(18 / report.seconds)
    assert "frames 12-13 cannot be decoded" in caplog.text
    a, b = read_planes(tmp_path / "single.mkv"), read_planes(out)
    assert [p[0] for p in a] == [p[0] for p in b] == [p for i, p in enumerate(clip.pts) if i not in (12, 13)]
    for (_, ya, cba, cra), (_, yb, cbb, crb) in zip(a, b):
        assert np.array_equal(ya, yb) and np.array_equal(cba, cbb) and np.array_equal(cra, crb)
    assert read_packets(out, "audio") == read_packets(clip.path, "audio")


def test_chunk_with_damage_only_in_its_warm_up_reports_no_loss(tmp_path, caplog):
    """Damaged frames before a chunk's range are decoded only to prime the smoother: the
    chunk loses nothing and says nothing."""
    clip = make_clip(tmp_path / "reel.mkv", frames=20, lossless=True, content="moving")
    damage_video_packets(clip.path, [3])
    with caplog.at_level("WARNING", logger="vidcolor"):
        report = colorize(cfg(clip.path, tmp_path / "chunk.mkv", resume=False, frames="10-19"), tiny_generator())
    assert (report.frames, report.dropped) == (10, 0)
    assert "could not be decoded" not in caplog.text


def test_cli_says_how_many_frames_a_resumed_run_rendered(tmp_path, monkeypatch, caplog):
    """The summary line of a resumed run counts its speed over the frames it rendered, not
    over the film (a rerun that renders one segment of a long film is not thousands of fps)."""
    from click.testing import CliRunner

    from vidcolor.cli import main
    from vidcolor.models.weights import save_generator

    save_generator(tiny_generator(), tmp_path / "tiny")
    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    args = ["colorize", str(clip.path), "-o", str(tmp_path / "out.mkv"), "--model", str(tmp_path / "tiny.json"),
            "--render-size", "32", "--codec", "ffv1", "--force", "--resume", "--segment-frames", "10", "--quiet"]
    interrupt_segment(monkeypatch, 3)
    with caplog.at_level("WARNING", logger="vidcolor"):
        stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130
    assert stopped.stderr.strip() == "vidcolor: error: interrupted; nothing half-written was kept"
    assert (f"2 of 3 segments are finished in {tmp_path / '.out.segments'}; run the same command again to continue"
            in caplog.text)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "25 frames (5 rendered now, the rest kept from before) in" in result.stdout


def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    out = tmp_path / "out.mkv"
    interrupt_segment(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out), tiny_generator())
    with pytest.raises(UsageError, match="render_size"):
        colorize(cfg(clip.path, out, render_size=64), tiny_generator())
    with pytest.raises(UsageError, match="--frames"):
        colorize(cfg(clip.path, out, frames="0-5"), tiny_generator())


def test_resumed_run_with_a_reference_past_a_segment_matches_a_single_run(tmp_path, monkeypatch):
    """A reference after a segment's end colours that segment as it colours a run without
    segments (it was ignored: segment 0-9 lost the reference at frame 14 and the colours jumped
    at frame 10), and an interrupted, resumed run gives the same film."""
    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    y = clip.planes[14][0].astype(np.int32)
    ref = tmp_path / "ref.png"  # frame 14 painted warm: it aligns well, so it reaches far
    cv2.imwrite(str(ref), np.clip(np.stack((y - 40, y, y + 40), axis=-1), 0, 255).astype(np.uint8))  # BGR
    refs = (f"{ref}@14",)
    model = tiny_generator()
    single = tmp_path / "single.mkv"
    colorize(cfg(clip.path, single, resume=False, references=refs), model)
    out = tmp_path / "out.mkv"
    calls = interrupt_segment(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out, references=refs), model)
    calls["n"] = -100
    colorize(cfg(clip.path, out, references=refs), model)
    assert calls["n"] == -100 + 2
    got, want = read_planes(out), read_planes(single)
    assert len(got) == len(want) == 25
    for (_, y, cb, cr), (_, y1, cb1, cr1) in zip(got, want):
        assert np.array_equal(y, y1)
        for a, b in ((cb, cb1), (cr, cr1)):
            assert int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) <= 1


def test_resume_notices_a_reference_image_painted_again(tmp_path, monkeypatch):
    """The segment folder records each reference by file name, frame and content: a reference
    painted again under the same name is another setting (it used to be mixed in silently), and
    the same image spelled as another path is the same setting."""
    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    monkeypatch.chdir(tmp_path)
    first, second = scene(7)[..., ::-1], scene(8)[..., ::-1]
    out = tmp_path / "out.mkv"
    model = tiny_generator()
    calls = interrupt_segment(monkeypatch, 1)
    cv2.imwrite("ref.png", first)
    with pytest.raises(KeyboardInterrupt):  # stopped in the first segment: nothing finished
        colorize(cfg(clip.path, out, references=("ref.png@12",)), model)
    cv2.imwrite("ref.png", second)  # painted again: the new image takes the empty folder over
    calls["n"] = -1
    with pytest.raises(KeyboardInterrupt):  # stopped in the second segment: the first is finished
        colorize(cfg(clip.path, out, references=("ref.png@12",)), model)
    cv2.imwrite("ref.png", first)
    with pytest.raises(UsageError, match=r"\(references: \['ref.png@12 sha256:[0-9a-f]{64}'\] then, "
                                         r"\['ref.png@12 sha256:[0-9a-f]{64}'\] now\); delete that folder"):
        colorize(cfg(clip.path, out, references=("ref.png@12",)), model)
    cv2.imwrite("ref.png", second)
    calls["n"] = -100
    colorize(cfg(clip.path, out, references=("./ref.png@12",)), model)
    assert calls["n"] == -100 + 2  # resumed: only the two unfinished segments rendered


def test_a_bad_option_leaves_no_segment_folder_and_blocks_nothing(tmp_path, monkeypatch):
    """A typo is refused before the segment folder exists (it used to be refused inside the
    first segment, leaving a folder whose manifest then refused the corrected command), and a
    first run stopped before any segment was finished does not hold its settings either."""
    from vidcolor.errors import InputError

    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    out = tmp_path / "out.mkv"
    layout = segment_layout(cfg(clip.path, out))
    for bad, error, message in (({"style": "vangogh"}, UsageError, "unknown style 'vangogh'"),
                                ({"render_size": 33}, UsageError, "--render-size"),
                                ({"batch_size": "0"}, UsageError, "--batch-size"),
                                ({"references": ("missing.png",)}, InputError, "reference missing.png")):
        with pytest.raises(error, match=message):
            colorize(cfg(clip.path, out, **bad), tiny_generator())
        assert not layout.folder.exists() and not out.exists()

    interrupt_segment(monkeypatch, 1)  # Ctrl-C during the first segment
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out, smooth=0.5), tiny_generator())
    assert layout.folder.is_dir() and not layout.chunk_files()
    colorize(cfg(clip.path, out), tiny_generator())  # other settings: nothing finished to mix with
    assert out.is_file() and not layout.folder.exists()

    interrupt_segment(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, tmp_path / "two.mkv", smooth=0.5), tiny_generator())
    with pytest.raises(UsageError, match=r"smooth: 0.5 then, 0.8 now\); delete that folder to start over, or write to another output$"):
        colorize(cfg(clip.path, tmp_path / "two.mkv"), tiny_generator())


def test_output_that_cannot_hold_the_sources_streams_is_refused_before_any_segment(tmp_path):
    clip = make_clip(tmp_path / "film.mkv", frames=12, subtitle=True)  # SubRip: MP4 cannot hold it
    out = tmp_path / "out.mp4"
    with pytest.raises(UsageError, match="subrip"):
        colorize(cfg(clip.path, out, codec="x264"), tiny_generator())
    assert not segment_layout(cfg(clip.path, out)).folder.exists()


def test_resumed_mov_keeps_its_timecode_and_chapters(tmp_path):
    import av

    from tests.media import CHAPTER_TITLES, TIMECODE

    clip = make_clip(tmp_path / "film.mov", frames=12, audio="aac", timecode=True, chapters=True)
    out = tmp_path / "out.mp4"
    colorize(cfg(clip.path, out, codec="x264", segment_frames=5), tiny_generator())
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata["timecode"] == TIMECODE
        assert [c["metadata"]["title"] for c in container.chapters()] == list(CHAPTER_TITLES)
    assert read_packets(out, "audio") == clip.audio_packets


def test_segments_vouch_for_themselves_and_a_renamed_source_is_refused(tmp_path, monkeypatch):
    """Segments carry a stamp: with the folder's manifest lost they were refused for good
    ("no farm.json saying what made them"); and a source renamed between runs took the folder
    over, orphaning the first job's segments and overwriting its manifest."""
    from vidcolor.pipeline.segments import MANIFEST_NAME
    from vidcolor.models.weights import save_generator

    save_generator(tiny_generator(), tmp_path / "model")
    clip = make_clip(tmp_path / "film.mkv", frames=25, lossless=True, content="grey")
    out = tmp_path / "out.mkv"
    settings = dict(model=str(tmp_path / "model"))
    calls = interrupt_segment(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        colorize(cfg(clip.path, out, **settings))
    layout = segment_layout(cfg(clip.path, out, **settings))
    (layout.folder / MANIFEST_NAME).unlink()
    renamed = clip.path.rename(tmp_path / "film_v2.mkv")
    with pytest.raises(UsageError, match=r"another source or container \(film.000000-000009.mkv; renamed since\?\)"):
        colorize(cfg(renamed, out, **settings))
    renamed.rename(clip.path)
    calls["n"] = -100
    colorize(cfg(clip.path, out, **settings))  # the finished segment's stamp vouches for it
    assert calls["n"] == -100 + 2 and len(read_planes(out)) == 25
