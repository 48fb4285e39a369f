"""The ``merge`` and ``farm`` commands: thin click wrappers over ``merge_chunks`` and ``run_farm``.

Registered into the ``vidcolor`` group by ``vidcolor/cli.py`` (``main.add_command``). This
module imports only click and ``vidcolor.commands.common`` at import time (no Ray, torch or PyAV).
"""

from __future__ import annotations

import click

from vidcolor.commands.common import config_options, default_output, handle_errors, non_empty_path, pop_options, render_options
from vidcolor.config import ColorizeConfig, FarmOptions
from vidcolor.wording import count_of


@click.command("merge")
@click.argument("chunks", nargs=-1, required=True, metavar="CHUNK...", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(), callback=non_empty_path,
              help="The merged file.")
@click.option("--audio-from", "audio_from", default=None, type=click.Path(), metavar="IN",
              help="The source: copy its audio/subtitle/data streams and check the chunks cover all its frames.")
@click.option("--allow-gaps", is_flag=True,
              help="Without --audio-from: accept a jump between chunks much longer than a frame (a pause in the film).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@handle_errors
def merge_command(chunks, output, audio_from, allow_gaps, overwrite) -> None:
    """Join chunks made by `colorize --frames S-E` into one file, without re-encoding.

    Chunks may be given in any order (a shell glob is fine); they must share codec, encoder
    settings, source and render settings and, with --audio-from, cover the source's frames
    with no gap or overlap (without it, a visible gap between chunks is refused too).
    """
    from vidcolor.io.merge import merge_chunks  # PyAV: only when the command runs

    report = merge_chunks(list(chunks), output, audio_from=audio_from, overwrite=overwrite, allow_gaps=allow_gaps)
    copied = f", {count_of(report.copied_streams, 'stream')} copied from {audio_from}" if audio_from else ""
    click.echo(f"wrote {output}: {count_of(report.frames, 'frame')} from {count_of(report.chunks, 'chunk')}{copied}")


@click.command("farm")
@click.argument("input_path", metavar="IN", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(), callback=non_empty_path,
              help="Output file (default: IN_colour.EXT).")
@config_options(FarmOptions, "farm")
@render_options
@handle_errors
def farm_command(input_path, output, **options) -> None:
    """Colorize a film as chunks on a Ray cluster (local by default), then merge them.

    Finished chunks are kept when a run fails or is interrupted; running the same command
    again renders only the missing ones.
    """
    from vidcolor.farm.ray_executor import run_farm  # Ray and torch: only when the command runs

    farm = FarmOptions(**pop_options(options, FarmOptions))
    cfg = ColorizeConfig(input=input_path, output=output or default_output(input_path), **options)
    report = run_farm(cfg, farm)
    kept = f"; chunks kept in {report.chunk_dir}" if report.kept_chunks else ""
    click.echo(f"wrote {report.output}: {count_of(report.frames, 'frame')} from {count_of(report.chunks, 'chunk')} "
               f"({len(report.rendered)} rendered, {len(report.reused)} reused) in {report.seconds:.1f} s{kept}")
