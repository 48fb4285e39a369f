"""What the ``vidcolor`` commands share: error handling and the rendering options.

Every command module (``vidcolor/cli.py``, ``vidcolor/farm/cli.py``, ``vidcolor/metrics/cli.py``)
imports from here, so none has to import another and each stays quick to load.
"""

from __future__ import annotations

import errno
import functools
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from vidcolor.config import DEFAULT_RENDER_SIZE
from vidcolor.errors import Interrupted, VidcolorError
from vidcolor.io.codecs import CODEC_CHOICES

# Errors that only writing can cause: reported as output problems (exit code 4) wherever they arise.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


# What an interrupted command says, whether the interruption came mid-run or while click parsed.
_INTERRUPTED = "interrupted; nothing half-written was kept"


def _fail(message: str, code: int) -> None:
    click.echo(f"vidcolor: error: {message}", err=True)
    sys.exit(code)


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise Interrupted("terminated (SIGTERM)", signal_exit_code=143)


class OneLineErrorGroup(click.Group):
    """A command group whose option and argument errors are one line, like every other error.

    Click reports a bad option value as three lines (usage, a hint, the error) and leaves the
    exit code at 2; here the same error reads ``vidcolor: error: <what is wrong> (see
    'vidcolor colorize --help')``, still with exit code 2. Help, ``--version`` and a bare
    ``vidcolor`` (which shows the help) behave as click makes them.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the group; in standalone mode, turn click's own errors into one line and exit.

        Args:
            args, prog_name, complete_var, standalone_mode, extra: as ``click.Group.main``.

        Returns:
            What ``click.Group.main`` returns when not in standalone mode; otherwise it exits.
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare command: its help is the answer
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "vidcolor"
            _fail(f"{exc.format_message()} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail(_INTERRUPTED, 130)
        # Without standalone mode click returns the exit code of --help and --version (an int);
        # the commands themselves return None, which is success.
        sys.exit(code if isinstance(code, int) else 0)


def non_empty_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: refuse an empty path (``-o ""`` would otherwise mean the default name).

    Args:
        ctx, param: as click passes them.
        value: the option's value (None when not given).

    Returns:
        ``value``.
    """
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a file name")
    return value


def handle_errors(fn: Callable) -> Callable:
    """Run a command, turning library errors into one line and an exit code.

    Args:
        fn: the click command body.

    Returns:
        The wrapped function.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(click.get_current_context().find_root().obj and click.get_current_context().find_root().obj.get("debug"))
        previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            return fn(*args, **kwargs)
        except VidcolorError as exc:
            if debug:
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            _fail(_INTERRUPTED, 130)
        except MemoryError:
            _fail("out of memory; try a smaller --batch-size or --render-size", 5)
        except OSError as exc:
            # A full disk or read-only file system met outside an atomic output (run folders,
            # checkpoints): an output problem the user can fix, not a bug.
            if exc.errno in _DISK_FULL_ERRNOS:
                from vidcolor.io.atomic import WRITE_FAILURE_ADVICE

                if debug:
                    traceback.print_exc()
                _fail(f"cannot write {exc.filename or 'the output'}: {WRITE_FAILURE_ADVICE[exc.errno]}", 4)
            if debug:
                raise
            _fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun as 'vidcolor --debug COMMAND ...' for details, and report it)", 1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug:
                raise
            _fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun as 'vidcolor --debug COMMAND ...' for details, and report it)", 1)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def render_options(fn: Callable) -> Callable:
    """The options that decide a render's pixels and container, shared by colorize and farm.

    Args:
        fn: the click command body.

    Returns:
        The command with ``--model`` ... ``--quiet`` added.
    """
    options = [
        click.option("--model", default="default", show_default=True, help="Model name or path (NAME.safetensors + NAME.json)."),
        click.option("--style", default=None, help="A painting style carried by the model (see `vidcolor styles`)."),
        click.option("--strength", default=1.0, show_default=True, type=float, help="Style strength, 0 (natural colour) to 1."),
        click.option("--reference", "references", multiple=True, metavar="IMG[@FRAME]",
                     help="A hand-coloured image of source frame FRAME (0 when omitted; numbered in the whole film, "
                          "also with --frames), as a player shows it; transparent areas give no colour. Repeatable."),
        click.option("--render-size", default=DEFAULT_RENDER_SIZE, show_default=True, type=int, help="Short side the model sees (a multiple of 16, 32 to 2048)."),
        click.option("--smooth", default=0.8, show_default=True, type=float, help="Temporal chroma smoothing, 0 (off) to <1."),
        click.option("--codec", default="auto", show_default=True,
                     type=click.Choice(CODEC_CHOICES),
                     help="auto: NVENC H.264 when the model runs on an NVIDIA GPU and its encoder opens, else x264 "
                          "(always x264 for --frames chunks, --resume segments and farm jobs, so chunks merge)."),
        click.option("--crf", default=None, type=int, help="Quality, 0 (best) to 51: x264/x265 CRF (default 16/18), NVENC's cq (18/20)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--batch-size", default="auto", show_default=True, help="Frames per model call, or 'auto' (8 on the CPU; sized by GPU memory on CUDA)."),
        click.option("--compile", "compile_model", is_flag=True,
                     help="Compile the generator with torch.compile: a faster model after a first batch that takes "
                          "tens of seconds (cached for later runs). Falls back to the plain model if compiling fails."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output."),
        click.option("--force", is_flag=True, help="Colorize an input that is already in colour (from its luma)."),
        click.option("--deinterlace", is_flag=True, help="Deinterlace interlaced sources (yadif)."),
        click.option("--quiet", is_flag=True, help="No progress bar; one summary line."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def default_output(input_path: str) -> str:
    """The output name when ``-o`` is not given: ``IN_colour.EXT`` beside the input, EXT the
    input's own where we can write that type, else ``.mkv`` for videos and ``.png`` for stills.

    Args:
        input_path: the input file.

    Returns:
        The output path.
    """
    from vidcolor.io.atomic import IMAGE_OUTPUT_EXTENSIONS
    from vidcolor.io.media_files import media_kind
    from vidcolor.io.remux import CONTAINER_FORMATS

    src = Path(input_path)
    suffix = src.suffix.lower()
    if media_kind(src) == "image":
        ext = src.suffix if suffix in IMAGE_OUTPUT_EXTENSIONS else ".png"
    else:  # a type we do not write (.gif, .ts, .mpg, .wmv...): Matroska holds any stream
        ext = src.suffix if suffix in CONTAINER_FORMATS else ".mkv"
    return str(src.with_name(f"{src.stem}_colour{ext}"))
