#!/usr/bin/env bash
# Runs on a GPU machine over what scripts/gpu/prepare.sh gathered in .gpu/: the fidelity tests on
# CUDA, `--device auto` picking the GPU, and the benchmarks whose figures go into BENCHMARKS.md.
# Needs the NVIDIA driver and Python with torch, transformers, sentence-transformers and NVIDIA's
# CUDA 13 runtime wheels (cublas, curand, nvrtc, cudart), as PyTorch's CUDA 13 builds install.
#
# Usage (repository root): scripts/gpu/device-run.sh [OUT_DIR] [STEPS]
#   STEPS: any of fidelity,text,cputext,media,ingest (default: all but cputext).
set -uo pipefail
out=${1:-${OUT:-/tmp/tessera-gpu}}
steps=${2:-fidelity,text,media,ingest}
want() { [[ ",$steps," == *",$1,"* ]]; }
mkdir -p "$out"
exec > >(tee "$out/device-run.log") 2>&1

step() { echo; echo "=== $* ($(date -u +%T))"; }
unpacked=/tmp/tessera-gpu
mkdir -p "$unpacked/tests"
for f in .gpu/tessera.xz .gpu/tests/*.xz; do
    [ -e "$f" ] || continue
    dest=$unpacked/${f#.gpu/}
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "${dest%.xz}"
done
chmod +x "$unpacked/tessera" "$unpacked"/tests/*
bin=$unpacked/tessera

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
nproc; python3 -c 'import torch, transformers, sentence_transformers as st; print("torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers", st.__version__)'

# The runtime libraries the binary links: from the Python environment's NVIDIA wheels.
site=$(python3 -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))')
libs=$(find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH=${libs}/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc' || true

# Test binaries find tests/data through the path they were compiled in.
compiled_root=$(cat .gpu/compiled_root)
if [ -n "$compiled_root" ] && [ "$compiled_root" != "$PWD" ] && [ ! -e "$compiled_root" ]; then
    mkdir -p "$(dirname "$compiled_root")" && ln -s "$PWD" "$compiled_root"
fi

want fidelity && step "fidelity tests on CUDA (same references and thresholds as on CPU)"
want fidelity && for t in "$unpacked"/tests/*; do
    TESSERA_TEST_DEVICE=cuda timeout 150 "$t" --nocapture --test-threads 1 2>&1 | grep -vE '^\s*$'
    echo "$(basename "$t"): exit ${PIPESTATUS[0]}"
done

if want text || want cputext || want ingest; then
step "MiniLM shape with random weights (transformers init, seed 0)"
python3 - <<'PY'
import torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
d = ".gpu/minilm"
BertModel(BertConfig.from_pretrained(d)).save_pretrained(d, safe_serialization=True)
PY
ls -la .gpu/minilm
fi

if want text; then
step "--device auto says where it runs"
RUST_LOG=info "$bin" embed --model .gpu/minilm --modality text --text "A quiet heist film." --device auto 2>&1 >/dev/null | grep -iE 'device|cuda|cpu' | head -5

step "text: tessera (candle, CUDA) vs sentence-transformers (PyTorch, CUDA)"
timeout 180 python3 scripts/bench/text_vs_pytorch.py .gpu/minilm --tessera "$bin" --device cuda \
    --batches 1,32,128,512 --sentences 2048 --check 8
step "text: concurrent single-sentence calls through the batching scheduler (CUDA)"
timeout 90 "$bin" bench embed --model .gpu/minilm --device cuda --batch 1,128 --sentences 1024 --concurrency 32
fi

if want cputext; then
step "text: tessera vs PyTorch on this machine's CPU, $(nproc) threads each"
RAYON_NUM_THREADS=$(nproc) timeout 300 python3 scripts/bench/text_vs_pytorch.py .gpu/minilm \
    --tessera "$bin" --device cpu --batches 1,32,128 --sentences 512 --threads "$(nproc)" --check 2
fi

# Peak GPU memory per model, sampled by nvidia-smi every 100 ms while its benchmark runs.
gpu_sampler() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$out/gpumem" & sampler=$!; }
gpu_peak() { kill "$sampler"; wait "$sampler" 2>/dev/null; echo "  peak GPU memory in use: $(sort -n "$out/gpumem" | tail -1) MiB"; }

if want media; then
step "audio (CUDA)"
for shape in tiny whisper-tiny whisper-base whisper-small; do
    gpu_sampler
    RUST_LOG=error timeout 60 "$bin" bench audio --shapes "$shape" --seconds 300 --device cuda \
        --concurrency "$(nproc)"
    gpu_peak
done
step "image (CUDA)"
for shape in tiny clip-vit-base-patch32 clip-vit-large-patch14; do
    gpu_sampler
    RUST_LOG=error timeout 90 "$bin" bench image --shapes "$shape" --images 256 --batch 64 --device cuda \
        --concurrency "$(nproc)"
    gpu_peak
done
fi
if want ingest; then
# The example catalog's titles repeated with new ids and no assets: the synopsis embedder's work
# per title is one MiniLM call, so this times the pipeline and the batching scheduler.
step "ingest: 3000 titles, synopsis-embedder, MiniLM shape, CUDA then CPU (wall clock of the whole command, start-up and model loading included)"
python3 - <<'PY'
import json
titles = [json.loads(l) for l in open("examples/catalog.jsonl") if l.strip()]
with open("/tmp/catalog-3000.jsonl", "w") as out:
    for i in range(3000):
        t = dict(titles[i % len(titles)], id=f"bench-{i:05}", assets=[])
        out.write(json.dumps(t) + "\n")
PY
for device in cuda cpu; do
    for concurrency in 16 64; do
        rm -rf "/tmp/ingest-$device"
        start=$(date +%s.%N)
        RUST_LOG=warn timeout 90 "$bin" ingest /tmp/catalog-3000.jsonl --data "/tmp/ingest-$device" \
            --text-model .gpu/minilm --device "$device" --concurrency "$concurrency" 2>&1 | tail -2
        echo "  $device, $concurrency titles in flight: exit ${PIPESTATUS[0]}, $(python3 -c \
            "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{s:.2f} s, {3000/s:.0f} titles/s')" \
            "$start" "$(date +%s.%N)")"
    done
done
fi

step done
