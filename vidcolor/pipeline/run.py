"""One colorize run, video or still image: the stages joined top to bottom.

    decode ──► batch + generate ──► smooth ──► encode
    (thread)   (thread)             (thread)   (calling thread: planes out, progress)

Stages talk through bounded queues, so decode, compute and encode overlap and memory stays
flat however long the film. Any stage's error, Ctrl-C or SIGTERM stops every stage; the
output is written under a temporary name and renamed only after a clean finish.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vidcolor.color import (
    chroma_codes_to_unit,
    convert_chroma,
    fit_chroma_to_gamut,
    luma_code_range,
    luma_codes_to_unit,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from vidcolor.config import ColorizeConfig
from vidcolor.devices import pick_device
from vidcolor.errors import InputError, OutputError, TimestampError, UsageError
from vidcolor.io.atomic import atomic_output, check_image_output, check_output_path
from vidcolor.io.decode import DecodeStats, Frame, iter_frames
from vidcolor.io.codecs import AUTO, CODECS, HARDWARE_CODECS, crf_unused, portable_codec
from vidcolor.io.encode import OutputFormat, OutputWriter, check_output_supported, depth_loss, resolve_codec, shift_bits
from vidcolor.io.media_files import media_kind
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.probe import probe
from vidcolor.io.stamp import STAMP_TAG
from vidcolor.io.stills import Still, read_still
from vidcolor.io.timing import clamp_frame_range, parse_frame_range
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator, model_style_names
from vidcolor.pipeline.batch import LumaResizer, luma_to_unit, make_batch, render_shape, upsample_chroma_codes
from vidcolor.pipeline.generate import ChromaGenerator, Pending
from vidcolor.pipeline.hint_windows import HintReader, HintWindows
from vidcolor.pipeline.reference import Reference, ReferenceImage, blend, parse_reference, read_references
from vidcolor.pipeline.smooth import ChromaSmoother, warmup_frames
from vidcolor.pipeline.style import style_code, style_offsets, styled_planes

log = logging.getLogger("vidcolor")
MODEL_MATRIX = "bt601"  # the model's fixed colour space (see vidcolor.color)
QUEUE_FRAMES = 16  # frames buffered between two stages
PREVIEW_FRAMES = 4
_END = object()  # end-of-stream marker passed down the queues


@dataclass
class RunReport:
    """What a run did, for the CLI's summary line and for scripts.

    Attributes:
        output: the file written.
        frames: frames written.
        seconds: wall time.
        corrupt_packets: packets the decoder skipped.
        dropped: frames of the range that could not be decoded.
        concealed: frames decoded with damage the decoder patched over.
        copied_streams: audio/subtitle/data streams copied.
        preview: the contact sheet written, if any.
        rendered: frames rendered by this run when fewer than ``frames`` (a resumed run kept
            the rest from before); None when every frame was rendered now.
    """

    output: str
    frames: int
    seconds: float
    corrupt_packets: int = 0
    dropped: int = 0
    concealed: int = 0
    copied_streams: int = 0
    preview: str | None = None
    rendered: int | None = None

    @property
    def fps(self) -> float:
        """Frames rendered per second of this run (a resumed run counts only its own frames)."""
        done = self.frames if self.rendered is None else self.rendered
        return done / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was interrupted."""


class Stages:
    """Threads joined by bounded queues, with one stop flag for all of them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Start ``target(*args)`` in a thread; its exception stops every stage."""

        def guarded() -> None:
            try:
                target(*args)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                self.errors.append(exc)
                self.stop.set()

        thread = threading.Thread(target=guarded, name=f"vidcolor-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def put(self, q: queue.Queue, item: Any) -> None:
        """Put with back-pressure, giving up when the run stops."""
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        """Get, giving up when the run stops."""
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def drain(self, q: queue.Queue) -> Iterator[Any]:
        """Items of ``q`` until the end marker."""
        while (item := self.get(q)) is not _END:
            yield item

    def close(self) -> None:
        """Stop every stage and wait for its thread; re-raise the first stage error."""
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]


