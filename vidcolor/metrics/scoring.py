"""A method's row of metric values on one photo or one clip, made from the metric registry.

A row holds every metric of its dataset kind, in registry order; a metric that does not apply
to the method is None: one that compares with the truth, for a style (not meant to match it),
and one that is trivially perfect for the truth scored against itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vidcolor.metrics.registry import ClipVersions, Metric


def applies(metric: Metric, *, is_truth: bool = False, styled: bool = False) -> bool:
    """Whether a metric is reported for a method.

    Args:
        metric: its record.
        is_truth: the method is the truth itself.
        styled: the method is a painting style (its colours are not meant to match the truth).

    Returns:
        True when the metric has a value for that method.
    """
    if is_truth:
        return metric.of_truth
    return not (styled and metric.needs_truth)


def image_scores(pred: np.ndarray, truth: np.ndarray, metrics: Sequence[Metric], *, is_truth: bool = False,
                 styled: bool = False) -> dict[str, float]:
    """The per-image metrics of one picture (a photo, or one frame of a clip).

    Args:
        pred: a method's ``(H, W, 3)`` RGB in [0, 1].
        truth: the true colour picture, same shape.
        metrics: the dataset kind's metrics (those scored per image are used).
        is_truth: ``pred`` is the truth itself.
        styled: ``pred`` is a style.

    Returns:
        ``{metric name: value}`` for the per-image metrics that apply.
    """
    return {m.name: m.score(pred, truth) for m in metrics
            if m.per == "image" and applies(m, is_truth=is_truth, styled=styled)}


def clip_scores(clip: ClipVersions, metrics: Sequence[Metric]) -> dict[str, dict[str, float]]:
    """The per-clip metrics of every method of one clip.

    Args:
        clip: every method's frames and the true luma.
        metrics: the clip metrics (those scored per clip are used).

    Returns:
        ``{method: {metric name: value}}``.
    """
    out: dict[str, dict[str, float]] = {method: {} for method in clip.versions}
    for m in metrics:
        if m.per == "clip":
            for method, value in m.score(clip).items():
                out[method][m.name] = value
    return out


def method_row(frame_scores: Sequence[Mapping[str, float]], truth_c: float, metrics: Sequence[Metric],
               whole_clip: Mapping[str, float] | None = None, *, is_truth: bool = False,
               styled: bool = False) -> dict[str, float | None]:
    """A method's row on one photo or one clip.

    Args:
        frame_scores: ``image_scores`` of each frame (one for a photo).
        truth_c: the truth's colourfulness (a photo's, or a clip's mean), for derived metrics.
        metrics: the dataset kind's metrics, in report order.
        whole_clip: the method's per-clip metric values (``clip_scores``), None for a photo.
        is_truth: the row is the truth's.
        styled: the method is a style.

    Returns:
        ``{metric name: value or None}``; a per-image metric is the mean over frames (as
        ``clip_report``).
    """
    row: dict[str, float | None] = {}
    for m in metrics:
        if not applies(m, is_truth=is_truth, styled=styled):
            row[m.name] = None
        elif m.per == "image":
            row[m.name] = float(np.mean([s[m.name] for s in frame_scores]))
        elif m.per == "clip":
            row[m.name] = (whole_clip or {}).get(m.name)
        else:
            row[m.name] = None  # derived below, once the values it reads are in
    for m in metrics:
        if m.per == "derived" and applies(m, is_truth=is_truth, styled=styled):
            row[m.name] = m.score(row, truth_c)
    return row
