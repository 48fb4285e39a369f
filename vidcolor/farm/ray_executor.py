"""``farm``: colorize one film as frame-range chunks on a Ray cluster, then merge them.

    plan chunks ──► skip finished ones ──► Ray tasks (colorize --frames S-E) ──► merge
    (demux-only     (a chunk under its      (1 CPU each, 1 GPU where the          (remux, no
     frame count)    final name is done)     cluster has GPUs, retried when a       re-encode, the
                                             worker dies; small reports back)       source's audio)

Each task calls ``vidcolor.pipeline.run.colorize_video`` in the worker process: it decodes
the smoother's warm-up frames before its range and writes a video-only chunk with the
source's timestamps under a temporary name, renamed when complete. Frames never travel
through Ray; only paths and small reports do, so every worker must see the source and the
chunk folder under the same paths (one machine, or shared storage on a cluster).

Running ``farm`` again after a crash or Ctrl-C renders only the missing chunks.

Ray is optional (``pip install vidcolor[farm]``) and imported only inside functions here.

Test hook (for tests and for rehearsing failures on a farm, not for production): the driver
reads these environment variables and hands them to the tasks it submits:

``VIDCOLOR_FARM_FAIL_CHUNK=S[,S2...]``
    the task for the chunk starting at frame S fails right after writing its first frame;
``VIDCOLOR_FARM_FAIL_MODE=raise|exit``
    ``raise`` (default) raises ``InjectedFailure`` (a task error: no retry, the temporary file
    is removed); ``exit`` kills the worker process with ``os._exit(1)`` as a crash or an
    out-of-memory kill would (Ray retries it up to ``max_retries`` times; the half-written
    temporary file stays until the next ``farm`` run removes it);
``VIDCOLOR_FARM_FAIL_ONCE=1``
    fail only the first attempt (a marker file in the chunk folder remembers it), so a retry
    succeeds.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tqdm import tqdm

from vidcolor.config import DEFAULT_RENDER_SIZE, ColorizeConfig
from vidcolor.errors import Interrupted, UsageError, VidcolorError
from vidcolor.farm.chunks import (FAILED_ONCE_SUFFIX, ChunkLayout, FrameRange, check_manifest, chunk_stamp, folder_lock,
                                  format_range, job_settings, model_identity, plan_chunks, remove_chunks,
                                  render_settings)
from vidcolor.io.atomic import stale_partials
from vidcolor.io.codecs import portable_codec
from vidcolor.wording import count_of

log = logging.getLogger("vidcolor")

FAIL_CHUNK_ENV = "VIDCOLOR_FARM_FAIL_CHUNK"
FAIL_MODE_ENV = "VIDCOLOR_FARM_FAIL_MODE"
FAIL_ONCE_ENV = "VIDCOLOR_FARM_FAIL_ONCE"

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # tasks exchange paths and small reports only
DEFAULT_MAX_RETRIES = 3


# ----- errors and reports -------------------------------------------------------------------


class FarmError(VidcolorError):
    """Some chunks failed; the finished ones are kept, and running ``farm`` again renders
    only the others.

    Attributes:
        failed: ``((start, end), reason)`` per failed chunk.
        exit_code: the failures' own exit code when they share one (e.g. 5 for a model
            error), else 1.
    """

    exit_code = 1

    def __init__(self, message: str, failed: Sequence[tuple[FrameRange, str]] = (), exit_code: int = 1):
        super().__init__(message)
        self.failed = list(failed)
        self.exit_code = exit_code

    def __reduce__(self):  # picklable despite the extra arguments
        return (type(self), (str(self), self.failed, self.exit_code))


class InjectedFailure(RuntimeError):
    """Raised by the test hook (``VIDCOLOR_FARM_FAIL_CHUNK``) inside a chunk task."""


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk task reports back (never frames).

    Attributes:
        start, end: the chunk's frame range.
        path: the chunk file.
        frames: frames written (0 when ``reused``).
        seconds: the task's wall time.
        reused: the chunk was already complete when the task started (a retry after a lost reply).
        worker: ``host:pid`` of the process that ran it.
    """

    start: int
    end: int
    path: str
    frames: int
    seconds: float
    reused: bool
    worker: str


