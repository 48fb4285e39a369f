"""The eval report as strict JSON: inf and nan written as null and listed, written atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidcolor.errors import OutputError
from vidcolor.io.atomic import atomic_output


def _pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901 JSON Pointer of a location."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_safe(report: dict) -> dict:
    """A copy of the report with every inf or nan replaced by null, and a ``non_finite`` map
    from each such value's JSON Pointer to ``"inf"``, ``"-inf"`` or ``"nan"``.

    So every metric is a JSON number or null (strict parsers accept the file), and nothing is
    lost: a null whose pointer is not in ``non_finite`` means "does not apply".

    Args:
        report: what ``evaluate`` returned.

    Returns:
        A new dict.
    """
    found: dict[str, str] = {}

    def walk(value: Any, where: list) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, where + [k]) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, where + [i]) for i, v in enumerate(value)]
        if isinstance(value, (float, np.floating)):
            v = float(value)
            if math.isfinite(v):
                return v
            found[_pointer(where)] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            return None
        if isinstance(value, np.integer):
            return int(value)
        return value

    safe = walk({k: v for k, v in report.items() if k != "non_finite"}, [])
    safe["non_finite"] = found
    return safe


def write_json(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as strict JSON (see ``json_safe``), atomically, replacing ``path``.

    Args:
        report: what ``evaluate`` returned.
        path: the JSON file; its folder must exist.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: the folder is missing or not writable, or ``path`` is a folder.
    """
    text = json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n"
    with atomic_output(path, overwrite=True) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return Path(path)
