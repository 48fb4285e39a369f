"""Render farm: chunk planning and naming, finished chunks, `merge` and `farm` commands, Ray runs.

Everything that does not need Ray runs without it; the Ray tests share one small local
cluster started once per pytest session and are skipped when Ray is not installed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.media import make_clip, read_packets, read_planes
from vidcolor.errors import InputError, OutputError, UsageError
from vidcolor.config import ColorizeConfig, FarmOptions
from vidcolor.farm.chunks import remove_chunks
from vidcolor.commands.farm import farm_command, merge_command
from vidcolor.farm.ray_executor import (FAIL_CHUNK_ENV, FAIL_MODE_ENV, FAIL_ONCE_ENV, ChunkJob, FailHook,
                                        InjectedFailure, import_ray, render_chunk, run_farm)
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator, save_generator
from vidcolor.pipeline.manifest import check_manifest
from vidcolor.pipeline.run import colorize_video
from vidcolor.pipeline.segments import ChunkLayout, chunk_name, format_range, parse_chunk_name, plan_chunks

try:
    import ray
except ImportError:  # pragma: no cover - the dev extra installs it
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install vidcolor[farm])")

FRAMES = 30
CHUNK = 10
PLAN = [(0, 9), (10, 19), (20, 29)]
# smooth=0.5 needs 9 warm-up frames: chunks 10-19 and 20-29 start from a cold smoother state
# 9 frames early, so they only match the single run if the warm-up does its job. The clip has a
# scene cut at frame 15, inside chunk 10-19 and inside the warm-up of chunk 20-29.
RENDER = {"codec": "ffv1", "render_size": 32, "smooth": 0.5, "force": True, "device": "cpu"}


# ----- fixtures -----------------------------------------------------------------------------


def farm(source, output, model=None, **options):
    """``run_farm`` with colorize's and the farm's options as keywords, as the command line has them."""
    farm_keys = {f.name for f in dataclasses.fields(FarmOptions)}
    farm_options = FarmOptions(**{k: v for k, v in options.items() if k in farm_keys})
    render = {k: v for k, v in options.items() if k not in farm_keys}
    if model is not None and not isinstance(model, Generator):
        render["model"], model = str(model), None
    return run_farm(ColorizeConfig(input=str(source), output=str(output), **render), farm_options, model=model)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("farm")


def lively_tiny_generator() -> Generator:
    """A tiny random generator whose chroma head is scaled up: a fresh head (std 1e-3) gives
    flat grey chroma, which would make every comparison below trivially equal."""
    torch.manual_seed(0)
    model = Generator(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4)
    with torch.no_grad():
        model.chroma_head.weight.normal_(0.0, 0.3)
        model.chroma_head.bias.uniform_(-0.3, 0.3)
    return model


@pytest.fixture(scope="module")
def model_path(work) -> str:
    save_generator(lively_tiny_generator(), work / "tiny")
    return str(work / "tiny.json")


@pytest.fixture(scope="module")
def model(model_path):
    return load_generator(model_path)[0]


@pytest.fixture(scope="module")
def film(work):
    """FFV1 source with AAC audio and a scene cut in the middle (a colour clip: needs force)."""
    return make_clip(work / "film.mkv", width=64, height=48, frames=FRAMES, lossless=True, audio="aac", content="cut")


@pytest.fixture(scope="module")
def single(work, film, model) -> Path:
    """The reference: one colorize run over the whole clip."""
    out = work / "single.mkv"
    colorize_video(film.path, out, model=model, quiet=True, **RENDER)
    return out


@pytest.fixture(scope="module")
def chunks(work, film, model) -> list[Path]:
    """The three planned chunks, rendered with `colorize --frames` as farm tasks would."""
    layout = ChunkLayout(folder=work / "chunks", name="film", ext=".mkv")
    layout.folder.mkdir()
    for frame_range in reversed(PLAN):  # any order
        colorize_video(film.path, layout.path(frame_range), model=model, quiet=True,
                       frames=f"{frame_range[0]}-{frame_range[1]}", **RENDER)
    return layout.paths(PLAN)


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray cluster for the whole session (run_farm reuses it, never stops it)."""
    if ray is None:
        pytest.skip("ray is not installed")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             ignore_reinit_error=True, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def assert_matches_single_run(path, single, film) -> None:
    """Frames equal the single run's (luma exactly, chroma within one code value), the frame
    count and pts equal the source's, and the audio equals the source's byte for byte."""
    got, want = read_planes(path), read_planes(single)
    assert len(got) == len(want) == FRAMES
    assert [p for p, *_ in got] == film.pts
    for (_, y, cb, cr), (_, y1, cb1, cr1) in zip(got, want):
        np.testing.assert_array_equal(y, y1)
        for a, b in ((cb, cb1), (cr, cr1)):
            assert int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) <= 1
    assert read_packets(path, "audio") == film.audio_packets


