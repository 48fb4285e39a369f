"""Make the bundled sample clip ``samples/astronaut_bw.mp4`` from a still photo.

The clip is a slow pan and zoom over a photo, turned to black and white with light film grain,
with a synthesized two-note audio track (so a run shows that audio survives). The committed
clip was made from scikit-image's ``astronaut.png`` (NASA photograph of Eileen Collins, public
domain), e.g.::

    pip download --no-deps scikit-image -d /tmp/sk && unzip -j /tmp/sk/*.whl 'skimage/data/astronaut.png' -d /tmp/sk
    python tools/make_sample.py /tmp/sk/astronaut.png samples/astronaut_bw.mp4
"""

from __future__ import annotations

import sys
from fractions import Fraction

import av
import cv2
import numpy as np

WIDTH, HEIGHT, FRAMES, RATE = 384, 288, 100, 25
SAMPLE_RATE = 48000


def frames_from(photo: np.ndarray) -> list[np.ndarray]:
    """Grey frames of a slow zoom-and-pan over the photo, with fixed-seed grain."""
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = grey.shape
    rng = np.random.default_rng(0)
    out = []
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        zoom = 1.0 + 0.25 * t
        cw, ch = w / zoom, w / zoom * HEIGHT / WIDTH
        cx, cy = w / 2 - 30 * t, h / 2 - 20 * t
        matrix = np.float32([[WIDTH / cw, 0, -(cx - cw / 2) * WIDTH / cw], [0, HEIGHT / ch, -(cy - ch / 2) * HEIGHT / ch]])
        frame = cv2.warpAffine(grey, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        frame += rng.normal(0, 3.0, frame.shape).astype(np.float32)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def main(src: str, dst: str) -> None:
    """Write the sample clip.

    Args:
        src: a colour or grey photo.
        dst: the .mp4 to write.
    """
    photo = cv2.imread(src, cv2.IMREAD_COLOR)
    if photo is None:
        sys.exit(f"{src}: not an image")
    with av.open(dst, "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"crf": "24", "preset": "slow"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        seconds = FRAMES / RATE
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        note = np.where(t < seconds / 2, 440.0, 660.0)
        wave = (0.2 * np.sin(2 * np.pi * note * t) * np.minimum(1, 4 * (seconds - t))).astype(np.float32)
        for i, grey in enumerate(frames_from(photo)):
            yuv = np.concatenate([grey, np.full((HEIGHT // 2, WIDTH), 128, np.uint8)])
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, RATE)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for start in range(0, len(wave), 1024):
            chunk = wave[start : start + 1024][None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/make_sample.py PHOTO OUT.mp4")
    main(sys.argv[1], sys.argv[2])
