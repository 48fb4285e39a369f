"""Evaluate a model on the shared evaluation data and keep the report under benchmarks/results.

    python benchmarks/eval_model.py                      # the shipped model ("default")
    python benchmarks/eval_model.py --model runs/007/model.json --device cuda
    python benchmarks/eval_model.py --model M --max-images 2 --max-frames 5   # a smoke run

Photos: ../shared/data/eval/photos (one table per folder: bsd100, kodak24, mcmaster18);
clips: ../shared/data/video/color (one table per clip). Clips are cut to their first
``--max-frames`` frames (60 by default) so a CPU run takes minutes, not hours. The JSON is
``vidcolor eval``'s report (docs/eval.md) plus a ``machine`` block, written to
``benchmarks/results/eval_<model>_<UTC time>.json`` unless ``--out`` says otherwise.

On a machine whose cores are busy with other work (a training run), pass ``--threads 1``:
torch's element-wise ops on full-HD frames slow down ten-fold when its threads oversubscribe
the cores. Budget about 1.5 s per clip frame and 0.2 s per photo on one busy core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from vidcolor.config import DEFAULT_RENDER_SIZE  # noqa: E402
from vidcolor.flow import FLOW_METHODS  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PHOTOS = SHARED / "eval" / "photos"
CLIPS = SHARED / "video" / "color"
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    """Where the numbers were measured (timings are only comparable on the same machine)."""
    import torch

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model name or path (default: the shipped model)")
    parser.add_argument("--data", nargs="+", default=[str(PHOTOS), str(CLIPS)], help="photo folders and clips")
    parser.add_argument("--max-frames", type=int, default=60, help="frames per clip (0: all; default 60)")
    parser.add_argument("--max-images", type=int, default=0, help="photos per folder (0: all)")
    parser.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    parser.add_argument("--smooth", type=float, default=0.8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reference-frame", type=int, action="append", default=[], metavar="N",
                        help="give the true colours of frame N of each clip as a reference (repeatable)")
    parser.add_argument("--flow", default="dis", choices=list(FLOW_METHODS),
                        help="flow the warp errors are measured along (farneback: independent of the smoother's DIS)")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/eval_<model>_<time>.json)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is much faster when other jobs load every core")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from vidcolor.errors import VidcolorError
    from vidcolor.metrics.evaluate import evaluate, format_table, write_json

    if args.out:
        out = Path(args.out)
    else:
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.model).stem or args.model)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"eval_{label}_{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = evaluate(args.model, args.data, render_size=args.render_size, smooth=args.smooth,
                          device=args.device, max_frames=args.max_frames or None,
                          max_images=args.max_images or None, references=args.reference_frame,
                          progress=not args.quiet, flow_name=args.flow)
        report["machine"] = machine()
        print(format_table(report))
        write_json(report, out)
    except VidcolorError as exc:
        print(f"eval_model: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
