"""``farm``: colorize one film as frame-range chunks on a Ray cluster, then merge them.

    plan chunks ──► skip finished ones ──► Ray tasks (colorize --frames S-E) ──► merge
    (demux-only     (a chunk under its      (1 CPU each, 1 GPU where the          (remux, no
     frame count)    final name is done)     cluster has GPUs, retried when a       re-encode, the
                                             worker dies; small reports back)       source's audio)

Each task calls ``vidcolor.pipeline.run.colorize`` with the job's ``ColorizeConfig`` (its
frame range and chunk path filled in) in the worker process: it decodes
the smoother's warm-up frames before its range and writes a video-only chunk with the
source's timestamps under a temporary name, renamed when complete. Frames never travel
through Ray; only paths and small reports do, so every worker must see the source and the
chunk folder under the same paths (one machine, or shared storage on a cluster).

Running ``farm`` again after a crash or Ctrl-C renders only the missing chunks.

Ray is optional (``pip install vidcolor[farm]``) and imported only inside ``import_ray``.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from tqdm import tqdm

from vidcolor.config import ColorizeConfig, FarmOptions
from vidcolor.devices import pick_device
from vidcolor.errors import Interrupted, UsageError, VidcolorError
from vidcolor.farm.chunks import FAILED_ONCE_SUFFIX, folder_lock, remove_chunks
from vidcolor.io.atomic import check_output_path, stale_partials
from vidcolor.io.codecs import portable_codec
from vidcolor.io.encode import check_hardware_codec, check_output_supported
from vidcolor.io.media_files import media_kind
from vidcolor.io.media_info import MediaInfo
from vidcolor.io.merge import merge_chunks
from vidcolor.io.probe import probe
from vidcolor.models.generator import Generator
from vidcolor.models.weights import load_generator, resolve_model_path
from vidcolor.pipeline import run
from vidcolor.pipeline.manifest import check_manifest
from vidcolor.pipeline.reference import parse_reference
from vidcolor.pipeline.render_identity import chunk_stamp, job_settings, model_identity, render_settings
from vidcolor.pipeline.segments import ChunkLayout, FrameRange, format_range, plan_chunks
from vidcolor.pipeline.smooth import ChromaSmoother
from vidcolor.pipeline.video_plan import check_video_run
from vidcolor.wording import count_of

log = logging.getLogger("vidcolor")

FAIL_CHUNK_ENV = "VIDCOLOR_FARM_FAIL_CHUNK"
FAIL_MODE_ENV = "VIDCOLOR_FARM_FAIL_MODE"
FAIL_ONCE_ENV = "VIDCOLOR_FARM_FAIL_ONCE"

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # tasks exchange paths and small reports only


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
        cfg: the chunk's run: the job's ``ColorizeConfig`` with the source (``input``) and the
            chunk's final path (``output``) made absolute, and the job's stamp.
        start, end: the frame range (inclusive, 0-based).
        fail: the test hook for this chunk, if any.
    """

    cfg: ColorizeConfig
    start: int
    end: int
    fail: FailHook | None = None

    @property
    def source(self) -> str:
        """The input video."""
        return self.cfg.input

    @property
    def path(self) -> str:
        """The chunk's final path."""
        return self.cfg.output


_MODEL_CACHE: dict[tuple, Any] = {}  # per worker process: chunks reuse a loaded model


def _generator_for(model: Any, device_name: str) -> Any:
    """A loaded generator: ``model`` itself, or the model named by ``model`` (cached)."""
    if model is None or not isinstance(model, (str, os.PathLike)):
        return model
    device = pick_device(device_name)
    weights, _ = resolve_model_path(model)
    stamp = (weights.stat().st_mtime_ns, weights.stat().st_size) if weights.is_file() else None
    key = (str(model), str(device), stamp)  # a model re-saved under the same name is reloaded
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # one model per worker at a time
        _MODEL_CACHE[key] = load_generator(model, device)[0]
    return _MODEL_CACHE[key]


def render_chunk(job: ChunkJob, model: Any = "default") -> ChunkResult:
    """Render one chunk with ``colorize --frames S-E`` (the body of a Ray task).

    Args:
        job: the chunk.
        model: a model name or path, or a loaded ``Generator``.

    Returns:
        A ChunkResult; a chunk already complete is reported as reused, not rendered again.
    """
    t0 = time.time()
    path = Path(job.path)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if path.is_file():
        return ChunkResult(job.start, job.end, job.path, 0, time.time() - t0, True, worker)
    generator = _generator_for(model, job.cfg.device)
    cfg = replace(job.cfg, frames=f"{job.start}-{job.end}", quiet=True, overwrite=False)
    with _failure_injected(job.fail, path, job.start):
        report = run.colorize(cfg, generator)
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
        import ray  # optional (the farm extra): imported only when a farm runs
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
    ref = parse_reference(text)
    frame = f"@{ref.frame}" if text != ref.path else ""
    return f"{Path(ref.path).expanduser().resolve()}{frame}"


