"""Config files: unknown keys and wrong types are refused with a ConfigError naming the key,
includes and overrides resolve, and what ``dump_toml`` writes ``load`` reads back."""

from __future__ import annotations

import dataclasses
import string
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidcolor.cli import main
from vidcolor.config import (
    ColorizeConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LossConfig,
    TrainConfig,
    dump_toml,
    from_dict,
    load,
    to_dict,
)
from vidcolor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny.toml"
SECTIONS = {"model": GeneratorConfig, "discriminator": DiscriminatorConfig, "loss": LossConfig}


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def get_dotted(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def scalar_keys(kind: type) -> list[str]:
    """Dotted names of every TrainConfig key (sections included) annotated ``kind``."""
    keys = [f.name for f in dataclasses.fields(TrainConfig) if typing.get_type_hints(TrainConfig)[f.name] is kind]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls) if hints[f.name] is kind]
    return keys


INT_KEYS, FLOAT_KEYS, BOOL_KEYS = scalar_keys(int), scalar_keys(float), scalar_keys(bool)


# ----- the shipped configs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_shipped_train_configs_load(name):
    cfg = load(REPO / "configs" / "train" / f"{name}.toml")
    assert isinstance(cfg, TrainConfig) and cfg.name == name
    assert isinstance(cfg.model, GeneratorConfig) and isinstance(cfg.loss, LossConfig)
    assert isinstance(cfg.loss.vgg_layers, tuple)


def test_model_config_include():
    cfg = load(TINY)
    model = load(REPO / "configs" / "model" / "tiny.toml", cls=GeneratorConfig)
    assert cfg.model == model
    assert (cfg.model.base_channels, cfg.model.levels, cfg.model.stem_factor, cfg.model.z_dim) == (8, 2, 2, 4)
    assert cfg.discriminator == DiscriminatorConfig(base_channels=8, levels=2, max_channels=32)


def test_own_model_table_wins_over_the_include(tmp_path):
    (tmp_path / "model").mkdir()
    write(tmp_path / "model", "base_channels = 8\nlevels = 2\nz_dim = 4\n", "m.toml")
    path = write(tmp_path, 'model_config = "model/m.toml"\n[model]\nlevels = 3\n')
    cfg = load(path)
    assert cfg.model.base_channels == 8 and cfg.model.z_dim == 4 and cfg.model.levels == 3
    # ... and overrides win over both.
    assert load(path, {"model.levels": 1}).model.levels == 1


def test_bad_includes(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(write(tmp_path, 'model_config = "missing.toml"\n'))
    with pytest.raises(ConfigError, match="path string"):
        load(write(tmp_path, "model_config = 3\n"))
    write(tmp_path, "base_channels = [\n", "broken.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, 'model_config = "broken.toml"\n'))
    write(tmp_path, "base_chanels = 8\n", "typo.toml")
    with pytest.raises(ConfigError, match="model.base_chanels"):
        load(write(tmp_path, 'model_config = "typo.toml"\n'))


# ----- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("stepz_colorize = 10\n", "stepz_colorize"),
        ("[loss]\nlambda_l2 = 1.0\n", "loss.lambda_l2"),
        ("[model]\nwidth = 3\n", "model.width"),
        ("[optimizer]\nlr = 1.0\n", "optimizer"),
    ],
)
def test_unknown_key_is_a_config_error_naming_it(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    assert f"'{key}'" in str(info.value) and "valid:" in str(info.value)


@pytest.mark.parametrize(
    "text, key",
    [
        ('crop = "big"\n', "crop"),
        ("crop = 32.0\n", "crop"),
        ("crop = true\n", "crop"),
        ('lr_g = "fast"\n', "lr_g"),
        ("lr_g = false\n", "lr_g"),
        ('amp = "yes"\n', "amp"),
        ("amp = 1\n", "amp"),
        ("name = 3\n", "name"),
        ('data = "photos"\n', "data"),
        ("data = [1, 2]\n", "data"),
        ("loss = 3\n", "loss"),
        ('[loss]\nvgg_layers = "relu1_2"\n', "loss.vgg_layers"),
        ('[model]\nstyle_names = ["natural", 2]\n', "model.style_names"),
    ],
)
def test_wrong_type_is_a_config_error(tmp_path, text, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load(write(tmp_path, text))


def test_ints_are_accepted_for_floats():
    cfg = load(None, {"lr_g": 1, "loss.lambda_l1": 0})
    assert cfg.lr_g == 1.0 and isinstance(cfg.lr_g, float)
    assert cfg.loss.lambda_l1 == 0.0 and isinstance(cfg.loss.lambda_l1, float)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "crop = \n"))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError):
        load(bad)


