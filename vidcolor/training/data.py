"""Training data: frame pairs from colour photos and colour clips, with flow and hints.

Every sample is a pair of frames (t, t+1) with the flow from t to t+1 and a mask of where that
flow is reliable, so the flicker term sees every sample:

- from a **photo**, frame t+1 is frame t under a known random affine motion, so the flow is
  known exactly;
- from a **clip**, two nearby frames with OpenCV DIS flow computed at crop size and a
  forward-backward consistency mask.

The model's input is the luma of the colour frames (grayscale made from colour). Hints (points,
small patches or a large region of true chroma, or none) teach the model to follow reference
colours. Sample ``i`` is drawn from an RNG seeded by (seed, i), so the stream of batches
depends only on the step: a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vidcolor.errors import TrainingError
from vidcolor.flow import checked_flow
from vidcolor.io.inputs import ffmpeg_path
from vidcolor.io.media_files import find_media

AFFINE_MARGIN = 16  # pixels around a photo crop, so frame t+1 has content at its borders
GREY_SPREAD = 2.0  # mean spread of R, G, B (8-bit levels) below which an image has no colour
GREY_SHARE = 0.5  # warn when at least this share of the photos and clips is grey


def is_grey(rgb: np.ndarray) -> bool:
    """Whether an RGB image (or a stack of frames) is (nearly) grey: R, G and B nearly equal.

    Checked on every fourth pixel of the image already in memory, so it costs next to nothing.

    Args:
        rgb: ``(..., H, W, 3)`` uint8.

    Returns:
        True when the mean spread between channels is under ``GREY_SPREAD`` levels.
    """
    sample = rgb[..., ::4, ::4, :].astype(np.int16)
    return float((sample.max(axis=-1) - sample.min(axis=-1)).mean()) < GREY_SPREAD


def _truncated_jpeg(path: Path) -> bool:
    """A JPEG without its end marker: cut short (libjpeg would decode it half grey and print
    'Premature end of JPEG file' on stderr)."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    # The end marker after the last start-of-scan, wherever it is: a Motion Photo or an
    # editor's trailer appends data after it, which is not damage.
    return data.find(b"\xff\xd9", max(data.rfind(b"\xff\xda"), 0)) < 0