# ----- planning and naming ------------------------------------------------------------------


def test_plan_chunks_examples():
    assert plan_chunks(30, 10) == PLAN
    assert plan_chunks(25, 10) == [(0, 9), (10, 19), (20, 24)]
    assert plan_chunks(5, 1200) == [(0, 4)]
    assert plan_chunks(1, 1) == [(0, 0)]
    assert plan_chunks(3600, 1200) == [(0, 1199), (1200, 2399), (2400, 3599)]


@settings(max_examples=200, deadline=None)
@given(frames=st.integers(1, 100_000), size=st.integers(1, 5_000))
def test_plan_covers_every_frame_once(frames, size):
    plan = plan_chunks(frames, size)
    assert plan[0][0] == 0 and plan[-1][1] == frames - 1
    assert all(b[0] == a[1] + 1 for a, b in zip(plan, plan[1:]))  # no gap, no overlap
    assert all(e - s + 1 == size for s, e in plan[:-1]) and 1 <= plan[-1][1] - plan[-1][0] + 1 <= size


@pytest.mark.parametrize("frames, size", [(30, 0), (30, -5), (30, 2.5), (30, True), (0, 10), (-1, 10)])
def test_plan_refuses_bad_sizes(frames, size):
    with pytest.raises(UsageError):
        plan_chunks(frames, size)


def test_chunk_names_round_trip():
    assert chunk_name("film", (0, 1199), ".mp4") == "film.000000-001199.mp4"
    assert chunk_name("film", (1200, 2399), "mkv") == "film.001200-002399.mkv"
    assert format_range((12, 1234567)) == "000012-1234567"
    for name, frame_range, ext in [("film", (0, 1199), ".mp4"), ("my.film.v2", (1200, 2399), ".mkv"),
                                   ("reel 3", (999_999, 1_000_500), ".mov")]:
        assert parse_chunk_name(Path("chunks") / chunk_name(name, frame_range, ext)) == (name, frame_range, ext)
    for not_a_chunk in ["film.mkv", "film.12-34.mkv", "film.000010-000009.mkv",
                        ".film.000000-000009.partial-1a2b3c4d.mkv", "film.000000-000009"]:
        assert parse_chunk_name(not_a_chunk) is None
    assert sorted(chunk_name("f", r, ".mkv") for r in plan_chunks(25_000, 1200)) == \
        [chunk_name("f", r, ".mkv") for r in plan_chunks(25_000, 1200)]  # names sort in frame order


def test_layout_tells_finished_unfinished_and_partial_chunks(tmp_path):
    layout = ChunkLayout.for_job(tmp_path / "src" / "film.mkv", tmp_path / "film_colour.mkv")
    assert (layout.folder, layout.name, layout.ext) == (tmp_path / "film_colour.chunks", "film", ".mkv")
    assert ChunkLayout.for_job("film.mkv", "out.mp4", chunk_dir=tmp_path / "c").folder == tmp_path / "c"
    assert layout.unfinished(PLAN) == PLAN and layout.partial_files(PLAN) == []  # no folder yet
    check_manifest(layout, {"codec": "ffv1"})  # as farm does: the manifest before any chunk
    (layout.folder / "film.000000-000009.mkv").write_bytes(b"done")
    partial = layout.folder / ".film.000010-000019.partial-1a2b3c4d.mkv"
    partial.write_bytes(b"half")
    (layout.folder / "film.000020-000029.mp4").write_bytes(b"other container")
    (layout.folder / "other.000020-000029.mkv").write_bytes(b"other source")
    (layout.folder / ".other.000010-000019.partial-1a2b3c4d.mkv").write_bytes(b"other source")
    assert layout.finished(PLAN) == [(0, 9)]
    assert layout.unfinished(PLAN) == [(10, 19), (20, 29)]
    assert layout.partial_files(PLAN) == [partial]
    marker = layout.folder / ".film.000010-000019.failed-once"
    marker.touch()
    remove_chunks(layout, PLAN)
    assert sorted(p.name for p in layout.folder.iterdir()) == [
        ".other.000010-000019.partial-1a2b3c4d.mkv", "film.000020-000029.mp4", "other.000020-000029.mkv"]
    for leftover in layout.folder.iterdir():
        leftover.unlink()
    layout.folder.mkdir(exist_ok=True)
    remove_chunks(layout, PLAN)
    assert not layout.folder.exists()  # an emptied folder goes too


