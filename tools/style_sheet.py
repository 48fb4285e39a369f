"""Contact sheet of every style of a model on the same frames, made with `vidcolor colorize --style`.

    python tools/style_sheet.py ../shared/data/video/bw/moviepy_chaplin.mp4@60 \
        ../shared/data/video/bw/moviepy_chaplin.mp4@200 ../shared/data/video/color/sam2_01_dog.mp4@40 \
        --out docs/styles_sheet.jpg

The first row is the input, the second natural colour, then one row per style (labelled); each
column is one frame. Every row comes
from a real `colorize --style NAME` run over the frames up to the last one asked for (FFV1, so
the thumbnails show the pipeline's output and not a codec's), with temporal smoothing as a user
gets it; colour inputs are recoloured from their luma (``--force``).
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
from vidcolor.models.weights import load_generator  # noqa: E402
from vidcolor.pipeline.planes import planes_to_rgb  # noqa: E402
from vidcolor.pipeline.preview import write_contact_sheet  # noqa: E402
from vidcolor.pipeline.run import colorize_video  # noqa: E402

HEIGHT = 150  # every thumbnail's height (a sheet's rows need one height; widths follow the aspect)


def frame_rgb(path: str, index: int) -> np.ndarray:
    """RGB thumbnail of one frame of a video (grey streams get neutral chroma)."""
    info = probe(path, verdict=False).video
    width = max(1, round(HEIGHT * info.width / info.height))
    for frame in iter_frames(path, end=index):
        if frame.index == index:
            cb, cr = frame.cb, frame.cr
            if cb is None:
                cb = cr = np.full((1, 1), 1 << (info.bit_depth - 1), np.float32)
            thumb = planes_to_rgb(frame.y, cb, cr, info.bit_depth, info.full_range, info.matrix, width)
            return cv2.resize(thumb, (width, HEIGHT), interpolation=cv2.INTER_AREA)  # exact height after rounding
    raise SystemExit(f"{path} has no frame {index}")


def labelled(img: np.ndarray, text: str) -> np.ndarray:
    """The image with a small caption in its top-left corner (white on a dark band)."""
    out = img.copy()
    cv2.rectangle(out, (0, 0), (8 + 8 * len(text), 18), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames", nargs="+", metavar="CLIP@FRAME")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--strength", type=float, default=1.0)
    args = parser.parse_args()
    wanted = []
    for item in args.frames:
        clip, _, index = item.rpartition("@")
        wanted.append((clip, int(index)))
    styles = load_generator(args.model)[0].style_names
    rows = [tuple(labelled(frame_rgb(c, i), "input") if n == 0 else frame_rgb(c, i) for n, (c, i) in enumerate(wanted))]
    with tempfile.TemporaryDirectory() as tmp:
        for style in styles:
            thumbs = []
            for n, (clip, index) in enumerate(wanted):
                out = str(Path(tmp) / f"{style}_{n}.mkv")
                colorize_video(clip, out, model=args.model, frames=f"0-{index}", codec="ffv1", force=True, quiet=True,
                               style=style, strength=args.strength)
                thumb = frame_rgb(out, index)  # a chunk's frames are numbered from the chunk's start
                thumbs.append(labelled(thumb, style) if n == 0 else thumb)
            rows.append(tuple(thumbs))
            print(f"  {style}", flush=True)
    write_contact_sheet(args.out, rows)
    print(f"wrote {args.out} (rows: input, then {', '.join(styles)}; columns: {', '.join(args.frames)})")


if __name__ == "__main__":
    main()
