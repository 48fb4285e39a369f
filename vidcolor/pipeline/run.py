"""One colorize run, video or still image: the stages joined top to bottom.

    decode ──► batch + generate ──► after the model ──► encode
    (thread)   (thread)             (thread: smooth,     (calling thread: planes out, progress)
                                     reference, style)

Stages talk through bounded queues (``pipeline.stages``), so decode, compute and encode overlap
and memory stays flat however long the film. Any stage's error, Ctrl-C or SIGTERM stops every
stage; the output is written under a temporary name and renamed only after a clean finish.
``run_video`` reads as the numbered steps of a run; each step's work lives in its own module.
"""

from __future__ import annotations

import logging
import queue
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidcolor.config import ColorizeConfig
from vidcolor.devices import pick_device
from vidcolor.errors import InputError, UsageError
from vidcolor.io.atomic import atomic_output, check_output_path
from vidcolor.io.decode import DecodeStats, iter_frames
from vidcolor.io.codecs import HARDWARE_CODECS
from vidcolor.io.encode import OutputWriter, check_output_supported, resolve_codec
from vidcolor.io.media_files import media_kind
from vidcolor.io.media_info import MediaInfo, VideoStreamInfo
from vidcolor.io.probe import probe
from vidcolor.io.stamp import STAMP_TAG
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator
from vidcolor.pipeline.after_model import AfterModel
from vidcolor.pipeline.batch import luma_to_unit
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.hint_windows import HintWindows
from vidcolor.pipeline.planes import chroma_to_planes, output_luma
from vidcolor.pipeline.preview import preview_row, write_contact_sheet
from vidcolor.pipeline.reference import ReferenceImage
from vidcolor.pipeline.render_identity import chunk_stamp_for
from vidcolor.pipeline.report import RunReport
from vidcolor.pipeline.resumable import run_resumable
from vidcolor.pipeline.smooth import ChromaSmoother
from vidcolor.pipeline.stages import (QUEUE_FRAMES, Stages, Stopped, after_model_stage, decode_stage, generate_stage,
                                      luma_on_device)
from vidcolor.pipeline.still import run_image
from vidcolor.pipeline.style import style_code, styled_planes
from vidcolor.pipeline.video_plan import VideoPlan, check_options, check_video_run

log = logging.getLogger("vidcolor")

__all__ = ["RunReport", "build_hints", "colorize", "colorize_video", "run_image", "run_video"]


def build_hints(cfg: ColorizeConfig, plan: VideoPlan, references: list[ReferenceImage]) -> HintWindows:
    """The run's reference hints, built window by window as the stages ask for them.

    A frame range also reads the frames between it and any reference outside it within reach
    (see ``reach``), so a chunk's hints, and so its colours, are a whole run's.

    Args:
        cfg: the run's options.
        plan: the run's plan.
        references: the references read at render size (``check_video_run``).

    Returns:
        A ``HintWindows`` (nothing is decoded without references); close it after the run.
    """
    video = plan.info.video
    return HintWindows(plan.references, references, plan.decode_start, plan.end,
                       decode=lambda start, end: iter_frames(cfg.input, plan.info, start, end, cfg.deinterlace),
                       to_luma=lambda y: luma_to_unit(y, video.bit_depth, video.full_range, plan.render))