def test_manifest_refuses_chunks_of_other_settings(tmp_path):
    layout = ChunkLayout(folder=tmp_path / "chunks", name="film", ext=".mkv")
    settings_ = {"source": "film.mkv", "codec": "ffv1", "smooth": 0.5, "references": ["a.png@3"]}
    check_manifest(layout, settings_)
    assert layout.manifest_path().is_file()
    # No chunk finished yet (the first run stopped early): other settings take the folder over.
    check_manifest(layout, {**settings_, "smooth": 0.7})
    check_manifest(layout, settings_)
    (layout.folder / ".film.000000-000009.partial-1a2b3c4d.mkv").write_bytes(b"unfinished")
    check_manifest(layout, {**settings_, "smooth": 0.8})  # a partial file is no finished chunk
    check_manifest(layout, settings_)
    # Chunks of another source or container: the one manifest is theirs, and taking it over
    # would orphan them (a renamed source did).
    for name in ("other.000000-000009.mkv", "film.000000-000009.mp4"):
        (layout.folder / name).write_bytes(b"another job's chunk")
        assert not layout.chunk_files()
        with pytest.raises(UsageError, match=rf"named after another source or container \({re.escape(name)};"):
            check_manifest(layout, settings_)
        (layout.folder / name).unlink()
    (layout.folder / "film.000000-000009.mkv").write_bytes(b"a finished chunk")
    assert layout.chunk_files()
    check_manifest(layout, dict(settings_))  # same settings: the chunks are reusable
    with pytest.raises(UsageError, match=r"other settings \(smooth: 0.5 then, 0.8 now\).*--chunk-dir"):
        check_manifest(layout, {**settings_, "smooth": 0.8})
    with pytest.raises(UsageError, match=r"other settings .*or write to another output$"):
        check_manifest(layout, {**settings_, "smooth": 0.8}, elsewhere="write to another output")
    layout.manifest_path().write_text("not json")
    with pytest.raises(UsageError, match="not a vidcolor farm manifest"):
        check_manifest(layout, settings_)


# ----- chunked colorize and the merge command (no Ray) --------------------------------------


def test_the_comparison_is_sensitive(tmp_path, film, model, single):
    """The single run has varied, moving chroma, and a chunk whose smoother started cold at
    its first frame would differ from it by several code values: the checks below can fail."""
    planes = read_planes(single)
    cb = np.stack([p[2] for p in planes]).astype(np.float32)
    assert cb.std() > 3 and np.abs(np.diff(cb, axis=0)).mean() > 1
    cold = tmp_path / "cold.mkv"
    colorize_video(film.path, cold, model=model, quiet=True, frames="10-19", **{**RENDER, "smooth": 0.0})
    first = read_planes(cold)[0][2].astype(np.int32)
    assert np.abs(first - planes[10][2].astype(np.int32)).max() >= 3