@dataclass
class FarmReport:
    """What ``run_farm`` did.

    Attributes:
        output: the merged file.
        frames: frames in it.
        chunks: chunks in the plan.
        rendered: ranges rendered by this run.
        reused: ranges already finished before this run (skipped).
        chunk_dir: the chunk folder.
        kept_chunks: whether the chunk files were kept after the merge.
        copied_streams: audio/subtitle/data streams copied from the source.
        seconds: total wall time.
        startup_seconds: time spent starting or connecting to Ray.
        render_seconds: time from the first task submitted to the last one finished.
        merge_seconds: time spent merging.
        workers: the bound on concurrent tasks (None: as many as the cluster schedules).
        results: the tasks' reports, in completion order.
    """

    output: str
    frames: int
    chunks: int
    rendered: list[FrameRange]
    reused: list[FrameRange]
    chunk_dir: str
    kept_chunks: bool
    copied_streams: int
    seconds: float
    startup_seconds: float = 0.0
    render_seconds: float = 0.0
    merge_seconds: float = 0.0
    workers: int | None = None
    results: list[ChunkResult] = field(default_factory=list)


# ----- the test hook ------------------------------------------------------------------------


@dataclass(frozen=True)
class FailHook:
    """A failure injected into one chunk task (see the module docstring)."""

    mode: str = "raise"  # "raise" or "exit"
    once: bool = False

    @staticmethod
    def for_chunk(start: int, environ: Mapping[str, str] | None = None) -> "FailHook | None":
        """The hook for the chunk starting at ``start``, from the environment, or None.

        Args:
            start: the chunk's first frame.
            environ: the environment (default ``os.environ``).

        Raises:
            UsageError: for malformed hook variables.
        """
        env = os.environ if environ is None else environ
        text = env.get(FAIL_CHUNK_ENV, "").strip()
        if not text:
            return None
        try:
            starts = {int(part) for part in text.split(",") if part.strip()}
        except ValueError:
            raise UsageError(f"{FAIL_CHUNK_ENV} must be chunk start frames such as 0 or 0,1200; got {text!r}") from None
        if start not in starts:
            return None
        mode = env.get(FAIL_MODE_ENV, "raise").strip() or "raise"
        if mode not in ("raise", "exit"):
            raise UsageError(f"{FAIL_MODE_ENV} must be 'raise' or 'exit', got {mode!r}")
        return FailHook(mode=mode, once=env.get(FAIL_ONCE_ENV, "").strip() not in ("", "0"))

    def fire(self, chunk_path: Path, start: int) -> None:
        """Fail now (unless ``once`` and the chunk has already failed once)."""
        if self.once:
            marker = chunk_path.with_name(f".{chunk_path.stem}{FAILED_ONCE_SUFFIX}")
            if marker.exists():
                return
            marker.touch()
        if self.mode == "exit":
            os._exit(1)  # a hard crash: no cleanup, no exception, the process is gone
        raise InjectedFailure(f"test hook {FAIL_CHUNK_ENV}={start}: chunk failed on purpose")


@contextmanager
def _failure_injected(hook: FailHook | None, chunk_path: Path, start: int) -> Iterator[None]:
    """While active, the colorize run fails right after writing its first frame (mid-chunk)."""
    if hook is None:
        yield
        return
    from vidcolor.pipeline import run

    original = run.OutputWriter

    class FailingWriter(original):  # type: ignore[misc, valid-type]
        def write(self, *args: Any, **kwargs: Any) -> Any:
            result = super().write(*args, **kwargs)
            hook.fire(chunk_path, start)
            return result

    run.OutputWriter = FailingWriter
    try:
        yield
    finally:
        run.OutputWriter = original


# ----- one chunk (runs in a Ray worker, or in-process) --------------------------------------


@dataclass(frozen=True)
class ChunkJob:
    """Everything one chunk task needs, as small picklable values.

    Attributes:
        source: the input video.
        path: the chunk's final path.
        start, end: the frame range (inclusive, 0-based).
        options: ``colorize_video`` keywords (codec, crf, render_size, smooth, device, ...).
        fail: the test hook for this chunk, if any.
    """

    source: str
    path: str
    start: int
    end: int
    options: dict[str, Any]
    fail: FailHook | None = None