def load_photo(path: Path, max_side: int) -> np.ndarray | None:
    """Read a colour photo as RGB uint8, shrunk so its long side is at most ``max_side``.

    Args:
        path: image file.
        max_side: cap on the long side.

    Returns:
        ``(H, W, 3)`` uint8 RGB, or None when the file is not a readable image (or a
        truncated JPEG).
    """
    if not Path(path).is_file() or not cv2.haveImageReader(str(path)) or _truncated_jpeg(Path(path)):
        return None  # checked first: OpenCV and libjpeg would print their own warnings
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = bgr.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def load_clip(path: Path, short_side: int, max_frames: int) -> np.ndarray | None:
    """Decode up to ``max_frames`` frames of a clip as RGB, short side resized to ``short_side``.

    Args:
        path: video file.
        short_side: target short side in pixels.
        max_frames: cap on frames kept (from the start).

    Returns:
        ``(N, H, W, 3)`` uint8 array, or None when the file cannot be decoded.
    """
    frames = []
    try:
        with av.open(ffmpeg_path(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                scale = short_side / min(h, w)
                rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                frames.append(rgb)
                if len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, IndexError):
        return None
    return np.stack(frames) if len(frames) >= 2 else None


def rgb_to_chroma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range chroma of float RGB.

    Args:
        rgb: ``(..., 3)`` float32 in [0, 1].

    Returns:
        ``(..., 2)`` (Cb, Cr) in [-0.5, 0.5].
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack(((b - y) / 1.772, (r - y) / 1.402), axis=-1)


def affine_pair(photo: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two frames of a photo under a known small affine motion, and their exact flow.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB, each side at least ``crop + 2 * AFFINE_MARGIN``.
        crop: output side.
        rng: random generator.

    Returns:
        (frame t, frame t+1) as ``(crop, crop, 3)`` uint8, flow t->t+1 ``(crop, crop, 2)``
        float32, and a ``(crop, crop)`` float32 mask of pixels that stay in view.
    """
    m = AFFINE_MARGIN
    size = crop + 2 * m
    h, w = photo.shape[:2]
    y0 = int(rng.integers(0, h - size + 1))
    x0 = int(rng.integers(0, w - size + 1))
    patch = np.ascontiguousarray(photo[y0 : y0 + size, x0 : x0 + size])
    angle = float(rng.uniform(-3.0, 3.0))
    scale = float(rng.uniform(0.97, 1.03))
    shift = rng.uniform(-6.0, 6.0, size=2)
    centre = (size / 2.0, size / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += shift
    # cv2.warpAffine moves the point p of the source to matrix @ p in the output.
    moved = cv2.warpAffine(patch, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    tx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    ty = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    flow = np.stack((tx - xs, ty - ys), axis=-1)[m:-m, m:-m].astype(np.float32)
    tx_c, ty_c = tx[m:-m, m:-m] - m, ty[m:-m, m:-m] - m
    mask = ((tx_c >= 0) & (tx_c <= crop - 1) & (ty_c >= 0) & (ty_c <= crop - 1)).astype(np.float32)
    return patch[m:-m, m:-m], moved[m:-m, m:-m], flow, mask


def clip_pair(frames: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two nearby frames of a clip, cropped alike, with DIS flow and its reliability mask.

    Args:
        frames: ``(N, H, W, 3)`` uint8 RGB.
        crop: output side.
        rng: random generator.

    Returns:
        (frame t, frame t+1, flow t->t+1, mask) as in ``affine_pair``.
    """
    n, h, w = frames.shape[:3]
    gap = int(rng.integers(1, 3))
    t = int(rng.integers(0, n - gap))
    y0 = int(rng.integers(0, h - crop + 1))
    x0 = int(rng.integers(0, w - crop + 1))
    a = np.ascontiguousarray(frames[t, y0 : y0 + crop, x0 : x0 + crop])
    b = np.ascontiguousarray(frames[t + gap, y0 : y0 + crop, x0 : x0 + crop])
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    forward, mask = checked_flow(ga, gb)
    return a, b, forward, mask


def sample_hints(chroma: np.ndarray, probability: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hints of true chroma shared by both frames of a pair.

    Modes: none; a few points or small patches carrying their mean chroma (a user's dabs);
    one large region of exact chroma at a random confidence (a propagated reference frame).

    Args:
        chroma: ``(2, S, S, 2)`` true chroma of frames t and t+1.
        probability: chance that a sample gets any hint.
        rng: random generator.

    Returns:
        (hint chroma ``(2, 2, S, S)``, hint mask ``(1, S, S)``) float32.
    """
    s = chroma.shape[1]
    hints = np.zeros((2, 2, s, s), np.float32)
    mask = np.zeros((1, s, s), np.float32)
    if rng.random() >= probability:
        return hints, mask
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 12))):
            half = int(rng.integers(0, 5))
            cy, cx = (int(v) for v in rng.integers(0, s, size=2))
            ys, xs = slice(max(cy - half, 0), cy + half + 1), slice(max(cx - half, 0), cx + half + 1)
            mask[0, ys, xs] = 1.0
            for f in range(2):
                hints[f, :, ys, xs] = chroma[f, ys, xs].reshape(-1, 2).mean(0)[:, None, None]
    else:
        hh, ww = (int(v) for v in rng.integers(s // 4, s + 1, size=2))
        y0, x0 = int(rng.integers(0, s - hh + 1)), int(rng.integers(0, s - ww + 1))
        confidence = float(rng.uniform(0.3, 1.0))
        mask[0, y0 : y0 + hh, x0 : x0 + ww] = confidence
        for f in range(2):
            hints[f, :, y0 : y0 + hh, x0 : x0 + ww] = chroma[f, y0 : y0 + hh, x0 : x0 + ww].transpose(2, 0, 1)
    return hints, mask


@dataclass
class DataOptions:
    """What the dataset needs from the training config."""

    crop: int
    video_fraction: float
    hint_probability: float
    num_styles: int  # including natural colour
    seed: int
    style_fraction: float = 0.75  # share of samples given a painting style (style phase)


class PairDataset(Dataset):
    """Map-style dataset of training pairs; item ``i`` depends only on (seed, i).

    Args:
        photos: RGB uint8 photos (each at least crop + 2·margin per side after scaling).
        clips: RGB uint8 frame stacks.
        options: crop size, mixing and hint settings.
    """

    def __init__(self, photos: list[np.ndarray], clips: list[np.ndarray], options: DataOptions):
        if not photos and not clips:
            raise TrainingError("no usable training data: give photo folders or colour clips with --data")
        self.photos = photos
        self.clips = clips
        self.options = options

    def __len__(self) -> int:
        return 2**62  # effectively endless; the sampler decides which items are drawn

    def _photo_pair(self, rng: np.random.Generator):
        crop = self.options.crop
        photo = self.photos[int(rng.integers(0, len(self.photos)))]
        need = crop + 2 * AFFINE_MARGIN
        h, w = photo.shape[:2]
        low = need / min(h, w)
        scale = float(rng.uniform(min(max(low, 0.4), 1.0), 1.0)) if low < 1.0 else low
        if abs(scale - 1.0) > 1e-3:
            size = (max(math.ceil(w * scale), need), max(math.ceil(h * scale), need))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return affine_pair(photo, crop, rng)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        opt = self.options
        rng = np.random.default_rng([opt.seed, int(index)])
        use_clip = bool(self.clips) and (not self.photos or rng.random() < opt.video_fraction)
        if use_clip:
            a, b, flow, mask = clip_pair(self.clips[int(rng.integers(0, len(self.clips)))], opt.crop, rng)
        else:
            a, b, flow, mask = self._photo_pair(rng)
        if rng.random() < 0.5:  # horizontal flip: mirror the images and the flow's x part
            a, b, mask = a[:, ::-1], b[:, ::-1], mask[:, ::-1]
            flow = flow[:, ::-1] * np.array([-1.0, 1.0], np.float32)
        rgb = np.stack((a, b)).astype(np.float32) / 255.0  # (2, S, S, 3)
        hints, hint_mask = sample_hints(rgb_to_chroma(rgb), opt.hint_probability, rng)
        style = int(rng.integers(1, opt.num_styles)) if opt.num_styles > 1 and rng.random() < opt.style_fraction else 0
        return {
            "rgb": torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))),
            "flow": torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1))),
            "flow_mask": torch.from_numpy(np.ascontiguousarray(mask[None])),
            "hint_chroma": torch.from_numpy(hints),
            "hint_mask": torch.from_numpy(hint_mask),
            "style": torch.tensor(style, dtype=torch.long),
        }


class StepSampler(Sampler[int]):
    """Yields item indices from ``start`` on, forever, so step k always draws the same items."""

    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


def check_sources(paths: Sequence[str | Path]) -> None:
    """Cheap check before a run starts: the paths exist and hold photos or clips.

    Args:
        paths: files or folders given with ``--data`` or in the config.

    Raises:
        InputError: a path that does not exist.
        TrainingError: no photo or clip among them.
    """
    photo_paths, video_paths = find_media(paths)
    if not photo_paths and not video_paths:
        raise TrainingError(f"no photos or clips found in {', '.join(map(str, paths))}; "
                            "give photo folders or colour clips with --data")


def _names(paths: Sequence[Path], most: int = 5) -> str:
    shown = ", ".join(str(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def load_sources(paths: Sequence[str | Path], crop: int, max_photo_side: int, max_video_frames: int,
                 warn: Callable[[str], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read every photo and clip into memory at training size.

    Args:
        paths: files or folders given with ``--data`` or in the config.
        crop: training crop side (small photos are enlarged to fit it).
        max_photo_side: cap on a photo's long side.
        max_video_frames: frames kept per clip.
        warn: called with one line for files skipped as unreadable and for grey data.

    Returns:
        (photos, clips) ready for ``PairDataset``.
    """
    photo_paths, video_paths = find_media(paths)
    need = crop + 2 * AFFINE_MARGIN
    photos = []
    skipped: list[Path] = []
    grey_photos = grey_clips = 0
    for p in photo_paths:
        img = load_photo(p, max_photo_side)
        if img is None:
            skipped.append(p)
            continue
        grey_photos += is_grey(img)
        h, w = img.shape[:2]
        if min(h, w) < need:
            scale = need / min(h, w)
            img = cv2.resize(img, (math.ceil(w * scale), math.ceil(h * scale)), interpolation=cv2.INTER_LINEAR)
        photos.append(img)
    clips = []
    for p in video_paths:
        frames = load_clip(p, short_side=max(crop, int(crop * 1.5)), max_frames=max_video_frames)
        if frames is None:
            skipped.append(p)
            continue
        grey_clips += is_grey(frames[:: max(len(frames) // 4, 1)])  # a few frames tell
        clips.append(frames)
    if warn is not None:
        if skipped:
            warn(f"skipped {len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''} "
                 f"(truncated, damaged or not media): {_names(skipped)}")
        total = len(photos) + len(clips)
        if total and (grey_photos + grey_clips) >= GREY_SHARE * total:
            warn(f"{grey_photos} of {len(photos)} photos and {grey_clips} of {len(clips)} clips are grey: "
                 "colour training learns colour from them, so the model learns to leave film grey; "
                 "give colour photos and clips")
    return photos, clips


def make_loader(dataset: PairDataset, batch_size: int, workers: int, start_step: int) -> DataLoader:
    """An endless DataLoader whose batch k holds items k·B .. k·B + B - 1.

    Args:
        dataset: the pair dataset.
        batch_size: pairs per batch.
        workers: DataLoader worker processes (0: load in the training process).
        start_step: the step the run continues from.

    Returns:
        A DataLoader to iterate with ``iter``.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StepSampler(start_step * batch_size),
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        # Starting an iterator draws a base seed; from its own generator, not torch's global
        # RNG, or a resumed run (which starts one mid-stream) would draw different noise.
        generator=torch.Generator().manual_seed(0),
    )
