#!/usr/bin/env bash
# Every CUDA figure the throughput issue asks for, in one or two commands on a CUDA machine:
# the GPU tests, then throughput.py at 640x360, 1280x720, 1920x1080 and 3840x2160 (peak GPU
# memory), NVENC at 1080p, the generator at render size 256, and --compile.
#
#   bash benchmarks/cuda_figures.sh tests     # tests/gpu (a few minutes)
#   bash benchmarks/cuda_figures.sh x264      # throughput with libx264 at four sizes (about 5 min)
#   bash benchmarks/cuda_figures.sh extra     # NVENC, render size 256, --compile at 1080p
#   bash benchmarks/cuda_figures.sh all       # the three in turn (over ten minutes: on a machine
#                                             # with a per-command limit, run the parts apart)
#
# JSON goes to $RESULTS: $OUT where that is set (the lent device machine sends back only
# $OUT), else benchmarks/results. Where PyAV is not installed, put its wheel (and only it) in
# .whl/ first; the script installs it to /tmp/site. For a Python 3.12 machine, from the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl av==18.1.0      # abi3: one wheel for 3.11+
# then send .whl/ along with each command. H100 and H200 have no NVENC engine (video
# decoders only): there the NVENC step says so and is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-${OUT:-benchmarks/results}}
FRAMES=${FRAMES:-600}
PY=${PYTHON:-python3}
mkdir -p "$RESULTS"

if ! "$PY" -c "import av" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        echo "cuda_figures.sh: PyAV is missing; put its wheel in .whl/" >&2
        exit 1
    fi
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "cuda_figures.sh: no CUDA device" >&2; exit 1; }
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$RESULTS/cuda-device.txt"

part_tests() {
    "$PY" -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$RESULTS/cuda-tests.log"
}

part_x264() {
    "$PY" benchmarks/throughput.py --device cuda --frames "$FRAMES" --sizes 640x360,1280x720,1920x1080 \
        --out "$RESULTS/throughput-cuda.json"
    # 2160p: peak GPU memory (target under 6 GB); fewer frames, the clip alone is large.
    "$PY" benchmarks/throughput.py --device cuda --frames 200 --sizes 3840x2160 --out "$RESULTS/throughput-cuda-2160p.json"
}

part_extra() {
    if "$PY" -c "import sys; from vidcolor.io.encode import encoder_opens; sys.exit(not encoder_opens('nvenc-h264'))"; then
        "$PY" benchmarks/throughput.py --device cuda --frames "$FRAMES" --sizes 1920x1080 --codec nvenc-h264 \
            --out "$RESULTS/throughput-cuda-nvenc-h264.json"
    else
        echo "NVENC (h264_nvenc) does not open on this GPU: no NVENC figures" | tee "$RESULTS/cuda-nvenc.txt"
    fi
    "$PY" benchmarks/throughput.py --device cuda --frames "$FRAMES" --sizes 1920x1080 --render-size 256 \
        --out "$RESULTS/throughput-cuda-render256.json"
    "$PY" benchmarks/throughput.py --device cuda --frames "$FRAMES" --sizes 1920x1080 --compile \
        --out "$RESULTS/throughput-cuda-compile.json"
}

case "${1:-all}" in
    tests) part_tests ;;
    x264) part_x264 ;;
    extra) part_extra ;;
    all) part_tests; part_x264; part_extra ;;
    *) echo "usage: $0 [tests|x264|extra|all]" >&2; exit 2 ;;
esac
