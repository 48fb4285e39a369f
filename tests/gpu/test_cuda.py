"""CUDA path: same output as the CPU path, autocast within one code value. Skips without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.media import make_clip, read_planes
from tests.test_pipeline import tiny_generator
from vidcolor.config import ColorizeConfig
from vidcolor.pipeline.batch import make_batch
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.run import colorize

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _batch(n: int, pin: bool):
    rng = np.random.default_rng(0)
    lumas = [rng.random((64, 112), dtype=np.float32) for _ in range(n)]
    return make_batch(list(range(n)), lumas, [None] * n, pin=pin)


def test_autocast_within_one_code_value_of_fp32():
    model = tiny_generator()
    fp32 = ChromaGenerator(model, torch.device("cuda"), autocast=False).submit(_batch(8, True)).result()[1]
    fp16 = ChromaGenerator(model, torch.device("cuda"), autocast=True).submit(_batch(8, True)).result()[1]
    codes32, codes16 = np.round(fp32 * 255), np.round(fp16 * 255)
    assert np.abs(codes32 - codes16).max() <= 1


def test_cuda_pipeline_equals_cpu_pipeline(tmp_path):
    src = make_clip(tmp_path / "in.mkv", width=160, height=96, frames=12, lossless=True, content="grey").path
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.mkv"
        colorize(ColorizeConfig(input=str(src), output=str(out), render_size=64, device=device, codec="ffv1",
                                quiet=True, force=True), model=tiny_generator())
        outs[device] = read_planes(out)
    for (_, y0, cb0, cr0), (_, y1, cb1, cr1) in zip(outs["cpu"], outs["cuda"]):
        assert np.array_equal(y0, y1)
        assert np.abs(cb0.astype(int) - cb1.astype(int)).max() <= 1
        assert np.abs(cr0.astype(int) - cr1.astype(int)).max() <= 1
