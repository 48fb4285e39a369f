"""What the ``vidcolor`` commands share: error handling and the rendering options.

Every command module (``vidcolor/cli.py``, ``vidcolor/commands/farm.py``, ``vidcolor/commands/evaluate.py``)
imports from here, so none has to import another and each stays quick to load.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import signal
import sys
import traceback
import typing
from pathlib import Path
from typing import Any, Callable

import click

from vidcolor.config import ColorizeConfig, option_flag
from vidcolor.errors import Interrupted, VidcolorError

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
                from vidcolor.io.atomic import WRITE_FAILURE_ADVICE  # vidcolor.io loads PyAV: not at start-up

                if debug:
                    traceback.print_exc()
                _fail(f"cannot write {exc.filename or 'the output'}: {WRITE_FAILURE_ADVICE[exc.errno]}", 4)
            if debug:
                raise
            _fail(f"internal error: {exc.__class__.__name__}: {exc} "
                  "(rerun as 'vidcolor --debug COMMAND ...' for details, and report it)", 1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug:
                raise
            _fail(f"internal error: {exc.__class__.__name__}: {exc} "
                  "(rerun as 'vidcolor --debug COMMAND ...' for details, and report it)", 1)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


class _CodecChoice(click.Choice):
    """``--codec``'s choices, read from the codec registry (``io/codecs``) when click first
    shows or checks them rather than when the command is defined, so `vidcolor --help` loads
    no PyAV."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        """``auto`` and every codec the registry holds."""
        from vidcolor.io.codecs import CODEC_CHOICES  # vidcolor.io loads PyAV: not at start-up

        return CODEC_CHOICES

    @choices.setter
    def choices(self, _value: Any) -> None:  # click.Choice.__init__ sets it; the registry is the list
        pass


# Click types the config cannot name (config sits below io, so the codec list is not its own).
_CLICK_TYPES = {"codec": _CodecChoice()}


def _click_option(f: dataclasses.Field, hint: Any) -> Callable:
    """The click option of one config field, from its ``setting`` (default, help, flag...)."""
    meta, default = f.metadata, f.default
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if hint is bool:
        kwargs["is_flag"] = True
    elif typing.get_origin(hint) is tuple:
        kwargs["multiple"] = True
    else:
        kwargs.update(default=default, show_default=default is not None)
        number = next((t for t in (int, float) if t is hint or t in typing.get_args(hint)), None)
        if f.name in _CLICK_TYPES:
            kwargs["type"] = _CLICK_TYPES[f.name]
        elif meta["path"]:
            kwargs.update(type=click.Path(), callback=non_empty_path)
        elif number is int and meta["minimum"] is not None:
            kwargs["type"] = click.IntRange(min=meta["minimum"])
        elif number is not None:
            kwargs["type"] = number
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    return click.option(option_flag(f), f.name, **kwargs)


def config_options(cls: type, group: str) -> Callable[[Callable], Callable]:
    """Add the command-line options of a config's fields (those of one group) to a command.

    Each option is named after its field, so the command can pass what click parsed straight to
    ``cls(**options)``; defaults, help texts and checks come from the config (``setting``).

    Args:
        cls: ``ColorizeConfig`` or ``FarmOptions``.
        group: ``"render"`` (shared by colorize and farm), ``"colorize"`` or ``"farm"``.

    Returns:
        A decorator adding the options, in the config's field order.
    """
    hints = typing.get_type_hints(cls)
    options = [_click_option(f, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get("cli") == group]

    def add(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return add


def pop_options(options: dict[str, Any], cls: type) -> dict[str, Any]:
    """Take the options that belong to ``cls``'s fields out of what click parsed.

    Args:
        options: click's keyword arguments (changed in place).
        cls: a config dataclass.

    Returns:
        ``{field: value}`` for ``cls``.
    """
    return {f.name: options.pop(f.name) for f in dataclasses.fields(cls) if f.name in options}


# The options that decide a render's pixels and container, shared by colorize and farm.
render_options = config_options(ColorizeConfig, "render")


def default_output(input_path: str) -> str:
    """The output name when ``-o`` is not given: ``IN_colour.EXT`` beside the input, EXT the
    input's own where we can write that type, else ``.mkv`` for videos and ``.png`` for stills.

    Args:
        input_path: the input file.

    Returns:
        The output path.
    """
    # vidcolor.io loads PyAV: imported when a command runs, not when `vidcolor --help` starts.
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
