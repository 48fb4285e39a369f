"""Would smoothing the styled *luma* along the flow make styled video steadier? A study of a
design vidcolor does not ship, kept so its figures can be re-measured.

    python benchmarks/style_luma_study.py --baseline runs/post/noflicker.json
    python benchmarks/style_luma_study.py --baseline B --styles starry_night --max-frames 8   # smoke run

Style mode keeps the source's own luma at full size and adds the style's smoothed change of
luma (``vidcolor.pipeline.style``), so most of a styled clip's warp error is the footage's own
(grain, motion blur, flow failures) and the issue's target (half the frame-by-frame warp
error) is out of reach without touching that luma. This script tries the obvious way to touch
it: the full-size styled luma blended recursively with the previous output carried along the
flow, ``y'_t = y_t + a·m·(warp(y'_{t-1}) - y_t)``, the chroma smoother's rule applied to luma,
with the flow either at render size (upsampled, what the pipeline has) or at full size.

Every variant is measured twice: along DIS flow (the metric's default, and the estimator the
stabiliser itself uses) and along Farneback flow (independent of it). It also reports what the
variant costs: sharpness (variance of the Laplacian, relative to the shipped output) and PSNR
against the shipped output. Results go to ``benchmarks/results/style_luma_study.json``.
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

from benchmarks.eval_model import CLIPS, RESULTS, machine  # noqa: E402

FLOWS = ("dis", "farneback")


def stabilised_luma(lumas, flow_lumas, alpha):
    """The full-size styled luma smoothed along the flow, the chroma smoother's rule on luma.

    Args:
        lumas: ``T`` full-size styled luma frames ``(H, W)`` float32.
        flow_lumas: ``T`` source luma frames to compute flow on (render size or full size);
            flow and mask are resized to full size when smaller.
        alpha: blend strength in [0, 1).

    Returns:
        ``T`` smoothed ``(H, W)`` float32 frames.
    """
    import cv2
    import numpy as np

    from vidcolor import flow
    from vidcolor.pipeline.smooth import flow_and_weight

    out, prev, prev_gray = [], None, None
    for y, source in zip(lumas, flow_lumas):
        gray = flow.to_gray8(source)
        if prev is not None:
            to_prev, weight = flow_and_weight(gray, prev_gray, alpha)
            (h, w), (big_h, big_w) = gray.shape, y.shape
            if (h, w) != (big_h, big_w):  # flow in render-size pixels -> full-size pixels
                to_prev = cv2.resize(to_prev, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
                to_prev *= np.array([big_w / w, big_h / h], np.float32)
                weight = cv2.resize(weight, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
            y = y + weight * (flow.warp(prev, to_prev) - y)
        prev, prev_gray = y.astype(np.float32), gray
        out.append(prev)
    return out


def clip_versions(ours, base, clip: Path, max_frames: int, alphas) -> tuple[dict, list]:
    """Every version of one styled clip, rebuilt at full size as ``colorize --style`` does.

    Returns:
        (name -> ``T`` RGB frames, the source's full-size luma frames).
    """
    import numpy as np

    from vidcolor.metrics.clips import clip_chroma
    from vidcolor.metrics.frames import compose, read_clip
    from vidcolor.metrics.temporal import frame_luma
    from vidcolor.pipeline.batch import luma_to_unit, render_shape, upsample_chroma
    from vidcolor.pipeline.smooth import smooth_sequence
    from vidcolor.pipeline.style import style_offsets, styled_luma

    truth = [f.astype(np.float32) / 255.0 for f in read_clip(clip, max_frames)]
    size = truth[0].shape[:2]
    lumas = [frame_luma(f) for f in truth]
    small = [luma_to_unit(y * 255.0, 8, True, render_shape(*size, DEFAULT_RENDER_SIZE)) for y in lumas]

    def styled(generator, smooth: float) -> tuple[list, list]:
        maps = smooth_sequence(small, clip_chroma(generator, small), smooth)
        offsets = [style_offsets(m, small[t]) for t, m in enumerate(maps)]
        ys = [styled_luma(o[0], lumas[t]) for t, o in enumerate(offsets)]
        return ys, [upsample_chroma(np.ascontiguousarray(o[1:]), size) for o in offsets]

    versions = {}
    ys, chroma = styled(base, 0.0)
    versions["frame by frame (no flicker term, no smoothing)"] = [compose(y, c) for y, c in zip(ys, chroma)]
    ys, chroma = styled(ours, 0.8)
    versions["shipped (maps smoothed)"] = [compose(y, c) for y, c in zip(ys, chroma)]
    for alpha in alphas:
        for where, flow_lumas in (("render-size", small), ("full-size", lumas)):
            steady = stabilised_luma(ys, flow_lumas, alpha)
            versions[f"+ luma smoothed {alpha}, {where} flow"] = [compose(y, c) for y, c in zip(steady, chroma)]
    versions["truth"] = truth
    return versions, lumas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="the shipped model (trained with the flicker term)")
    parser.add_argument("--baseline", required=True, help="the same styles trained without the flicker term")
    parser.add_argument("--styles", nargs="*", default=["starry_night", "the_scream", "grande_jatte"])
    parser.add_argument("--data", nargs="+", default=[str(CLIPS)], help="colour clips or folders of clips")
    parser.add_argument("--max-frames", type=int, default=16)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--out", default=str(RESULTS / "style_luma_study.json"))
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from vidcolor.metrics.data import find_data
    from vidcolor.metrics.image import psnr
    from vidcolor.metrics.temporal import frame_luma, warp_errors
    from vidcolor.models.weights import load_generator
    from vidcolor.pipeline.generate import ChromaGenerator
    from vidcolor.pipeline.style import style_code

    cpu = torch.device("cpu")
    models = {name: load_generator(path, cpu)[0] for name, path in (("ours", args.model), ("base", args.baseline))}
    clips = find_data(args.data)[1]
    t0 = time.time()
    results = {}
    for style in args.styles:
        ours, base = (ChromaGenerator(m, cpu, style=style_code(m.style_names, style, 1.0), head="rgb", maps=True)
                      for m in (models["ours"], models["base"]))
        per_clip: dict[str, dict[str, list[float]]] = {}
        for clip in clips:
            versions, lumas = clip_versions(ours, base, clip, args.max_frames, args.alphas)
            shipped = versions["shipped (maps smoothed)"]
            sharp_shipped = np.mean([cv2.Laplacian(frame_luma(f), cv2.CV_32F).var() for f in shipped])
            errors = {f: warp_errors(versions, lumas, f) for f in FLOWS}
            for name, frames in versions.items():
                row = per_clip.setdefault(name, {})
                for f in FLOWS:
                    row.setdefault(f"warp_{f}", []).append(errors[f][name]["warp_error"])
                sharp = np.mean([cv2.Laplacian(frame_luma(x), cv2.CV_32F).var() for x in frames])
                row.setdefault("sharpness", []).append(float(sharp / sharp_shipped))
                row.setdefault("psnr_vs_shipped", []).append(float(np.mean([min(psnr(x, s), 99.0)
                                                                           for x, s in zip(frames, shipped)])))
        names = list(per_clip)
        mean = {n: {k: float(np.mean(v)) for k, v in per_clip[n].items()} for n in names}
        reference = mean["frame by frame (no flicker term, no smoothing)"]
        for n in names:
            for f in FLOWS:
                mean[n][f"ratio_{f}"] = mean[n][f"warp_{f}"] / reference[f"warp_{f}"]
        results[style] = mean
        print(f"\n{style} ({time.time() - t0:.0f} s): warp error ratio to frame by frame, along each flow")
        print(f"  {'version':52s} {'DIS':>6s} {'Farneback':>10s} {'sharpness':>10s} {'PSNR vs shipped':>16s}")
        for n in names:
            m = mean[n]
            print(f"  {n:52s} {m['ratio_dis']:6.2f} {m['ratio_farneback']:10.2f} {m['sharpness']:10.2f}"
                  f" {m['psnr_vs_shipped']:16.1f}", flush=True)
    summary = {"model": args.model, "baseline": args.baseline, "max_frames": args.max_frames, "data": args.data,
               "alphas": args.alphas, "styles": results, "seconds": time.time() - t0, "machine": machine()}
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