_MODEL_CACHE: dict[tuple, Any] = {}  # per worker process: chunks reuse a loaded model


def _generator_for(model: Any, device_name: str) -> Any:
    """A loaded generator: ``model`` itself, or the model named by ``model`` (cached)."""
    if model is None or not isinstance(model, (str, os.PathLike)):
        return model
    from vidcolor.devices import pick_device
    from vidcolor.models.weights import load_generator, resolve_model_path

    device = pick_device(device_name)
    weights, _ = resolve_model_path(model)
    stamp = (weights.stat().st_mtime_ns, weights.stat().st_size) if weights.is_file() else None
    key = (str(model), str(device), stamp)  # a model re-saved under the same name is reloaded
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # one model per worker at a time
        _MODEL_CACHE[key] = load_generator(model, device)[0]
    return _MODEL_CACHE[key]


def render_chunk(job: ChunkJob, model: Any = "default") -> ChunkResult:
    """Render one chunk with ``colorize_video(..., frames="S-E")`` (the body of a Ray task).

    Args:
        job: the chunk.
        model: a model name or path, or a loaded ``Generator``.

    Returns:
        A ChunkResult; a chunk already complete is reported as reused, not rendered again.
    """
    from vidcolor.pipeline.run import colorize_video

    t0 = time.time()
    path = Path(job.path)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if path.is_file():
        return ChunkResult(job.start, job.end, job.path, 0, time.time() - t0, True, worker)
    generator = _generator_for(model, job.options.get("device", "auto"))
    with _failure_injected(job.fail, path, job.start):
        report = colorize_video(job.source, job.path, model=generator, frames=f"{job.start}-{job.end}",
                                quiet=True, overwrite=False, **job.options)
    return ChunkResult(job.start, job.end, job.path, report.frames, time.time() - t0, False, worker)


# ----- Ray ----------------------------------------------------------------------------------


def import_ray():
    """Import Ray, or say how to install it.

    Returns:
        The ``ray`` module.

    Raises:
        UsageError: when Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise UsageError("ray is not installed: pip install vidcolor[farm]") from None
    return ray


def _start_ray(ray, address: str | None, workers: int | None, quiet: bool) -> bool:
    """Start a local Ray instance or connect to ``address``; False when Ray was already running.

    ``ray.init`` installs its own SIGTERM handler (``sys.exit(15)``) and the driver's core
    worker a native one that dumps stacks and aborts (exit 134); ours is put back after it,
    so SIGTERM stays one line and exit code 143. A SIGTERM during start-up is Ray's exit 15,
    turned into the same ``Interrupted``.

    Raises:
        UsageError: when the cluster cannot be reached or started.
        Interrupted: SIGTERM or Ctrl-C while Ray starts.
    """
    if ray.is_initialized():
        log.info("farm: using the Ray instance this process already runs")
        return False
    common = {"log_to_driver": not quiet, "logging_level": logging.WARNING}
    if quiet or not sys.stderr.isatty():
        # Ray colours the raylet's messages (a worker died, a task is retried) with ANSI codes
        # even when they go to a log file; this variable is Ray's own switch for that.
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    # Ray warns on every start that a local instance uses token authentication: nothing the
    # user has to act on for the instance farm starts and stops itself.
    token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    token_level = token_log.level
    if address is None:
        token_log.setLevel(logging.ERROR)
    ours = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if address is None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            cpus = workers or os.cpu_count() or 1
            ray.init(num_cpus=max(cpus, 1), num_gpus=gpus, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        else:
            ray.init(address=address, **common)
    except SystemExit as exc:  # Ray's SIGTERM handler, installed at the start of ray.init
        if exc.code == signal.SIGTERM:
            raise Interrupted("terminated (SIGTERM)", signal_exit_code=143) from None
        raise
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UsageError(f"cannot start or reach {where}: {exc}") from exc
    finally:
        token_log.setLevel(token_level)
        for sig, handler in ours.items():
            if handler is not None:  # None: set outside Python; nothing of ours to put back
                signal.signal(sig, handler)
    return True


def _session_dir(ray) -> str | None:
    """The local Ray session folder (``/tmp/ray/session_...``), or None when not known."""
    try:
        node = ray._private.worker._global_node
        return node.get_session_dir_path() if node is not None else None
    except Exception:  # noqa: BLE001 - a private API: without it the folder just stays
        return None


def _remove_session(session: str | None) -> None:
    """Delete the session folder of a local Ray instance we started and stopped.

    Ray leaves one per run (logs, sockets), and they pile up in /tmp. Only a folder named
    ``session_*`` is removed, and ``session_latest`` only when it points to it.
    """
    if not session or not Path(session).name.startswith("session_"):
        return
    shutil.rmtree(session, ignore_errors=True)
    latest = Path(session).parent / "session_latest"
    try:
        if latest.is_symlink() and Path(os.readlink(latest)).name == Path(session).name:
            latest.unlink()
    except OSError:
        pass


@contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """Hold SIGTERM and SIGINT back while the block runs (stopping Ray must not be cut
    short); the signals that arrived are listed in the yielded list.

    On the way out our handlers are set again, also at the C level: ``ray.shutdown`` resets
    SIGTERM to the default action there, which would kill a later merge without a word.
    """
    caught: list[int] = []
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handlers[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _task_gpus(ray, device: str) -> int:
    """1 GPU per task where the cluster has GPUs (and the device is not forced to CPU)."""
    if device == "cpu":
        return 0
    has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    if device.startswith("cuda") and not has_gpu:
        raise UsageError(f"--device {device} asked for, but the Ray cluster has no GPU; use --device auto or cpu")
    return 1 if has_gpu else 0


def _describe_failure(ray, exc: BaseException, retries: int) -> tuple[str, int]:
    """One line and an exit code for a failed task."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    if cause is not None:
        if isinstance(cause, VidcolorError):
            return str(cause), cause.exit_code
        return f"{type(cause).__name__}: {cause}", 1
    died = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            getattr(ray.exceptions, "OutOfMemoryError", ray.exceptions.WorkerCrashedError))
    if isinstance(exc, died):
        return f"the worker process died ({type(exc).__name__}; tried {retries + 1} times)", 1
    if isinstance(exc, VidcolorError):
        return str(exc), exc.exit_code
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}", 1


