"""Resumable long runs: ``vidcolor colorize film.mkv -o out.mkv --resume``.

The run is rendered as segments of ``segment_frames`` frames, each written atomically (like a
farm chunk) into a hidden folder beside the output, then the segments are merged losslessly with
the source's audio. Run the same command again after a crash, a reboot or Ctrl-C and finished
segments are kept: only the rest is rendered. Segments start with the smoother's warm-up frames,
so the film has no seams, and a resumed run gives the same file as one that never stopped.
A folder of segments made with other settings (a reference image painted again included) is
refused rather than mixed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from vidcolor.config import ColorizeConfig
from vidcolor.errors import Interrupted, UsageError
from vidcolor.io.atomic import check_output_path
from vidcolor.io.codecs import portable_codec
from vidcolor.io.encode import check_output_supported
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.merge import merge_chunks
from vidcolor.io.probe import probe
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator
from vidcolor.pipeline.manifest import check_manifest, remove_chunks
from vidcolor.pipeline.render_identity import chunk_stamp, job_settings, model_identity, render_settings
from vidcolor.pipeline.report import RunReport
from vidcolor.pipeline.segments import ChunkLayout, format_range, plan_chunks
from vidcolor.pipeline.video_plan import check_video_run

# Renders one segment: ``run.run_video`` (handed in by ``run.colorize``, which dispatches here).
RenderSegment = Callable[[ColorizeConfig, Generator | None, MediaInfo], RunReport]

log = logging.getLogger("vidcolor")


def segment_layout(cfg: ColorizeConfig) -> ChunkLayout:
    """Where the segments of a resumable run live: ``.OUT_STEM.segments/`` beside the output."""
    out = Path(cfg.output)
    return ChunkLayout.for_job(cfg.input, cfg.output, chunk_dir=out.with_name(f".{out.stem}.segments"))


def _segment_codec(cfg: ColorizeConfig) -> str:
    """The codec segments are written with: they are portable outputs, so "auto" is x264."""
    return portable_codec(cfg.codec)


def run_resumable(cfg: ColorizeConfig, model: Generator | None, render_segment: RenderSegment) -> RunReport:
    """Colorize with resumable segments (see module docstring).

    Args:
        cfg: the run's options (``resume`` set).
        model: a generator to use instead of loading ``cfg.model``.
        render_segment: renders one segment, ``render_segment(segment_cfg, model, info)`` (``run.run_video``).

    Returns:
        A ``RunReport`` for the whole film.
    """
    if cfg.frames:
        raise UsageError("--resume renders the whole film; for a frame range use --frames alone (a farm chunk)")
    if cfg.preview:
        raise UsageError("--preview cannot be combined with --resume; make the preview with a short --frames run")
    if cfg.segment_frames < 1:
        raise UsageError(f"segment length must be at least 1 frame, got {cfg.segment_frames}")
    t0 = time.time()
    info = probe(cfg.input, verdict=True)
    check_video_run(cfg, info, model)  # a bad option must not leave a segment folder behind
    check_output_path(cfg.output, cfg.overwrite, [cfg.input])
    # The merged film must hold the codec and the source's streams: known now, not after rendering.
    check_output_supported(cfg.output, info, _segment_codec(cfg), copy_streams=True)
    plan = plan_chunks(info.video.frame_count, cfg.segment_frames)
    layout = segment_layout(cfg)
    # The options that change pixels, identified once: for the manifest and for the stamp that
    # segments carry (which vouches for them where the manifest was lost).
    render = render_settings(replace(cfg, codec=_segment_codec(cfg)),
                             model_identity(model if model is not None else cfg.model))
    stamp = chunk_stamp(cfg.input, render)
    settings = job_settings(cfg.input, info.video.frame_count, render, segment_frames=cfg.segment_frames)
    check_manifest(layout, settings, elsewhere="write to another output", stamp=stamp)
    for stale in layout.partial_files(plan):
        stale.unlink(missing_ok=True)  # left by a run that stopped mid-segment
    todo = layout.unfinished(plan)
    if len(todo) < len(plan):
        log.info("resuming: %d of %d segments already done in %s", len(plan) - len(todo), len(plan), layout.folder)
    if todo and model is None:
        model, _ = load_generator(cfg.model)
    bar = tqdm(total=info.video.frame_count, initial=info.video.frame_count - sum(e - s + 1 for s, e in todo),
               unit="frame", disable=True if cfg.quiet else None, desc=Path(cfg.output).name, dynamic_ncols=True)
    rendered = 0
    try:
        for start, end in todo:
            # The stamp checked above, not one made from the loaded weights (hashed, it would
            # name the same model differently from its description and refuse the next run).
            segment = replace(cfg, output=str(layout.path((start, end))), frames=format_range((start, end)),
                              resume=False, overwrite=True, quiet=True, chunk_stamp=stamp)
            rendered += render_segment(segment, model, info).frames  # one probe serves every segment
            bar.update(end - start + 1)
    except (KeyboardInterrupt, Interrupted):
        bar.close()
        log.warning("%d of %d segments are finished in %s; run the same command again to continue",
                    len(layout.finished(plan)), len(plan), layout.folder)
        raise
    finally:
        bar.close()
    report = merge_chunks([str(p) for p in layout.paths(plan)], cfg.output, audio_from=cfg.input,
                          overwrite=cfg.overwrite, warn=False)  # check_output_supported warned
    remove_chunks(layout, plan)
    return RunReport(cfg.output, report.frames, time.time() - t0, dropped=report.lost,
                         copied_streams=report.copied_streams, rendered=rendered if rendered < report.frames else None)
