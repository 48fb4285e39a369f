"""The generate stage and the stage threads: back-off on out-of-memory, clean shutdown."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import torch

from tests.media import make_clip
from tests.test_pipeline import model_path, tiny_generator  # noqa: F401 - model_path is a fixture
from vidcolor.config import ColorizeConfig
from vidcolor.devices import OUT_OF_MEMORY
from vidcolor.errors import ModelError
from vidcolor.pipeline.batch import MAX_RENDER_SIDE, make_batch, render_shape
from vidcolor.pipeline.generate import ChromaGenerator
from vidcolor.pipeline.run import colorize


def _batch(n: int, h: int = 32, w: int = 48):
    rng = np.random.default_rng(0)
    lumas = [rng.random((h, w), dtype=np.float32) for _ in range(n)]
    return make_batch(list(range(n)), lumas, [None] * n, pin=False)


class OomAbove(torch.nn.Module):
    """Wraps a generator and raises ``error`` (out-of-memory) for batches larger than ``limit``."""

    def __init__(self, inner, limit: int, error: Exception = OUT_OF_MEMORY("CUDA out of memory (simulated)")):
        super().__init__()
        self.inner, self.limit, self.error, self.sizes = inner, limit, error, []

    def forward(self, luma, *args, **kwargs):
        self.sizes.append(luma.shape[0])
        if luma.shape[0] > self.limit:
            raise self.error
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


def test_a_cuda_librarys_failed_allocation_also_halves_the_batch():
    # cuBLAS and cuDNN report a failed allocation as a plain RuntimeError, not torch's OOM.
    model = tiny_generator()
    failing = OomAbove(model, limit=3, error=RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    gen = ChromaGenerator(failing, torch.device("cpu"))
    _, chroma = gen.submit(_batch(8)).result()
    assert gen.max_batch == 2 and chroma.shape[0] == 8
    # Any other error is not mistaken for one.
    broken = OomAbove(model, limit=3, error=RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ChromaGenerator(broken, torch.device("cpu")).submit(_batch(8)).result()


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


def test_render_shape_caps_the_long_side_of_very_wide_or_tall_frames():
    """A 4000x16 strip at short side 192 asked for a 48000-px render, past OpenCV's 32767."""
    assert render_shape(16, 4000, 192) == (32, MAX_RENDER_SIDE)  # the short side never under 32 (DIS flow)
    assert render_shape(4000, 16, 192) == (MAX_RENDER_SIDE, 32)
    assert render_shape(16, 4000, 32) == (32, 8000)  # under the cap: unchanged
    assert render_shape(1080, 8000, 2048) == (1104, MAX_RENDER_SIDE)
    assert render_shape(1080, 1920, 2048) == (2048, 3648)
    assert render_shape(1, 1, 32) == (32, 32)


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


def _has_cxx_compiler() -> bool:
    import shutil

    return any(shutil.which(name) for name in ("g++", "clang++", "c++"))