# ----- planes <-> model space ---------------------------------------------------------------


def chroma_to_planes(chroma: np.ndarray, fmt: OutputFormat) -> tuple[np.ndarray, np.ndarray]:
    """Model chroma at render size to the output's Cb/Cr planes (size, matrix, range, depth).

    Args:
        chroma: ``(2, h, w)`` float32 BT.601 chroma in [-0.5, 0.5].
        fmt: the output format.

    Returns:
        (cb, cr) code planes at ``fmt.chroma_size`` in ``fmt.dtype``.
    """
    # Matrix conversion of chroma does not depend on luma (grey maps to zero chroma in every
    # matrix), so a zero luma stands in for the stream's; being linear, it is done at render
    # size, before upsampling.
    c = convert_chroma(torch.zeros(1, *chroma.shape[1:]), torch.from_numpy(chroma), MODEL_MATRIX, fmt.matrix)
    codes = upsample_chroma_codes(c.numpy(), fmt.chroma_size, fmt.bit_depth, fmt.full_range, fmt.dtype)
    return codes[0], codes[1]


def output_luma(y: np.ndarray, bit_depth: int, full_range: bool, fmt: OutputFormat) -> np.ndarray:
    """The source's Y plane as the output's: its own codes, only shifted to the output depth.

    Where the output's range differs from the source's (a full-range source, e.g. RGB or JPEG
    range, written as ProRes or as FFV1 in AVI, which are limited) the codes are rescaled
    instead, so the picture's luma stays the source's.

    Args:
        y: ``(H, W)`` the source's luma codes.
        bit_depth: the source's bit depth.
        full_range: the source's range.
        fmt: the output format.

    Returns:
        ``(H, W)`` luma codes in ``fmt.dtype``.
    """
    if full_range == fmt.full_range:
        return shift_bits(y, bit_depth, fmt.bit_depth)
    lo, span = luma_code_range(bit_depth, full_range)
    out_lo, out_span = luma_code_range(fmt.bit_depth, fmt.full_range)
    codes = (y.astype(np.float32) - lo) * (out_span / span) + out_lo
    return np.clip(np.round(codes), 0, (1 << fmt.bit_depth) - 1).astype(fmt.dtype)


