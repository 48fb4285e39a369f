"""Style mode: named styles change the output, strength blends, bad names are one clear line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.media import make_clip, read_planes, read_rgb
from vidcolor.cli import main
from vidcolor.config import ColorizeConfig
from vidcolor.errors import UsageError
from vidcolor.io.probe import probe
from vidcolor.models.generator import Generator
from vidcolor.models.weights import save_generator
from vidcolor.pipeline.run import colorize
from vidcolor.pipeline.style import style_weights

STYLES = ("natural", "ink", "oil")


def styled_generator() -> Generator:
    """A tiny generator with three distinct style codes and a live RGB head."""
    torch.manual_seed(0)
    g = Generator(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4, style_names=STYLES)
    with torch.no_grad():
        g.rgb_head.weight.normal_(0, 0.2)
        for film in [g.bottleneck_film, *g.up_film]:
            film.proj.weight.normal_(0, 0.5)
        g.style_embedding.weight.normal_(0, 2.0)
    return g.eval()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    stem = tmp_path_factory.mktemp("styled") / "styled"
    save_generator(styled_generator(), stem)
    return str(stem) + ".json"


def render(src, out, model_path, **kw):
    colorize(ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, codec="ffv1",
                            quiet=True, force=True, **kw))
    return read_planes(out)


def test_style_weights():
    assert style_weights(STYLES, "oil", 0.25).tolist() == [0.75, 0.0, 0.25]
    assert style_weights(STYLES, "natural", 0.7).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(UsageError, match="natural, ink, oil"):
        style_weights(STYLES, "starry_night", 1.0)


def test_each_style_changes_the_output_and_strength_zero_is_natural(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mkv", frames=6, lossless=True, content="grey").path
    natural = render(src, tmp_path / "plain.mkv", model_path)  # no --style: the natural-colour path
    # Strength 0 and the style "natural" are natural colour itself, not the RGB head's version of it.
    for name, kw in (("natural", dict(style="natural")), ("zero", dict(style="oil", strength=0.0))):
        same = render(src, tmp_path / f"{name}.mkv", model_path, **kw)
        for a, b in zip(natural, same):
            assert all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:])), name
    outputs = {}
    for name in ("ink", "oil"):
        outputs[name] = render(src, tmp_path / f"{name}.mkv", model_path, style=name)
        diff = np.mean([np.abs(s[3].astype(int) - n[3].astype(int)).mean() for s, n in zip(outputs[name], natural)])
        assert diff > 1.0, name
    # Strength moves along the style code: half way lies between a trace of the style and all of it.
    trace = render(src, tmp_path / "trace.mkv", model_path, style="ink", strength=0.01)
    half = render(src, tmp_path / "half.mkv", model_path, style="ink", strength=0.5)
    d_half = np.abs(half[2][2].astype(int) - trace[2][2].astype(int)).mean()
    d_full = np.abs(outputs["ink"][2][2].astype(int) - trace[2][2].astype(int)).mean()
    assert 0 < d_half < d_full
    # Timing is kept in style mode too.
    assert [p[0] for p in outputs["ink"]] == [p[0] for p in read_planes(src)]


def test_style_code_is_none_for_natural_colour():
    from vidcolor.pipeline.style import style_code

    assert style_code(STYLES, None, 1.0) is None
    assert style_code(STYLES, "natural", 1.0) is None
    assert style_code(STYLES, "oil", 0.0) is None
    assert style_code(STYLES, "oil", 0.25).tolist() == [0.75, 0.0, 0.25]
    with pytest.raises(UsageError, match="natural, ink, oil"):
        style_code(STYLES, "starry_night", 0.0)  # a bad name fails even at strength 0


def test_styles_command_lists_and_draws_a_sheet(tmp_path, model_path):
    img = tmp_path / "photo.png"
    cv2.imwrite(str(img), (np.add.outer(np.arange(48), np.arange(64)) * 2 % 255).astype(np.uint8))
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["styles", "--model", model_path, "--sheet", str(sheet), "--image", str(img),
                                       "--render-size", "32"])
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.output.splitlines()[:3]] == list(STYLES)
    assert cv2.imread(str(sheet)).shape[1] >= 3 * 320


def test_unknown_style_is_one_line_listing_the_choices(tmp_path, model_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, content="grey").path
    result = CliRunner().invoke(main, ["colorize", str(src), "-o", str(tmp_path / "o.mp4"), "--model", model_path,
                                       "--style", "starry_night", "--render-size", "32"])
    assert result.exit_code == 2
    assert result.output.strip() == "vidcolor: error: unknown style 'starry_night'; this model has: natural, ink, oil"
    assert not (tmp_path / "o.mp4").exists()


def test_styled_rgb_source_looks_like_its_ycbcr_twin_in_every_codec(tmp_path, model_path):
    """An RGB film (decoded as full-range BT.601 YCbCr) is styled and tagged like the same
    picture stored as YCbCr: a player shows the same picture whatever the codec."""
    rgb = make_clip(tmp_path / "rgb.mkv", frames=4, pix_fmt="bgr0", lossless=True, content="grey",
                    color_meta={"colorspace": "gbr"}).path
    twin = make_clip(tmp_path / "twin.mkv", frames=4, pix_fmt="yuv444p", lossless=True, content="grey",
                     color_meta={"colorspace": "smpte170m", "range": "pc"}).path

    def styled(src, name, codec):
        out = tmp_path / name
        colorize(ColorizeConfig(input=str(src), output=str(out), model=model_path, render_size=32, codec=codec, crf=4,
                                quiet=True, force=True, style="oil", strength=0.8))
        return out

    expected = read_rgb(styled(twin, "twin_oil.mkv", "ffv1"))
    for codec, ext in (("ffv1", "mkv"), ("x264", "mp4"), ("prores", "mov")):
        out = styled(rgb, f"rgb_{codec}.{ext}", codec)
        assert probe(out, verdict=False).video.colorspace == "smpte170m", codec  # the matrix the planes are in
        shown = read_rgb(out)
        assert len(shown) == 4
        for a, b in zip(shown, expected):
            assert np.abs(a - b).mean() < 2.0, codec  # the source's RGB rounding and the codec's loss only


def test_styled_still_image(tmp_path, model_path):
    img = tmp_path / "photo.png"
    cv2.imwrite(str(img), (np.add.outer(np.arange(40), np.arange(56)) * 3 % 255).astype(np.uint8))
    outs = {}
    for name in ("natural", "ink"):
        out = tmp_path / f"{name}.png"
        colorize(ColorizeConfig(input=str(img), output=str(out), model=model_path, render_size=32, style=name, quiet=True))
        outs[name] = cv2.imread(str(out)).astype(int)
    assert outs["natural"].shape == (40, 56, 3)
    assert np.abs(outs["natural"] - outs["ink"]).mean() > 1.0


# ----- styled video measured by `vidcolor eval --style` --------------------------------------


class FlickeringStyler(Generator):
    """A styled generator whose colours jump from frame to frame (an unstable per-frame style)."""

    def coefficient_maps(self, luma, *args, **kwargs):
        out = super().coefficient_maps(luma, *args, **kwargs)
        if "rgb" in out:
            noise = torch.randn(luma.shape[0], 3, 1, 1, generator=self.rng) * 0.4
            out["rgb"] = out["rgb"] + torch.cat((torch.zeros_like(noise), noise), 1)  # the b coefficients
        return out


def flickering_styler() -> Generator:
    g = FlickeringStyler(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4,
                         style_names=STYLES)
    g.load_state_dict(styled_generator().state_dict())
    g.rng = torch.Generator().manual_seed(5)
    return g.eval()


@pytest.fixture(scope="module")
def colour_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("styled-eval") / "clip.mkv", width=64, height=48, frames=8,
                     lossless=True, content="moving")


def test_eval_style_reports_the_styled_clip_with_and_without_smoothing(colour_clip):
    from vidcolor.metrics import evaluate as ev

    report = ev.evaluate(flickering_styler(), [colour_clip.path], render_size=32, smooth=0.8, device="cpu",
                         progress=False, style="oil", strength=1.0)
    assert report["settings"]["style"] == "oil" and report["settings"]["strength"] == 1.0
    methods = report["datasets"][0]["methods"]
    for method in ("model", "per-frame"):
        row = methods[method]
        assert list(row) == list(ev.CLIP_METRICS)
        assert row["psnr"] is None and row["ssim"] is None and row["auc"] is None and row["colourfulness_ratio"] is None
        assert row["colourfulness"] > 0 and row["warp_error"] > 0 and row["warp_error_chroma"] > 0
    # The grey baseline and the truth are still measured against the truth.
    assert methods["grey"]["psnr"] is not None and methods["truth"]["warp_error"] is not None
    assert methods["model"]["warp_error"] < 0.7 * methods["per-frame"]["warp_error"], methods
    assert "style oil at strength 1.0" in ev.format_table(report)


def test_eval_style_measures_what_colorize_style_writes(tmp_path, model_path, colour_clip):
    """The styled frames eval scores are the ones `colorize --style` writes (up to 8-bit codes
    and 4:2:0 chroma): same colourfulness, and a style changes it."""
    from vidcolor.metrics import evaluate as ev
    from vidcolor.metrics.image import colourfulness

    report = ev.evaluate(model_path[: -len(".json")], [colour_clip.path], render_size=32, smooth=0.8, device="cpu",
                         progress=False, style="oil")
    scored = report["datasets"][0]["methods"]["model"]["colourfulness"]
    out = tmp_path / "styled.mkv"
    colorize(ColorizeConfig(input=str(colour_clip.path), output=str(out), model=model_path, render_size=32,
                            codec="ffv1", quiet=True, force=True, style="oil"))
    written = float(np.mean([colourfulness(f.astype(np.float32) / 255) for f in ev.read_clip(out)]))
    natural = report["datasets"][0]["methods"]["grey"]["colourfulness"]
    assert written == pytest.approx(scored, rel=0.05)
    assert abs(scored - natural) > 0.1 * scored


def test_eval_style_refuses_photos_references_and_unknown_names(tmp_path, model_path, colour_clip):
    from vidcolor.metrics import evaluate as ev

    stem = model_path[: -len(".json")]
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((32, 32, 3), 128, np.uint8))
    with pytest.raises(UsageError, match="clips alone"):
        ev.evaluate(stem, [photos], render_size=32, device="cpu", progress=False, style="oil")
    with pytest.raises(UsageError, match="clips alone"):
        ev.evaluate(stem, [colour_clip.path], render_size=32, device="cpu", progress=False, style="oil", references=[0])
    with pytest.raises(UsageError, match="natural, ink, oil"):
        ev.evaluate(stem, [colour_clip.path], render_size=32, device="cpu", progress=False, style="watercolour")


class ContrastStyler(Generator):
    """A style with the same coefficients everywhere and always: it raises contrast (the
    output carries the picture's structure) and is perfectly steady."""

    def coefficient_maps(self, luma, *args, **kwargs):
        out = super().coefficient_maps(luma, *args, **kwargs)
        if "rgb" in out:
            maps = torch.zeros_like(out["rgb"])
            maps[:, :3] = 6.0  # a: steeper tone curve
            maps[:, 3:] = torch.tensor([0.3, 0.0, -0.3]).view(1, 3, 1, 1)  # b: a warm tint
            out["rgb"] = maps
        return out


def test_smoothing_a_steady_style_leaves_no_ghost_of_moving_edges(tmp_path):
    """Style mode smooths the coefficient maps, not the picture: a steady style that changes
    contrast gives the same video with and without smoothing on a moving clip (smoothing the
    styled RGB, or its change of luma, dragged old edges along: up to 94 code values off)."""
    g = ContrastStyler(base_channels=8, levels=2, max_channels=32, stem_factor=2, style_dim=8, z_dim=4,
                       style_names=STYLES)
    g.load_state_dict(styled_generator().state_dict())
    src = make_clip(tmp_path / "in.mkv", width=96, height=64, frames=10, lossless=True, content="moving")
    planes = {}
    for smooth in (0.0, 0.8):
        out = tmp_path / f"out_{smooth}.mkv"
        colorize(ColorizeConfig(input=str(src.path), output=str(out), render_size=64, codec="ffv1", quiet=True,
                                force=True, style="oil", smooth=smooth), model=g.eval())
        planes[smooth] = read_planes(out)
    source = read_planes(src.path)
    for (_, y_in, _, _), (_, y0, cb0, cr0), (_, y1, cb1, cr1) in zip(source, planes[0.0], planes[0.8]):
        assert np.abs(y0.astype(int) - y1.astype(int)).max() <= 1
        assert np.abs(cb0.astype(int) - cb1.astype(int)).max() <= 1 and np.abs(cr0.astype(int) - cr1.astype(int)).max() <= 1
        assert np.abs(y_in.astype(int) - y0.astype(int)).max() > 10  # the style did change the picture


def test_styles_image_without_sheet_is_refused(tmp_path, model_path):
    img = tmp_path / "photo.png"
    cv2.imwrite(str(img), np.full((32, 32), 128, np.uint8))
    result = CliRunner().invoke(main, ["styles", "--model", model_path, "--image", str(img)])
    assert result.exit_code == 2 and "give --sheet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
