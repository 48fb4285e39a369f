"""The ``vidcolor`` command line: thin click commands over library calls.

Each command parses its options, builds one config object and calls one library function.
Library errors (``VidcolorError``) become one line on stderr and their exit code; so do click's
own option and argument errors (``OneLineErrorGroup``, exit code 2); a traceback is shown only
with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from vidcolor.commands.common import (OneLineErrorGroup, config_options, default_output, handle_errors, non_empty_path,
                                 render_options)
from vidcolor.config import DEFAULT_RENDER_SIZE, ColorizeConfig, load
from vidcolor.errors import OutputError, UsageError
from vidcolor.wording import count_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["main", "handle_errors", "parse_overrides"]


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


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="vidcolor")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Colorize black-and-white video and apply painting styles, faithfully."""
    ctx.obj = {"debug": debug}
    # Our own progress notes at INFO; other libraries only from WARNING (torch's compiler
    # printed its cache statistics at exit, Ray its start-up chatter).
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("vidcolor").setLevel(logging.INFO)


@main.command()
@click.option("--config", "config_path", type=click.Path(), help="Training config (TOML).")
@click.option("--data", "data", multiple=True, type=click.Path(), help="Photo folder or colour clip (repeatable).")
@click.option("--resume", "resume", type=click.Path(), help="Run folder to continue from its checkpoint (its own config and data).")
@click.option("--style-image", "style_images", multiple=True, type=click.Path(),
              help="Painting to learn as a style, named after the file (repeatable).")
@click.option("--set", "overrides", multiple=True, help="Override a config key, e.g. --set steps_colorize=100.")
@click.option("--runs", "runs_root", default="runs", show_default=True, type=click.Path(), help="Folder for numbered run folders.")
@click.option("--until", "until", type=int, help="Stop at this step and export; past the config's total, a finished run trains on.")
@click.option("--export", "export", type=click.Path(), callback=non_empty_path,
              help="Also save the final model as EXPORT.safetensors/.json (float16 weights, for shipping).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --export model.")
@click.option("--quiet", is_flag=True, help="Plain log lines instead of a progress bar.")
@handle_errors
def train(config_path, data, resume, style_images, overrides, runs_root, until, export, overwrite, quiet) -> None:
    """Train a generator (colorization, then styles); --resume continues a run exactly."""
    import dataclasses

    # torch, PyAV and OpenCV load only when a command runs, not when `vidcolor --help` starts.
    import torch

    from vidcolor.io.atomic import write_failure
    from vidcolor.models.weights import model_files, save_generator
    from vidcolor.training.data import check_sources
    from vidcolor.training.trainer import Trainer, absolute_paths, check_init_model, export_files, start_run, style_names_for

    # Everything that can be checked cheaply is checked before a run folder exists or any
    # training starts: a bad export path would otherwise fail after hours of training.
    if until is not None and until <= 0:
        raise UsageError(f"--until must be a positive step, got {until}")
    stem = export_files(export, overwrite) if export else None
    if resume:
        if overrides:
            raise UsageError("--resume continues a run with its saved config; --set cannot change it")
        trainer = Trainer.resume(Path(resume), quiet=quiet, data=data, style_images=style_images, config_path=config_path)
    else:
        settings = parse_overrides(overrides)
        if style_images:
            settings["style_images"] = list(absolute_paths(style_images))
        config = load(config_path, settings)
        paths = absolute_paths(list(config.data) + list(data))
        if not paths:
            raise UsageError("no training data: give --data DIR (photo folders or colour clips) or 'data' in the config")
        config = dataclasses.replace(config, data=paths)
        check_sources(config.data)
        style_names_for(config)  # refuses missing paintings and clashing style names
        check_init_model(config)
        trainer = start_run(config, Path(runs_root), quiet=quiet)
    model = trainer.train(stop_at=until)
    click.echo(f"model: {model}.safetensors (run {trainer.run_dir}, step {trainer.step})")
    if stem is not None:
        taken = [path for path in model_files(stem) if path.exists()]
        if taken and not overwrite:  # checked before training, but hours have passed
            raise OutputError(f"{taken[0]} appeared during training (another export?), so it was not replaced; "
                              f"the trained model is {model}.safetensors")
        try:
            save_generator(trainer.ema, stem, trainer.provenance(trainer.data_paths), dtype=torch.float16)
        except OSError as exc:  # the disk filled up during training: the run's model is kept
            raise write_failure(model_files(stem)[0], exc) from None
        click.echo(f"exported {model_files(stem)[0]} and {model_files(stem)[1].name} (float16)")


@main.command()
@click.argument("input_path", metavar="IN", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(), callback=non_empty_path,
              help="Output file (default: IN_colour.EXT).")
@config_options(ColorizeConfig, "colorize")
@render_options
@handle_errors
def colorize(input_path, output, **options) -> None:
    """Colorize a black-and-white video or photo; audio, timing and resolution are kept."""
    from vidcolor.pipeline.run import colorize as run_colorize  # torch and PyAV: only when a command runs

    cfg = ColorizeConfig(input=input_path, output=output or default_output(input_path), **options)
    report = run_colorize(cfg)
    extra = f", preview {report.preview}" if report.preview else ""
    kept = "" if report.rendered is None else f" ({report.rendered} rendered now, the rest kept from before)"
    click.echo(f"wrote {report.output}: {count_of(report.frames, 'frame')}{kept} in {report.seconds:.1f} s ({report.fps:.1f} fps){extra}")


@main.command()
@click.argument("input_path", metavar="IN", type=click.Path())
@handle_errors
def probe(input_path) -> None:
    """Show streams, timing, colour metadata and a grey/tinted/colour verdict."""
    from vidcolor.io.probe import probe as probe_media  # PyAV: only when the command runs
    from vidcolor.io.report import format_report

    click.echo(format_report(probe_media(input_path, verdict=True)))


@main.command()
@click.option("--model", default="default", show_default=True, help="Model name or path.")
@click.option("--sheet", default=None, type=click.Path(), callback=non_empty_path,
              help="Write a thumbnail sheet PNG: --image in every style.")
@click.option("--image", default=None, type=click.Path(), help="Image or video (first frame) for --sheet.")
@click.option("--render-size", default=DEFAULT_RENDER_SIZE, show_default=True, type=int, help="Short side the model sees.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --sheet.")
@handle_errors
def styles(model, sheet, image, render_size, overwrite) -> None:
    """List the painting styles a model carries (use one with colorize --style NAME)."""
    # PyAV and torch: only when the command runs.
    from vidcolor.io.atomic import check_image_output
    from vidcolor.models.weights import load_generator
    from vidcolor.pipeline.style_sheet import style_sheet

    if sheet:
        if not image:
            raise UsageError("--sheet needs --image (a still or a video whose first frame is used)")
        check_image_output(sheet, overwrite, [image], what="--sheet")
    elif image:
        raise UsageError("--image is the picture for --sheet; give --sheet PNG too (or leave out --image to list the styles)")
    generator, _ = load_generator(model)
    width = len(str(len(generator.style_names) - 1))
    for index, name in enumerate(generator.style_names):
        click.echo(f"{index:>{width}}  {name}" + ("  (natural colour)" if index == 0 else ""))
    if sheet:
        style_sheet(generator, image, sheet, render_size)
        click.echo(f"wrote {sheet}")


from vidcolor.commands.farm import farm_command, merge_command  # noqa: E402 - after the group they join

from vidcolor.commands.evaluate import eval_command  # noqa: E402

main.add_command(merge_command)
main.add_command(farm_command)
main.add_command(eval_command)


if __name__ == "__main__":  # pragma: no cover
    main()
