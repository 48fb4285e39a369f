"""``vidcolor eval`` on colour photos: the model (as ``colorize`` writes a still) and the grey
baseline, per photo, per folder and over all photos."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidcolor.color import fit_chroma_to_gamut
from vidcolor.io.stills import read_image
from vidcolor.metrics.aggregate import aggregate_rows, mark_if_grey, note_left_out
from vidcolor.metrics.data import unique_names
from vidcolor.metrics.frames import compose
from vidcolor.metrics.image import colourfulness
from vidcolor.metrics.registry import metrics_for
from vidcolor.metrics.scoring import image_scores, method_row
from vidcolor.metrics.temporal import frame_luma
from vidcolor.models.generator import Generator
from vidcolor.pipeline.still import colorize_luma

PHOTO_METHODS = ("model", "grey", "truth")
ALL_PHOTOS = "all photos"


def evaluate_photo(model: Generator, path: Path, render_size: int, device: torch.device) -> dict:
    """Score the model, the grey baseline and the truth on one colour photo.

    Args:
        model: the generator (on ``device``).
        path: a colour image.
        render_size: the model's short side.
        device: where the model runs.

    Returns:
        ``{"size": [H, W], "truth_colourfulness", "methods": {"model": {...}, "grey": {...},
        "truth": {...}}}`` with the photo metrics per method (the report's items leave the
        truth's row out: it is the folder's truth row that is shown).
    """
    truth = read_image(str(path))
    luma = frame_luma(truth)
    y = torch.from_numpy(luma)[None, None]
    chroma = fit_chroma_to_gamut(y, colorize_luma(model, y, render_size, device))[0].numpy()  # as run_image
    preds = {"model": compose(luma, chroma), "grey": compose(luma, None), "truth": truth}
    truth_c = colourfulness(truth)
    metrics = metrics_for("photos")
    return {
        "size": list(truth.shape[:2]),
        "truth_colourfulness": truth_c,
        "methods": {m: method_row([image_scores(p, truth, metrics, is_truth=m == "truth")], truth_c, metrics,
                                  is_truth=m == "truth")
                    for m, p in preds.items()},
    }


def photo_dataset(name: str, items: list[dict], seconds: float, path: str | None, members: list[str] | None) -> dict:
    """A folder's (or all photos') dataset entry.

    Args:
        name: the dataset's name.
        items: ``evaluate_photo`` results, each with its ``name``.
        seconds: the time they took.
        path: the folder, None for an aggregate.
        members: the folders an aggregate averages, None for a folder.

    Returns:
        The entry: a folder lists its ``items`` (without their truth rows), an aggregate its
        ``members``.
    """
    metrics = metrics_for("photos")
    truth_values = [it["truth_colourfulness"] for it in items]
    truth_c = float(np.mean(truth_values)) if items else None
    methods = {m: aggregate_rows([it["methods"][m] for it in items], truth_c, metrics) for m in PHOTO_METHODS}
    entry = {
        "name": name,
        "kind": "photos",
        "aggregate": members is not None,
        "path": path,
        "count": len(items),
        "truth_colourfulness": truth_c,
        "methods": methods,
        "seconds": seconds,
    }
    if members is not None:
        entry["members"] = members
    else:
        entry["items"] = [{**it, "methods": {m: r for m, r in it["methods"].items() if m != "truth"}} for it in items]
    return entry


def evaluate_photo_groups(model: Generator, groups: dict[Path, list[Path]], render_size: int, device: torch.device,
                          max_images: int | None, progress: bool) -> list[dict]:
    """Score every photo folder, then all photos together.

    Args:
        model: the generator (on ``device``).
        groups: folder -> its photos, sorted.
        render_size: the model's short side.
        device: where the model runs.
        max_images: use at most this many photos of each folder (None: all).
        progress: show progress bars.

    Returns:
        One dataset entry per folder, then the ``all photos`` entry (grey-truth folders left out).
    """
    folders = list(groups)
    names = unique_names(folders, lambda p: p.name or str(p))
    datasets, everything = [], []
    t_all = time.time()
    for folder, name in zip(folders, names):
        files = groups[folder][:max_images] if max_images else groups[folder]
        t0 = time.time()
        items = []
        for f in tqdm(files, desc=name, unit="photo", disable=not progress, leave=False, dynamic_ncols=True):
            item = evaluate_photo(model, f, render_size, device)
            items.append({"name": f.name, **item})
        datasets.append(photo_dataset(name, items, time.time() - t0, str(folder), None))
        if not mark_if_grey(datasets[-1], ALL_PHOTOS):
            everything.extend(items)
    members = [d["name"] for d in datasets if not d.get("grey_truth")]
    datasets.append(photo_dataset(ALL_PHOTOS, everything, time.time() - t_all, None, members))
    note_left_out(datasets)
    return datasets
