"""The ``vidcolor`` command line: thin click commands over library calls.

Each command parses its options, builds one config object and calls one library function.
Library errors (``VidcolorError``) become one line on stderr and their exit code; a traceback
is shown only with ``--debug``.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from vidcolor.errors import Interrupted, UsageError, VidcolorError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _fail(message: str, code: int) -> None:
    click.echo(f"vidcolor: error: {message}", err=True)
    sys.exit(code)


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise Interrupted("terminated (SIGTERM)", signal_exit_code=143)


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
            _fail("interrupted; no partial output was kept", 130)
        except MemoryError:
            _fail("out of memory; try a smaller --batch-size or --render-size", 5)
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug:
                raise
            _fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details, and report it)", 1)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """Parse ``--set key=value`` options; values are TOML literals, else plain strings.

    Args:
        pairs: "key=value" strings.

    Returns:
        {dotted key: value}.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--set expects key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key.strip()] = value
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="vidcolor")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Colorize black-and-white video and apply painting styles, faithfully."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.INFO, format="%(message)s")


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="Training config (TOML).")
@click.option("--data", "data", multiple=True, type=click.Path(), help="Photo folder or colour clip (repeatable).")
@click.option("--resume", "resume", type=click.Path(), help="Run folder to continue from its checkpoint.")
@click.option("--style-image", "style_images", multiple=True, type=click.Path(), help="Painting to learn as a style (repeatable).")
@click.option("--set", "overrides", multiple=True, help="Override a config key, e.g. --set steps_colorize=100.")
@click.option("--runs", "runs_root", default="runs", show_default=True, type=click.Path(), help="Folder for numbered run folders.")
@click.option("--until", "until", type=int, help="Stop at this step (then export the model).")
@click.option("--export", "export", type=click.Path(), help="Also save the final model as EXPORT.safetensors/.json.")
@click.option("--quiet", is_flag=True, help="Plain log lines instead of a progress bar.")
@handle_errors
def train(config_path, data, resume, style_images, overrides, runs_root, until, export, quiet) -> None:
    """Train a generator (colorization, then styles); --resume continues a run exactly."""
    from vidcolor.config import load
    from vidcolor.models.weights import save_generator
    from vidcolor.training.trainer import Trainer, start_run

    if resume:
        if overrides or style_images:
            raise UsageError("--resume continues a run with its saved config; --set and --style-image cannot change it")
        trainer = Trainer.resume(Path(resume), quiet=quiet)
    else:
        settings = parse_overrides(overrides)
        if style_images:
            settings["style_images"] = list(style_images)
        config = load(config_path, settings)
        trainer = start_run(config, Path(runs_root), quiet=quiet)
    paths = list(trainer.config.data) + list(data)
    if not paths:
        raise UsageError("no training data: give --data DIR (photo folders or colour clips) or 'data' in the config")
    stem = trainer.train(paths, stop_at=until)
    if export:
        save_generator(trainer.ema, Path(export).with_suffix(""), trainer.provenance(paths))
    click.echo(f"model: {stem}.safetensors (run {trainer.run_dir}, step {trainer.step})")


if __name__ == "__main__":  # pragma: no cover
    main()
