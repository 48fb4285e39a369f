"""How steady styled video is: each style of a model, smoothed, against the same style applied
frame by frame by a model trained without the flicker term.

    python benchmarks/style_flicker.py --model default --baseline runs/0003-styles-noflicker/model.json
    python benchmarks/style_flicker.py --model M --baseline B --styles starry_night --max-frames 10  # smoke run
    python benchmarks/style_flicker.py --baseline B --flow farneback --out benchmarks/results/style_flicker-farneback.json

For every style both models know, it runs ``vidcolor eval --style NAME`` on the colour clips
(``../shared/data/video/color``) with each model and compares

- **ours**: ``--model``'s ``model`` row (the styled clip as ``colorize --style`` makes it,
  with temporal smoothing), against
- **frame by frame**: ``--baseline``'s ``per-frame`` row (smoothing off; the baseline model
  should be the same style phase trained with ``lambda_flicker = 0``).

Warp errors are measured along DIS flow, the estimator the smoother itself uses, or with
``--flow farneback`` along an independent one (a check that the smoothing's gain is not an
artefact of sharing the metric's flow). It prints the warp errors, their ratio (the target is
at most 0.5) and each model's own per-frame figure, and writes the two models' full eval reports and a summary to
``benchmarks/results/style_flicker.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from vidcolor.config import DEFAULT_RENDER_SIZE  # noqa: E402
from vidcolor.flow import FLOW_METHODS  # noqa: E402

from benchmarks.eval_model import CLIPS, RESULTS, machine  # noqa: E402


def all_clips_row(report: dict, method: str) -> dict:
    """The ``all clips`` aggregate of one method in an eval report."""
    return next(d for d in report["datasets"] if d["name"] == "all clips")["methods"][method]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="the model to measure (smoothed, trained with flicker)")
    parser.add_argument("--baseline", required=True, help="the same styles trained without the flicker term")
    parser.add_argument("--data", nargs="+", default=[str(CLIPS)], help="clips or folders of clips")
    parser.add_argument("--styles", nargs="*", default=None, help="styles to measure (default: every shared style)")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--max-frames", type=int, default=30, help="frames per clip (default 30)")
    parser.add_argument("--smooth", type=float, default=0.8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--flow", default="dis", choices=list(FLOW_METHODS),
                        help="flow the warp errors are measured along (farneback: independent of the smoother's DIS)")
    parser.add_argument("--out", default=str(RESULTS / "style_flicker.json"))
    args = parser.parse_args(argv)

    import torch

    from vidcolor.metrics.evaluate import evaluate, json_safe
    from vidcolor.models.weights import load_generator

    cpu = torch.device("cpu")
    ours_styles = load_generator(args.model, cpu)[0].style_names[1:]
    base_styles = load_generator(args.baseline, cpu)[0].style_names[1:]
    styles = args.styles or [s for s in ours_styles if s in base_styles]
    if not styles:
        parser.error("the two models share no painting style")

    t0 = time.time()
    rows, reports = [], {}
    print(f"{'style':28s} {'ours':>9s} {'frame by frame':>15s} {'ratio':>6s} {'ours per-frame':>15s} {'chroma ratio':>13s}"
          "   (warp error x1e-3)")
    for style in styles:
        options = dict(render_size=DEFAULT_RENDER_SIZE, smooth=args.smooth, device=args.device, max_frames=args.max_frames,
                       progress=False, style=style, strength=args.strength, flow_name=args.flow)
        ours = evaluate(args.model, args.data, **options)
        base = evaluate(args.baseline, args.data, **options)
        reports[style] = {"model": json_safe(ours), "baseline": json_safe(base)}
        row = {
            "style": style,
            "ours_smoothed": all_clips_row(ours, "model")["warp_error"],
            "ours_per_frame": all_clips_row(ours, "per-frame")["warp_error"],
            "baseline_per_frame": all_clips_row(base, "per-frame")["warp_error"],
            "baseline_smoothed": all_clips_row(base, "model")["warp_error"],
            "truth": all_clips_row(ours, "truth")["warp_error"],
            "ours_smoothed_chroma": all_clips_row(ours, "model")["warp_error_chroma"],
            "baseline_per_frame_chroma": all_clips_row(base, "per-frame")["warp_error_chroma"],
        }
        row["ratio"] = row["ours_smoothed"] / row["baseline_per_frame"]
        row["ratio_chroma"] = row["ours_smoothed_chroma"] / row["baseline_per_frame_chroma"]
        rows.append(row)
        print(f"{style:28s} {row['ours_smoothed'] * 1e3:9.3f} {row['baseline_per_frame'] * 1e3:15.3f} {row['ratio']:6.2f}"
              f" {row['ours_per_frame'] * 1e3:15.3f} {row['ratio_chroma']:13.2f}", flush=True)
    mean_ratio = sum(r["ratio"] for r in rows) / len(rows)
    mean_chroma = sum(r["ratio_chroma"] for r in rows) / len(rows)
    truth = sum(r["truth"] for r in rows) / len(rows)
    print(f"mean ratio {mean_ratio:.2f} (target: at most 0.5), on chroma alone {mean_chroma:.2f}; "
          f"the true clips' own warp error {truth * 1e3:.3f}e-3; {time.time() - t0:.0f} s")
    summary = {"model": args.model, "baseline": args.baseline, "strength": args.strength, "smooth": args.smooth,
               "flow": args.flow, "max_frames": args.max_frames, "data": args.data, "rows": rows, "mean_ratio": mean_ratio,
               "mean_ratio_chroma": mean_chroma,
               "seconds": time.time() - t0, "machine": machine(), "reports": reports}
    Path(args.out).write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