def test_merged_chunks_match_a_single_run(tmp_path, film, single, chunks):
    out = tmp_path / "film_colour.mkv"
    result = CliRunner().invoke(merge_command, [*map(str, reversed(chunks)), "--audio-from", str(film.path),
                                                "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 30 frames from 3 chunks, 1 stream copied" in result.output
    assert_matches_single_run(out, single, film)
    for frame_range, path in zip(PLAN, chunks):
        assert [p for p, *_ in read_planes(path)] == film.pts[frame_range[0]:frame_range[1] + 1]
        assert read_packets(path, "audio") == []  # chunks are video only


def test_merge_refuses_gap_overlap_and_mismatch(tmp_path, film, model, chunks):
    runner = CliRunner()

    def merge(*paths):
        out = tmp_path / "m.mkv"
        result = runner.invoke(merge_command, [*map(str, paths), "--audio-from", str(film.path), "-o", str(out)])
        assert not out.exists()
        return result

    gap = merge(chunks[0], chunks[2])
    assert gap.exit_code == 2 and "gap: frames 10-19" in gap.output
    overlapping = tmp_path / "film.000005-000014.mkv"
    colorize_video(film.path, overlapping, model=model, quiet=True, frames="5-14", **RENDER)
    overlap = merge(chunks[0], overlapping, *chunks[1:])
    assert overlap.exit_code == 2 and "overlap: frames 5-14" in overlap.output
    x264 = tmp_path / "film.000010-000019.x264.mkv"
    colorize_video(film.path, x264, model=model, quiet=True, frames="10-19", **{**RENDER, "codec": "x264"})
    mismatch = merge(chunks[0], x264, chunks[2])
    assert mismatch.exit_code == 2 and "x264.mkv does not match" in mismatch.output and "codec" in mismatch.output
    assert "Traceback" not in gap.output + overlap.output + mismatch.output


def test_frames_end_past_the_last_frame_is_clamped(tmp_path, film, model):
    out = tmp_path / "film.000020-001199.mkv"  # a farm manager's last chunk overshoots
    report = colorize_video(film.path, out, model=model, quiet=True, frames="20-1199", **RENDER)
    assert report.frames == 10
    assert [p for p, *_ in read_planes(out)] == film.pts[20:]


# ----- one chunk task, in-process -----------------------------------------------------------


def test_fail_hook_from_environment():
    assert FailHook.for_chunk(10, {}) is None
    assert FailHook.for_chunk(10, {FAIL_CHUNK_ENV: "0,20"}) is None
    assert FailHook.for_chunk(10, {FAIL_CHUNK_ENV: "0, 10"}) == FailHook("raise", False)
    assert FailHook.for_chunk(10, {FAIL_CHUNK_ENV: "10", FAIL_MODE_ENV: "exit", FAIL_ONCE_ENV: "1"}) == FailHook("exit", True)
    with pytest.raises(UsageError, match=FAIL_CHUNK_ENV):
        FailHook.for_chunk(10, {FAIL_CHUNK_ENV: "ten"})
    with pytest.raises(UsageError, match=FAIL_MODE_ENV):
        FailHook.for_chunk(10, {FAIL_CHUNK_ENV: "10", FAIL_MODE_ENV: "segfault"})


def test_render_chunk_fails_mid_chunk_then_retries_and_reuses(tmp_path, film, model):
    path = tmp_path / "film.000010-000019.mkv"
    job = ChunkJob(cfg=ColorizeConfig(input=str(film.path), output=str(path), **RENDER), start=10, end=19,
                   fail=FailHook("raise", once=True))
    with pytest.raises(InjectedFailure, match=f"{FAIL_CHUNK_ENV}=10"):
        render_chunk(job, model)
    assert [p.name for p in tmp_path.iterdir()] == [".film.000010-000019.failed-once"]  # no half chunk
    first = render_chunk(job, model)  # the retry: the hook fails only once
    assert (first.frames, first.reused, first.path) == (10, False, str(path))
    again = render_chunk(job, model)  # a chunk already complete is not rendered twice
    assert (again.frames, again.reused) == (0, True)


# ----- the farm and merge commands without a cluster ----------------------------------------


def test_cli_module_imports_without_ray_or_torch_and_registers():
    code = ("import sys, vidcolor.commands.farm, vidcolor.farm; "
            "assert not {'ray', 'torch'} & set(sys.modules), sorted({'ray', 'torch'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

    @click.group()
    def group():
        pass

    group.add_command(merge_command)
    group.add_command(farm_command)
    assert sorted(group.commands) == ["farm", "merge"]
    assert "--chunk-frames" in CliRunner().invoke(group, ["farm", "--help"]).output


def test_farm_without_ray_says_how_to_install(monkeypatch, tmp_path, film):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"^ray is not installed: pip install vidcolor\[farm\]$"):
        import_ray()
    result = CliRunner().invoke(farm_command, [str(film.path), "-o", str(tmp_path / "out.mkv")])
    assert result.exit_code == 2
    assert "ray is not installed: pip install vidcolor[farm]" in result.output


@needs_ray
def test_farm_refuses_bad_jobs_before_starting_ray(tmp_path, film, model_path):
    kwargs = dict(chunk_frames=CHUNK, model=model_path, codec="ffv1", render_size=32, quiet=True)
    out = tmp_path / "out.mkv"
    with pytest.raises(UsageError, match="chunk-frames"):
        farm(film.path, out, **{**kwargs, "chunk_frames": 0}, force=True)
    with pytest.raises(UsageError, match="looks like a colour video"):
        farm(film.path, out, **kwargs)
    out.write_bytes(b"x")
    with pytest.raises(OutputError, match="--overwrite"):
        farm(film.path, out, **kwargs, force=True)
    with pytest.raises(UsageError, match="chunks in .* were rendered with other settings"):
        chunk_dir = tmp_path / "c"
        check_manifest(ChunkLayout(chunk_dir, "film", ".mkv"), {"codec": "x264"})
        (chunk_dir / "film.000000-000009.mkv").write_bytes(b"a chunk rendered with x264")
        farm(film.path, tmp_path / "new.mkv", **kwargs, force=True, chunk_dir=chunk_dir)
    deep = make_clip(tmp_path / "deep.mkv", width=64, height=48, frames=4, pix_fmt="yuv420p10le", lossless=True,
                     content="grey")
    with pytest.raises(UsageError, match="8-bit"):  # refused here, not by every worker
        farm(deep.path, tmp_path / "deep_out.mp4", **{**kwargs, "codec": "nvenc-h264"}, force=True)
    # What colorize refuses is refused here too, before Ray starts and before any chunk folder.
    fresh = tmp_path / "fresh.mkv"
    for bad, error, message in (({"style": "vangogh"}, UsageError, "unknown style 'vangogh'; this model has: natural"),
                                ({"render_size": 33}, UsageError, "--render-size must be a multiple of 16"),
                                ({"batch_size": "many"}, UsageError, "--batch-size must be a positive integer"),
                                ({"references": ("missing.png@2",)}, InputError, "reference .*missing.png: not found"),
                                ({"references": (f"{tmp_path}/r.png@{FRAMES}",)}, UsageError, "the video has only"),
                                ({"style": "natural", "references": ("r.png",)}, UsageError, "cannot be combined")):
        with pytest.raises(error, match=message):
            farm(film.path, fresh, **{**kwargs, **bad}, force=True)
        assert not fresh.exists() and not (tmp_path / "fresh.chunks").exists()


@needs_ray
def test_farm_manifest_records_reference_images_by_content(tmp_path, monkeypatch, film, model_path):
    """farm.json names each reference by file name, frame and content hash: a reference painted
    again under the same path is refused once a chunk is finished (it used to be reused with
    the old chunks), and the same image spelled as another path is accepted."""
    import cv2

    import vidcolor.farm.ray_executor as executor

    class Rendering(Exception):
        """Stands in for the Ray run: the settings were accepted."""

    def rendering(ray, jobs, *args, **kwargs):
        if not Path(jobs[0].path).exists():  # the first chunk gets finished, then the run stops
            Path(jobs[0].path).write_bytes(b"a chunk rendered with the first image")
        raise Rendering

    monkeypatch.setattr(executor, "_render_on_ray", rendering)
    monkeypatch.chdir(tmp_path)
    first, second = np.full((48, 64, 3), (40, 90, 200), np.uint8), np.full((48, 64, 3), (200, 90, 40), np.uint8)
    kwargs = dict(chunk_frames=CHUNK, model=model_path, codec="ffv1", render_size=32, quiet=True, force=True)
    cv2.imwrite("ref.png", first)
    with pytest.raises(Rendering):
        farm(film.path, tmp_path / "out.mkv", **kwargs, references=("./ref.png@5",))
    cv2.imwrite("ref.png", second)
    with pytest.raises(UsageError, match=r"\(references: \['ref.png@5 sha256:[0-9a-f]{64}'\] then, "
                                         r"\['ref.png@5 sha256:[0-9a-f]{64}'\] now\)"):
        farm(film.path, tmp_path / "out.mkv", **kwargs, references=("ref.png@5",))
    cv2.imwrite("ref.png", first)
    with pytest.raises(Rendering):
        farm(film.path, tmp_path / "out.mkv", **kwargs, references=(f"{tmp_path}/ref.png@5",))


# ----- Ray ----------------------------------------------------------------------------------


@needs_ray
def test_farm_matches_single_run_and_survives_a_dead_worker(ray_cluster, tmp_path, monkeypatch, film, single,
                                                              model_path):
    # The worker rendering chunk 10-19 dies mid-chunk once; Ray re-runs the task elsewhere.
    monkeypatch.setenv(FAIL_CHUNK_ENV, "10")
    monkeypatch.setenv(FAIL_MODE_ENV, "exit")
    monkeypatch.setenv(FAIL_ONCE_ENV, "1")
    out = tmp_path / "film_colour.mkv"
    report = farm(film.path, out, chunk_frames=CHUNK, workers=2, model=model_path, keep_chunks=True,
                  quiet=True, max_retries=2, **RENDER)
    assert (report.frames, report.chunks, report.rendered, report.reused) == (FRAMES, 3, PLAN, [])
    assert report.copied_streams == 1
    assert_matches_single_run(out, single, film)
    folder = Path(report.chunk_dir)
    assert folder == tmp_path / "film_colour.chunks"
    assert (folder / ".film.000010-000019.failed-once").exists()  # the first attempt was killed
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "farm.json", "film.000000-000009.mkv", "film.000010-000019.mkv", "film.000020-000029.mkv"]


@needs_ray
def test_killed_worker_then_rerun_renders_only_unfinished_chunks(ray_cluster, tmp_path, film, single, model_path):
    out = tmp_path / "film_colour.mkv"
    args = [str(film.path), "-o", str(out), "--chunk-frames", str(CHUNK), "--workers", "2", "--model", model_path,
            "--codec", "ffv1", "--render-size", "32", "--smooth", "0.5", "--device", "cpu", "--force", "--quiet",
            "--max-retries", "0"]
    runner = CliRunner()
    crashed = runner.invoke(farm_command, args, env={FAIL_CHUNK_ENV: "20", FAIL_MODE_ENV: "exit"})
    assert crashed.exit_code == 1, crashed.output
    assert "1 of 3 chunks failed: 000020-000029 (the worker process died" in crashed.output
    assert "run the same command again" in crashed.output and "Traceback" not in crashed.output
    folder = tmp_path / "film_colour.chunks"
    layout = ChunkLayout(folder, "film", ".mkv")
    assert layout.finished(PLAN) == [(0, 9), (10, 19)] and not out.exists()
    assert [p.name.split(".partial-")[0] for p in layout.partial_files(PLAN)] == [".film.000020-000029"]  # died mid-chunk
    before = {p.name: p.stat().st_mtime_ns for p in layout.paths(PLAN[:2])}

    rerun = runner.invoke(farm_command, [*args, "--keep-chunks"], env={FAIL_CHUNK_ENV: ""})
    assert rerun.exit_code == 0, rerun.output
    assert "30 frames from 3 chunks (1 rendered, 2 reused)" in rerun.output
    assert {p.name: p.stat().st_mtime_ns for p in layout.paths(PLAN[:2])} == before  # not rendered again
    assert layout.partial_files(PLAN) == []  # the dead worker's half chunk was cleared
    assert_matches_single_run(out, single, film)

    again = runner.invoke(farm_command, [*args, "--overwrite"], env={FAIL_CHUNK_ENV: ""})
    assert again.exit_code == 0 and "(0 rendered, 3 reused)" in again.output
    assert not folder.exists()  # merged: the chunks are removed without --keep-chunks


# ----- reuse only what is vouched for; one run per folder; signals (no cluster needed) --------


def _render_in_process(model_path):
    """Stands in for ``_render_on_ray``: renders each job with ``render_chunk`` in this process."""

    def render(ray, jobs, model, *args, **kwargs):
        return [render_chunk(job, model_path) for job in jobs], 0.0, 0.0

    return render


def test_farm_reuses_only_chunks_a_manifest_or_their_stamp_vouches_for(tmp_path, monkeypatch, film, model_path):
    """Chunks found with no farm.json used to be reused unchecked (a folder of hand-made chunks,
    or one whose farm.json a later run deleted): a film mixed --smooth 0.8 and 0 silently."""
    import vidcolor.farm.ray_executor as executor

    monkeypatch.setattr(executor, "_render_on_ray", _render_in_process(model_path))
    folder = tmp_path / "hand"
    folder.mkdir()
    options = {**RENDER, "quiet": True}
    # A chunk made by hand with other settings (--smooth 0): its stamp gives it away.
    colorize_video(film.path, folder / "film.000000-000009.mkv", model=model_path, frames="0-9",
                   **{**options, "smooth": 0.0})
    kwargs = dict(chunk_frames=CHUNK, model=model_path, chunk_dir=folder, **options)
    with pytest.raises(UsageError, match=r"hand holds chunks rendered from another source or with other settings "
                                         r"\(their stamp says so, first film.000000-000009.mkv\)"):
        farm(film.path, tmp_path / "a.mkv", **kwargs)
    # A chunk with no stamp and no farm.json (made by something else, or by an older vidcolor).
    (folder / "film.000000-000009.mkv").write_bytes(b"who made this?")
    with pytest.raises(UsageError, match=r"holds chunks with no farm.json and no stamp saying what made them"):
        farm(film.path, tmp_path / "a.mkv", **kwargs)
    assert not (folder / "farm.json").exists() and not (tmp_path / "a.mkv").exists()
    # Made by hand with the job's settings: provably the same, so it is reused.
    (folder / "film.000000-000009.mkv").unlink()
    colorize_video(film.path, folder / "film.000000-000009.mkv", model=model_path, frames="0-9", **options)
    report = farm(film.path, tmp_path / "a.mkv", **kwargs)
    assert (report.reused, report.rendered) == ([(0, 9)], [(10, 19), (20, 29)])
    assert not folder.exists()  # merged without --keep-chunks: the folder is gone


def test_farm_with_another_chunk_size_is_refused_and_keeps_the_chunks(tmp_path, monkeypatch, film, model_path):
    """A rerun with another --chunk-frames used to delete farm.json and leave the old chunks (a
    later run then reused them unchecked); removing them instead would lose finished work to a
    typo. The chunk size is part of the folder's record: another one is refused, nothing removed."""
    import vidcolor.farm.ray_executor as executor

    monkeypatch.setattr(executor, "_render_on_ray", _render_in_process(model_path))
    out = tmp_path / "film_colour.mkv"
    kwargs = dict(model=model_path, quiet=True, **RENDER)
    farm(film.path, out, chunk_frames=CHUNK, keep_chunks=True, **kwargs)
    folder = tmp_path / "film_colour.chunks"
    kept = ["farm.json", *(chunk_name("film", r, ".mkv") for r in PLAN)]
    assert sorted(p.name for p in folder.iterdir()) == kept
    with pytest.raises(UsageError, match=rf"other settings \(chunk_frames: {CHUNK} then, 15 now\); delete that folder"):
        farm(film.path, out, chunk_frames=15, overwrite=True, **kwargs)
    assert sorted(p.name for p in folder.iterdir()) == kept
    report = farm(film.path, out, chunk_frames=CHUNK, overwrite=True, **kwargs)  # the same job: all reused
    assert report.rendered == [] and len(report.reused) == len(PLAN) and not folder.exists()
    assert len(read_planes(out)) == FRAMES


def test_farm_lock_refuses_a_live_run_and_takes_over_a_dead_ones(tmp_path, monkeypatch, film, model_path):
    import json
    import os

    import vidcolor.farm.ray_executor as executor

    class Rendering(Exception):
        pass

    def rendering(ray, jobs, *args, **kwargs):
        assert (tmp_path / "out.chunks" / "farm.lock").is_file()  # held while rendering
        raise Rendering

    monkeypatch.setattr(executor, "_render_on_ray", rendering)
    folder = tmp_path / "out.chunks"
    folder.mkdir()
    lock = folder / "farm.lock"
    kwargs = dict(chunk_frames=CHUNK, model=model_path, quiet=True, **RENDER)
    live = os.getppid()
    lock.write_text(json.dumps({"pid": live, "host": __import__("socket").gethostname(), "since": "today"}))
    with pytest.raises(OutputError, match=rf"out.chunks is in use by another farm run \(process {live} since today\); "
                                          r"wait for it to finish, or delete .*farm.lock if that run is gone"):
        farm(film.path, tmp_path / "out.mkv", **kwargs)
    assert lock.is_file()  # someone else's lock is left alone
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(json.dumps({"pid": gone.pid, "host": __import__("socket").gethostname()}))
    with pytest.raises(Rendering):  # a lock whose process is gone is taken over
        farm(film.path, tmp_path / "out.mkv", **kwargs)
    assert not folder.exists()  # stopped before any chunk: no lock, manifest or folder left


class FakeRay:
    """Just enough of Ray for ``_start_ray`` and ``_render_on_ray``."""

    def __init__(self, on_init=None, on_wait=None):
        self.on_init, self.on_wait = on_init, on_wait
        self.up = False
        self.calls = []
        self.exceptions = ray.exceptions if ray is not None else None

    def is_initialized(self):
        return self.up

    def init(self, **kwargs):
        if self.on_init:
            self.on_init()
        self.up = True

    def shutdown(self):
        self.calls.append("shutdown")
        self.up = False

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, fn):
        class Task:
            def options(self, **kwargs):
                return self

            def remote(self, job, model):
                return job.start

        return Task()

    def wait(self, refs, num_returns=1, timeout=None):
        self.on_wait()

    def cancel(self, ref, force=False):
        self.calls.append(("cancel", ref))


