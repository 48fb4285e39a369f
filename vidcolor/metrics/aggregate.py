"""Datasets made of photos or clips: averaged method rows, and grey ground truths left out."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Iterable

import numpy as np

from vidcolor.metrics.registry import REGISTRY, Metric

log = logging.getLogger("vidcolor")

_GREYISH_TRUTH = 1.0  # mean truth colourfulness below this: the "ground truth" is nearly grey


def mean_present(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None or nan.

    Args:
        values: the members' values.

    Returns:
        None when all are None, nan when no value is left (inf is kept: one identical image
        makes the mean PSNR inf, honestly), else the mean.
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    usable = [v for v in present if not math.isnan(v)]
    return float(np.mean(usable)) if usable else math.nan


def aggregate_rows(rows: Sequence[dict], truth_c: float | None, metrics: Sequence[Metric]) -> dict:
    """Average one method's rows over the members of a dataset.

    Args:
        rows: the method's row on each member (photo or clip).
        truth_c: the dataset's mean truth colourfulness (None without members).
        metrics: the dataset kind's metrics, in report order.

    Returns:
        The dataset's row: ``mean_present`` of each metric; a derived metric (the colourfulness
        ratio: mean colourfulness over mean truth colourfulness) is made again from the means,
        where any member has it.
    """
    out = {m.name: mean_present(r[m.name] for r in rows) for m in metrics}
    for m in metrics:
        if m.per == "derived" and out[m.name] is not None:
            out[m.name] = m.score(out, truth_c)
    return out


def mark_if_grey(entry: dict, what: str) -> bool:
    """Mark a dataset whose ground truth is nearly grey: its colour-comparison metrics become
    null (they do not apply) and the aggregates leave it out; warn once.

    Args:
        entry: a folder's or a clip's dataset entry (changed in place).
        what: "all photos" or "all clips", for the warning.

    Returns:
        True when the dataset was marked.
    """
    if entry["truth_colourfulness"] >= _GREYISH_TRUTH:
        return False
    log.warning("%s: the ground truth is nearly grey (colourfulness %.2f): no colour to compare with, so its colour "
                "metrics are left out ('-') and it is not counted in '%s'", entry["name"], entry["truth_colourfulness"], what)
    compared = [m.name for m in REGISTRY.values() if m.needs_truth]  # the colour metrics
    for row in entry["methods"].values():
        row.update({name: None for name in compared if name in row})
    entry["grey_truth"] = True
    return True


def note_left_out(datasets: list[dict]) -> None:
    """Record in the aggregate (the last entry) which grey-truth datasets it leaves out.

    Args:
        datasets: the members, then their aggregate (changed in place).
    """
    left_out = [d["name"] for d in datasets[:-1] if d.get("grey_truth")]
    if left_out:
        datasets[-1]["left_out"] = left_out
