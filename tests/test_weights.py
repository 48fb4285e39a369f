"""Model files: safetensors + JSON round trip, and every broken file is one clear ModelError
(exit code 5 through the CLI, never a traceback)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidcolor.cli import main
from vidcolor.config import GeneratorConfig
from vidcolor.errors import ModelError
from vidcolor.models.generator import build_generator
from vidcolor.models.weights import FORMAT, load_generator, read_model_card, resolve_model_path, save_generator

TINY = GeneratorConfig(base_channels=8, levels=2, max_channels=32, stem_factor=2, blocks=1, style_dim=8, z_dim=4,
                       style_names=("natural", "ink"))



def trained_looking(seed: int = 0, config: GeneratorConfig = TINY):
    """A tiny generator with every parameter perturbed (no zero-initialised layer left)."""
    torch.manual_seed(seed)
    g = build_generator(config)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g.eval()


@pytest.fixture
def saved(tmp_path):
    g = trained_looking()
    stem = tmp_path / "models" / "tiny"
    save_generator(g, stem, {"steps": 7, "data": ["photos/"]})
    return g, stem


def outputs(g, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    luma = torch.rand(2, 1, 37, 53, generator=gen)
    with torch.no_grad():
        return g(luma, style=torch.tensor([0, 1]), heads=("chroma", "rgb"))


def assert_one_line_model_error(excinfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ----- round trip ------------------------------------------------------------------------------


def test_round_trip_gives_identical_outputs_and_config(saved):
    g, stem = saved
    weights, card = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    assert weights.is_file() and card.is_file()
    assert not list(stem.parent.glob("*.tmp"))  # atomic: no temporary names left
    loaded, meta = load_generator(stem)
    assert loaded.config == g.config == TINY
    assert not loaded.training
    assert meta["format"] == FORMAT and meta["provenance"] == {"steps": 7, "data": ["photos/"]}
    assert meta["parameters"] == sum(v.numel() for v in g.state_dict().values())
    a, b = outputs(g), outputs(loaded)
    for head in a:
        assert torch.equal(a[head], b[head])
    for k, v in g.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_model_found_by_any_of_its_names(saved, monkeypatch):
    g, stem = saved
    for name in (stem, str(stem), stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
        assert resolve_model_path(name) == (stem.with_suffix(".safetensors"), stem.with_suffix(".json"))
    loaded, _ = load_generator(str(stem.with_suffix(".json")))
    assert torch.equal(outputs(loaded)["chroma"], outputs(g)["chroma"])
    # A folder means its default model; a bare word means a model shipped with vidcolor.
    folder_weights, _ = resolve_model_path(stem.parent)
    assert folder_weights == stem.parent / "default.safetensors"
    monkeypatch.chdir(stem.parent.parent)
    shipped, _ = resolve_model_path("nosuchmodel")
    assert shipped.parent.name == "weights" and shipped.name == "nosuchmodel.safetensors"


def test_model_card_is_readable_json(saved):
    _, stem = saved
    meta = read_model_card(stem)
    assert meta["config"]["style_names"] == ["natural", "ink"]
    assert len(meta["sha256"]) == 64
    assert json.loads(stem.with_suffix(".json").read_text()) == meta


# ----- broken files ----------------------------------------------------------------------------


def _rewrite_card(stem: Path, **changes) -> None:
    card = stem.with_suffix(".json")
    meta = json.loads(card.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    card.write_text(json.dumps(meta))


def test_corrupt_weights_are_a_model_error(saved):
    _, stem = saved
    weights = stem.with_suffix(".safetensors")
    weights.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, str(weights), "checksum")
    # Without a checksum to catch it, the safetensors reader must still refuse it cleanly.
    _rewrite_card(stem, sha256=None)
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, str(weights), "not a readable safetensors file")


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_weights_are_a_model_error(saved, keep):
    _, stem = saved
    weights = stem.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, "truncated")
    _rewrite_card(stem, sha256=None)
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, str(weights))


def test_weights_not_matching_their_config_are_a_model_error(saved):
    _, stem = saved
    meta = json.loads(stem.with_suffix(".json").read_text())
    _rewrite_card(stem, config={**meta["config"], "base_channels": 16})
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, "do not match the model", "tiny.json")
    # Another style count: the embedding table has the wrong number of rows.
    _rewrite_card(stem, config={**meta["config"], "style_names": ["natural"]})
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, "do not match the model")


def test_tensors_from_another_model_are_a_model_error(saved, tmp_path):
    """A swapped weights file with a valid checksum still fails on its tensors' shapes."""
    _, stem = saved
    other = trained_looking(config=dataclasses.replace(TINY, base_channels=12))
    other_stem = tmp_path / "other"
    save_generator(other, other_stem)
    stem.with_suffix(".safetensors").write_bytes(other_stem.with_suffix(".safetensors").read_bytes())
    _rewrite_card(stem, sha256=json.loads(other_stem.with_suffix(".json").read_text())["sha256"])
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, "do not match the model")


