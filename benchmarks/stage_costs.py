"""What each pipeline stage costs per frame on the CPU, one stage at a time, one thread each.

    python benchmarks/stage_costs.py                      # 640x360, 200 frames, default model
    python benchmarks/stage_costs.py --size 1280x720 --threads 2

On a machine where every stage shares the same few cores (no GPU), the full pipeline cannot
beat the sum of these costs divided by the cores, so this also prints the best overlap
efficiency (``pipeline / min(decode+encode, generator)``, as ``throughput.py`` measures it)
that the cores allow: the slower side's cost (generator, or decode + encode) over the sum of all
costs. Writes ``benchmarks/results/stage_costs-<size>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vidcolor.config import DEFAULT_RENDER_SIZE  # noqa: E402

from benchmarks.throughput import make_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", default="default")
    parser.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    parser.add_argument("--batch-size", type=int, default=8, help="frames per model call (8: colorize's auto on the CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: cost per core)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from vidcolor.io.decode import iter_frames
    from vidcolor.io.encode import OutputWriter
    from vidcolor.io.probe import probe
    from vidcolor.models.weights import load_generator
    from vidcolor.pipeline.batch import luma_to_unit, make_batch, render_shape
    from vidcolor.pipeline.generate import ChromaGenerator
    from vidcolor.pipeline.planes import chroma_to_planes
    from vidcolor.pipeline.smooth import ChromaSmoother

    w, h = (int(v) for v in args.size.split("x"))
    n = args.frames
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = str(Path(tmp) / "clip.mp4")
        make_clip(Path(clip), w, h, n)
        info = probe(clip, verdict=False)
        video = info.video

        def timed(name: str, fn):
            t0 = time.perf_counter()
            result = fn()
            costs[name] = (time.perf_counter() - t0) / n * 1000.0
            return result

        frames = timed("decode", lambda: list(iter_frames(clip, info)))
        render = render_shape(h, w, args.render_size)
        lumas = timed("luma to render size", lambda: [luma_to_unit(f.y, video.bit_depth, video.full_range, render)
                                                      for f in frames])
        gen = ChromaGenerator(load_generator(args.model)[0], torch.device("cpu"))
        bs = args.batch_size
        gen.submit(make_batch([None] * bs, lumas[:bs], [None] * bs, False)).result()  # warm-up

        def generate():
            out = []
            for i in range(0, n, bs):
                part = lumas[i : i + bs]
                out.extend(gen.submit(make_batch([None] * len(part), part, [None] * len(part), False)).result()[1])
            return out

        chroma = timed("generator", generate)
        smoother = ChromaSmoother(0.8)
        smoothed = timed("smoother (2 DIS flows, mask, warp)", lambda: [smoother(y, c) for y, c in zip(lumas, chroma)])
        with OutputWriter(Path(tmp) / "out.mp4", info, "x264") as writer:
            planes = timed("chroma to output planes", lambda: [chroma_to_planes(c, writer.format) for c in smoothed])

            def encode():
                for f, (cb, cr) in zip(frames, planes):
                    writer.write(f.y, cb, cr, f.pts)
                writer.close()

            timed("encode (x264, wall time)", encode)
    total = sum(costs.values())
    generator = costs["generator"]
    # The efficiency's denominator is the slower of the two sides measured alone.
    slower = max(generator, costs["decode"] + costs["encode (x264, wall time)"])
    cores = os.cpu_count() or 1
    best_fps = 1000.0 * cores / total
    report = {"size": args.size, "frames": n, "threads": args.threads, "batch_size": bs, "model": args.model,
              "ms_per_frame": costs, "total_ms": total,
              "best_pipeline_fps_on_all_cores": best_fps,
              "best_overlap_efficiency": slower / total,
              "machine": {"platform": platform.platform(), "cpus": cores, "torch": torch.__version__}}
    for name, ms in costs.items():
        print(f"{name:38s} {ms:7.2f} ms/frame")
    print(f"{'sum':38s} {total:7.2f} ms/frame -> at most {best_fps:.0f} fps on {cores} cores; "
          f"best overlap efficiency {slower / total:.2f} (the slower side's share of the work)")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"stage_costs-{args.size}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
