"""Long-film benchmark: a feature-length film through ``colorize --resume``, killed and resumed.

    python benchmarks/long_film.py                        # a 120-minute film, 480x360, two kills
    python benchmarks/long_film.py --minutes 2 --kills 0.5 --out /tmp/long.json   # a quick try

What a restorer trusts a tool with is the whole film, not a clip, so this runs the whole path at
feature length:

1. It synthesises a black-and-white film with PyAV: H.264 at 24000/1001 fps with a panning
   grainy texture and a scene cut every two minutes, and a stereo AAC track interleaved with it.
   Every frame carries its own index as a barcode of 18 black/white 16x16 blocks in its top
   left corner, so every output frame can be matched to the input frame it came from.
2. It runs ``vidcolor colorize FILM -o OUT --resume --quiet`` (default model and settings) in a
   child process, sampling the child's resident memory every second, and kills it with SIGKILL
   (no chance to clean up: a power cut) once the given fractions of its segments are on disk,
   then runs the same command again, until the film is done.
3. It checks the result with PyAV: as many frames as the input, the same presentation times,
   the barcode of output frame i reads i for every frame (nothing dropped, doubled or
   reordered across the kills and segment seams), the luma close to the input's (PSNR), the
   audio packets byte for byte the input's, and no segment folder or partial file left behind;
   and, when ``ffprobe`` is installed, the container durations as ffprobe reads them.

Everything goes to the JSON (``--out``): the film, each leg of the run (wall time, frames it
finished, peak memory), the merge time, the memory samples' spread, and the checks. The work
folder (``--workdir``, a temporary one by default) is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE = Fraction(24000, 1001)
AUDIO_RATE = 48000
BARCODE_BITS = 18  # 2**18 frames: over three hours at 24 fps
BLOCK = 16  # barcode block side in pixels
SCENE_SECONDS = 120
# The child: the installed CLI's entry point, run by this interpreter.
COLORIZE = [sys.executable, "-c", "from vidcolor.cli import main; main()", "colorize"]


def barcode(index: int) -> np.ndarray:
    """Luma codes of the barcode row for ``index``: 16 for a 0 bit, 235 for a 1 bit.

    Args:
        index: frame index, below ``2**BARCODE_BITS``.

    Returns:
        ``(BLOCK, BARCODE_BITS * BLOCK)`` uint8 array.
    """
    bits = (index >> np.arange(BARCODE_BITS)) & 1
    return np.repeat(np.where(bits, 235, 16).astype(np.uint8), BLOCK)[None, :].repeat(BLOCK, axis=0)


def read_barcode(luma: np.ndarray) -> int:
    """The frame index in a luma plane's barcode (the centre of each block, thresholded).

    Args:
        luma: ``(H, W)`` uint8 luma with the barcode in its top left corner.

    Returns:
        The index.
    """
    q = BLOCK // 4
    centres = luma[q : BLOCK - q, : BARCODE_BITS * BLOCK].reshape(BLOCK - 2 * q, BARCODE_BITS, BLOCK)[:, :, q : BLOCK - q]
    bits = centres.reshape(-1, BARCODE_BITS, BLOCK - 2 * q).mean(axis=(0, 2)) > 125
    return int((bits.astype(np.int64) << np.arange(BARCODE_BITS)).sum())


def _textures(width: int, height: int, margin: int) -> list[np.ndarray]:
    """Two smooth random textures (one per alternate scene) larger than the frame by ``margin``."""
    import cv2

    out = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        base = rng.integers(20, 235, ((height + margin) // 12 + 2, (width + margin) // 12 + 2), dtype=np.uint8)
        out.append(cv2.resize(base, (width + margin, height + margin), interpolation=cv2.INTER_CUBIC))
    return out


def make_film(path: Path, minutes: float, width: int, height: int) -> int:
    """Write the synthetic film (see the module docstring).

    Args:
        path: output file (.mp4).
        minutes: running time.
        width, height: frame size (even numbers).

    Returns:
        The number of video frames written.
    """
    frames = int(round(minutes * 60 * RATE))
    margin = 128
    textures = _textures(width, height, margin)
    grain = np.random.default_rng(2).integers(-6, 7, (16, height, width), dtype=np.int16)
    neutral = np.full((height // 2, width), 128, np.uint8)
    scene_frames = int(SCENE_SECONDS * RATE)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"crf": "18", "preset": "veryfast", "g": "48"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio_frame = audio.codec_context.frame_size or 1024
        samples_done = 0
        wave_rng = np.random.default_rng(3)
        for i in range(frames):
            texture = textures[(i // scene_frames) % 2]
            dx, dy = (3 * i) % margin, (i // 2) % margin
            y = texture[dy : dy + height, dx : dx + width].astype(np.int16) + grain[i % 16]
            y = np.clip(y, 16, 235).astype(np.uint8)
            y[:BLOCK, : BARCODE_BITS * BLOCK] = barcode(i)
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, neutral]), format="yuv420p")
            frame.pts = i
            container.mux(video.encode(frame))
            # Audio up to this frame's end, so the file is interleaved as a real one is.
            until = int((i + 1) / RATE * AUDIO_RATE)
            while samples_done + audio_frame <= until:
                t = (samples_done + np.arange(audio_frame)) / AUDIO_RATE
                tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * (samples_done // AUDIO_RATE % 20)) * t)
                left = (tone + 0.02 * wave_rng.standard_normal(audio_frame)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([left, 0.5 * left]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts, chunk.time_base = AUDIO_RATE, samples_done, Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(chunk))
                samples_done += audio_frame
        container.mux(video.encode())
        container.mux(audio.encode())
    return frames


def _rss_mib(pid: int) -> float | None:
    """Resident memory of a live process in MiB (Linux /proc), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _done_segments(folder: Path) -> int:
    """Segments finished under their final names (partial files start with a dot)."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".") and p.suffix == ".mp4")


def run_leg(cmd: list[str], segments: Path, total_segments: int, kill_at: int | None) -> dict:
    """One run of the command, killed with SIGKILL once ``kill_at`` segments are done.

    Args:
        cmd: the ``colorize --resume`` command.
        segments: the run's segment folder.
        total_segments: segments in the whole film.
        kill_at: kill when this many segments are on disk (None: let it finish).

    Returns:
        The leg's record: wall time, segments before/after, exit code, memory samples, merge time.
    """
    before = _done_segments(segments)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples, all_done_at, killed = [], None, False
    while child.poll() is None:
        rss = _rss_mib(child.pid)
        if rss is not None:
            samples.append(round(rss, 1))
        done = _done_segments(segments)
        if all_done_at is None and done >= total_segments:
            all_done_at = time.perf_counter()
        if kill_at is not None and done >= kill_at:
            child.send_signal(signal.SIGKILL)
            killed = True
            child.wait()
            break
        time.sleep(1.0)
    ended = time.perf_counter()
    output = child.stdout.read()
    wall = ended - t0
    return {
        "killed": killed, "exit_code": child.returncode, "wall_s": round(wall, 1),
        "segments_before": before, "segments_after": _done_segments(segments) if segments.is_dir() else total_segments,
        # From the last segment on disk to the child's exit: the lossless merge with the audio.
        "merge_s": None if all_done_at is None or killed else round(ended - all_done_at, 1),
        "peak_rss_mib": max(samples, default=None), "rss_samples": samples, "output": output.strip()[-500:],
    }


def _planes_y(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane of a decoded frame as ``(H, W)`` uint8 (8-bit formats)."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]


def verify(film: Path, out: Path) -> dict:
    """Compare the output with the film frame by frame and packet by packet (see docstring).

    Args:
        film: the input film.
        out: the colorized film.

    Returns:
        The checks and their figures.
    """
    with av.open(str(film)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        times_equal, barcode_errors, frames, psnr_min, sq_sum = True, 0, 0, math.inf, 0.0
        first_bad = None
        frames_a, frames_b = a.decode(va), b.decode(vb)
        while True:
            fa, fb = next(frames_a, None), next(frames_b, None)
            if fa is None or fb is None:
                break
            if fa.pts * va.time_base != fb.pts * vb.time_base:
                times_equal = False
            ya, yb = _planes_y(fa), _planes_y(fb)
            if read_barcode(yb) != frames:
                barcode_errors += 1
                first_bad = frames if first_bad is None else first_bad
            mse = float(np.mean((ya.astype(np.float32) - yb.astype(np.float32)) ** 2))
            psnr_min = min(psnr_min, 10 * math.log10(255**2 / max(mse, 1e-10)))
            sq_sum += mse
            frames += 1
        # Whichever ran out first: count what is left of the other.
        rest_a = (fa is not None) + sum(1 for _ in frames_a)
        rest_b = (fb is not None) + sum(1 for _ in frames_b)
    with av.open(str(film)) as a, av.open(str(out)) as b:
        audio_a = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        audio_b = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    result = {
        "frames_in": frames + rest_a, "frames_out": frames + rest_b, "presentation_times_equal": times_equal,
        "barcode_mismatches": barcode_errors, "first_mismatch": first_bad,
        "luma_psnr_db_mean": round(10 * math.log10(255**2 / max(sq_sum / max(frames, 1), 1e-10)), 2),
        "luma_psnr_db_min": round(psnr_min, 2),
        "audio_packets_in": len(audio_a), "audio_packets_out": len(audio_b), "audio_identical": audio_a == audio_b,
    }
    if shutil.which("ffprobe"):
        def duration(path: Path) -> float:
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                    str(path)], capture_output=True, text=True)
            return float(probe.stdout.strip() or "nan")
        result["ffprobe_duration_in_s"], result["ffprobe_duration_out_s"] = duration(film), duration(out)
    return result


def main() -> None:
    """Parse arguments, make the film, run it with kills, check it, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="running time of the film")
    parser.add_argument("--size", default="480x360", help="WIDTHxHEIGHT")
    parser.add_argument("--kills", default="0.3,0.7", help="fractions of the segments after which to SIGKILL ('' for none)")
    parser.add_argument("--segment-frames", type=int, default=500, help="--segment-frames of the run")
    parser.add_argument("--workdir", help="folder for the film and the output (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "long_film.json"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    kills = [float(k) for k in args.kills.split(",") if k.strip()]

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vidcolor-long-"))
    work.mkdir(parents=True, exist_ok=True)
    film, out = work / "film.mp4", work / "film_colour.mp4"
    t0 = time.perf_counter()
    frames = make_film(film, args.minutes, width, height)
    made_s = time.perf_counter() - t0
    print(f"film: {frames} frames ({args.minutes} min, {width}x{height}) made in {made_s:.0f} s", flush=True)

    total_segments = math.ceil(frames / args.segment_frames)
    segments = out.with_name(f".{out.stem}.segments")
    cmd = COLORIZE + [str(film), "-o", str(out), "--resume", "--segment-frames", str(args.segment_frames), "--quiet"]
    legs = []
    for fraction in [*kills, None]:
        kill_at = None if fraction is None else max(1, int(fraction * total_segments))
        leg = run_leg(cmd, segments, total_segments, kill_at)
        legs.append(leg)
        print(f"leg {len(legs)}: {leg['wall_s']} s, segments {leg['segments_before']} -> {leg['segments_after']}"
              f" of {total_segments}, {'killed' if leg['killed'] else 'exit %s' % leg['exit_code']},"
              f" peak RSS {leg['peak_rss_mib']} MiB", flush=True)
    finished = legs[-1]["exit_code"] == 0 and out.exists()
    checks = verify(film, out) if finished else {}
    leftovers = sorted(p.name for p in work.iterdir() if p.name not in (film.name, out.name))
    render_wall = sum(leg["wall_s"] for leg in legs)
    last = legs[-1]["rss_samples"]
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "film": {"minutes": args.minutes, "frames": frames, "size": f"{width}x{height}", "rate": str(RATE),
                 "segment_frames": args.segment_frames, "segments": total_segments, "made_s": round(made_s, 1),
                 "bytes": film.stat().st_size},
        "command": " ".join(["vidcolor colorize", *cmd[len(COLORIZE):]]),
        "legs": [{k: v for k, v in leg.items() if k != "rss_samples"} for leg in legs],
        "finished": finished, "output_bytes": out.stat().st_size if finished else None,
        "wall_s_all_legs": round(render_wall, 1),
        # Work lost to a kill is the segment in flight; this counts every leg's time.
        "fps_all_legs": round(frames / render_wall, 1) if render_wall else None,
        "rss_last_leg_mib": {"first_decile": _decile(last, 0.1), "median": _decile(last, 0.5),
                             "last_decile": _decile(last, 0.9), "max": max(last, default=None)},
        "left_in_workdir": leftovers, "checks": checks,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("finished", "fps_all_legs", "rss_last_leg_mib", "left_in_workdir", "checks")},
                     indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = finished and not leftovers and checks.get("barcode_mismatches") == 0 and checks.get("audio_identical") \
        and checks.get("presentation_times_equal") and checks["frames_in"] == checks["frames_out"]
    sys.exit(0 if ok else 1)


def _decile(samples: list[float], q: float) -> float | None:
    """The ``q`` quantile of the samples, or None without samples."""
    return float(np.quantile(samples, q)) if samples else None


if __name__ == "__main__":
    main()
