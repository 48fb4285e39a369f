"""Throughput benchmark: how close the pipeline gets to its decode+encode ceiling.

For each size it times, on the same clip (generated here, or given with --clip):

1. decode only;
2. decode + encode only (the ceiling: no model; the Y plane is written with neutral chroma);
3. the generator only, on pre-decoded batches at render size;
4. the full ``vidcolor colorize`` pipeline.

and prints frames per second, the overlap efficiency ``pipeline fps / min(decode+encode fps,
generator fps)`` (1.0: the pipeline runs as fast as its slower part alone, fully overlapped) and
peak memory (host RSS; GPU memory where CUDA is used). Each measurement runs in its own process
so peaks are separate. Results go to ``benchmarks/results/throughput-<device>.json``.

    python benchmarks/throughput.py                       # 640x360, 1280x720, 1920x1080
    python benchmarks/throughput.py --sizes 640x360 --frames 300 --device cuda
    python benchmarks/throughput.py --compile             # the generator through torch.compile

With ``--compile`` the generator and pipeline figures leave the compiling out: the generator
is timed after its warm-up batch, and the pipeline after a short run that fills the compile
cache (as a second ``colorize --compile`` on a machine finds it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vidcolor.config import DEFAULT_RENDER_SIZE  # noqa: E402


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A grey H.264 clip with texture and motion (so codecs work as on real footage)."""
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8 + 2, width // 8 + 2), dtype=np.uint8)
    import cv2

    texture = cv2.resize(base, (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            y = np.ascontiguousarray(texture[i % 64 : i % 64 + height, (2 * i) % 64 : (2 * i) % 64 + width])
            y = np.clip(y.astype(np.int16) + rng.integers(-4, 5, y.shape), 0, 255).astype(np.uint8)
            yuv = np.concatenate([y, np.full((height // 2, width), 128, np.uint8)])
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(kind: str, clip: str, device: str, render_size: int, batch_size: str, model: str, threads: int = 0,
            codec: str = "x264", compile_model: bool = False) -> dict:
    """Run one measurement in this process and return its figures."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from vidcolor.io.decode import iter_frames
    from vidcolor.io.encode import OutputWriter
    from vidcolor.io.probe import probe

    info = probe(clip, verdict=False)
    n = info.video.frame_count
    from vidcolor.io.encode import resolve_codec

    # "auto": what colorize would pick here, so the ceiling and the pipeline use one encoder.
    codec = resolve_codec(codec, info.video, device.startswith("cuda") and torch.cuda.is_available(), portable=False)
    result: dict = {"kind": kind, "frames": n, "codec": codec}
    t0 = time.perf_counter()
    if kind == "decode":
        count = sum(1 for _ in iter_frames(clip, info))
        assert count == n
    elif kind == "decode_encode":
        with tempfile.TemporaryDirectory() as tmp, OutputWriter(Path(tmp) / "out.mp4", info, codec) as writer:
            fmt = writer.format
            for frame in iter_frames(clip, info):
                cb = np.full(fmt.chroma_size, 128, fmt.dtype)
                writer.write(frame.y, cb, cb, frame.pts)
    elif kind == "generator":
        from vidcolor.devices import pick_device
        from vidcolor.models.weights import load_generator
        from vidcolor.pipeline.batch import luma_to_unit, make_batch, render_shape
        from vidcolor.pipeline.generate import ChromaGenerator

        dev = pick_device(device)
        gen = ChromaGenerator(load_generator(model, dev)[0], dev, compile=compile_model)
        shape = render_shape(info.video.height, info.video.width, render_size)
        lumas = [luma_to_unit(f.y, info.video.bit_depth, info.video.full_range, shape) for f in iter_frames(clip, info)]
        batch_size = gen.auto_batch_size(shape) if batch_size == "auto" else int(batch_size)  # as colorize sizes it
        result["batch_size"] = batch_size
        batches = [make_batch([None] * len(lumas[i : i + batch_size]), lumas[i : i + batch_size],
                              [None] * len(lumas[i : i + batch_size]), gen.cuda) for i in range(0, n, batch_size)]
        gen.submit(batches[0]).result()  # warm-up (kernel selection, allocator)
        t0 = time.perf_counter()
        pending = None
        for b in batches:
            p = gen.submit(b)
            if pending is not None:
                pending.result()
            pending = p
        pending.result()
    elif kind == "pipeline":
        from vidcolor.pipeline.run import colorize_video

        options = dict(device=device, render_size=render_size, batch_size=str(batch_size), codec=codec,
                       compile=compile_model, quiet=True)
        with tempfile.TemporaryDirectory() as tmp:
            if compile_model:
                # Fill the compile cache outside the timing: the same loaded model (a model
                # loaded again is traced again) and enough frames for the timed run's batch
                # size, since a graph is made per batch size (--batch-size auto on CUDA is up
                # to AUTO_BATCH_CAP frames).
                from vidcolor.devices import pick_device
                from vidcolor.models.weights import load_generator
                from vidcolor.pipeline.generate import AUTO_BATCH_CAP

                model = load_generator(model, pick_device(device))[0]
                colorize_video(clip, str(Path(tmp) / "warm.mp4"), model, frames=f"0-{min(n, 2 * AUTO_BATCH_CAP) - 1}",
                               **options)
                t0 = time.perf_counter()
            colorize_video(clip, str(Path(tmp) / "out.mp4"), model, **options)
    seconds = time.perf_counter() - t0
    result.update(seconds=seconds, fps=n / seconds, peak_rss_mb=peak_rss_mb())
    if torch.cuda.is_available() and device != "cpu":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_child(kind: str, clip: str, args) -> dict:
    """Run ``measure`` in a fresh process (separate memory peaks, no warm caches shared).

    Returns:
        The child's figures, or ``{"error": ...}`` with the end of its stderr (also printed)
        when it fails, so one failing measurement neither hides its cause nor loses the rest.
    """
    cmd = [sys.executable, __file__, "--child", kind, "--clip", clip, "--device", args.device,
           "--render-size", str(args.render_size), "--batch-size", str(args.batch_size), "--model", args.model,
           "--threads", str(args.threads), "--codec", args.codec] + (["--compile"] if args.compile else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        tail = out.stderr.strip()[-4000:]
        print(f"{kind} on {clip} failed (exit {out.returncode}):\n{tail}", file=sys.stderr, flush=True)
        return {"error": tail.splitlines()[-1] if tail else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(row: dict) -> str:
    """One line for a size's measurements (failed ones say so)."""
    def fps(kind: str) -> str:
        return "failed" if "error" in row[kind] else f"{row[kind]['fps']:7.1f} fps"

    line = (f"{row['size']:>10}: decode {fps('decode')} | decode+encode {fps('decode_encode')} | generator "
            f"{fps('generator')} | pipeline {fps('pipeline')}")
    if row.get("overlap_efficiency") is not None:
        line += f" | overlap efficiency {row['overlap_efficiency']:.2f}"
    pipeline = row["pipeline"]
    if "peak_rss_mb" in pipeline:
        line += f" | peak RSS {pipeline['peak_rss_mb']:.0f} MiB"
    if "peak_gpu_mb" in pipeline:
        line += f" | peak GPU {pipeline['peak_gpu_mb']:.0f} MiB"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--clip", default=None, help="use this clip instead of generating one per size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    parser.add_argument("--batch-size", default="auto", help="frames per model call, or auto (as colorize)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--codec", default="x264", help="encoder for decode+encode and the pipeline (x264, nvenc-h264, ...)")
    parser.add_argument("--compile", action="store_true", help="run the generator through torch.compile (colorize --compile)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.clip, args.device, args.render_size, args.batch_size, args.model,
                                 args.threads, args.codec, args.compile)))
        return
    import torch

    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "device": args.device, "render_size": args.render_size, "batch_size": args.batch_size, "model": args.model,
        "codec": args.codec, "compile": args.compile,
        "torch_threads": args.threads or torch.get_num_threads(),
        "results": [],
    }
    suffix = ("" if args.codec == "x264" else f"-{args.codec}") + ("-compile" if args.compile else "")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"throughput-{args.device.replace(':', '')}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clips = [(args.clip, None)] if args.clip else []
        if not args.clip:
            for size in args.sizes.split(","):
                w, h = (int(v) for v in size.split("x"))
                path = Path(tmp) / f"clip_{w}x{h}.mp4"
                make_clip(path, w, h, args.frames)
                clips.append((str(path), size))
        for clip, size in clips:
            row = {"size": size or Path(clip).name}
            for kind in ("decode", "decode_encode", "generator", "pipeline"):
                row[kind] = run_child(kind, clip, args)
            measured = all("error" not in row[kind] for kind in ("decode_encode", "generator", "pipeline"))
            ceiling = min(row["decode_encode"]["fps"], row["generator"]["fps"]) if measured else None
            row["overlap_efficiency"] = row["pipeline"]["fps"] / ceiling if measured else None
            report["results"].append(row)
            print(_summary(row), flush=True)
            out.write_text(json.dumps(report, indent=2) + "\n")  # after each size: a later failure loses nothing
    print(f"wrote {out}")
    if any("error" in row[kind] for row in report["results"] for kind in ("decode", "decode_encode", "generator", "pipeline")):
        sys.exit(1)


if __name__ == "__main__":
    main()