@pytest.mark.parametrize(
    "card_text, fragment",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "something-else"}), "format tag"),
        (json.dumps(["a", "list"]), "format tag"),
        (json.dumps({"format": FORMAT, "format_version": 99, "config": {}}), "newer vidcolor"),
        (json.dumps({"format": FORMAT, "format_version": 1, "config": {"base_channel": 8}}), "bad generator arguments"),
        (json.dumps({"format": FORMAT, "format_version": 1, "config": {"levels": "two"}}), "bad generator arguments"),
        (json.dumps({"format": FORMAT, "format_version": 1, "config": [8, 2]}), "bad generator arguments"),
    ],
)
def test_bad_model_cards_are_model_errors(saved, card_text, fragment):
    _, stem = saved
    stem.with_suffix(".json").write_text(card_text)
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, fragment)


def test_missing_files_are_model_errors(saved, tmp_path):
    _, stem = saved
    with pytest.raises(ModelError) as info:
        load_generator(tmp_path / "nothing" / "here")
    assert_one_line_model_error(info, "model description not found")
    stem.with_suffix(".safetensors").unlink()
    with pytest.raises(ModelError) as info:
        load_generator(stem)
    assert_one_line_model_error(info, "weights file not found")


# ----- through the CLI -------------------------------------------------------------------------


@pytest.fixture
def grey_image(tmp_path) -> Path:
    yy, xx = np.mgrid[0:30, 0:40]
    grey = (40 + 150 * (xx / 39) + 30 * np.sin(yy / 3.0)).astype(np.uint8)
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), grey)
    return path


def _bad_models(tmp_path: Path) -> dict[str, str]:
    """name -> --model value for each way a model can be broken."""
    g = trained_looking()
    out = {}
    corrupt = tmp_path / "corrupt" / "m"
    save_generator(g, corrupt)
    corrupt.with_suffix(".safetensors").write_bytes(b"\x13\x37" * 500)
    out["corrupt"] = str(corrupt)
    truncated = tmp_path / "truncated" / "m"
    save_generator(g, truncated)
    data = truncated.with_suffix(".safetensors").read_bytes()
    truncated.with_suffix(".safetensors").write_bytes(data[: len(data) // 3])
    _rewrite_card(truncated, sha256=None)
    out["truncated"] = str(truncated.with_suffix(".safetensors"))
    mismatched = tmp_path / "mismatched" / "m"
    save_generator(g, mismatched)
    meta = json.loads(mismatched.with_suffix(".json").read_text())
    _rewrite_card(mismatched, config={**meta["config"], "levels": 3})
    out["mismatched"] = str(mismatched.with_suffix(".json"))
    out["missing"] = str(tmp_path / "no" / "model")
    out["unknown name"] = "no-such-shipped-model"
    return out


def test_cli_colorize_with_a_bad_model_exits_5_with_one_line(tmp_path, grey_image):
    runner = CliRunner()
    for label, model in _bad_models(tmp_path).items():
        out = tmp_path / f"out-{label.replace(' ', '_')}.png"
        result = runner.invoke(main, ["colorize", str(grey_image), "-o", str(out), "--model", model, "--device", "cpu"])
        assert result.exit_code == 5, f"{label}: exit {result.exit_code}: {result.output}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{label}: {result.stderr!r}"
        assert lines[0].startswith("vidcolor: error:")
        assert "Traceback" not in result.output
        assert not out.exists(), f"{label}: an output was written"


def test_cli_colorize_with_a_good_model_file(tmp_path, grey_image, saved):
    """The same command works with an intact saved model: the failures above are the files'."""
    _, stem = saved
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["colorize", str(grey_image), "-o", str(out), "--model", str(stem), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    img = cv2.imread(str(out))
    assert img.shape == (30, 40, 3)


def test_a_run_folder_and_a_name_with_dots_resolve_to_their_model(tmp_path):
    run = tmp_path / "runs" / "0003-tiny"
    run.mkdir(parents=True)
    g = trained_looking()
    save_generator(g, run / "model")
    assert resolve_model_path(run) == (run / "model.safetensors", run / "model.json")
    load_generator(run)
    save_generator(g, tmp_path / "colour.v2")  # the dot is part of the name, not an extension
    assert resolve_model_path(tmp_path / "colour.v2") == (tmp_path / "colour.v2.safetensors", tmp_path / "colour.v2.json")
    assert (tmp_path / "colour.v2.safetensors").is_file() and not (tmp_path / "colour.safetensors").exists()
    load_generator(tmp_path / "colour.v2.json")
