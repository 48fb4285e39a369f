"""What a video run decides, and refuses, before any frame is decoded."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vidcolor.config import ColorizeConfig
from vidcolor.errors import InputError, TimestampError, UsageError
from vidcolor.io.atomic import check_image_output
from vidcolor.io.codecs import AUTO, CODECS, HARDWARE_CODECS, crf_unused, portable_codec
from vidcolor.io.encode import depth_loss
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.timing import clamp_frame_range, parse_frame_range
from vidcolor.models.generator import Generator
from vidcolor.models.weights import model_style_names
from vidcolor.pipeline.batch import render_shape
from vidcolor.pipeline.preview import preview_indices
from vidcolor.pipeline.reference import Reference, ReferenceImage, parse_reference, read_references
from vidcolor.pipeline.smooth import ChromaSmoother
from vidcolor.pipeline.style import style_code

log = logging.getLogger("vidcolor")


@dataclass
class VideoPlan:
    """Everything decided before any frame is decoded."""

    info: MediaInfo
    start: int  # first frame written
    end: int  # last frame written (inclusive)
    decode_start: int  # first frame decoded (warm-up frames for the smoother come before start)
    render: tuple[int, int]
    batch_size: int | None  # None: --batch-size auto, sized once the model is loaded
    chunk: bool  # a frame range: write a video-only chunk
    preview_indices: set[int] = field(default_factory=set)
    references: list[Reference] = field(default_factory=list)


def check_options(cfg: ColorizeConfig) -> None:
    """Refuse a codec the registry (``io/codecs``) does not hold; say when ``--crf`` cannot apply.

    The values no run can use (``--smooth 1.5``, ``--crf 99``...) are refused by
    ``ColorizeConfig`` itself; what is left here needs the codec registry's knowledge.

    Args:
        cfg: the run's options.
    """
    if cfg.codec not in CODECS and cfg.codec != AUTO:
        raise UsageError(f"unknown --codec {cfg.codec!r} (valid: {AUTO}, {', '.join(CODECS)})")
    if cfg.crf is not None and (reason := crf_unused(cfg.codec)):
        log.warning("--crf has no effect with --codec %s (%s)", cfg.codec, reason)


def _batch_size(cfg: ColorizeConfig) -> int | None:
    """``--batch-size`` as a number (ColorizeConfig checked it), or None for ``auto``."""
    if cfg.batch_size == "auto":
        return None  # ChromaGenerator.auto_batch_size decides, once the model is on its device
    return int(cfg.batch_size)


def check_video_input(cfg: ColorizeConfig, info: MediaInfo) -> None:
    """Refuse inputs a run cannot use: no video stream, no frames, timestamps that go backwards,
    colour without ``--force``.

    Args:
        cfg: the run's options.
        info: the probed input (with its verdict).
    """
    if info.video is None:
        raise InputError(f"{info.path}: no video stream to colorize")
    if info.video.frame_count == 0:
        raise InputError(f"{info.path}: the video stream has no frames; {info.damage or 'nothing to colorize'}")
    if info.timing_problem:  # found by probe's verdict; else the decoder stops at it (exit 3 as well)
        raise TimestampError(info.path, info.timing_problem)
    if info.verdict == "colour" and not cfg.force:
        raise UsageError(f"{info.path} looks like a colour video; pass --force to recolour it from its luma")


def plan_video(cfg: ColorizeConfig, info: MediaInfo) -> VideoPlan:
    """Decide frame range, warm-up, render size and batch size; refuse bad combinations early.

    Args:
        cfg: the run's options.
        info: the probed input.

    Returns:
        A ``VideoPlan``.
    """
    check_video_input(cfg, info)
    video = info.video
    if cfg.frames:
        start, end = clamp_frame_range(*parse_frame_range(cfg.frames), video.frame_count)
    else:
        start, end = 0, video.frame_count - 1
    references = [parse_reference(text) for text in cfg.references]
    for ref in references:
        if ref.frame >= video.frame_count:
            raise UsageError(f"--reference {ref.path}@{ref.frame}: the video has only {video.frame_count} frames")
    return VideoPlan(
        info=info,
        start=start,
        end=end,
        decode_start=max(0, start - ChromaSmoother(cfg.smooth).warmup_frames()),
        render=render_shape(video.height, video.width, cfg.render_size),
        batch_size=_batch_size(cfg),
        chunk=cfg.frames is not None,
        preview_indices=preview_indices(start, end) if cfg.preview else set(),
        references=references,
    )


def _warn_what_the_output_changes(cfg: ColorizeConfig, info: MediaInfo) -> None:
    """One line each, before any work, for what of the source the output does not keep as it is."""
    video = info.video
    if info.verdict == "tinted":  # a colour input needs --force; a tint would otherwise go without a word
        log.warning("%s is tinted (sepia or a colour cast): the tint is not kept, the colours are made anew from "
                    "its luma", cfg.input)
    if video.interlaced and not cfg.deinterlace:
        log.warning("%s is interlaced: the output keeps both fields in each frame (flagged interlaced where the "
                    "container can say so); add --deinterlace for progressive frames", cfg.input)
    codec = portable_codec(cfg.codec)  # auto picks NVENC for 8-bit sources only
    if codec not in HARDWARE_CODECS and (loss := depth_loss(video, codec)):  # NVENC refuses deep sources
        log.warning("%s: %s", cfg.input, loss)


def check_video_run(cfg: ColorizeConfig, info: MediaInfo, model: Generator | None = None) -> tuple[VideoPlan, list[ReferenceImage]]:
    """Everything a video run refuses, checked before any work or file is made.

    ``colorize`` itself, ``--resume`` (before its segment folder exists) and ``farm`` (before
    Ray starts) all call this, so a typo fails in one line at once instead of inside the
    first segment or in every farm task.

    Args:
        cfg: the run's options.
        info: the probed input (with its verdict).
        model: a loaded generator; None reads ``cfg.model``'s description (not its weights).

    Returns:
        (the ``VideoPlan``, the references read at render size in the stored orientation).

    Raises:
        UsageError: bad options, frame range, render size, batch size, reference frame or
            style name. InputError: an unusable input or reference image. ModelError: a
            missing or corrupt model description.
    """
    check_options(cfg)
    plan = plan_video(cfg, info)
    if not plan.chunk:  # chunks: their job warned
        _warn_what_the_output_changes(cfg, info)
    references = read_references(plan.references, plan.render, info.video.rotation)
    style_code(model_style_names(cfg.model if model is None else model), cfg.style, cfg.strength)
    if cfg.preview:  # written after the whole run: a bad path must not wait until then
        check_image_output(cfg.preview, cfg.overwrite, [cfg.input, *(r.path for r in plan.references)],
                           what="--preview", output_paths=[cfg.output])
    return plan, references