def test_sigterm_while_ray_starts_is_one_line_and_143(monkeypatch):
    """Ray's init installs SIGTERM -> sys.exit(15) (exit status 15, no message) and its driver a
    native handler that aborts (134, stack dumps); farm gives 143 and keeps its own handler."""
    import signal

    from vidcolor.errors import Interrupted
    from vidcolor.farm.ray_executor import _start_ray

    def ours(signum, frame):
        raise Interrupted("terminated (SIGTERM)", signal_exit_code=143)

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        def ray_exits():
            signal.signal(signal.SIGTERM, lambda s, f: sys.exit(s))  # what ray.init does first
            raise SystemExit(signal.SIGTERM)

        with pytest.raises(Interrupted, match=r"^terminated \(SIGTERM\)$") as excinfo:
            _start_ray(FakeRay(on_init=ray_exits), "ray://nowhere:1", None, True)
        assert excinfo.value.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) is ours
        _start_ray(FakeRay(on_init=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)), "ray://x:1", None, True)
        assert signal.getsignal(signal.SIGTERM) is ours  # put back after a successful start too
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_mid_run_stops_ray_removes_partials_and_says_what_is_kept(tmp_path):
    from vidcolor.errors import Interrupted
    from vidcolor.farm.ray_executor import _render_on_ray

    layout = ChunkLayout(tmp_path / "c", "film", ".mkv")
    layout.folder.mkdir()
    layout.path(PLAN[0]).write_bytes(b"finished before this run")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from vidcolor.io.atomic import _HOST

    partial = layout.folder / f".film.000010-000019.partial-1a2b3c4d.{gone.pid}.{_HOST}.mkv"
    partial.write_bytes(b"")  # the 0-byte file of a task killed as it started

    def terminated():
        raise Interrupted("terminated (SIGTERM)", signal_exit_code=143)

    fake = FakeRay(on_wait=terminated)
    jobs = [ChunkJob(cfg=ColorizeConfig(input="film.mkv", output=str(layout.path(r))), start=r[0], end=r[1])
            for r in PLAN[1:]]
    with pytest.raises(Interrupted) as excinfo:
        _render_on_ray(fake, jobs, "tiny", "ray://x:1", 2, "cpu", 0, 3, 1, layout, "out.mkv", True)
    assert excinfo.value.exit_code == 143
    assert str(excinfo.value) == (f"terminated (SIGTERM); 1 finished chunk is kept in {layout.folder}; run the same "
                                  "command again to render only the missing ones")
    assert ("cancel", 10) in fake.calls and ("cancel", 20) in fake.calls and fake.calls[-1] == "shutdown"
    assert not partial.exists()


