"""Atomic training checkpoints: weights, optimizers, step, RNG states and config.

Saved with ``torch.save`` under a temporary name and renamed, so a crash never leaves a
half-written checkpoint; read back with ``weights_only=True`` (tensors and plain data only,
never arbitrary pickled objects).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vidcolor.errors import TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU and every CUDA device) to store in a checkpoint.

    Returns:
        {"cpu": ByteTensor, "cuda": [ByteTensor, ...]}.
    """
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by ``rng_state``.

    Args:
        state: the saved states.
    """
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically.

    Args:
        run_dir: the run folder.
        payload: plain data and tensors (state dicts, step, RNG, config dict).

    Returns:
        The checkpoint path.
    """
    path = Path(run_dir) / CHECKPOINT_NAME
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Read a run's checkpoint.

    Args:
        run_dir: the run folder given to ``--resume``.

    Returns:
        The payload written by ``save_checkpoint``.
    """
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise TrainingError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise TrainingError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}); it may be truncated") from None
