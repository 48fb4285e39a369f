"""Farm benchmark: `farm` with 1 and 2 local Ray workers against one `colorize` run, plus a seam check.

    python benchmarks/farm_bench.py                                  # generated clip, tiny model
    python benchmarks/farm_bench.py --input film.mkv --model default --chunk-frames 1200 --force
    python benchmarks/farm_bench.py --json benchmarks/farm_bench.json

Timings: wall time of ``colorize_video`` over the whole clip (in this process: model load, probe,
decode, generate, smooth, encode), and of ``run_farm`` with ``--workers 1`` and ``2``, each
starting its own local Ray instance (so the total includes Ray's start-up and the workers'
imports; the start-up, render and merge parts are reported too). Every farm task runs with one
CPU thread (Ray sets OMP_NUM_THREADS=1 for a 1-CPU task) while the single run uses all cores.

Seam check: the mean absolute chroma difference (Cb and Cr, code values) between consecutive
frames, at chunk boundaries (the last frame of a chunk against the first of the next) and
inside chunks, for the farm's output and for the single run, and the largest difference
between the two outputs. The smoother's warm-up should make boundary pairs look like inside
pairs and the farm's frames equal the single run's within one code value.

Without ``--model`` a tiny randomly initialised generator is used (its speed is not the
shipped model's); without ``--input`` a synthetic FFV1 clip with motion and audio is made.
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

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.media (clip synthesis) when run from a checkout

from vidcolor.config import DEFAULT_RENDER_SIZE, ColorizeConfig, FarmOptions  # noqa: E402
from vidcolor.pipeline.segments import plan_chunks  # noqa: E402
from vidcolor.farm.ray_executor import run_farm  # noqa: E402
from vidcolor.io.probe import probe  # noqa: E402
from vidcolor.pipeline.run import colorize_video  # noqa: E402


def tiny_model(folder: Path) -> str:
    """A small random generator with a lively chroma head, saved as folder/tiny.{safetensors,json}."""
    from vidcolor.models.generator import Generator
    from vidcolor.models.weights import save_generator

    torch.manual_seed(0)
    model = Generator(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4)
    with torch.no_grad():  # a fresh chroma head (std 1e-3) paints flat grey: nothing to check seams on
        model.chroma_head.weight.normal_(0.0, 0.3)
        model.chroma_head.bias.uniform_(-0.3, 0.3)
    save_generator(model, folder / "tiny")
    return str(folder / "tiny.json")


def synthetic_clip(folder: Path, frames: int, width: int, height: int) -> str:
    """A lossless clip with texture, motion and audio (tests.media.make_clip)."""
    from tests.media import make_clip

    return str(make_clip(folder / "bench.mkv", width=width, height=height, frames=frames, lossless=True,
                         audio="aac", content="moving").path)


def read_chroma(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(Cb, Cr) planes of every frame, as float32 code values, in presentation order."""
    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            arrays = []
            for plane in frame.planes[1:3]:
                item = 2 if frame.format.components[0].bits > 8 else 1
                dtype = np.uint8 if item == 1 else np.dtype("<u2")
                data = np.frombuffer(bytes(plane), dtype=dtype).reshape(plane.height, -1)[:, : plane.width]
                arrays.append(data.astype(np.float32))
            frames.append((frame.pts, arrays[0], arrays[1]))
    frames.sort(key=lambda f: f[0])
    return [(cb, cr) for _, cb, cr in frames]