# ----- the farm -----------------------------------------------------------------------------


def _task_model(model: Any) -> Any:
    """The model reference handed to tasks: names as given, paths made absolute."""
    if model is None or not isinstance(model, (str, os.PathLike)):
        return model
    text = str(model)
    path = Path(os.path.expanduser(text))
    if os.sep in text or path.exists() or path.with_suffix(".json").exists():
        return str(path.resolve())
    return text


def _absolute_reference(text: str) -> str:
    """``IMG[@FRAME]`` with IMG made absolute (the frame, when given, kept as it was)."""
    from vidcolor.pipeline.reference import parse_reference

    ref = parse_reference(text)
    frame = f"@{ref.frame}" if text != ref.path else ""
    return f"{Path(ref.path).expanduser().resolve()}{frame}"


def _check_job(cfg: ColorizeConfig, model: Any, chunk_frames: int, workers: int | None, max_retries: int):
    """Refuse bad options and a bad input, output, reference or style before starting Ray:
    the same checks as ``colorize`` (``check_video_run``) plus the farm's own; returns the probe."""
    from vidcolor.io.atomic import check_output_path
    from vidcolor.io.encode import check_hardware_codec, check_output_supported
    from vidcolor.io.media_files import media_kind
    from vidcolor.io.probe import probe
    from vidcolor.pipeline.run import check_video_run

    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be a positive integer, got {chunk_frames!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"--workers must be a positive integer, got {workers!r}")
    if max_retries < 0:
        raise UsageError(f"--max-retries must be 0 or more, got {max_retries}")
    if media_kind(cfg.input) == "image":
        raise UsageError(f"{cfg.input} is a still image; farm renders videos, use colorize for images")
    info = probe(cfg.input, verdict=not cfg.force)
    check_video_run(cfg, info, None if model is None or isinstance(model, (str, os.PathLike)) else model)
    check_output_path(cfg.output, cfg.overwrite, [cfg.input])
    check_hardware_codec(cfg.codec, info.video)  # workers check they have NVENC; the source is checked here
    check_output_supported(cfg.output, info, cfg.codec, copy_streams=True)
    return info


