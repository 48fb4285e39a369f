"""The generate stage and the stage threads: back-off on out-of-memory, clean shutdown."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tests.media import make_clip
from tests.test_pipeline import tiny_generator
from vidcolor.config import ColorizeConfig
from vidcolor.devices import OUT_OF_MEMORY
from vidcolor.errors import ModelError
from vidcolor.pipeline.batch import make_batch, render_shape
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.run import colorize


def _batch(n: int, h: int = 32, w: int = 48):
    rng = np.random.default_rng(0)
    lumas = [rng.random((h, w), dtype=np.float32) for _ in range(n)]
    return make_batch(list(range(n)), lumas, [None] * n, pin=False)


class OomAbove(torch.nn.Module):
    """Wraps a generator and raises out-of-memory for batches larger than ``limit``."""

    def __init__(self, inner, limit: int):
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, luma, *args, **kwargs):
        self.sizes.append(luma.shape[0])
        if luma.shape[0] > self.limit:
            raise OUT_OF_MEMORY("CUDA out of memory (simulated)")
        return self.inner(luma, *args, **kwargs)


def test_out_of_memory_halves_the_batch_and_keeps_the_result():
    model = tiny_generator()
    reference = ChromaGenerator(model, torch.device("cpu")).submit(_batch(8)).result()[1]
    flaky = OomAbove(model, limit=2)
    gen = ChromaGenerator(flaky, torch.device("cpu"))
    _, chroma = gen.submit(_batch(8)).result()
    assert gen.max_batch == 2
    assert flaky.sizes[:3] == [8, 4, 2]  # 8 failed, 4 failed, then slices of 2
    np.testing.assert_allclose(chroma, reference, atol=1e-6)
    # Later batches start at the smaller size at once.
    flaky.sizes.clear()
    gen.submit(_batch(6)).result()
    assert flaky.sizes == [2, 2, 2]


def test_channels_last_gives_the_plain_layouts_result():
    """The stage runs the model channels-last (faster convolutions) and hands back plain
    contiguous chroma equal to the model's own output in the default layout."""
    model = tiny_generator()
    batch = _batch(4)
    with torch.inference_mode():
        expected = model(batch.luma, heads=("chroma",))["chroma"].numpy()
    _, chroma = ChromaGenerator(model, torch.device("cpu")).submit(batch).result()
    assert chroma.flags["C_CONTIGUOUS"] and chroma.shape == expected.shape
    np.testing.assert_allclose(chroma, expected, atol=1e-5)


def test_out_of_memory_with_one_frame_is_a_model_error():
    gen = ChromaGenerator(OomAbove(tiny_generator(), limit=0), torch.device("cpu"))
    with pytest.raises(ModelError, match="out of memory"):
        gen.submit(_batch(4))


def test_auto_batch_takes_the_largest_batch_in_half_the_free_memory():
    from vidcolor.pipeline.generate import AUTO_BATCH_CAP, batch_that_fits

    mib = 2**20
    # 1000 MiB free, half usable, 100 MiB fixed: 400 MiB / 30 MiB a frame = 13 frames.
    assert batch_that_fits(1000 * mib, 100 * mib, 30 * mib) == 13
    assert batch_that_fits(80_000 * mib, 100 * mib, 30 * mib) == AUTO_BATCH_CAP  # a big GPU: the cap
    assert batch_that_fits(100 * mib, 100 * mib, 30 * mib) == 1  # nothing left: one frame, then back-off
    assert batch_that_fits(1000 * mib, 100 * mib, 0) == AUTO_BATCH_CAP  # no measurable growth
    # On the CPU there is no memory to measure: the fixed CPU batch.
    from vidcolor.pipeline.generate import CPU_AUTO_BATCH

    assert ChromaGenerator(tiny_generator(), torch.device("cpu")).auto_batch_size((32, 48)) == CPU_AUTO_BATCH


def test_render_shape_snaps_to_multiples_of_16():
    assert render_shape(1080, 1920, 256) == (256, 448)
    assert render_shape(362, 642, 256) == (256, 448)
    assert render_shape(1920, 1080, 256) == (448, 256)


def _vidcolor_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vidcolor-")]


def test_stage_threads_exit_on_error_and_on_interrupt(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mkv", frames=40, content="grey").path
    import vidcolor.pipeline.run as run_module

    original = run_module.ChromaSmoother
    for exc in (RuntimeError("boom in the smoother"), KeyboardInterrupt()):
        calls = {"n": 0}

        class Exploding(original):
            def __call__(self, luma, chroma, _exc=exc):
                calls["n"] += 1
                if calls["n"] == 10:
                    raise _exc
                return super().__call__(luma, chroma)

        monkeypatch.setattr(run_module, "ChromaSmoother", Exploding)
        out = tmp_path / "out.mkv"
        with pytest.raises(type(exc)):
            colorize(ColorizeConfig(input=str(src), output=str(out), render_size=32, quiet=True, force=True),
                     model=tiny_generator())
        assert _vidcolor_threads() == []
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]
