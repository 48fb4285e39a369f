"""Choosing where the model runs."""

from __future__ import annotations

import torch

from vidcolor.errors import UsageError

# torch >= 2.5 has torch.OutOfMemoryError; older releases only torch.cuda.OutOfMemoryError.
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# CUDA libraries that fail to allocate their workspace raise a plain RuntimeError with these.
_LIBRARY_ALLOC_FAILURES = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "CUFFT_ALLOC_FAILED")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an error means the device ran out of memory (so a smaller batch may fit).

    Args:
        exc: the error.

    Returns:
        True for torch's out-of-memory error and for a CUDA library's failed allocation.
    """
    if isinstance(exc, OUT_OF_MEMORY):
        return True
    return isinstance(exc, RuntimeError) and any(name in str(exc) for name in _LIBRARY_ALLOC_FAILURES)


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