def test_override_into_a_scalar_is_refused():
    with pytest.raises(ConfigError, match="not a section"):
        load(TINY, {"crop.size": 3})
    with pytest.raises(ConfigError):
        load(None, {"crop.size": 3})


def test_from_dict_needs_a_table():
    for data in ([1, 2], "crop", 3, None):
        with pytest.raises(ConfigError, match="must be a table"):
            from_dict(GeneratorConfig, data)


def test_from_dict_needs_required_fields():
    with pytest.raises(ConfigError, match="output"):
        from_dict(ColorizeConfig, {"input": "a.mp4"})
    cfg = from_dict(ColorizeConfig, {"input": "a.mp4", "output": "b.mkv", "style": None, "crf": 18})
    assert cfg.style is None and cfg.crf == 18
    with pytest.raises(ConfigError, match="crf"):
        from_dict(ColorizeConfig, {"input": "a.mp4", "output": "b.mkv", "crf": "high"})


# ----- overrides and round trips ---------------------------------------------------------------


def test_overrides_apply_after_the_file():
    cfg = load(TINY, {"steps_colorize": 10, "loss.lambda_l1": 2.5, "model.style_names": ["natural", "ink"],
                      "amp": False, "data": ["a", "b"]})
    assert cfg.steps_colorize == 10 and cfg.loss.lambda_l1 == 2.5 and cfg.amp is False
    assert cfg.model.style_names == ("natural", "ink") and cfg.data == ("a", "b")
    assert cfg.model.base_channels == 8  # the rest of the include is kept
    assert cfg.loss.vgg_weights == "random"  # and the rest of the file


def test_configs_are_frozen():
    cfg = load(TINY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.crop = 64  # type: ignore[misc]


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_dump_toml_then_load_round_trip(tmp_path, name):
    cfg = load(REPO / "configs" / "train" / f"{name}.toml", {"data": ['we"ird\\path', "b"], "style_images": ["x.png"]})
    text = dump_toml(to_dict(cfg))
    again = load(write(tmp_path, text))
    assert again == cfg
    assert dump_toml(to_dict(again)) == text


def test_default_config_round_trip(tmp_path):
    assert load(write(tmp_path, dump_toml(to_dict(TrainConfig())))) == TrainConfig()


def test_colorize_config_round_trip(tmp_path):
    cfg = ColorizeConfig(input="in.mp4", output="out.mkv", style=None, crf=None, references=("r.png@3",))
    text = dump_toml(to_dict(cfg))  # None values are left out, and default back to None
    assert load(write(tmp_path, text), cls=ColorizeConfig) == cfg


# ----- properties ------------------------------------------------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False)
BIG = 2**63 - 1

# What each key accepts, restated here from what training needs (not read from config.py).
ZERO_OK_INTS = {"seed", "workers", "steps_colorize", "steps_style", "model.blocks", "model.z_dim"}
SHARES = {"video_fraction", "hint_probability", "style_fraction"}
BELOW_ONE = {"beta1", "beta2", "ema_decay"}


def value_for(key: str):
    """A strategy for values ``key`` accepts."""
    if key in BOOL_KEYS:
        return st.booleans()
    if key == "crop":  # up to tiny.toml's max_photo_side (a crop may not exceed it)
        return st.integers(2, 8).map(lambda n: 16 * n)
    if key == "loss.vgg_size":
        return st.one_of(st.just(0), st.integers(32, 1024))
    if key == "max_photo_side":  # at least any crop drawn above
        return st.integers(128, 4096)
    if key == "max_video_frames":
        return st.integers(1, 10000)
    if key in INT_KEYS:
        return st.integers(0 if key in ZERO_OK_INTS else 1, BIG)
    if key in SHARES:
        return st.floats(0, 1)
    if key in BELOW_ONE:
        return st.floats(0, 1, exclude_max=True)
    if key in ("lr_g", "lr_d", "encoder_lr_scale"):
        return st.floats(min_value=0, exclude_min=True, allow_infinity=False)
    assert key.startswith("loss.lambda_"), key
    return st.floats(min_value=0, allow_infinity=False)


OVERRIDES = st.lists(st.sampled_from(INT_KEYS + FLOAT_KEYS + BOOL_KEYS), min_size=1, max_size=6, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: value_for(k) for k in keys})
)


def test_property_key_lists_are_complete():
    assert {"crop", "seed", "model.levels", "discriminator.levels"} <= set(INT_KEYS)
    assert {"lr_g", "ema_decay", "loss.lambda_flicker"} <= set(FLOAT_KEYS)
    assert BOOL_KEYS == ["amp"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=OVERRIDES)
