"""The ``merge`` and ``farm`` commands: thin click wrappers over ``merge_chunks`` and ``run_farm``.

Registered into the ``vidcolor`` group by ``vidcolor/cli.py`` (``main.add_command``). This
module imports only click at import time (no Ray, torch or PyAV), and takes ``handle_errors``
from ``vidcolor.cli`` when a command runs, so the two modules can import each other in any order.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click


def _handle_errors(fn: Callable) -> Callable:
    """``vidcolor.cli.handle_errors``, looked up when the command runs (no import cycle)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vidcolor.cli import handle_errors

        return handle_errors(fn)(*args, **kwargs)

    return wrapper


@click.command("merge")
@click.argument("chunks", nargs=-1, required=True, metavar="CHUNK...", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(), help="The merged file.")
@click.option("--audio-from", "audio_from", default=None, type=click.Path(), metavar="IN",
              help="The source: copy its audio/subtitle/data streams and check the chunks cover all its frames.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@_handle_errors
def merge_command(chunks, output, audio_from, overwrite) -> None:
    """Join chunks made by `colorize --frames S-E` into one file, without re-encoding.

    Chunks may be given in any order (a shell glob is fine); they must share codec and encoder
    settings and, with --audio-from, cover the source's frames with no gap or overlap.
    """
    from vidcolor.io.remux import merge_chunks

    report = merge_chunks(list(chunks), output, audio_from=audio_from, overwrite=overwrite)
    copied = f", {report.copied_streams} streams copied from {audio_from}" if audio_from else ""
    click.echo(f"wrote {output}: {report.frames} frames from {report.chunks} chunks{copied}")


@click.command("farm")
@click.argument("input_path", metavar="IN", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(), help="Output file (default: IN_colour.EXT).")
@click.option("--chunk-frames", default=1200, show_default=True, type=click.IntRange(min=1), help="Frames per chunk (task).")
@click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
              help="Ray cluster to use (default: start a local Ray instance).")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Most chunks rendered at once (default: one per CPU, or per GPU with CUDA).")
@click.option("--chunk-dir", default=None, type=click.Path(), help="Chunk folder (default: OUT_STEM.chunks beside OUT).")
@click.option("--keep-chunks", is_flag=True, help="Keep the chunk files after merging.")
@click.option("--max-retries", default=3, show_default=True, type=click.IntRange(min=0),
              help="Times a chunk is re-run when its worker dies.")
@click.option("--model", default="default", show_default=True, help="Model name or path (NAME.safetensors + NAME.json).")
@click.option("--style", default=None, help="A painting style carried by the model.")
@click.option("--strength", default=1.0, show_default=True, type=float, help="Style strength, 0 (natural colour) to 1.")
@click.option("--reference", "references", multiple=True, metavar="IMG[@FRAME]", help="Hand-coloured reference (repeatable).")
@click.option("--render-size", default=256, show_default=True, type=int, help="Short side the model sees (multiple of 16).")
@click.option("--smooth", default=0.8, show_default=True, type=float, help="Temporal chroma smoothing, 0 (off) to <1.")
@click.option("--codec", default="x264", show_default=True, type=click.Choice(["x264", "x265", "prores", "ffv1"]))
@click.option("--crf", default=None, type=int, help="Quality for x264/x265 (default 16/18).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (on the workers).")
@click.option("--batch-size", default="8", show_default=True, help="Frames per model call, or 'auto'.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--force", is_flag=True, help="Colorize an input that is already in colour (from its luma).")
@click.option("--deinterlace", is_flag=True, help="Deinterlace interlaced sources (yadif).")
@click.option("--quiet", is_flag=True, help="No progress bar; one summary line.")
@_handle_errors
def farm_command(input_path, output, chunk_frames, address, workers, chunk_dir, keep_chunks, max_retries, model,
                 style, strength, references, render_size, smooth, codec, crf, device, batch_size, overwrite,
                 force, deinterlace, quiet) -> None:
    """Colorize a film as chunks on a Ray cluster (local by default), then merge them.

    Finished chunks are kept when a run fails or is interrupted; running the same command
    again renders only the missing ones.
    """
    from vidcolor.farm.ray_executor import run_farm

    if output is None:
        src = Path(input_path)
        output = str(src.with_name(f"{src.stem}_colour{src.suffix or '.mkv'}"))
    report = run_farm(input_path, output, chunk_frames=chunk_frames, address=address, workers=workers, codec=codec,
                      model=model, render_size=render_size, smooth=smooth, chunk_dir=chunk_dir,
                      keep_chunks=keep_chunks, quiet=quiet, crf=crf, device=device, batch_size=batch_size,
                      style=style, strength=strength, references=tuple(references), force=force,
                      deinterlace=deinterlace, overwrite=overwrite, max_retries=max_retries)
    kept = f"; chunks kept in {report.chunk_dir}" if report.kept_chunks else ""
    click.echo(f"wrote {report.output}: {report.frames} frames from {report.chunks} chunks "
               f"({len(report.rendered)} rendered, {len(report.reused)} reused) in {report.seconds:.1f} s{kept}")
