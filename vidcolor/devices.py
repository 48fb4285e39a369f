"""Choosing where the model runs."""

from __future__ import annotations

import torch

from vidcolor.errors import UsageError

# torch >= 2.5 has torch.OutOfMemoryError; older releases only torch.cuda.OutOfMemoryError.
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def pick_device(name: str) -> torch.device:
    """Resolve a ``--device`` value; "auto" means the first CUDA device when there is one.

    Args:
        name: "auto", "cpu", "cuda" or "cuda:N".

    Returns:
        A torch device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown --device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported --device {name!r} (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available; use --device cpu")
    return device
