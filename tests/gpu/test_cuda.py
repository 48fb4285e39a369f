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


def _model(name: str):
    if name == "tiny":
        return tiny_generator()
    from vidcolor.models.weights import load_generator

    return load_generator("default", torch.device("cpu"))[0]


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_autocast_within_one_code_value_of_fp32(name):
    model = _model(name)
    fp32 = ChromaGenerator(model, torch.device("cuda"), autocast=False).submit(_batch(8, True)).result()[1]
    fp16 = ChromaGenerator(model, torch.device("cuda"), autocast=True).submit(_batch(8, True)).result()[1]
    codes32, codes16 = np.round(fp32 * 255), np.round(fp16 * 255)
    assert np.abs(codes32 - codes16).max() <= 1


def test_compiled_generator_on_cuda_equals_eager():
    model = tiny_generator()
    eager = ChromaGenerator(model, torch.device("cuda"))
    compiled = ChromaGenerator(model, torch.device("cuda"), compile=True)
    for n in (8, 5):  # the short batch is padded to the compiled 8
        expected = eager.submit(_batch(n, True)).result()[1]
        got = compiled.submit(_batch(n, True)).result()[1]
        assert compiled.compiled and got.shape == expected.shape
        assert np.abs(np.round(expected * 255) - np.round(got * 255)).max() <= 1


def test_auto_batch_size_is_measured_and_runs():
    from vidcolor.pipeline.generate import AUTO_BATCH_CAP

    gen = ChromaGenerator(tiny_generator(), torch.device("cuda"))
    size = gen.auto_batch_size((64, 112))
    assert 1 <= size <= AUTO_BATCH_CAP
    assert gen.frame_bytes > 0  # measured after cuBLAS's one-off workspace, not swallowed by it
    _, chroma = gen.submit(_batch(size, True)).result()
    assert chroma.shape == (size, 2, 64, 112)


@pytest.mark.parametrize("with_reference", [False, True])
def test_cuda_pipeline_equals_cpu_pipeline(tmp_path, monkeypatch, with_reference):
    """Same planes on CUDA as on the CPU; on CUDA the luma is resized on the device and the
    batches (with reference hints too) cross on the side stream."""
    import cv2

    import vidcolor.pipeline.run as run_module

    src = make_clip(tmp_path / "in.mkv", width=160, height=96, frames=13, lossless=True, content="grey").path
    references = ()
    if with_reference:
        ref = tmp_path / "ref.png"
        cv2.imwrite(str(ref), np.random.default_rng(1).integers(0, 255, (96, 160, 3), dtype=np.uint8))
        references = (f"{ref}@4",)
    resizers = []
    original = run_module.luma_on_device
    monkeypatch.setattr(run_module, "luma_on_device", lambda g, p: resizers.append(original(g, p)) or resizers[-1])
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.mkv"
        colorize(ColorizeConfig(input=str(src), output=str(out), render_size=64, device=device, codec="ffv1",
                                batch_size="4", references=references, quiet=True, force=True), model=tiny_generator())
        outs[device] = read_planes(out)
    assert resizers[0] is None and resizers[1] is not None  # host resize on the CPU, device resize on CUDA
    for (_, y0, cb0, cr0), (_, y1, cb1, cr1) in zip(outs["cpu"], outs["cuda"]):
        assert np.array_equal(y0, y1)
        assert np.abs(cb0.astype(int) - cb1.astype(int)).max() <= 1
        assert np.abs(cr0.astype(int) - cr1.astype(int)).max() <= 1


def test_default_model_in_full_batches_equals_cpu(tmp_path):
    """The shipped model over 200 frames with --batch-size auto on CUDA (up to 64 frames a batch,
    several batches in flight on the copy streams) gives the CPU run's planes within one code
    value: no batch read before its upload landed or reused before its download finished."""
    src = make_clip(tmp_path / "in.mp4", width=640, height=360, frames=200, content="moving").path
    outs = {}
    for device, batch in (("cpu", "8"), ("cuda", "auto")):
        out = tmp_path / f"{device}.mkv"
        colorize(ColorizeConfig(input=str(src), output=str(out), model="default", device=device, codec="ffv1",
                                batch_size=batch, quiet=True, force=True))
        outs[device] = read_planes(out)
    assert len(outs["cpu"]) == len(outs["cuda"]) == 200
    for (p0, y0, cb0, cr0), (p1, y1, cb1, cr1) in zip(outs["cpu"], outs["cuda"]):
        assert p0 == p1 and np.array_equal(y0, y1)
        assert np.abs(cb0.astype(int) - cb1.astype(int)).max() <= 1
        assert np.abs(cr0.astype(int) - cr1.astype(int)).max() <= 1


def test_auto_codec_uses_nvenc_beside_cuda_and_keeps_frames_and_timing(tmp_path):
    """With an NVIDIA encoder present, --codec auto on CUDA writes H.264 through NVENC: every
    frame and pts kept, luma close to the source (lossy), chunks (--frames) stay on x264."""
    from vidcolor.io.encode import encoder_opens

    if not encoder_opens("nvenc-h264"):
        pytest.skip("NVENC cannot be opened here")
    import av

    src = make_clip(tmp_path / "in.mp4", width=160, height=96, frames=24, content="moving").path
    out = tmp_path / "out.mp4"
    colorize(ColorizeConfig(input=str(src), output=str(out), render_size=64, device="cuda", quiet=True, force=True),
             model=tiny_generator())
    def x264_signed(path) -> bool:  # x264 writes its name in an SEI of the first packet; NVENC does not
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            return b"x264" in bytes(next(p for p in container.demux(stream) if p.size))

    assert not x264_signed(out)
    written, source = read_planes(out), read_planes(src)
    assert [p for p, *_ in written] == [p for p, *_ in source]
    for (_, y0, _, _), (_, y1, _, _) in zip(source, written):
        assert np.abs(y0.astype(int) - y1.astype(int)).mean() < 3
    chunk = tmp_path / "chunk.mkv"
    colorize(ColorizeConfig(input=str(src), output=str(chunk), render_size=64, device="cuda", quiet=True, force=True,
                            frames="0-11"), model=tiny_generator())
    assert x264_signed(chunk)
