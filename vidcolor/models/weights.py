"""Load and save generators as safetensors weights plus a JSON of constructor arguments.

A model is two files side by side: ``NAME.safetensors`` (tensors only, never a pickle) and
``NAME.json`` (format tag, the generator's constructor arguments, provenance: data, steps,
losses, VGG weights, and the SHA-256 of the weights). Loading rebuilds the model from the JSON
alone, so any script can use a model without the training code or config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from vidcolor.config import GeneratorConfig, from_dict, to_dict
from vidcolor.errors import ConfigError, ModelError
from vidcolor.hashing import file_sha256
from vidcolor.models.generator import Generator, build_generator

FORMAT = "vidcolor-generator"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_NAME = "default"
RUN_MODEL_NAME = "model"  # a training run folder keeps its model as model.safetensors/.json
MODEL_SUFFIXES = (".safetensors", ".json")


def resolve_model_path(name_or_path: str | os.PathLike) -> tuple[Path, Path]:
    """Find the weights and JSON of a model given by name or path.

    Args:
        name_or_path: "default", a name of a model in ``vidcolor/weights``, a
            ``.safetensors`` or ``.json`` path, a path without extension, or a training run
            folder (its ``model.json``).

    Returns:
        (weights path, json path); they may not exist (the loader reports that).
    """
    text = str(name_or_path)
    candidate = Path(os.path.expanduser(text))
    if candidate.suffix in (".safetensors", ".json"):
        stem = candidate.with_suffix("")
    elif candidate.is_dir():
        # A run folder (runs/0003-tiny) holds model.json; a weights folder holds default.json.
        stem = candidate / (RUN_MODEL_NAME if (candidate / f"{RUN_MODEL_NAME}.json").is_file() else DEFAULT_NAME)
    elif os.sep in text or candidate.exists() or model_files(candidate)[1].exists():
        stem = candidate
    else:
        stem = WEIGHTS_DIR / text
    return model_files(stem)


def model_stem(path: str | os.PathLike) -> Path:
    """The stem of a model path: only ``.safetensors`` or ``.json`` is taken off, so a name
    with dots (``exp/colour.v2``) stays whole.

    Args:
        path: ``NAME``, ``NAME.safetensors`` or ``NAME.json``.

    Returns:
        ``NAME`` as a Path.
    """
    p = Path(path)
    return p.with_name(p.name[: -len(p.suffix)]) if p.suffix in MODEL_SUFFIXES else p


def model_files(stem: str | os.PathLike) -> tuple[Path, Path]:
    """The two files of a model stem, appending (never replacing) the extensions.

    Args:
        stem: the path without extension (dots in it are part of the name).

    Returns:
        (weights path, json path).
    """
    stem = Path(stem)
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes with the usual umask-respecting mode (safetensors' own writer makes 0600
    temporary files, and a model shared on a farm must be readable by others)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_generator(
    model: Generator, stem: str | os.PathLike, provenance: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Path, Path]:
    """Write ``stem.safetensors`` and ``stem.json`` atomically (temporary names, then rename).

    Args:
        model: the generator.
        stem: output path without extension.
        provenance: what produced it (data, steps, losses, VGG weights...).
        dtype: storage type of the weights; float16 halves a shipped model's size (the
            loader converts back to float32).

    Returns:
        (weights path, json path).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path, json_path = model_files(stem)
    # Both files are written under temporary names first, then renamed: a crash never leaves
    # a half-written file under a model's name (a pair from two saves fails its checksum).
    tag = f".partial-{os.getpid()}"
    tmp_weights = weights_path.with_name(f".{weights_path.name}{tag}")
    tmp_json = json_path.with_name(f".{json_path.name}{tag}")
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    try:
        _write_file(tmp_weights, save(tensors))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": to_dict(model.config),
            "parameters": sum(v.numel() for v in tensors.values()),
            "sha256": file_sha256(tmp_weights),
            "provenance": provenance or {},
        }
        _write_file(tmp_json, (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
        os.replace(tmp_weights, weights_path)
        os.replace(tmp_json, json_path)
    finally:
        for tmp in (tmp_weights, tmp_json):
            tmp.unlink(missing_ok=True)
    return weights_path, json_path


def read_model_card(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model's JSON without loading its weights.

    Args:
        name_or_path: see ``resolve_model_path``.

    Returns:
        The parsed JSON (format, config, provenance...).
    """
    weights_path, json_path = resolve_model_path(name_or_path)
    if not json_path.is_file():
        raise ModelError(f"{json_path}: model description not found (a model is NAME.safetensors + NAME.json)")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{json_path}: not valid JSON ({exc.__class__.__name__}); the model file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{json_path}: not a vidcolor generator description (format tag missing)")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise ModelError(f"{json_path}: bad format_version {version!r}; the model description is corrupt")
    if version > FORMAT_VERSION:
        raise ModelError(f"{json_path}: made by a newer vidcolor (format {version}); upgrade vidcolor")
    return meta


def model_style_names(model: Generator | str | os.PathLike) -> tuple[str, ...]:
    """The styles a model carries, read from its JSON (no weights loaded) or from a loaded model.

    Args:
        model: a ``Generator``, or a name or path (see ``resolve_model_path``).

    Returns:
        The style names; index 0 is natural colour.
    """
    if isinstance(model, Generator):
        return model.style_names
    config = read_model_card(model).get("config", {})
    names = config.get("style_names", GeneratorConfig.style_names) if isinstance(config, dict) else None
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError(f"{resolve_model_path(model)[1]}: bad style_names {names!r}; the model description is corrupt")
    return tuple(names)


def load_generator(name_or_path: str | os.PathLike = DEFAULT_NAME, device: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Rebuild a generator from its JSON and load its weights, checking they match.

    Args:
        name_or_path: see ``resolve_model_path``.
        device: where to put the model.

    Returns:
        (generator in eval mode, its JSON description).
    """
    weights_path, json_path = resolve_model_path(name_or_path)
    meta = read_model_card(name_or_path)
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: weights file not found")
    expected = meta.get("sha256")
    if expected and file_sha256(weights_path) != expected:
        raise ModelError(f"{weights_path}: weights do not match their checksum in {json_path.name}; the file is corrupt or truncated")
    try:
        config = from_dict(GeneratorConfig, meta.get("config", {}))
    except ConfigError as exc:
        raise ModelError(f"{json_path}: bad generator arguments ({exc})") from None
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    model = build_generator(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelError(f"{weights_path}: weights do not match the model in {json_path.name} ({detail})") from None
    return model.to(device).eval(), meta
