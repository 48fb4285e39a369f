"""The metrics ``vidcolor eval`` reports: one record per metric, in the order of the report.

Rows, tables, JSON keys, grey-truth handling and the aggregation over clips and datasets are all
derived from these records, so a new metric is its scoring function plus one ``register`` call.

A record says how its metric is scored (``per``):

- ``"image"``: ``score(pred, truth)`` on one RGB image (a photo, or a clip frame); a clip's
  value is the mean over its frames.
- ``"clip"``: ``score(clip)`` on a whole clip (a ``ClipVersions``: every method's frames and the
  true luma the flow is taken from); it returns a value per method.
- ``"derived"``: ``score(row, truth_colourfulness)`` from the row's other values, at every level
  (photo, clip, dataset), instead of averaging.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from vidcolor.metrics.image import chroma_auc, colourfulness, colourfulness_ratio, psnr, ssim
from vidcolor.metrics.temporal import cdc, warp_errors

# The settings of the metrics themselves (their defaults in image.py and temporal.py),
# recorded in the report so numbers from different versions are not compared blindly.
AUC_MAX_THRESHOLD = 150.0
AUC_STEPS = 151
CDC_BINS = 32
CDC_GAPS = (1, 2)


@dataclass(frozen=True)
class Metric:
    """One metric of the report.

    Attributes:
        name: its key in every method row of the JSON.
        per: how it is scored: ``"image"``, ``"clip"`` or ``"derived"`` (see the module docstring).
        score: the function that computes it (its signature follows ``per``).
        applies_to: the dataset kinds it is reported for: ``"photos"`` and/or ``"clips"``.
        heading: its column heading in the table.
        label: its short name in the table's notes ("higher is better: PSNR, ...").
        fmt: the table's format of one value (after ``scale``).
        scale: the table shows ``value * scale`` (JSON values stay raw).
        better: ``"higher"``, ``"lower"``, or None where neither is (read against the truth).
        legend: words after the label in the table's closing note, or "" for none.
        needs_truth: it compares a method's colours with the truth's: null for a style (not meant
            to match) and for a dataset whose truth is nearly grey (no colour to compare with).
        of_truth: reported for the ``truth`` method too (False where scoring the truth against
            itself is trivially perfect).
        settings: its parameters, recorded in the report's ``settings`` under ``name``.
    """

    name: str
    per: Literal["image", "clip", "derived"]
    score: Callable[..., Any]
    applies_to: frozenset[str]
    heading: str
    label: str
    fmt: str
    scale: float = 1.0
    better: Literal["higher", "lower"] | None = None
    legend: str = ""
    needs_truth: bool = False
    of_truth: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric to the report, after those registered before it.

    Args:
        metric: its record.

    Returns:
        The record.

    Raises:
        ValueError: a metric of that name is already registered, or the record is inconsistent.
    """
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    if not metric.applies_to or not metric.applies_to <= {"photos", "clips"}:
        raise ValueError(f"metric {metric.name!r}: applies_to must be 'photos' and/or 'clips'")
    if metric.per == "clip" and "photos" in metric.applies_to:
        raise ValueError(f"metric {metric.name!r}: a per-clip metric cannot apply to photos")
    REGISTRY[metric.name] = metric
    return metric


def metrics_for(kind: str) -> tuple[Metric, ...]:
    """The metrics reported for one kind of dataset, in report order.

    Args:
        kind: ``"photos"``, or ``"clip"``/``"clips"`` (one clip, or all of them).

    Returns:
        The records.
    """
    wanted = "photos" if kind == "photos" else "clips"
    return tuple(m for m in REGISTRY.values() if wanted in m.applies_to)


class ClipVersions:
    """What a per-clip metric scores: every method's frames of one clip, and the true luma the
    optical flow is taken from (one flow per frame pair for every method).

    Args:
        versions: method -> ``T`` RGB frames (lazily made: read them in order).
        lumas: the ``T`` true luma frames.
        flow_name: the warp error's flow, ``"dis"`` or ``"farneback"``.
    """

    def __init__(self, versions: Mapping[str, Sequence[np.ndarray]], lumas: Sequence[np.ndarray], flow_name: str):
        self.versions = versions
        self.lumas = lumas
        self.flow_name = flow_name

    @functools.cached_property
    def warps(self) -> dict[str, dict[str, float]]:
        """``warp_errors`` of every version: the flow is the costly part, so both warp metrics
        share one pass over the clip."""
        return warp_errors(self.versions, self.lumas, self.flow_name)


def _ratio(row: Mapping[str, float | None], truth_c: float | None) -> float | None:
    # The ratio of the means (as clip_report): steadier than a mean of ratios when some truths
    # are nearly grey.
    if row["colourfulness"] is None or truth_c is None:
        return None
    return colourfulness_ratio(row["colourfulness"], truth_c)


def _auc(pred: np.ndarray, truth: np.ndarray) -> float:
    return chroma_auc(pred, truth, AUC_MAX_THRESHOLD, AUC_STEPS)


def _cdc(clip: ClipVersions) -> dict[str, float]:
    return {method: cdc(frames, CDC_BINS, CDC_GAPS) for method, frames in clip.versions.items()}


_BOTH = frozenset({"photos", "clips"})
_CLIPS = frozenset({"clips"})

register(Metric("psnr", "image", psnr, _BOTH, "PSNR", "PSNR", "{:.2f}", better="higher", needs_truth=True,
                of_truth=False))
register(Metric("ssim", "image", ssim, _BOTH, "SSIM", "SSIM", "{:.4f}", better="higher", needs_truth=True,
                of_truth=False))
register(Metric("colourfulness", "image", lambda pred, truth: colourfulness(pred), _BOTH, "colourf.",
                "colourfulness", "{:.1f}"))
register(Metric("colourfulness_ratio", "derived", _ratio, _BOTH, "ratio", "ratio", "{:.3f}",
                legend="= colourfulness / the truth's (1 = as colourful)", needs_truth=True))
register(Metric("auc", "image", _auc, _BOTH, "AuC", "AuC", "{:.4f}", better="higher", needs_truth=True,
                of_truth=False, settings={"max_threshold": AUC_MAX_THRESHOLD, "steps": AUC_STEPS}))
register(Metric("warp_error", "clip", lambda clip: {m: w["warp_error"] for m, w in clip.warps.items()}, _CLIPS,
                "warp(e-3)", "warp", "{:.3f}", scale=1e3, better="lower"))
register(Metric("warp_error_chroma", "clip", lambda clip: {m: w["warp_error_chroma"] for m, w in clip.warps.items()},
                _CLIPS, "cwarp(e-3)", "cwarp", "{:.3f}", scale=1e3, better="lower", legend="(chroma alone)"))
register(Metric("cdc", "clip", _cdc, _CLIPS, "CDC(e-3)", "CDC", "{:.3f}", scale=1e3, better="lower",
                settings={"bins": CDC_BINS, "gaps": list(CDC_GAPS)}))

# The names of the metrics above (a metric registered later, elsewhere, is not in these tuples; the
# report itself always reads the registry).
PHOTO_METRICS = tuple(m.name for m in metrics_for("photos"))
CLIP_METRICS = tuple(m.name for m in metrics_for("clips"))
# Metrics that compare a method's colours with the truth's: meaningless when the truth is grey
# (a grey "truth" makes the grey baseline perfect: PSNR 150 dB, ratio inf).
COLOUR_METRICS = tuple(m.name for m in REGISTRY.values() if m.needs_truth)