def run_farm(input: str | os.PathLike, output: str | os.PathLike, chunk_frames: int = 1200,
             address: str | None = None, workers: int | None = None, codec: str = "x264",
             model: Any = "default", render_size: int = DEFAULT_RENDER_SIZE, smooth: float = 0.8,
             chunk_dir: str | os.PathLike | None = None, keep_chunks: bool = False, quiet: bool = False, *,
             crf: int | None = None, device: str = "auto", batch_size: str = "auto", compile_model: bool = False,
             style: str | None = None,
             strength: float = 1.0, references: Sequence[str] = (), force: bool = False,
             deinterlace: bool = False, overwrite: bool = False,
             max_retries: int = DEFAULT_MAX_RETRIES) -> FarmReport:
    """Colorize ``input`` as chunks on Ray, skipping finished chunks, and merge into ``output``.

    Args:
        input: the source video (readable by every worker under this path).
        output: the merged file; its extension is also the chunks' container.
        chunk_frames: frames per chunk.
        address: None starts a local Ray instance; ``"auto"`` joins the cluster this machine
            belongs to; ``"ray://HOST:10001"`` connects to a remote cluster. A Ray instance
            already running in this process is used as it is.
        workers: the most chunks rendered at once (None: one per CPU, or per GPU where the
            machine has CUDA, locally; whatever the cluster schedules otherwise).
        codec: a ``--codec`` name (``vidcolor.io.codecs``); ``auto`` is the portable codec,
            x264, and an NVENC codec needs NVENC on every node.
        model: model name or path, or a loaded ``Generator`` (shipped to workers via Ray).
        render_size: the model's short side.
        smooth: temporal chroma smoothing strength.
        chunk_dir: the chunk folder (default ``OUTPUT_STEM.chunks`` beside the output).
        keep_chunks: keep the chunk files after a successful merge.
        quiet: no progress bar and no worker log lines.
        crf, device, batch_size, style, strength, references, force, deinterlace: as for
            ``colorize``.
        compile_model: ``colorize --compile`` on every worker.
        overwrite: replace an existing output.
        max_retries: times Ray re-runs a chunk whose worker process or node died.

    Returns:
        A FarmReport.

    Raises:
        UsageError: bad options, Ray missing or unreachable, a chunk folder of other settings.
        InputError, OutputError, ModelError: as for ``colorize`` and ``merge``.
        FarmError: some chunks failed (the others are kept; run again to finish).
        Interrupted: Ctrl-C or SIGTERM (finished chunks are kept).
    """
    t0 = time.time()
    source, out = str(input), str(output)

    # 1. Refuse bad options, input, output or model before any work.
    ray = import_ray()
    # Every node must write the same encoder's stream or the chunks will not merge: "auto"
    # is the portable codec here (an explicit nvenc codec makes each node check it has NVENC).
    codec = portable_codec(codec)
    # Workers may run elsewhere: give them the references by absolute path, like the source.
    references = tuple(_absolute_reference(text) for text in references)
    whole_film = ColorizeConfig(input=source, output=out, model=str(model) if isinstance(model, (str, os.PathLike)) else "default",
                                style=style, strength=strength, references=references, render_size=render_size,
                                smooth=smooth, codec=codec, crf=crf, device=device, batch_size=str(batch_size),
                                compile=compile_model, overwrite=overwrite, force=force, deinterlace=deinterlace)
    info = _check_job(whole_film, model, chunk_frames, workers, max_retries)
    identity = model_identity(model)

    # 2. Plan the chunks; finished ones (present under their final name, vouched for by the
    #    folder's manifest or their own stamp) are skipped.
    plan = plan_chunks(info.video.frame_count, chunk_frames)
    layout = ChunkLayout.for_job(source, out, chunk_dir)
    settings = render_settings(whole_film, identity)
    stamp = chunk_stamp(source, settings)
    options = {"codec": codec, "crf": crf, "render_size": render_size, "smooth": smooth, "device": device,
               "batch_size": str(batch_size), "compile": compile_model, "style": style, "strength": strength,
               "references": tuple(references), "force": force, "deinterlace": deinterlace, "chunk_stamp": stamp}
    with folder_lock(layout):
        # The manifest is written here, before any chunk, and removed only once no chunk is left.
        # chunk_frames too: a mistyped --chunk-frames is refused here, before any finished chunk
        # of the old plan could be removed as fitting no chunk of the new one.
        check_manifest(layout, job_settings(source, info.video.frame_count, settings, chunk_frames=chunk_frames),
                       stamp=stamp)
        for stale in layout.all_partial_files():  # the lock says no other run is writing them
            log.info("farm: removing %s, left by a worker that stopped mid-chunk", stale.name)
            stale.unlink(missing_ok=True)
        strays = layout.strays(plan)
        if strays:  # vouched for by their stamp alone (no manifest), made with another --chunk-frames
            log.info("farm: removing %s from %s: made with another --chunk-frames, they fit no chunk of this plan",
                     count_of(len(strays), "chunk"), layout.folder)
            for stray in strays:
                stray.unlink(missing_ok=True)
        reused, todo = layout.finished(plan), layout.unfinished(plan)
        if reused:
            log.info("farm: %d of %s already finished in %s", len(reused), count_of(len(plan), "chunk"), layout.folder)
        if todo:
            _note_warmup(smooth, chunk_frames)

        # 3. Render the others as Ray tasks.
        results: list[ChunkResult] = []
        startup = render = 0.0
        if todo:
            jobs = [ChunkJob(source=str(Path(source).resolve()), path=str(layout.path(r).resolve()), start=r[0],
                             end=r[1], options=options, fail=FailHook.for_chunk(r[0])) for r in todo]
            results, startup, render = _render_on_ray(ray, jobs, model, address, workers, device, max_retries,
                                                      len(plan), len(reused), layout, out, quiet)

        # 4. Merge (lossless remux with the source's audio and subtitles), then tidy up.
        t_merge = time.time()
        from vidcolor.io.merge import merge_chunks

        merged = merge_chunks([str(p) for p in layout.paths(plan)], out, audio_from=source, overwrite=overwrite,
                              warn=False)  # _check_job warned before Ray started
        merge_seconds = time.time() - t_merge
        if not keep_chunks:
            remove_chunks(layout, plan)
    return FarmReport(output=out, frames=merged.frames, chunks=len(plan), rendered=list(todo), reused=list(reused),
                      chunk_dir=str(layout.folder), kept_chunks=keep_chunks, copied_streams=merged.copied_streams,
                      seconds=time.time() - t0, startup_seconds=startup, render_seconds=render,
                      merge_seconds=merge_seconds, workers=workers, results=results)