def test_settings_that_change_no_pixels_stamp_alike():
    """A restated default CRF, a CRF given to FFV1 (which takes none), --style natural and
    --strength 0 write the same pixels, so their chunks must merge and be reused."""
    from vidcolor.pipeline.render_identity import render_settings

    def settings(**kw):
        return render_settings(ColorizeConfig(input="a.mkv", output="b.mkv", **kw), {"model": "m"})

    assert settings(codec="x264") == settings(codec="x264", crf=16)
    assert settings(codec="x264") != settings(codec="x264", crf=18)
    assert settings(codec="ffv1") == settings(codec="ffv1", crf=30)
    assert settings(codec="x264") == settings(codec="x264", style="natural") == \
        settings(codec="x264", style="starry_night", strength=0.0)
    assert settings(codec="x264") != settings(codec="x264", style="starry_night", strength=0.5)


def test_folder_of_an_older_vidcolor_is_refused_as_such(tmp_path):
    """Its record compares other settings (a missing chunk size, strength 1.0 for no style) and
    its chunks carry no stamp, so reuse would fail later, at the merge, or say "other settings"
    though the user changed nothing."""
    import json

    layout = ChunkLayout(folder=tmp_path / "chunks", name="film", ext=".mkv")
    layout.folder.mkdir()
    (layout.folder / "farm.json").write_text(json.dumps({"format": "vidcolor-farm-chunks", "settings": {}}))
    (layout.folder / "film.000000-000009.mkv").write_bytes(b"an old chunk")
    with pytest.raises(UsageError, match=r"were made by an older vidcolor.*delete that folder to start over"):
        check_manifest(layout, {"source": "film.mkv"})