def test_property_overrides_come_back(overrides):
    cfg = load(TINY, overrides)
    for key, value in overrides.items():
        got = get_dotted(cfg, key)
        assert got == value and type(got) is type(value), key


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=OVERRIDES)
def test_property_dump_and_load_keep_values(overrides, tmp_path_factory):
    cfg = load(TINY, overrides)
    path = tmp_path_factory.mktemp("dump") / "c.toml"
    path.write_text(dump_toml(to_dict(cfg)), encoding="utf-8")
    assert load(path) == cfg


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(INT_KEYS + FLOAT_KEYS), value=st.one_of(INT64, st.floats()))
def test_property_any_number_loads_or_is_refused_naming_its_key(key, value):
    """A negative batch, a NaN learning rate, a share above 1... are refused when the config
    loads, in one line naming the key, instead of failing (or training nonsense) later."""
    value = float(value) if key in FLOAT_KEYS else value
    if key in INT_KEYS and not isinstance(value, int):
        return  # a float for an integer key is a type error, tested elsewhere
    try:
        cfg = load(TINY, {key: value})
    except ConfigError as exc:
        assert str(exc).startswith(f"config key '{key}' must be ") and "\n" not in str(exc)
        return
    got = get_dotted(cfg, key)
    assert got == value and got == got  # loaded as given, and never NaN


@pytest.mark.parametrize("key, value", [("batch_size", -3), ("crop", 7), ("workers", -1), ("lr_g", float("nan")),
                                        ("seed", -1), ("max_photo_side", 0), ("ema_decay", 5.0),
                                        ("video_fraction", 2.0), ("hint_probability", -1.0), ("loss.vgg_size", 8),
                                        ("model.levels", 0), ("loss.adversarial", "wasserstein"),
                                        ("loss.vgg_layers", []), ("crop", 4096), ("crop", 256), ("loss.vgg_size", 4096),
                                        ("max_photo_side", 100_000), ("max_video_frames", 10**6),
                                        ("name", "../../escape"), ("name", ""), ("name", "a/b")])
def test_values_training_cannot_use_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"config key '{key}' must be"):
        load(TINY, {key: value})


NAME = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=20)
VALUE = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=5))


@settings(max_examples=60, deadline=None)
@given(section=st.sampled_from(["", "model.", "discriminator.", "loss."]), name=NAME, value=VALUE)
def test_property_unknown_keys_always_rejected(section, name, value):
    known = {f.name for f in dataclasses.fields(SECTIONS[section[:-1]] if section else TrainConfig)}
    if name in known:
        return  # hypothesis rarely hits a real key name; those are covered above
    with pytest.raises(ConfigError):
        load(TINY, {f"{section}{name}": value})
    with pytest.raises(ConfigError):
        load(None, {f"{section}{name}": value})


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(INT_KEYS), value=st.one_of(st.text(max_size=5), st.booleans(), st.floats(), st.lists(st.integers(), max_size=2)))
def test_property_wrong_types_rejected_for_int_keys(key, value):
    with pytest.raises(ConfigError):
        load(TINY, {key: value})


# ----- through the CLI -------------------------------------------------------------------------


def test_cli_train_with_a_bad_config_exits_2(tmp_path):
    runner = CliRunner()
    runs = tmp_path / "runs"
    cases = {
        "unknown.toml": "stepz_colorize = 3\n",
        "type.toml": 'crop = "big"\n',
        "toml.toml": "crop = = 3\n",
    }
    for name, text in cases.items():
        bad = write(tmp_path, text, name)
        result = runner.invoke(main, ["train", "--config", str(bad), "--data", str(tmp_path), "--runs", str(runs)])
        assert result.exit_code == 2, f"{name}: {result.output}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vidcolor: error:"), result.stderr
        assert "Traceback" not in result.output
    assert "stepz_colorize" in runner.invoke(
        main, ["train", "--config", str(tmp_path / "unknown.toml"), "--runs", str(runs)]
    ).stderr
    assert not runs.exists() or not any(runs.iterdir())  # no run folder for a refused config
    result = runner.invoke(main, ["train", "--config", str(TINY), "--set", "crop=big", "--runs", str(runs)])
    assert result.exit_code == 2 and "'crop'" in result.stderr
    result = runner.invoke(main, ["train", "--config", str(TINY), "--set", "nonsense", "--runs", str(runs)])
    assert result.exit_code == 2 and "key=value" in result.stderr
