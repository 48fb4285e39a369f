"""benchmarks/long_film.py still works: its barcode reads back, and a short film passes its checks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "long_film.py"


def _module():
    spec = importlib.util.spec_from_file_location("long_film", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_barcode_reads_back_through_grain():
    bench = _module()
    rng = np.random.default_rng(0)
    for index in (0, 1, 1000, 172626, 2**bench.BARCODE_BITS - 1):
        luma = rng.integers(16, 236, (48, 320), dtype=np.uint8)
        luma[: bench.BLOCK, : bench.BARCODE_BITS * bench.BLOCK] = bench.barcode(index)
        noisy = np.clip(luma.astype(int) + rng.integers(-20, 21, luma.shape), 0, 255).astype(np.uint8)
        assert bench.read_barcode(noisy) == index


def test_short_film_runs_and_passes_its_checks(tmp_path):
    out = tmp_path / "long.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "0.05", "--size", "320x240", "--kills", "",
                           "--segment-frames", "30", "--workdir", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert report["finished"] and report["film"]["frames"] == checks["frames_out"] == 72
    assert checks["barcode_mismatches"] == 0 and checks["presentation_times_equal"] and checks["audio_identical"]
    assert report["left_in_workdir"] == [] and not (tmp_path / "work").exists()