def run_video(cfg: ColorizeConfig, model: Generator | None = None, info: MediaInfo | None = None) -> RunReport:
    """Colorize a video file (see module docstring).

    Args:
        cfg: the run's options.
        model: a generator to use instead of loading ``cfg.model`` (tests, scripts).
        info: the input already probed with its verdict (resumable runs probe once for all
            their segments); None probes here.

    Returns:
        A ``RunReport``.
    """
    t0 = time.time()

    # 1. Refuse bad options, input, output or model before any work.
    check_options(cfg)  # before probing: bad options fail even without a readable input
    info = info or probe(cfg.input, verdict=True)
    device = pick_device(cfg.device)
    plan, references = check_video_run(cfg, info, model)
    codec = resolve_codec(cfg.codec, info.video, device.type == "cuda", portable=plan.chunk)
    check_output_path(cfg.output, cfg.overwrite, [cfg.input, *(r.path for r in plan.references)])
    check_output_supported(cfg.output, info, codec, copy_streams=not plan.chunk)
    # A chunk records which source and settings made it, so farm and merge never mix chunks.
    stamp = chunk_stamp_for(cfg, codec, model) if plan.chunk else None

    # 2. The model, in natural colour (chroma head) or a style (RGB head's coefficient maps).
    if model is None:
        model, _ = load_generator(cfg.model, device)
    weights = style_code(model.style_names, cfg.style, cfg.strength)
    styled = weights is not None
    generator = ChromaGenerator(model, device, style=weights, head="rgb" if styled else "chroma", maps=styled,
                                compile=cfg.compile)
    if plan.batch_size is None:
        plan.batch_size = generator.auto_batch_size(plan.render, hints=bool(plan.references))
    resizer = luma_on_device(generator, plan)

    # 3. Decode, generate and the after-model chain in threads; encode here, into a temporary file.
    stats = DecodeStats()
    previews: list[tuple[np.ndarray, np.ndarray]] = []
    with atomic_output(cfg.output, overwrite=cfg.overwrite, input_paths=[cfg.input]) as tmp, \
            closing(build_hints(cfg, plan, references)) as hints:
        frame_range = (plan.start, plan.end) if cfg.frames else None
        if codec != cfg.codec and codec in HARDWARE_CODECS:
            log.info("encoding with %s, NVIDIA's hardware encoder (--codec x264 for the software one)", codec)
        with OutputWriter(tmp, info, codec, cfg.crf, video_only=plan.chunk, frame_range=frame_range,
                          deinterlaced=cfg.deinterlace, tags={STAMP_TAG: stamp} if stamp else None) as writer:
            after = AfterModel(ChromaSmoother(cfg.smooth), writer.format.matrix if styled else None)
            stages = Stages()
            decoded, generated, finished = (queue.Queue(QUEUE_FRAMES) for _ in range(3))
            generate_hints, after_hints = hints.reader(), hints.reader()  # both before either stage asks
            stages.spawn("decode", decode_stage, stages, cfg.input, plan, cfg.deinterlace, stats, decoded)
            stages.spawn("generate", generate_stage, stages, plan, generator, generate_hints, resizer, decoded,
                         generated)
            stages.spawn("smooth", after_model_stage, stages, plan, after, after_hints, generated, finished)
            frames_written = _encode(cfg, plan, stages, finished, writer, styled, previews)
            copied = writer.copied_streams

    # 4. The preview sheet, and what the run did.
    preview = None
    if cfg.preview and previews:
        write_contact_sheet(cfg.preview, previews)
        preview = cfg.preview
    # Frames of the written range that are missing; the decoder's own count also covers the
    # smoother's warm-up frames before a chunk's range, which are not written.
    dropped = plan.end - plan.start + 1 - frames_written
    if dropped or stats.concealed or (stats.corrupt_packets and not cfg.frames):
        log.warning("%s: %d corrupt packets skipped, %d frames could not be decoded, at least %d frames concealed "
                    "(decoded with damage patched over)", cfg.input, stats.corrupt_packets, dropped, stats.concealed)
    return RunReport(cfg.output, frames_written, time.time() - t0, stats.corrupt_packets, dropped, stats.concealed,
                     copied, preview)


def _encode(cfg: ColorizeConfig, plan: VideoPlan, stages: Stages, finished: queue.Queue, writer: OutputWriter,
            styled: bool, previews: list) -> int:
    """Turn the finished frames into the output's planes and write them; returns the frames written.

    Stops every stage when done (re-raising a stage's error, which aborts writer and temp file).
    """
    video: VideoStreamInfo = plan.info.video
    fmt = writer.format
    frames_written = 0
    # disable=None: no bar in a log file or pipe (tqdm's own test), only on a terminal.
    bar = tqdm(total=plan.end - plan.start + 1, unit="frame", disable=True if cfg.quiet else None,
               desc=Path(cfg.output).name, dynamic_ncols=True)
    try:
        for frame, _luma, out in stages.drain(finished):
            if styled:
                y, cb, cr = styled_planes(out, frame.y, video.bit_depth, video.full_range, fmt)
            else:
                cb, cr = chroma_to_planes(out, fmt)
                y = output_luma(frame.y, video.bit_depth, video.full_range, fmt)
            writer.write(y, cb, cr, frame.pts, frame.duration)
            frames_written += 1
            bar.update(1)
            if frame.index in plan.preview_indices:
                previews.append(preview_row(frame, video, fmt, y, cb, cr))
    except Stopped:
        pass
    finally:
        bar.close()
        stages.close()
    if frames_written == 0:
        raise InputError(f"{cfg.input}: no frame of the range could be decoded")
    return frames_written


def colorize(cfg: ColorizeConfig, model: Generator | None = None) -> RunReport:
    """Colorize a video or a still image, chosen by what the input is.

    Args:
        cfg: the run's options.
        model: a generator to use instead of loading ``cfg.model``.

    Returns:
        A ``RunReport``.
    """
    if media_kind(cfg.input) == "image":
        return run_image(cfg, model)
    if cfg.resume:
        return run_resumable(cfg, model, render_segment=run_video)
    return run_video(cfg, model)


def colorize_video(src: str, dst: str, model: Generator | str | Path | None = None, **options: Any) -> RunReport:
    """The Python API: colorize ``src`` into ``dst`` with the CLI's options as keywords.

    Args:
        src: input video or image.
        dst: output path.
        model: a model name or path, or an already loaded generator (default: "default").
        **options: ``ColorizeConfig`` fields, e.g. ``codec="ffv1"``, ``smooth=0.5``.

    Returns:
        A ``RunReport``.
    """
    if isinstance(model, (str, Path)):
        options["model"], model = str(model), None
    try:
        cfg = ColorizeConfig(input=str(src), output=str(dst), **options)
    except TypeError as exc:
        raise UsageError(f"colorize_video: {exc}") from None
    return colorize(cfg, model)