def _note_warmup(smooth: float, chunk_frames: int) -> None:
    from vidcolor.pipeline.smooth import warmup_frames

    warm = warmup_frames(smooth) if smooth > 0 else 0
    if warm and chunk_frames < 4 * warm:
        log.info("farm: each chunk also decodes and smooths %d warm-up frames; chunks of %s "
                 "spend a large share of their time on them (use more --chunk-frames)", warm,
                 count_of(chunk_frames, "frame"))


def _kept(layout: ChunkLayout, jobs: Sequence[ChunkJob], done: int) -> str:
    """What a stopped run says about the chunks it leaves (``done``: finished before it began)."""
    n = done + len(layout.finished([(j.start, j.end) for j in jobs]))
    if n == 0:
        return "no chunk was finished yet"
    return (f"{count_of(n, 'finished chunk')} {'is' if n == 1 else 'are'} kept in {layout.folder}; run the same "
            "command again to render only the missing ones")


def _remove_dead_partials(layout: ChunkLayout, plan: Sequence[FrameRange], wait: float = 3.0) -> None:
    """Remove the partial chunks of workers that are gone (after Ray stopped a local instance,
    its workers exit within moments); a partial whose process still runs is left for the next run."""
    deadline = time.time() + wait
    while True:
        for path in [p for chunk in layout.paths(plan) for p in stale_partials(chunk)]:
            path.unlink(missing_ok=True)
        left = layout.partial_files(plan)
        if not left or time.time() >= deadline:
            return
        time.sleep(0.2)