def planes_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int, full_range: bool, matrix: str, width: int) -> np.ndarray:
    """Code planes to an 8-bit RGB image of the given width (for previews).

    Args:
        y: ``(H, W)`` luma codes.
        cb: chroma codes at any size.
        cr: same size as ``cb``.
        bit_depth: depth of the codes.
        full_range: range of the codes.
        matrix: the stream's matrix.
        width: output width (height keeps the aspect).

    Returns:
        ``(h, width, 3)`` uint8 RGB.
    """
    h = max(1, round(y.shape[0] * width / y.shape[1]))
    ys = cv2.resize(y.astype(np.float32), (width, h), interpolation=cv2.INTER_AREA)
    cbs = cv2.resize(cb.astype(np.float32), (width, h), interpolation=cv2.INTER_LINEAR)
    crs = cv2.resize(cr.astype(np.float32), (width, h), interpolation=cv2.INTER_LINEAR)
    luma = luma_codes_to_unit(torch.from_numpy(ys), bit_depth, full_range)[None]
    chroma = chroma_codes_to_unit(torch.from_numpy(np.stack((cbs, crs))), bit_depth, full_range)
    rgb = ycbcr_to_rgb(torch.cat((luma, chroma)), matrix).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_contact_sheet(path: str | Path, rows: list[tuple[np.ndarray, ...]]) -> None:
    """Write rows of images side by side as one image (atomically; PNG or JPEG by extension).

    Args:
        path: the image to write.
        rows: tuples of uint8 RGB images (e.g. input, output[, truth]); images in a row share
            their height.
    """
    lines = []
    for images in rows:
        spacer = np.full((images[0].shape[0], 4, 3), 255, np.uint8)
        lines.append(np.concatenate([x for img in images for x in (img, spacer)][:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    gap = np.full((4, width, 3), 255, np.uint8)
    sheet = np.concatenate([x for line in lines for x in (line, gap)][:-1], axis=0)
    suffix = Path(path).suffix.lower() or ".png"
    with atomic_output(path, overwrite=True) as tmp:
        ok, data = cv2.imencode(suffix, sheet[..., ::-1])
        if not ok:
            raise OutputError(f"{path}: cannot write a contact sheet as {suffix!r} (use .png or .jpg)")
        data.tofile(str(tmp))


# ----- the video run ------------------------------------------------------------------------


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


MAX_CRF = 51  # x264's and x265's CRF scale and NVENC's cq all end at 51


def _check_options(cfg: ColorizeConfig) -> None:
    if cfg.codec not in CODECS and cfg.codec != AUTO:
        raise UsageError(f"unknown --codec {cfg.codec!r} (valid: {AUTO}, {', '.join(CODECS)})")
    if not 0.0 <= cfg.smooth < 1.0:
        raise UsageError(f"--smooth must be in [0, 1), got {cfg.smooth}")
    if not 0.0 <= cfg.strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {cfg.strength}")
    if cfg.style is not None and cfg.references:
        raise UsageError("--reference steers natural colour; it cannot be combined with --style")
    if cfg.crf is not None:
        if not 0 <= cfg.crf <= MAX_CRF:  # x264 would clamp 100 to 51 silently, x265 fail mid-run
            raise UsageError(f"--crf must be 0 (best) to {MAX_CRF}, got {cfg.crf}")
        if reason := crf_unused(cfg.codec):
            log.warning("--crf has no effect with --codec %s (%s)", cfg.codec, reason)


def _batch_size(cfg: ColorizeConfig) -> int | None:
    if cfg.batch_size == "auto":
        return None  # ChromaGenerator.auto_batch_size decides, once the model is on its device
    try:
        size = int(cfg.batch_size)
    except ValueError:
        size = 0
    if size < 1:
        raise UsageError(f"--batch-size must be a positive integer or 'auto', got {cfg.batch_size!r}")
    return size


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
    warm = warmup_frames(cfg.smooth) if cfg.smooth > 0 else 0
    count = end - start + 1
    step = max(count // PREVIEW_FRAMES, 1)
    previews = {start + step // 2 + i * step for i in range(PREVIEW_FRAMES)} if cfg.preview else set()
    return VideoPlan(
        info=info,
        start=start,
        end=end,
        decode_start=max(0, start - warm),
        render=render_shape(video.height, video.width, cfg.render_size),
        batch_size=_batch_size(cfg),
        chunk=cfg.frames is not None,
        preview_indices={i for i in previews if i <= end},
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
    _check_options(cfg)
    plan = plan_video(cfg, info)
    if not plan.chunk:  # chunks: their job warned
        _warn_what_the_output_changes(cfg, info)
    references = read_references(plan.references, plan.render, info.video.rotation)
    style_code(model_style_names(cfg.model if model is None else model), cfg.style, cfg.strength)
    if cfg.preview:  # written after the whole run: a bad path must not wait until then
        check_image_output(cfg.preview, cfg.overwrite, [cfg.input, *(r.path for r in plan.references)],
                           what="--preview", output_paths=[cfg.output])
    return plan, references


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


def _decode_stage(stages: Stages, cfg: ColorizeConfig, plan: VideoPlan, stats: DecodeStats, out: queue.Queue) -> None:
    for frame in iter_frames(cfg.input, plan.info, plan.decode_start, plan.end, cfg.deinterlace, stats):
        stages.put(out, frame)
    stages.put(out, _END)


def luma_on_device(generator: ChromaGenerator, plan: VideoPlan) -> LumaResizer | None:
    """The resizer that makes render-size luma on the model's device, where that pays: on CUDA,
    for videos larger than the render size (None: the host resizes, ``luma_to_unit``).

    Args:
        generator: the run's generator.
        plan: the run's plan.

    Returns:
        A ``LumaResizer`` or None.
    """
    video = plan.info.video
    size = (video.height, video.width)
    if not (generator.cuda and LumaResizer.applies(size, plan.render)):
        return None
    return LumaResizer(size, plan.render, video.bit_depth, video.full_range, generator.device)


def _generate_stage(stages: Stages, plan: VideoPlan, generator: ChromaGenerator, hints: HintReader,
                    inq: queue.Queue, out: queue.Queue) -> None:
    video = plan.info.video
    pin = generator.cuda
    resizer = luma_on_device(generator, plan)
    pending: Pending | None = None

    def emit(p: Pending) -> None:
        batch, chroma = p.result()
        lumas = batch.luma.numpy()
        for i, (frame, c) in enumerate(zip(batch.items, chroma)):
            stages.put(out, (frame, lumas[i, 0], c))

    items: list[Frame] = []
    lumas: list[np.ndarray] = []
    frames = stages.drain(inq)
    while True:
        frame = next(frames, None)
        if frame is not None:
            items.append(frame)
            if resizer is None:
                lumas.append(luma_to_unit(frame.y, video.bit_depth, video.full_range, plan.render))
        if items and (len(items) == plan.batch_size or frame is None):
            codes = [f.y for f in items] if resizer is not None else None
            batch = make_batch(items, lumas, [hints.get(f.index) for f in items], pin, codes, plan.render)
            submitted = generator.submit(batch, resizer)
            if pending is not None:
                emit(pending)  # the previous batch's copy-out overlapped this batch's compute
            pending, items, lumas = submitted, [], []
        if frame is None:
            break
    if pending is not None:
        emit(pending)
    stages.put(out, _END)


def _smooth_stage(stages: Stages, plan: VideoPlan, alpha: float, hints: HintReader, style_matrix: str | None,
                  inq: queue.Queue, out: queue.Queue) -> None:
    smoother = ChromaSmoother(alpha)
    for frame, luma, chroma in stages.drain(inq):
        # The reference is blended after smoothing so a hand-coloured frame comes out as given.
        smoothed = blend(smoother(luma, chroma), hints.get(frame.index))
        if style_matrix is not None:  # style mode smooths coefficient maps: apply them now
            smoothed = style_offsets(smoothed, luma, style_matrix)
        if frame.index >= plan.start:  # warm-up frames only prime the smoother
            stages.put(out, (frame, luma, smoothed))
    stages.put(out, _END)


def chunk_stamp_for(cfg: ColorizeConfig, codec: str, model: Generator | None) -> str:
    """The stamp of a chunk (``vidcolor.io.stamp``): the one farm handed down, else computed
    from the options.

    Args:
        cfg: the run's options.
        codec: the codec the chunk is written with (not ``"auto"``).
        model: the loaded generator, or None to identify ``cfg.model`` by its description.

    Returns:
        The stamp text.
    """
    if cfg.chunk_stamp:
        return cfg.chunk_stamp
    from vidcolor.farm.chunks import chunk_stamp, model_identity, render_settings

    identity = model_identity(model if model is not None else cfg.model)
    return chunk_stamp(cfg.input, render_settings(replace(cfg, codec=codec), identity))


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
    _check_options(cfg)  # before probing: bad options fail even without a readable input
    info = info or probe(cfg.input, verdict=True)
    device = pick_device(cfg.device)
    plan, references = check_video_run(cfg, info, model)
    codec = resolve_codec(cfg.codec, info.video, device.type == "cuda", portable=plan.chunk)
    check_output_path(cfg.output, cfg.overwrite, [cfg.input, *(r.path for r in plan.references)])
    check_output_supported(cfg.output, info, codec, copy_streams=not plan.chunk)
    # A chunk records which source and settings made it, so farm and merge never mix chunks.
    stamp = chunk_stamp_for(cfg, codec, model) if plan.chunk else None
    if model is None:
        model, _ = load_generator(cfg.model, device)
    weights = style_code(model.style_names, cfg.style, cfg.strength)
    styled = weights is not None
    generator = ChromaGenerator(model, device, style=weights, head="rgb" if styled else "chroma", maps=styled,
                                compile=cfg.compile)
    if plan.batch_size is None:
        plan.batch_size = generator.auto_batch_size(plan.render, hints=bool(plan.references))
    video = info.video
    stats = DecodeStats()
    previews: list[tuple[np.ndarray, np.ndarray]] = []
    frames_written = 0
    with atomic_output(cfg.output, overwrite=cfg.overwrite, input_paths=[cfg.input]) as tmp, \
            closing(build_hints(cfg, plan, references)) as hints:
        frame_range = (plan.start, plan.end) if cfg.frames else None
        if codec != cfg.codec and codec in HARDWARE_CODECS:
            log.info("encoding with %s, NVIDIA's hardware encoder (--codec x264 for the software one)", codec)
        with OutputWriter(tmp, info, codec, cfg.crf, video_only=plan.chunk, frame_range=frame_range,
                          deinterlaced=cfg.deinterlace, tags={STAMP_TAG: stamp} if stamp else None) as writer:
            fmt = writer.format
            stages = Stages()
            decoded, generated, smoothed = (queue.Queue(QUEUE_FRAMES) for _ in range(3))
            generate_hints, smooth_hints = hints.reader(), hints.reader()  # both before either stage asks
            # disable=None: no bar in a log file or pipe (tqdm's own test), only on a terminal.
            bar = tqdm(total=plan.end - plan.start + 1, unit="frame", disable=True if cfg.quiet else None, desc=Path(cfg.output).name, dynamic_ncols=True)
            try:
                stages.spawn("decode", _decode_stage, stages, cfg, plan, stats, decoded)
                stages.spawn("generate", _generate_stage, stages, plan, generator, generate_hints, decoded, generated)
                stages.spawn("smooth", _smooth_stage, stages, plan, cfg.smooth, smooth_hints, fmt.matrix if styled else None,
                             generated, smoothed)
                for frame, luma, out in stages.drain(smoothed):
                    if styled:
                        y, cb, cr = styled_planes(out, frame.y, video.bit_depth, video.full_range, fmt)
                    else:
                        cb, cr = chroma_to_planes(out, fmt)
                        y = output_luma(frame.y, video.bit_depth, video.full_range, fmt)
                    writer.write(y, cb, cr, frame.pts, frame.duration)
                    frames_written += 1
                    bar.update(1)
                    if frame.index in plan.preview_indices:
                        previews.append(_preview_row(frame, video, fmt, y, cb, cr))
            except _Stopped:
                pass
            finally:
                bar.close()
                stages.close()  # re-raises a stage's error, which aborts writer and temp file
            if frames_written == 0:
                raise InputError(f"{cfg.input}: no frame of the range could be decoded")
            copied = writer.copied_streams
    preview = None
    if cfg.preview and previews:
        write_contact_sheet(cfg.preview, previews)
        preview = cfg.preview
    # Frames of the written range that are missing; the decoder's own count also covers the
    # smoother's warm-up frames before a chunk's range, which are not written.
    dropped = plan.end - plan.start + 1 - frames_written
    report = RunReport(cfg.output, frames_written, time.time() - t0, stats.corrupt_packets, dropped,
                       stats.concealed, copied, preview)
    if dropped or stats.concealed or (stats.corrupt_packets and not cfg.frames):
        log.warning("%s: %d corrupt packets skipped, %d frames could not be decoded, at least %d frames concealed "
                    "(decoded with damage patched over)", cfg.input, stats.corrupt_packets, dropped, stats.concealed)
    return report


def _preview_row(frame: Frame, video, fmt: OutputFormat, y, cb, cr) -> tuple[np.ndarray, np.ndarray]:
    width = 480
    if frame.cb is not None:
        grey_in = planes_to_rgb(frame.y, frame.cb, frame.cr, video.bit_depth, video.full_range, video.matrix, width)
    else:
        mid = np.full((1, 1), 1 << (video.bit_depth - 1), np.float32)
        grey_in = planes_to_rgb(frame.y, mid, mid, video.bit_depth, video.full_range, video.matrix, width)
    out = planes_to_rgb(y, cb, cr, fmt.bit_depth, fmt.full_range, fmt.matrix, width)
    return grey_in, out


# ----- still images -------------------------------------------------------------------------


def colorize_luma(model: Generator, luma: torch.Tensor, render_size: int, device: torch.device,
                  hint_chroma: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None,
                  style: torch.Tensor | None = None) -> torch.Tensor:
    """Colorize (or stylise) one full-resolution luma image: the model runs at render size and
    its coefficients are applied to the full-resolution luma (edges stay sharp at any size).

    Args:
        model: the generator.
        luma: [1, 1, H, W] normalised luma.
        render_size: the model's short side.
        device: where to run.
        hint_chroma: [1, 2, h, w] hints at render size, or None.
        hint_mask: [1, 1, h, w], or None.
        style: [num_styles] style weights for style mode (RGB out), or None (chroma out).

    Returns:
        [1, 2, H, W] BT.601 chroma, or [1, 3, H, W] RGB in style mode.
    """
    h, w = luma.shape[-2:]
    rh, rw = render_shape(h, w, render_size)
    m = model.multiple
    rh, rw = -(-rh // m) * m, -(-rw // m) * m  # no padding inside the model: coefficients cover the frame
    small = torch.nn.functional.interpolate(luma, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    head = "chroma" if style is None else "rgb"
    weights = None if style is None else style[None].to(device)
    with torch.inference_mode():
        coeffs = model.coefficients(small.to(device), hint_chroma, hint_mask, style=weights, heads=(head,))[head]
        return model.apply_coefficients(coeffs, luma.to(device), head).cpu()


def colorize_rgb(model: Generator, luma: torch.Tensor, render_size: int, device: torch.device,
                 style: torch.Tensor | None = None) -> np.ndarray:
    """A still image's colour result: natural colour (chroma head, kept in gamut) or a style.

    Args:
        model: the generator.
        luma: [1, 1, H, W] normalised luma.
        render_size: the model's short side.
        device: where to run.
        style: style weights from ``style_code``, or None for natural colour.

    Returns:
        ``(H, W, 3)`` float32 RGB in [0, 1].
    """
    if style is not None:
        rgb = colorize_luma(model, luma, render_size, device, style=style)
    else:
        chroma = fit_chroma_to_gamut(luma, colorize_luma(model, luma, render_size, device))
        rgb = ycbcr_to_rgb(torch.cat((luma, chroma), dim=1))
    return rgb[0].clamp(0, 1).permute(1, 2, 0).numpy()


# Image types that store 16 bits a sample, and those that store transparency (OpenCV's writers).
_SIXTEEN_BIT_IMAGES = (".png", ".tif", ".tiff")
_ALPHA_IMAGES = (".png", ".tif", ".tiff", ".webp")


def _still_image(rgb: np.ndarray, source: Still, suffix: str, name: str) -> np.ndarray:
    """The colour result as OpenCV writes it: the source's bit depth and transparency kept
    where the output type can store them (a 16-bit scan stays 16-bit, a cut-out keeps its alpha).

    Args:
        rgb: ``(H, W, 3)`` float RGB in [0, 1].
        source: the still as read.
        suffix: the output's extension.
        name: the output, for the warning.

    Returns:
        ``(H, W, 3 or 4)`` uint8 or uint16 BGR(A).
    """
    sixteen = source.bit_depth == 16 and suffix in _SIXTEEN_BIT_IMAGES
    if source.bit_depth == 16 and not sixteen:
        log.warning("%s: %s stores 8 bits a sample; the 16-bit source is rounded (write .png or .tif to keep 16)",
                    name, suffix)
    top, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    planes = [rgb[..., ::-1]]
    if source.alpha is not None:
        if suffix in _ALPHA_IMAGES:
            planes.append(source.alpha[..., None])
        else:
            log.warning("%s: %s stores no transparency; the source's alpha is dropped (write .png, .tif or .webp to keep it)",
                        name, suffix)
    return (np.concatenate(planes, axis=2) * top + 0.5).astype(dtype)


def run_image(cfg: ColorizeConfig, model: Generator | None = None) -> RunReport:
    """Colorize a still image; the output keeps the input's size and luma.

    Args:
        cfg: options (input, output, model, style, strength, render size, device, overwrite, force).
        model: a generator to use instead of loading ``cfg.model``.

    Returns:
        A ``RunReport`` with one frame.
    """
    t0 = time.time()
    _check_options(cfg)
    for name, given in (("--frames", cfg.frames), ("--reference", cfg.references), ("--preview", cfg.preview)):
        if given:  # silently ignoring them would leave the user believing they took effect
            raise UsageError(f"{name} is for videos; {cfg.input} is a still image")
    # These only shape how a video is encoded or rendered; a batch may pass them to every
    # file of a folder, so a still takes them with a note instead of a refusal.
    unused = [name for name, given in (("--codec", cfg.codec != AUTO), ("--crf", cfg.crf is not None),
                                       ("--deinterlace", cfg.deinterlace), ("--resume", cfg.resume))
              if given]
    if unused:
        log.warning("%s: %s %s no effect on a still image", cfg.input, ", ".join(unused),
                    "has" if len(unused) == 1 else "have")
    check_image_output(cfg.output, cfg.overwrite, [cfg.input])
    still = read_still(cfg.input)
    ycc = rgb_to_ycbcr(torch.from_numpy(still.rgb).permute(2, 0, 1))
    if float(ycc[1:].abs().mean()) > 0.02 and not cfg.force:
        raise UsageError(f"{cfg.input} looks like a colour image; pass --force to recolour it from its luma")
    device = pick_device(cfg.device)
    if model is None:
        model, _ = load_generator(cfg.model, device)
    luma = ycc[:1][None]
    out = colorize_rgb(model, luma, cfg.render_size, device, style_code(model.style_names, cfg.style, cfg.strength))
    suffix = Path(cfg.output).suffix.lower() or ".png"
    image = _still_image(out, still, suffix, cfg.output)
    with atomic_output(cfg.output, overwrite=cfg.overwrite, input_paths=[cfg.input]) as tmp:
        ok, data = cv2.imencode(suffix, image)
        if not ok:
            raise OutputError(f"{cfg.output}: OpenCV could not encode the image as {suffix!r}")
        data.tofile(str(tmp))
    return RunReport(cfg.output, 1, time.time() - t0)


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
        from vidcolor.pipeline.resumable import run_resumable  # it renders segments through this module

        return run_resumable(cfg, model)
    return run_video(cfg, model)


def colorize_video(src: str, dst: str, model: Generator | str | Path | None = None, **options: Any) -> RunReport:
    """The Python API: colorize ``src`` into ``dst`` with the CLI's options as keywords.

    Args:
        src: input video or image.
        dst: output path.
        model: a model name or path, or an already loaded generator (default: "default").
        **options: ``ColorizeConfig`` fields, e.g. ``codec="ffv1"``, ``smooth=0.8``.

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
