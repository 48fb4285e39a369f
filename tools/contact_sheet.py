"""Contact sheet of colour photos: grey input / model output / truth, one photo per row.

    python tools/contact_sheet.py --model default --out docs/contact_sheet_photos.png \\
        ../shared/data/eval/photos/kodak24 ../shared/data/eval/photos/bsd100 ...

Picks ``--count`` photos spread evenly over the folders given (sorted names, so the choice is
repeatable), turns each grey, colorizes it exactly as ``vidcolor colorize`` does for stills,
and prints each photo's PSNR against the truth next to the grey baseline's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidcolor.config import DEFAULT_RENDER_SIZE  # noqa: E402

from vidcolor.color import fit_chroma_to_gamut, rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402
from vidcolor.metrics.image import psnr  # noqa: E402
from vidcolor.models.weights import load_generator  # noqa: E402
from vidcolor.io.stills import read_image  # noqa: E402
from vidcolor.pipeline.preview import write_contact_sheet  # noqa: E402
from vidcolor.pipeline.still import colorize_luma  # noqa: E402
from vidcolor.io.media_files import find_media  # noqa: E402

ROW_HEIGHT = 200


def pick(folders: list[str], count: int) -> list[Path]:
    """``count`` photos spread evenly over the sorted photos of ``folders``."""
    files = find_media(folders)[0]
    step = max(len(files) / count, 1.0)
    return [files[int(i * step)] for i in range(min(count, len(files)))]


def to_row_image(rgb: np.ndarray) -> np.ndarray:
    """Float RGB to uint8 at the sheet's row height."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (round(w * ROW_HEIGHT / h), ROW_HEIGHT), interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    args = parser.parse_args()
    model, _ = load_generator(args.model)
    rows = []
    for path in pick(args.folders, args.count):
        truth = read_image(str(path))
        ycc = rgb_to_ycbcr(torch.from_numpy(truth).permute(2, 0, 1))
        luma = ycc[:1][None]
        chroma = fit_chroma_to_gamut(luma, colorize_luma(model, luma, args.render_size, torch.device("cpu")))
        out = ycbcr_to_rgb(torch.cat((luma, chroma), 1))[0].clamp(0, 1).permute(1, 2, 0).numpy()
        grey = np.repeat(luma[0].permute(1, 2, 0).numpy(), 3, axis=2)
        print(f"{path.parent.name}/{path.name}: PSNR model {psnr(out, truth):.2f} dB, grey {psnr(grey, truth):.2f} dB")
        rows.append((to_row_image(grey), to_row_image(out), to_row_image(truth)))
    write_contact_sheet(args.out, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
