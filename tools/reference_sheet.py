"""Contact sheet of reference-guided against automatic colorization on a colour clip.

    python tools/reference_sheet.py ../shared/data/video/color/sam2_01_dog.mp4 --out docs/reference_dog.png

The clip's true frame 0 (any colour frame would do: a restorer's hand-coloured frame) is the
only reference. Each row is one frame: grey input / automatic / with the reference / truth.
Both runs go through ``vidcolor colorize`` exactly as a user would run them (``--force``, so the
model sees only the luma).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidcolor.io.decode import iter_frames  # noqa: E402
from vidcolor.io.probe import probe  # noqa: E402
from vidcolor.pipeline.planes import planes_to_rgb  # noqa: E402
from vidcolor.pipeline.preview import write_contact_sheet  # noqa: E402
from vidcolor.pipeline.run import colorize_video  # noqa: E402

WIDTH = 320


def frames_rgb(path: str, indices: list[int]) -> dict[int, np.ndarray]:
    """RGB thumbnails of the given frames of a video."""
    info = probe(path, verdict=False).video
    out = {}
    for frame in iter_frames(path, end=max(indices)):
        if frame.index in indices:
            out[frame.index] = planes_to_rgb(frame.y, frame.cb, frame.cr, info.bit_depth, info.full_range, info.matrix, WIDTH)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--frames", type=int, default=120, help="frames of the clip to use")
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()
    last = min(args.frames, probe(args.clip, verdict=False).video.frame_count) - 1
    indices = sorted({round(i * last / (args.rows - 1)) for i in range(args.rows)})
    with tempfile.TemporaryDirectory() as tmp:
        truth = frames_rgb(args.clip, indices)
        ref = Path(tmp) / "reference.png"  # the true frame 0 at full size
        info = probe(args.clip, verdict=False).video
        first = next(iter_frames(args.clip, end=0))
        full = planes_to_rgb(first.y, first.cb, first.cr, info.bit_depth, info.full_range, info.matrix, info.width)
        cv2.imwrite(str(ref), full[..., ::-1])
        runs = {}
        for name, refs in (("auto", ()), ("guided", (f"{ref}@0",))):
            out = str(Path(tmp) / f"{name}.mkv")
            colorize_video(args.clip, out, model=args.model, frames=f"0-{last}", codec="ffv1", force=True, quiet=True,
                           references=refs)
            runs[name] = frames_rgb(out, indices)
        rows = []
        for i in indices:
            grey = np.repeat(cv2.cvtColor(truth[i], cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
            rows.append((grey, runs["auto"][i], runs["guided"][i], truth[i]))
    write_contact_sheet(args.out, rows)
    print(f"wrote {args.out} (rows: frames {indices}; columns: grey, automatic, reference at frame 0, truth)")


if __name__ == "__main__":
    main()
