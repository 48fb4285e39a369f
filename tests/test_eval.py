"""``vidcolor eval`` end to end on tiny synthetic photos and a tiny synthetic clip.

One evaluation of a tiny random model is shared by most tests (module fixture); the metrics
themselves are checked against hand-worked values in test_metrics.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.media import make_clip
from vidcolor.errors import UsageError
from vidcolor.metrics import evaluate as ev
from vidcolor.commands.evaluate import eval_command
from vidcolor.metrics.temporal import cdc, clip_report, frame_luma, warp_error
from vidcolor.models.generator import Generator
from vidcolor.models.weights import save_generator

TINY = dict(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4)
RENDER = 32
CLIP_FRAMES = 10


def tiny_generator(seed: int = 0) -> Generator:
    """A small random generator whose chroma output is visibly non-zero."""
    torch.manual_seed(seed)
    g = Generator(**TINY)
    with torch.no_grad():
        g.chroma_head.weight.normal_(0, 0.05)
        g.chroma_head.bias.copy_(torch.tensor([0.5, -0.3, -0.2, 0.25]))
    return g.eval()


def grey_generator() -> Generator:
    """A generator whose chroma is exactly zero (coefficients a = b = 0)."""
    torch.manual_seed(0)
    g = Generator(**TINY)
    with torch.no_grad():
        g.chroma_head.weight.zero_()
        g.chroma_head.bias.zero_()
    return g.eval()


class FlickeringGenerator(Generator):
    """Chroma that jumps from frame to frame, like an unstable per-frame model."""

    def forward(self, luma, *args, **kwargs):
        out = super().forward(luma, *args, **kwargs)
        noise = torch.randn(luma.shape[0], 2, 1, 1, generator=self.rng) * 0.08
        out["chroma"] = (out["chroma"] + noise).clamp(-0.5, 0.5)
        return out


def colour_photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour texture as 8-bit BGR (for cv2.imwrite)."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 3.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("eval")
    stem = root / "model" / "tiny"
    save_generator(tiny_generator(), stem, {"note": "test model"})
    photos = root / "photos"
    for folder, sizes in (("setA", [(48, 64), (64, 48)]), ("setB", [(48, 96)])):
        (photos / folder).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            cv2.imwrite(str(photos / folder / f"img_{i}.png"), colour_photo(h, w, seed=10 * len(folder) + i))
    (photos / "setA" / "notes.txt").write_text("not a photo")
    clip = make_clip(root / "clip.mkv", width=64, height=48, frames=CLIP_FRAMES, lossless=True, content="moving")
    return {"root": root, "model": str(stem), "photos": photos, "clip": clip}


@pytest.fixture(scope="module")
def report(data) -> dict:
    return ev.evaluate(data["model"], [data["photos"], data["clip"].path], render_size=RENDER, smooth=0.8,
                       device="cpu", progress=False)


def dataset(report: dict, name: str) -> dict:
    return next(d for d in report["datasets"] if d["name"] == name)


def truth_frames(path: Path) -> list[np.ndarray]:
    return [f.astype(np.float32) / 255.0 for f in ev.read_clip(path)]


# ----- the report ---------------------------------------------------------------------------


def test_report_schema_key_by_key(report, data):
    safe = json.loads(json.dumps(ev.json_safe(report), allow_nan=False))
    assert list(safe) == ["schema_version", "tool", "vidcolor_version", "created", "seconds", "model", "settings",
                          "inputs", "methods", "datasets", "non_finite"]
    assert safe["schema_version"] == ev.SCHEMA_VERSION == 1
    assert safe["tool"] == "vidcolor eval"
    assert isinstance(safe["vidcolor_version"], str) and isinstance(safe["created"], str)
    assert safe["seconds"] > 0
    assert list(safe["model"]) == ["name", "parameters", "sha256", "provenance"]
    assert safe["model"]["name"] == data["model"]
    assert safe["model"]["parameters"] == sum(p.numel() for p in tiny_generator().parameters())
    assert len(safe["model"]["sha256"]) == 64 and safe["model"]["provenance"] == {"note": "test model"}
    assert safe["settings"] == {
        "render_size": RENDER, "smooth": 0.8, "device": "cpu", "max_frames": None, "max_images": None,
        "references": [], "style": None, "strength": None, "flow": "dis", "colour_space": safe["settings"]["colour_space"],
        "auc": {"max_threshold": 150.0, "steps": 151}, "cdc": {"bins": 32, "gaps": [1, 2]},
    }
    assert safe["inputs"] == [str(data["photos"]), str(data["clip"].path)]
    assert list(safe["methods"]) == ["model", "per-frame", "grey", "truth"]
    assert [d["name"] for d in safe["datasets"]] == ["setA", "setB", "all photos", "clip", "all clips"]
    assert [d["kind"] for d in safe["datasets"]] == ["photos", "photos", "photos", "clip", "clips"]
    assert safe["non_finite"] == {}

    common = ["name", "kind", "aggregate", "path", "count", "truth_colourfulness", "methods", "seconds"]
    set_a, set_b, all_photos, clip, all_clips = safe["datasets"]
    assert list(set_a) == common + ["items"] and list(set_b) == common + ["items"]
    assert list(all_photos) == common + ["members"]
    assert list(clip) == ["name", "kind", "aggregate", "path", "count", "size", "render", "references",
                          "truth_colourfulness", "methods", "seconds"]
    assert list(all_clips) == common + ["members"]
    assert (set_a["count"], set_b["count"], all_photos["count"]) == (2, 1, 3)  # notes.txt is skipped
    assert all_photos["members"] == ["setA", "setB"] and all_photos["path"] is None and all_photos["aggregate"]
    assert set_a["path"] == str(data["photos"] / "setA") and not set_a["aggregate"]
    assert (clip["count"], clip["size"], clip["render"], clip["references"]) == (CLIP_FRAMES, [48, 64], [32, 48], [])
    assert all_clips["members"] == ["clip"] and all_clips["count"] == CLIP_FRAMES

    for d in (set_a, set_b, all_photos):
        assert list(d["methods"]) == ["model", "grey", "truth"]
        for method, row in d["methods"].items():
            assert list(row) == list(ev.PHOTO_METRICS)
            for metric, value in row.items():
                if method == "truth" and metric in ("psnr", "ssim", "auc"):
                    assert value is None
                else:
                    assert isinstance(value, float)
    for d in (clip, all_clips):
        assert list(d["methods"]) == ["model", "per-frame", "grey", "truth"]
        for method, row in d["methods"].items():
            assert list(row) == list(ev.CLIP_METRICS)
            for metric, value in row.items():
                if method == "truth" and metric in ("psnr", "ssim", "auc"):
                    assert value is None
                else:
                    assert isinstance(value, float), (d["name"], method, metric)
    item = set_a["items"][0]
    assert list(item) == ["name", "size", "truth_colourfulness", "methods"]
    assert item["name"] == "img_0.png" and item["size"] == [48, 64]
    assert list(item["methods"]) == ["model", "grey"]
    assert list(item["methods"]["model"]) == list(ev.PHOTO_METRICS)


def test_metric_ranges(report):
    for d in report["datasets"]:
        for method, row in d["methods"].items():
            if row["ssim"] is not None:
                assert -1.0 <= row["ssim"] <= 1.0 and 0.0 <= row["auc"] <= 1.0 and row["psnr"] > 0
            assert row["colourfulness"] >= 0.0
            if "warp_error" in row:
                assert row["warp_error"] >= 0.0 and 0.0 <= row["cdc"] <= math.log(2)


def test_aggregates_average_their_members(report):
    items = dataset(report, "setA")["items"] + dataset(report, "setB")["items"]
    for method in ("model", "grey"):
        row = dataset(report, "all photos")["methods"][method]
        for metric in ("psnr", "ssim", "colourfulness", "auc"):
            assert row[metric] == pytest.approx(np.mean([it["methods"][method][metric] for it in items]))
        truth_c = np.mean([it["truth_colourfulness"] for it in items])
        assert row["colourfulness_ratio"] == pytest.approx(row["colourfulness"] / truth_c)
    clip, all_clips = dataset(report, "clip"), dataset(report, "all clips")  # one clip: its own average
    for method, row in clip["methods"].items():
        for metric, value in row.items():
            expected = None if value is None else pytest.approx(value, rel=1e-12)
            assert all_clips["methods"][method][metric] == expected


def test_grey_baseline_is_colourless(report):
    for d in report["datasets"]:
        grey = d["methods"]["grey"]
        assert grey["colourfulness"] < 1e-3, d["name"]
        assert grey["colourfulness_ratio"] < 1e-3
        assert d["truth_colourfulness"] > 5.0  # the synthetic truths are colourful


def test_truth_method_has_the_clips_own_warp_error_and_cdc(report, data):
    frames = truth_frames(data["clip"].path)
    assert len(frames) == CLIP_FRAMES
    truth = dataset(report, "clip")["methods"]["truth"]
    assert truth["warp_error"] == pytest.approx(warp_error(frames), rel=1e-12, abs=0)
    assert truth["cdc"] == pytest.approx(cdc(frames), rel=1e-12, abs=0)
    assert truth["colourfulness_ratio"] == 1.0


def test_clip_metrics_match_clip_report(report, data):
    """The streaming evaluation gives clip_report's numbers (checked on the grey method,
    whose frames the test can rebuild: the true luma with neutral chroma)."""
    frames = truth_frames(data["clip"].path)
    grey = [ev.compose(frame_luma(f), None) for f in frames]
    expected = clip_report(grey, frames)
    assert dataset(report, "clip")["methods"]["grey"] == pytest.approx(expected, rel=1e-9)


def test_photo_model_matches_what_colorize_writes(report, data, tmp_path):
    """The photo path is run_image's: the PNG that `colorize --force` writes from the colour
    photo scores what the report says, up to 8-bit rounding."""
    from vidcolor.metrics.image import image_report
    from vidcolor.io.stills import read_image
    from vidcolor.pipeline.run import colorize_video

    src = data["photos"] / "setA" / "img_0.png"
    out = tmp_path / "out.png"
    colorize_video(src, out, model=data["model"], render_size=RENDER, force=True, device="cpu", quiet=True)
    written = image_report(read_image(str(out)), read_image(str(src)))
    expected = dataset(report, "setA")["items"][0]["methods"]["model"]
    # 8-bit rounding moves PSNR by about 3e-4 dB here; leaving out the gamut fit would move it 5e-3.
    assert written["psnr"] == pytest.approx(expected["psnr"], abs=2e-3)
    assert written["auc"] == pytest.approx(expected["auc"], abs=1e-3)
    assert written["colourfulness"] == pytest.approx(expected["colourfulness"], rel=1e-3)


def test_clip_has_smoothed_and_per_frame_model(report):
    methods = dataset(report, "clip")["methods"]
    assert methods["model"] != methods["per-frame"]  # smoothing changed the chroma
    for method in ("model", "per-frame"):
        assert all(math.isfinite(v) for v in methods[method].values())


def test_smoothing_lowers_the_warp_error_of_a_flickering_model(data):
    model = FlickeringGenerator(**TINY).eval()
    model.rng = torch.Generator().manual_seed(3)
    out = ev.evaluate(model, [data["clip"].path], render_size=RENDER, smooth=0.8, device="cpu", progress=False)
    methods = dataset(out, "clip")["methods"]
    assert methods["model"]["warp_error"] < 0.7 * methods["per-frame"]["warp_error"], methods


def test_smooth_zero_makes_model_equal_per_frame(data):
    out = ev.evaluate(data["model"], [data["clip"].path], render_size=RENDER, smooth=0.0, device="cpu",
                      max_frames=4, progress=False)
    clip = dataset(out, "clip")
    assert clip["count"] == 4
    assert clip["methods"]["model"] == clip["methods"]["per-frame"]


def test_zero_chroma_model_equals_grey_baseline_exactly(data):
    out = ev.evaluate(grey_generator(), [data["photos"], data["clip"].path], render_size=RENDER, device="cpu",
                      max_frames=5, progress=False)
    assert out["model"]["name"] == "(in-memory generator)" and out["model"]["sha256"] is None
    for d in out["datasets"]:
        grey = d["methods"]["grey"]
        assert d["methods"]["model"] == grey, d["name"]
        if d["kind"] != "photos":
            assert d["methods"]["per-frame"] == grey
        for item in d.get("items", []):
            assert item["methods"]["model"] == item["methods"]["grey"]


def test_max_images_takes_the_first_photos_of_each_folder(data):
    out = ev.evaluate(grey_generator(), [data["photos"]], render_size=RENDER, device="cpu", max_images=1, progress=False)
    assert [(d["name"], d["count"]) for d in out["datasets"]] == [("setA", 1), ("setB", 1), ("all photos", 2)]
    assert dataset(out, "setA")["items"][0]["name"] == "img_0.png"
    assert not any(d["kind"] != "photos" for d in out["datasets"])


# ----- table and JSON -----------------------------------------------------------------------


def test_table_shows_every_dataset_and_method(report):
    table = ev.format_table(report)
    table.encode("ascii")
    for title in ("setA: 2 photos", "setB: 1 photo", "all photos: 3 photos in 2 folders",
                  f"clip: clip, {CLIP_FRAMES} frames, 64x48", f"all clips: 1 clip, {CLIP_FRAMES} frames"):
        assert title in table
    lines = table.splitlines()
    assert sum(line.split()[:1] == ["per-frame"] for line in lines) == 2
    assert sum(line.split()[:1] == ["grey"] for line in lines) == 5
    header = next(line for line in lines if "warp(e-3)" in line)
    assert header.split() == ["method", "PSNR", "SSIM", "colourf.", "ratio", "AuC", "warp(e-3)", "cwarp(e-3)", "CDC(e-3)"]
    truth_row = next(line for line in lines if line.split()[:1] == ["truth"])
    assert truth_row.split()[1:4] == ["-", "-", truth_row.split()[3]]


def test_write_json_makes_inf_and_nan_safe(report, tmp_path):
    broken = json.loads(json.dumps(report))
    broken["datasets"][0]["methods"]["grey"]["psnr"] = math.inf
    broken["datasets"][3]["methods"]["model"]["warp_error"] = math.nan
    path = ev.write_json(broken, tmp_path / "r.json")
    text = path.read_text()

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    loaded = json.loads(text, parse_constant=refuse)
    assert loaded["datasets"][0]["methods"]["grey"]["psnr"] is None
    assert loaded["datasets"][3]["methods"]["model"]["warp_error"] is None
    assert loaded["non_finite"] == {"/datasets/0/methods/grey/psnr": "inf",
                                    "/datasets/3/methods/model/warp_error": "nan"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    ev.write_json(report, path)  # an existing report is replaced
    assert json.loads(path.read_text())["non_finite"] == {}
    assert ev.format_table(loaded)  # the table reads the parsed JSON too


# ----- command line -------------------------------------------------------------------------


def test_cli_prints_the_table_and_writes_json(data, tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(eval_command, [
        "--model", data["model"], "--json", str(out), "--render-size", str(RENDER), "--smooth", "0.5",
        "--device", "cpu", "--max-frames", "3", "--max-images", "1", "--reference-frame", "1", "--quiet",
        str(data["photos"]), str(data["clip"].path),
    ])
    assert result.exit_code == 0, result.output
    assert "all photos: 2 photos in 2 folders" in result.output and "clip: clip, 3 frames" in result.output
    assert f"wrote {out}" in result.output
    saved = json.loads(out.read_text())
    assert saved["schema_version"] == 1
    assert saved["settings"]["smooth"] == 0.5 and saved["settings"]["max_frames"] == 3
    assert saved["settings"]["max_images"] == 1 and saved["settings"]["references"] == [1]
    assert saved["datasets"][-2]["references"] == [1]


@pytest.mark.parametrize("args,code,message", [
    (["--smooth", "1.0"], 2, "--smooth"),
    (["--render-size", "40"], 2, "--render-size"),
    (["--max-frames", "0"], 2, "--max-frames"),
])
def test_cli_bad_options_are_one_line_errors(data, args, code, message):
    result = CliRunner().invoke(eval_command, ["--model", data["model"], "--quiet", *args, str(data["photos"])])
    assert result.exit_code == code
    assert result.output.startswith("vidcolor: error:") and message in result.output
    assert "Traceback" not in result.output


def test_flow_choice_is_recorded_and_changes_only_the_warp_errors(data, tmp_path):
    """``--flow farneback`` measures the same outputs along another flow: image metrics and CDC
    are unchanged, the warp errors differ, and the setting is in the JSON and the table."""
    out = tmp_path / "farneback.json"
    result = CliRunner().invoke(eval_command, ["--model", data["model"], "--quiet", "--max-frames", "4", "--render-size", str(RENDER),
                                               "--flow", "farneback", "--json", str(out), str(data["clip"].path)])
    assert result.exit_code == 0, result.output
    assert "warp error along farneback flow" in result.output
    farneback = json.loads(out.read_text())
    assert farneback["settings"]["flow"] == "farneback"
    dis = ev.evaluate(data["model"], [data["clip"].path], render_size=RENDER, device="cpu", max_frames=4, progress=False)
    for method in ("model", "per-frame", "grey"):
        a, b = dataset(dis, "clip")["methods"][method], dataset(farneback, "clip")["methods"][method]
        assert {k: a[k] for k in ("psnr", "ssim", "cdc")} == {k: b[k] for k in ("psnr", "ssim", "cdc")}
    a, b = dataset(dis, "clip")["methods"]["model"], dataset(farneback, "clip")["methods"]["model"]
    assert a["warp_error"] != b["warp_error"] and math.isfinite(b["warp_error"])


def test_unknown_flow_is_refused(data):
    with pytest.raises(UsageError, match="unknown flow 'raft'; choose from dis, farneback"):
        ev.evaluate(data["model"], [data["clip"].path], render_size=RENDER, device="cpu", flow_name="raft", progress=False)
    result = CliRunner().invoke(eval_command, ["--model", data["model"], "--flow", "raft", str(data["clip"].path)])
    assert result.exit_code == 2 and "raft" in result.output and "Traceback" not in result.output


def test_cli_negative_reference_frame_is_a_usage_error(data):
    result = CliRunner().invoke(eval_command, ["--model", data["model"], "--reference-frame", "-1", str(data["photos"])])
    assert result.exit_code == 2 and "--reference-frame" in result.output


def test_cli_missing_data_and_missing_model(data, tmp_path):
    result = CliRunner().invoke(eval_command, ["--model", data["model"], str(tmp_path / "nope")])
    assert result.exit_code == 3 and "no such file or folder" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(eval_command, ["--model", data["model"], str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no photos" in result.output
    result = CliRunner().invoke(eval_command, ["--model", str(tmp_path / "missing"), str(data["photos"])])
    assert result.exit_code == 5 and "vidcolor: error:" in result.output
    result = CliRunner().invoke(eval_command, ["--model", data["model"], "--json", str(tmp_path / "no" / "r.json"),
                                               str(data["photos"])])
    assert result.exit_code == 4 and "does not exist" in result.output


def test_true_colour_references_bring_the_model_closer_to_the_truth(report, data):
    out = ev.evaluate(data["model"], [data["clip"].path], render_size=RENDER, device="cpu", references=[0, 99],
                      progress=False)
    assert out["settings"]["references"] == [0, 99]
    clip, before = dataset(out, "clip"), dataset(report, "clip")
    assert clip["references"] == [0]  # frame 99 lies past the clip
    assert "true colours given at frame 0" in ev.format_table(out)
    for method in ("model", "per-frame"):
        assert clip["methods"][method]["auc"] > before["methods"][method]["auc"] + 0.01
        assert clip["methods"][method]["psnr"] > before["methods"][method]["psnr"] + 0.5
    for method in ("grey", "truth"):  # the baselines do not see references
        assert clip["methods"][method] == before["methods"][method]


@pytest.mark.parametrize("bad", [["ref.png@0"], [-1], "0", [1.5]])
def test_bad_references_are_refused(data, bad):
    with pytest.raises(UsageError, match="frame numbers"):
        ev.evaluate(data["model"], [data["photos"]], references=bad, progress=False)


def test_a_reference_past_max_frames_is_refused(data):
    """No clip could use it; scoring without it would read as a result with references."""
    with pytest.raises(UsageError, match=r"--reference-frame 100 is past --max-frames 5 \(frames 0 to 4 are scored\)"):
        ev.evaluate(data["model"], [data["clip"].path], max_frames=5, references=[0, 100], progress=False)


def test_grey_clips_are_marked_and_left_out_of_all_clips(data, tmp_path):
    grey = make_clip(tmp_path / "grey.mkv", width=64, height=48, frames=4, lossless=True, content="grey",
                     pix_fmt="gray").path  # a black-and-white reel: no colour truth at all
    report = ev.evaluate(data["model"], [grey, data["clip"].path], render_size=RENDER, device="cpu", progress=False,
                         max_frames=4)
    grey_entry, clip, all_clips = dataset(report, "grey"), dataset(report, "clip"), dataset(report, ev.ALL_CLIPS)
    assert grey_entry["grey_truth"] and "grey_truth" not in clip
    for row in grey_entry["methods"].values():  # no colour truth: nothing to compare colours with
        assert all(row[m] is None for m in ev.COLOUR_METRICS)
        assert row["warp_error"] is not None  # steadiness still measured
    assert all_clips["members"] == ["clip"] and all_clips["left_out"] == ["grey"] and all_clips["count"] == 4
    for method, row in clip["methods"].items():  # the colour clip alone makes the averages
        for metric in ("psnr", "colourfulness_ratio", "warp_error"):
            assert all_clips["methods"][method][metric] == (None if row[metric] is None else pytest.approx(row[metric]))
    table = ev.format_table(report)
    assert "inf" not in table and "154" not in table and f"{ev.ALL_CLIPS}: 1 clip, 4 frames; left out, grey ground truth: grey" in table
    alone = ev.evaluate(data["model"], [grey], render_size=RENDER, device="cpu", progress=False, max_frames=4)
    assert dataset(alone, ev.ALL_CLIPS)["members"] == [] and "inf" not in ev.format_table(alone)
    json.dumps(ev.json_safe(alone), allow_nan=False)


def test_one_frame_shows_dashes_and_says_why(data):
    report = ev.evaluate(data["model"], [data["clip"].path], render_size=RENDER, device="cpu", progress=False,
                         max_frames=1)
    table = ev.format_table(report)
    assert "nan" not in table and "need 2 frames or more" in table and "1 frame," in table
