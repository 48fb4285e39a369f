"""The eval report as text: one table per dataset, its columns made from the metric registry."""

from __future__ import annotations

import math

from vidcolor.metrics.registry import REGISTRY, Metric, metrics_for
from vidcolor.wording import count_of


def _cell(value: float | None, scale: float, fmt: str) -> str:
    if value is None or math.isnan(value):  # does not apply (nan: a temporal metric of one frame)
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return fmt.format(value * scale)


def _named(metric: Metric) -> str:
    return f"{metric.label} {metric.legend}" if metric.legend else metric.label


def _legend() -> str:
    """The closing note: which way each metric is better, then what the others mean."""
    parts = [f"{way} is better: " + ", ".join(_named(m) for m in REGISTRY.values() if m.better == way)
             for way in ("higher", "lower")]
    parts += [_named(m) for m in REGISTRY.values() if m.better is None and m.legend]
    return "; ".join(parts)


def _compared_with_truth() -> str:
    """The metrics a style leaves out, scores first ("PSNR, SSIM, AuC and ratio")."""
    labels = [m.label for m in sorted((m for m in REGISTRY.values() if m.needs_truth), key=lambda m: m.better != "higher")]
    return ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else "".join(labels)


def _dataset_title(d: dict) -> str:
    if d["kind"] == "photos":
        what = count_of(d["count"], "photo") + (f" in {count_of(len(d['members']), 'folder')}" if d["aggregate"] else "")
    elif d["kind"] == "clip":
        h, w = d["size"]
        what = f"clip, {count_of(d['count'], 'frame')}, {w}x{h}"
        if d.get("references"):
            what += ", true colours given at frame " + ", ".join(map(str, d["references"]))
        if d["count"] < 2:
            what += "; warp error and CDC need 2 frames or more (-)"
    else:
        what = f"{count_of(len(d['members']), 'clip')}, {count_of(d['count'], 'frame')}"
    if d.get("grey_truth"):
        what += "; grey ground truth: colour metrics do not apply (-)"
    if d.get("left_out"):
        what += f"; left out, grey ground truth: {', '.join(d['left_out'])}"
    return f"{d['name']}: {what}"


def format_table(report: dict) -> str:
    """The report as text tables, one per dataset (methods as rows, metrics as columns).

    Args:
        report: what ``evaluate`` returned (or the parsed JSON).

    Returns:
        Multi-line text, ASCII only.
    """
    s = report["settings"]
    model = report["model"]
    lines = [
        f"model: {model['name']}, {model['parameters'] / 1e6:.2f}M parameters; render size {s['render_size']}, "
        f"smoothing {s['smooth']}, {s['device']}, {report['seconds']:.1f} s"
        # reports written before the flow was a setting were all measured with DIS
        + (f"; warp error along {s['flow']} flow" if s.get("flow", "dis") != "dis" else "")
    ]
    if s.get("style"):
        lines.append(f"style {s['style']} at strength {s['strength']}: model and per-frame are the styled clip "
                     f"(not compared with the truth: {_compared_with_truth()} do not apply)")
    for d in report["datasets"]:
        cols = metrics_for(d["kind"])
        rows = [["method"] + [m.heading for m in cols]]
        for method, values in d["methods"].items():
            rows.append([method] + [_cell(values.get(m.name), m.scale, m.fmt) for m in cols])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["", _dataset_title(d)]
        for r in rows:
            cells = [r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]
            lines.append("  " + "  ".join(cells))
    lines += ["", _legend()]
    return "\n".join(lines)