def _render_on_ray(ray, jobs: list[ChunkJob], model: Any, address: str | None, workers: int | None, device: str,
                   max_retries: int, total: int, done: int, layout: ChunkLayout, output: str,
                   quiet: bool) -> tuple[list[ChunkResult], float, float]:
    """Run the chunk tasks with at most ``workers`` in flight; returns (results, startup s, render s).

    Ctrl-C or SIGTERM (while Ray starts, too) cancel the running tasks, stop Ray and raise
    ``Interrupted`` naming the chunks kept; the partial files of the stopped tasks are removed.
    """
    t0 = time.time()
    plan = [(j.start, j.end) for j in jobs]
    already = ray.is_initialized()  # a Ray instance the caller runs is left running
    session = None
    stopped: Interrupted | None = None
    try:
        _start_ray(ray, address, workers, quiet)
        session = _session_dir(ray) if not already and address is None else None
        startup = time.time() - t0
        gpus = _task_gpus(ray, device)
        model_ref = _task_model(model)
        if model_ref is not None and not isinstance(model_ref, str):
            model_ref = ray.put(model_ref)  # shipped once, not once per task
        task = ray.remote(render_chunk).options(num_cpus=1, num_gpus=gpus, max_retries=max_retries,
                                                retry_exceptions=False)
        results, failed = _run_tasks(ray, task, jobs, model_ref, workers, max_retries, total, done, output, quiet)
        render = time.time() - t0 - startup
    except KeyboardInterrupt:
        stopped = Interrupted("interrupted", signal_exit_code=130)
    except Interrupted as exc:
        stopped = exc
    finally:
        with _signals_deferred() as caught:
            if not already and ray.is_initialized():  # also a start-up cut short by a signal
                ray.shutdown()
                _remove_session(session)
            if stopped is not None:
                _remove_dead_partials(layout, plan)
        if caught and stopped is None:
            sig = caught[0]
            stopped = Interrupted("terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted",
                                  signal_exit_code=143 if sig == signal.SIGTERM else 130)
            _remove_dead_partials(layout, plan)
    if stopped is not None:
        what = "terminated (SIGTERM)" if stopped.exit_code == 143 else "interrupted"
        raise Interrupted(f"{what}; {_kept(layout, jobs, done)}",
                          signal_exit_code=stopped.exit_code) from None
    if failed:
        codes = {code for _, _, code in failed}
        lines = "; ".join(f"{format_range(r)} ({reason})" for r, reason, _ in failed)
        kept = _kept(layout, jobs, done)
        raise FarmError(f"{len(failed)} of {count_of(total, 'chunk')} failed: {lines}. {kept[0].upper()}{kept[1:]}",
                        failed=[(r, reason) for r, reason, _ in failed],
                        exit_code=codes.pop() if len(codes) == 1 else 1)
    return results, startup, render


def _run_tasks(ray, task, jobs: list[ChunkJob], model_ref: Any, workers: int | None, max_retries: int, total: int,
               done: int, output: str, quiet: bool):
    """Submit tasks with back-pressure and collect them as they finish; failures do not stop the others.

    Ctrl-C or SIGTERM cancel the running tasks (their workers are killed) and propagate.
    """
    pending = deque(jobs)
    running: dict[Any, ChunkJob] = {}
    results: list[ChunkResult] = []
    failed: list[tuple[FrameRange, str, int]] = []
    # disable=None: no bar in a log file or pipe (tqdm's own test), only on a terminal.
    bar = tqdm(total=total, initial=done, unit="chunk", desc=Path(output).name, disable=True if quiet else None,
               dynamic_ncols=True)
    try:
        while pending or running:
            while pending and (workers is None or len(running) < workers):
                job = pending.popleft()
                running[task.remote(job, model_ref)] = job
            # A short timeout: Python runs its signal handlers (SIGTERM) between waits.
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                job = running.pop(ref)
                try:
                    results.append(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - reported per chunk, the others go on
                    reason, code = _describe_failure(ray, exc, max_retries)
                    failed.append(((job.start, job.end), reason, code))
                    log.warning("farm: chunk %s failed: %s", format_range((job.start, job.end)), reason)
                    bar.set_postfix(failed=len(failed))
                bar.update(1)
    except (KeyboardInterrupt, Interrupted):
        for ref in running:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone: nothing to stop
                pass
        raise
    finally:
        bar.close()
    return results, failed