def _check_job(cfg: ColorizeConfig, model: Generator | None) -> MediaInfo:
    """Refuse a bad input, output, reference or style before starting Ray: the same checks as
    ``colorize`` (``check_video_run``) plus the farm's own; returns the probe. (Bad option
    values were refused when ``cfg`` and the ``FarmOptions`` were made.)"""
    if media_kind(cfg.input) == "image":
        raise UsageError(f"{cfg.input} is a still image; farm renders videos, use colorize for images")
    info = probe(cfg.input, verdict=not cfg.force)
    check_video_run(cfg, info, model)
    check_output_path(cfg.output, cfg.overwrite, [cfg.input])
    check_hardware_codec(cfg.codec, info.video)  # workers check they have NVENC; the source is checked here
    check_output_supported(cfg.output, info, cfg.codec, copy_streams=True)
    return info


def run_farm(cfg: ColorizeConfig, farm: FarmOptions = FarmOptions(), model: Generator | None = None) -> FarmReport:
    """Colorize ``cfg.input`` as chunks on Ray, skipping finished chunks, and merge into ``cfg.output``.

    Args:
        cfg: what to render, as for ``colorize`` (``cfg.input`` readable by every worker under
            this path; the output's extension is also the chunks' container). Its codec is
            a ``--codec`` name (``vidcolor.io.codecs``): ``auto`` is the portable codec, x264,
            here, and an NVENC codec needs NVENC on every node.
        farm: how to spread it: chunk length, Ray address (None starts a local Ray instance;
            ``"auto"`` joins the cluster this machine belongs to; ``"ray://HOST:10001"``
            connects to a remote one; a Ray instance already running in this process is used as
            it is), workers (None: one per CPU, or per GPU where the machine has CUDA, locally;
            whatever the cluster schedules otherwise), chunk folder (None:
            ``OUTPUT_STEM.chunks`` beside the output), keep_chunks, max_retries (times Ray
            re-runs a chunk whose worker process or node died).
        model: a loaded ``Generator`` to use instead of ``cfg.model`` (shipped to workers via Ray).

    Returns:
        A FarmReport.

    Raises:
        UsageError: bad options, Ray missing or unreachable, a chunk folder of other settings.
        InputError, OutputError, ModelError: as for ``colorize`` and ``merge``.
        FarmError: some chunks failed (the others are kept; run again to finish).
        Interrupted: Ctrl-C or SIGTERM (finished chunks are kept).
    """
    t0 = time.time()
    source, out = cfg.input, cfg.output

    # 1. Refuse bad options, input, output or model before any work.
    ray = import_ray()
    for flag, given in (("--frames", cfg.frames), ("--preview", cfg.preview), ("--resume", cfg.resume)):
        if given:
            raise UsageError(f"farm renders the whole film in chunks; {flag} is for colorize")
    # Every node must write the same encoder's stream or the chunks will not merge: "auto"
    # is the portable codec here (an explicit nvenc codec makes each node check it has NVENC).
    # Workers may run elsewhere: give them the references by absolute path, like the source.
    cfg = replace(cfg, codec=portable_codec(cfg.codec),
                  references=tuple(_absolute_reference(text) for text in cfg.references))
    info = _check_job(cfg, model)
    identity = model_identity(model if model is not None else cfg.model)

    # 2. Plan the chunks; finished ones (present under their final name, vouched for by the
    #    folder's manifest or their own stamp) are skipped.
    plan = plan_chunks(info.video.frame_count, farm.chunk_frames)
    layout = ChunkLayout.for_job(source, out, farm.chunk_dir)
    settings = render_settings(cfg, identity)
    stamp = chunk_stamp(source, settings)
    with folder_lock(layout):
        # The manifest is written here, before any chunk, and removed only once no chunk is left.
        # chunk_frames too: a mistyped --chunk-frames is refused here, before any finished chunk
        # of the old plan could be removed as fitting no chunk of the new one.
        check_manifest(layout, job_settings(source, info.video.frame_count, settings, chunk_frames=farm.chunk_frames),
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
            _note_warmup(cfg.smooth, farm.chunk_frames)

        # 3. Render the others as Ray tasks.
        results: list[ChunkResult] = []
        startup = render = 0.0
        if todo:
            task_cfg = replace(cfg, input=str(Path(source).resolve()), chunk_stamp=stamp)
            jobs = [ChunkJob(cfg=replace(task_cfg, output=str(layout.path(r).resolve())), start=r[0], end=r[1],
                             fail=FailHook.for_chunk(r[0])) for r in todo]
            results, startup, render = _render_on_ray(ray, jobs, model if model is not None else cfg.model,
                                                      farm.address, farm.workers, cfg.device, farm.max_retries,
                                                      len(plan), len(reused), layout, out, cfg.quiet)

        # 4. Merge (lossless remux with the source's audio and subtitles), then tidy up.
        t_merge = time.time()
        merged = merge_chunks([str(p) for p in layout.paths(plan)], out, audio_from=source, overwrite=cfg.overwrite,
                              warn=False)  # _check_job warned before Ray started
        merge_seconds = time.time() - t_merge
        if not farm.keep_chunks:
            remove_chunks(layout, plan)
    return FarmReport(output=out, frames=merged.frames, chunks=len(plan), rendered=list(todo), reused=list(reused),
                      chunk_dir=str(layout.folder), kept_chunks=farm.keep_chunks, copied_streams=merged.copied_streams,
                      seconds=time.time() - t0, startup_seconds=startup, render_seconds=render,
                      merge_seconds=merge_seconds, workers=farm.workers, results=results)


def _note_warmup(smooth: float, chunk_frames: int) -> None:
    warm = ChromaSmoother(smooth).warmup_frames()
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
