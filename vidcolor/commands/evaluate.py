"""``vidcolor eval``: the click command (thin; the work is ``vidcolor.metrics.evaluate``).

Registered into the group in ``vidcolor/cli.py`` with ``main.add_command(eval_command)``.
Imports stay light (click only); torch and the metrics load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from vidcolor.commands.common import handle_errors, non_empty_path
from vidcolor.config import DEFAULT_RENDER_SIZE, DEFAULT_SMOOTH
from vidcolor.errors import UsageError


@click.command("eval")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--model", default="default", show_default=True, help="Model name or path (NAME.safetensors + NAME.json).")
@click.option("--json", "json_path", default=None, type=click.Path(), callback=non_empty_path,
              help="Also write the report as JSON here (replaced if it exists).")
@click.option("--render-size", default=DEFAULT_RENDER_SIZE, show_default=True, type=int, help="Short side the model sees (multiple of 16).")
@click.option("--smooth", default=DEFAULT_SMOOTH, show_default=True, type=float,
              help="Temporal smoothing of the model on clips, 0 (off) to <1.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--max-frames", default=None, type=int, help="Use at most N frames from the start of each clip.")
@click.option("--max-images", default=None, type=int, help="Use at most N photos of each folder.")
@click.option("--reference-frame", "reference_frames", multiple=True, type=click.IntRange(min=0), metavar="N",
              help="Give the model the true colours of frame N of each clip as a reference (repeatable).")
@click.option("--style", default=None, help="Measure this style of the model on the clips (how steady the styled video is).")
@click.option("--strength", default=1.0, show_default=True, type=float, help="Strength of --style, 0 to 1.")
@click.option("--flow", "flow_name", default="dis", show_default=True, type=click.Choice(["dis", "farneback"]),
              help="Optical flow the warp error is measured along; farneback is independent of the smoother's DIS.")
@click.option("--quiet", is_flag=True, help="No progress bars; only the table.")
@handle_errors
def eval_command(data, model, json_path, render_size, smooth, device, max_frames, max_images, reference_frames,
                 style, strength, flow_name, quiet) -> None:
    """Score a model on colour photos and clips (made grey first) against grey and per-frame baselines.

    DATA are photo folders (grouped by folder), colour clips, or folders of clips.
    """
    # PyAV and torch: only when the command runs.
    from vidcolor.io.atomic import check_output_path
    from vidcolor.metrics.evaluate import evaluate, format_table, write_json

    if json_path:  # fail before a long run, not after; never over a clip or photo being scored
        if Path(json_path).suffix.lower() != ".json":
            raise UsageError(f"--json {json_path}: give a file name ending in .json")
        check_output_path(json_path, overwrite=True, input_paths=list(data), what="--json")
    report = evaluate(model, list(data), render_size=render_size, smooth=smooth, device=device,
                      max_frames=max_frames, max_images=max_images, references=list(reference_frames),
                      progress=not quiet, style=style, strength=strength,
                      flow_name=flow_name)
    click.echo(format_table(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"wrote {json_path}")