@pytest.mark.skipif(not _has_cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_run_equals_the_plain_run(tmp_path, model_path, caplog):  # noqa: F811 - the fixture
    """``--compile``: the same planes as without it (within a code value), the run's last, short
    batch padded to the compiled batch size instead of compiling a second graph."""
    from torch._dynamo.utils import counters

    counters.clear()
    from click.testing import CliRunner

    from tests.media import read_planes
    from vidcolor.cli import main

    src = make_clip(tmp_path / "in.mkv", frames=11, content="grey", lossless=True).path  # batches of 4: 4, 4, 3
    plain, compiled = tmp_path / "plain.mkv", tmp_path / "compiled.mkv"
    common = [str(src), "--model", model_path, "--render-size", "32", "--batch-size", "4", "--codec", "ffv1",
              "--force", "--quiet"]
    for out, extra in ((plain, []), (compiled, ["--compile"])):
        with caplog.at_level("WARNING", logger="vidcolor"):
            result = CliRunner().invoke(main, ["colorize", *common, "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
    assert "torch.compile failed" not in caplog.text  # it compiled, not the eager fallback
    # One graph for the whole run: no second one for the short batch or another input layout.
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    for (_, y0, cb0, cr0), (_, y1, cb1, cr1) in zip(read_planes(plain), read_planes(compiled), strict=True):
        assert np.array_equal(y0, y1)
        assert np.abs(cb0.astype(int) - cb1).max() <= 1 and np.abs(cr0.astype(int) - cr1).max() <= 1
        assert cb1.std() > 0  # coloured, not a constant fallback


def test_compiled_generator_pads_short_batches_and_falls_back_when_compiling_fails(monkeypatch, caplog):
    model = tiny_generator()
    expected = ChromaGenerator(model, torch.device("cpu")).submit(_batch(3)).result()[1]
    shapes = []

    def fake_compile(fn, dynamic=None):
        def compiled(luma, *args, **kwargs):
            shapes.append(luma.shape[0])
            return fn(luma, *args, **kwargs)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    gen = ChromaGenerator(model, torch.device("cpu"), compile=True)
    gen.submit(_batch(4)).result()
    _, chroma = gen.submit(_batch(3)).result()
    assert shapes == [4, 4]  # the batch of 3 ran padded to the graph's 4
    np.testing.assert_allclose(chroma, expected, atol=1e-5)

    def broken_compile(fn, dynamic=None):
        def compiled(*args, **kwargs):
            raise RuntimeError("InductorError: no C++ compiler found\nlong details")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    gen = ChromaGenerator(model, torch.device("cpu"), compile=True)
    with caplog.at_level("WARNING", logger="vidcolor"):
        _, chroma = gen.submit(_batch(3)).result()
    np.testing.assert_allclose(chroma, expected, atol=1e-5)
    assert not gen.compiled
    assert "torch.compile failed (RuntimeError: InductorError: no C++ compiler found)" in caplog.text


def test_a_compile_failing_after_an_out_of_memory_back_off_falls_back_to_the_plain_model(monkeypatch, caplog):
    """The first compiled batches run; then the device runs out of memory, the batch halves,
    and tracing the model for the smaller batch fails: the run goes on with the plain model."""
    model = tiny_generator()
    expected = ChromaGenerator(model, torch.device("cpu")).submit(_batch(4)).result()[1]
    calls = {"oom": False}

    def fake_compile(fn, dynamic=None):
        def compiled(luma, *args, **kwargs):
            if calls["oom"] and luma.shape[0] == 4:
                raise OUT_OF_MEMORY("CUDA out of memory (simulated)")
            if luma.shape[0] != 4:
                raise RuntimeError("InductorError: recompiling failed")
            return fn(luma, *args, **kwargs)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    gen = ChromaGenerator(model, torch.device("cpu"), compile=True)
    gen.submit(_batch(4)).result()
    calls["oom"] = True  # e.g. another process took the memory meanwhile
    with caplog.at_level("WARNING", logger="vidcolor"):
        _, chroma = gen.submit(_batch(4)).result()
    np.testing.assert_allclose(chroma, expected, atol=1e-5)
    assert gen.max_batch == 2 and not gen.compiled
    assert "out of memory with 4 frames per batch; continuing with 2" in caplog.text
    assert "torch.compile failed (RuntimeError: InductorError: recompiling failed)" in caplog.text


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_luma_resized_by_the_generator_equals_the_host_path(tmp_path, monkeypatch, pix_fmt):
    """On CUDA the generator makes the render-size luma from full-size Y codes on the device
    (``LumaResizer``). The same code runs here on the CPU, with a reference (hints) and a short
    last batch: the output equals the host-resized run's, and the smoother got the same luma."""
    import cv2

    import vidcolor.pipeline.run as run_module
    from tests.media import read_planes
    from vidcolor.pipeline.batch import LumaResizer

    src = make_clip(tmp_path / "in.mkv", frames=11, pix_fmt=pix_fmt, lossless=True).path
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    model = tiny_generator()
    smoothed_lumas = {}

    class Recording(run_module.ChromaSmoother):
        def __call__(self, luma, chroma):
            smoothed_lumas.setdefault(key, []).append(luma.copy())
            return super().__call__(luma, chroma)

    monkeypatch.setattr(run_module, "ChromaSmoother", Recording)
    calls = []

    def on_device(generator, plan):
        video = plan.info.video
        resizer = LumaResizer((video.height, video.width), plan.render, video.bit_depth, video.full_range,
                              generator.device)
        return lambda codes: calls.append(codes.shape) or resizer(codes)

    outputs = {}
    for key in ("host", "device"):
        if key == "device":
            monkeypatch.setattr(run_module, "luma_on_device", on_device)
        outputs[key] = tmp_path / f"{key}.mkv"
        colorize(ColorizeConfig(input=str(src), output=str(outputs[key]), render_size=32, codec="ffv1", batch_size="4",
                                references=(f"{ref}@3",), quiet=True, force=True), model=model)
    assert calls == [(4, 64, 96), (4, 64, 96), (3, 64, 96)]
    for a, b in zip(smoothed_lumas["host"], smoothed_lumas["device"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for (_, y0, cb0, cr0), (_, y1, cb1, cr1) in zip(read_planes(outputs["host"]), read_planes(outputs["device"]), strict=True):
        assert np.array_equal(y0, y1)
        assert np.abs(cb0.astype(int) - cb1).max() <= 1 and np.abs(cr0.astype(int) - cr1).max() <= 1


@pytest.mark.parametrize("size", [(1080, 1920), (362, 642), (64, 96)])
def test_luma_resizer_is_opencvs_area_resize(size):
    from vidcolor.pipeline.batch import LumaResizer, luma_to_unit

    render = render_shape(*size, 32 if size[0] < 100 else 192)
    rng = np.random.default_rng(0)
    for bit_depth, full_range in ((8, False), (10, False), (8, True)):
        codes = rng.integers(0, 1 << bit_depth, (2, *size)).astype(np.uint8 if bit_depth == 8 else np.uint16)
        resizer = LumaResizer(size, render, bit_depth, full_range, torch.device("cpu"))
        expected = np.stack([luma_to_unit(y, bit_depth, full_range, render) for y in codes])[:, None]
        batch = make_batch(list(codes), [], [None, None], pin=False, codes=list(codes), render=render)
        np.testing.assert_allclose(resizer(batch.codes).numpy(), expected, atol=1e-6)
    # 16-bit codes above 32767 (int16's negative half on the way) come back whole.
    high = np.full((1, *size), 65535, np.uint16)
    batch = make_batch([0], [], [None], pin=False, codes=list(high), render=render)
    assert np.allclose(LumaResizer(size, render, 16, True, torch.device("cpu"))(batch.codes).numpy(), 1.0)
    assert not LumaResizer.applies((120, 160), render_shape(120, 160, 192))  # upscaling stays on the host


class StandInCuda:
    """Stand-ins for torch.cuda's streams and events that log what runs where, so the CUDA
    branch of ``ChromaGenerator.submit`` runs (and is checked) on a machine without a GPU."""

    def __init__(self, monkeypatch):
        self.log: list[tuple] = []
        self.main = self.Stream(self, "main")
        self.current = self.main
        cuda = self

        class Event:
            def __init__(self, blocking: bool = False):
                self.blocking, self.name = blocking, None

            def record(self, stream):
                self.name = f"event{len(cuda.log)}"
                cuda.log.append(("record", stream.name, self.name))

            def synchronize(self):
                cuda.log.append(("synchronize", self.name, self.blocking))

        @contextlib.contextmanager
        def stream(s):
            before, cuda.current = cuda.current, s
            try:
                yield
            finally:
                cuda.current = before

        real_empty = torch.empty
        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "stream", stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: cuda.main)
        monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
        # No page-locked memory without CUDA: plain host tensors stand in for it.
        monkeypatch.setattr(torch, "empty", lambda *a, pin_memory=False, **k: real_empty(*a, **k))
        monkeypatch.setattr(torch.Tensor, "record_stream",
                            lambda t, s: cuda.log.append(("record_stream", tuple(t.shape), s.name)), raising=False)

    class Stream:
        def __init__(self, cuda, name):
            self.cuda, self.name = cuda, name

        def wait_event(self, event):
            self.cuda.log.append(("wait", self.name, event.name))

    def generator(self, model) -> ChromaGenerator:
        """A ChromaGenerator on the CPU that takes its CUDA branch (fp16 autocast included)."""
        gen = ChromaGenerator(model, torch.device("cpu"))
        gen.cuda = gen.autocast = True
        gen.upload_stream, gen.download_stream = self.Stream(self, "upload"), self.Stream(self, "download")
        return gen


def test_cuda_branch_orders_copies_and_compute_with_events(monkeypatch):
    """The CUDA branch of submit(), run with stand-in streams: uploads on their own stream, the
    forward pass waits for them, downloads wait for the forward pass on another stream, the
    host waits (sleeping, not spinning) for the download; the chroma equals the CPU branch's
    within fp16 autocast's error, with hints and with full-size codes resized on the device."""
    from vidcolor.pipeline.batch import LumaResizer

    model = tiny_generator()
    rng = np.random.default_rng(3)
    codes = [rng.integers(16, 236, (64, 96), dtype=np.uint8) for _ in range(3)]
    hints = [(rng.random((2, 32, 48), dtype=np.float32) - 0.5, np.ones((1, 32, 48), np.float32))] * 3
    resizer = LumaResizer((64, 96), (32, 48), 8, False, torch.device("cpu"))
    expected = {
        "luma": ChromaGenerator(model, torch.device("cpu")).submit(_batch(4)).result()[1],
        "codes": ChromaGenerator(model, torch.device("cpu")).submit(
            make_batch([0, 1, 2], [], hints, pin=False, codes=codes, render=(32, 48)), resizer).result()[1],
    }
    cuda = StandInCuda(monkeypatch)
    gen = cuda.generator(model)
    got = {
        "luma": gen.submit(_batch(4)).result()[1],
        "codes": gen.submit(make_batch([0, 1, 2], [], hints, pin=False, codes=codes, render=(32, 48)), resizer).result()[1],
    }
    for key in expected:
        assert got[key].dtype == np.float32
        assert np.abs(got[key] - expected[key]).max() < 0.5 / 255  # fp16 autocast: well within a code value

    log = cuda.log
    end_of_first = next(i for i, entry in enumerate(log) if entry[0] == "synchronize")
    first = log[: end_of_first + 1]
    copied_in, computed, done = (entry[2] for entry in first if entry[0] == "record")
    assert first == [
        ("record", "upload", copied_in),
        ("wait", "main", copied_in),
        ("record_stream", (4, 1, 32, 48), "main"),  # the uploaded luma, read on the main stream
        ("record", "main", computed),
        ("wait", "download", computed),
        ("record_stream", (4, 2, 32, 48), "download"),  # the chroma, alive until it is copied
        ("record", "download", done),
        ("synchronize", done, True),
    ]
    second = log[len(first):]
    assert ("record_stream", (3, 64, 96), "main") in second  # the full-size codes
    assert ("record_stream", (3, 1, 32, 48), "download") in second  # the render-size luma for the smoother
    assert second[-1][0] == "synchronize"