def step_differences(chroma: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mean |Δ chroma| between frame t-1 and t, for t = 1..n-1 (index t-1 in the result)."""
    return np.array([0.5 * (np.abs(b[0] - a[0]).mean() + np.abs(b[1] - a[1]).mean())
                     for a, b in zip(chroma, chroma[1:])])


def seam_check(farm_out: str, single_out: str, frame_count: int, chunk_frames: int) -> dict:
    """Temporal chroma change at chunk boundaries against inside chunks, farm and single run."""
    farm, single = read_chroma(farm_out), read_chroma(single_out)
    starts = [s for s, _ in plan_chunks(frame_count, chunk_frames)[1:]]
    boundary = [s - 1 for s in starts]  # pair (s-1, s) is element s-1 of step_differences
    inside = [i for i in range(len(farm) - 1) if i not in set(boundary)]
    d_farm, d_single = step_differences(farm), step_differences(single)
    versus = [max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max()) for a, b in zip(farm, single)]
    samples = sum(int((a[0] != b[0]).sum() + (a[1] != b[1]).sum()) for a, b in zip(farm, single))
    at_seams = [versus[s] for s in starts] + [versus[s - 1] for s in starts]
    return {
        "boundary_pairs": len(boundary),
        "inside_pairs": len(inside),
        "farm_boundary_mean_abs_diff": float(d_farm[boundary].mean()) if boundary else None,
        "farm_inside_mean_abs_diff": float(d_farm[inside].mean()) if inside else None,
        "single_boundary_mean_abs_diff": float(d_single[boundary].mean()) if boundary else None,
        "single_inside_mean_abs_diff": float(d_single[inside].mean()) if inside else None,
        "farm_vs_single_max_abs_diff": float(max(versus)),
        "farm_vs_single_max_abs_diff_at_seams": float(max(at_seams)) if at_seams else None,
        "frames_differing": int(sum(v > 0 for v in versus)),
        "chroma_samples_differing": samples,
        "chroma_samples": int(sum(a[0].size + a[1].size for a in farm)),
        "differing_frame_indices": [i for i, v in enumerate(versus) if v > 0][:100],
        "chunk_starts": starts,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="Clip to colorize (default: a generated one).")
    parser.add_argument("--model", help="Model name or path (default: a tiny random generator).")
    parser.add_argument("--frames", type=int, default=120, help="Frames of the generated clip.")
    parser.add_argument("--size", default="96x64", help="WxH of the generated clip.")
    parser.add_argument("--chunk-frames", type=int, default=30)
    parser.add_argument("--render-size", type=int, default=None,
                        help=f"Short side the model sees (default: {DEFAULT_RENDER_SIZE} with --model, 64 for the tiny one).")
    parser.add_argument("--smooth", type=float, default=0.8)
    parser.add_argument("--codec", default="ffv1")
    parser.add_argument("--workers", default="1,2", help="Comma-separated worker counts to time.")
    parser.add_argument("--force", action="store_true", help="Colorize a colour input (generated clips always are).")
    parser.add_argument("--work", help="Folder for outputs (default: a temporary one).")
    parser.add_argument("--json", help="Write the results here (default: WORK/farm_bench.json).")
    args = parser.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="vidcolor-farm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    source = args.input or synthetic_clip(work, args.frames, width, height)
    model = args.model or tiny_model(work)
    force = args.force or args.input is None
    video = probe(source, verdict=False).video
    frame_count = video.frame_count
    render_size = args.render_size or (DEFAULT_RENDER_SIZE if args.model else 64)
    options = {"codec": args.codec, "render_size": render_size, "smooth": args.smooth, "force": force}

    results: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "cuda": torch.cuda.is_available(), "torch_threads": torch.get_num_threads()},
        "clip": {"path": source, "frames": frame_count, "generated": args.input is None,
                 "size": f"{video.width}x{video.height}"},
        "model": model if args.model else "tiny random generator (untrained; speed differs from the shipped model)",
        "options": {**options, "chunk_frames": args.chunk_frames},
        "runs": [],
    }

    single_out = work / f"single{Path(source).suffix if args.input else '.mkv'}"
    t0 = time.time()
    _single(source, single_out, model, options)
    single_s = time.time() - t0
    results["runs"].append({"run": "colorize (single process)", "seconds": single_s, "fps": frame_count / single_s})
    print(f"colorize (single)   {single_s:7.1f} s  {frame_count / single_s:6.1f} fps", flush=True)

    farm_outputs = {}
    for workers in (int(w) for w in args.workers.split(",")):
        out = work / f"farm_w{workers}{Path(single_out).suffix}"
        cfg = ColorizeConfig(input=source, output=str(out), model=model, quiet=True, overwrite=True, **options)
        report = run_farm(cfg, FarmOptions(chunk_frames=args.chunk_frames, workers=workers, keep_chunks=False,
                                           chunk_dir=str(work / f"chunks_w{workers}")))
        farm_outputs[workers] = str(out)
        results["runs"].append({
            "run": f"farm, {workers} local worker{'s' if workers > 1 else ''}", "workers": workers,
            "seconds": report.seconds, "fps": frame_count / report.seconds,
            "ray_startup_seconds": report.startup_seconds, "render_seconds": report.render_seconds,
            "merge_seconds": report.merge_seconds, "chunks": report.chunks,
            "speedup_vs_single": single_s / report.seconds,
            "render_speedup_vs_single": single_s / report.render_seconds if report.render_seconds else None,
        })
        print(f"farm, {workers} worker(s)   {report.seconds:7.1f} s  {frame_count / report.seconds:6.1f} fps  "
              f"(Ray start {report.startup_seconds:.1f} s, render {report.render_seconds:.1f} s, "
              f"merge {report.merge_seconds:.2f} s, {report.chunks} chunks)", flush=True)

    seams = seam_check(farm_outputs[max(farm_outputs)], str(single_out), frame_count, args.chunk_frames)
    results["seam_check"] = {"farm_output": farm_outputs[max(farm_outputs)], **seams}
    print("seam check (mean |Δ chroma| between consecutive frames, code values):")
    print(f"  farm:   at boundaries {seams['farm_boundary_mean_abs_diff']:.3f}   inside chunks "
          f"{seams['farm_inside_mean_abs_diff']:.3f}")
    print(f"  single: at boundaries {seams['single_boundary_mean_abs_diff']:.3f}   elsewhere     "
          f"{seams['single_inside_mean_abs_diff']:.3f}")
    print(f"  farm vs single: max |diff| {seams['farm_vs_single_max_abs_diff']:.0f} code values "
          f"({seams['frames_differing']} of {frame_count} frames, {seams['chroma_samples_differing']} of "
          f"{seams['chroma_samples']} chroma samples differ at all)")

    path = Path(args.json) if args.json else work / "farm_bench.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results: {path}")
    return results


def _single(source: str, output: Path, model: str, options: dict) -> None:
    """One colorize run of the whole clip, loading the model by path as the CLI does."""
    from vidcolor.devices import pick_device
    from vidcolor.models.weights import load_generator

    generator, _ = load_generator(model, pick_device("auto"))
    colorize_video(source, output, model=generator, quiet=True, overwrite=True, **options)


if __name__ == "__main__":
    main()
