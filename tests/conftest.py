"""Shared test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run tiny models on a small shared machine: one intra-op thread is fastest there
    (two threads fight over two cores with the decode and encode threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fixed_b_frames(monkeypatch):
    """vidcolor's x264 with a fixed B-frame pattern (I P B B P...): x264's adaptive choice of
    B-frames varies from run to run, and some timing bugs need B-frames at given places."""
    from vidcolor.io import encode

    real = encode.encoder_options

    def fixed(codec, crf, fmt):
        options = real(codec, crf, fmt)
        if codec == "x264":
            options["x264-params"] = "bframes=2:b-adapt=0:b-pyramid=none:scenecut=0"
        return options

    monkeypatch.setattr(encode, "encoder_options", fixed)
