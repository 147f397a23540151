#!/usr/bin/env bash
# Build the `cuda` binaries here and gather what a GPU machine needs into .gpu/ (git-ignored),
# for scripts/gpu/device-run.sh to use there. The build machine needs no GPU and no CUDA install:
# scripts/gpu/cuda-toolkit.sh assembles nvcc and the link libraries from NVIDIA's PyPI wheels.
#
# Usage: scripts/gpu/prepare.sh MINILM_DIR
#   MINILM_DIR: a sentence-transformers all-MiniLM-L6-v2 folder; only its config and tokenizer
#   files travel (device-run.sh gives that shape random weights there, to fit the transfer limit).
set -euo pipefail
cd "$(dirname "$0")/../.."
minilm=${1:?usage: scripts/gpu/prepare.sh MINILM_DIR}

eval "$(scripts/gpu/cuda-toolkit.sh)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p tessera --features cuda
tests=$(cargo test --release -p tessera-models --features cuda --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and m["target"]["kind"] == ["test"]:
        print(m["executable"])')

grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu && mkdir -p .gpu/tests .gpu/minilm/1_Pooling
strip -o .gpu/tessera "$CARGO_TARGET_DIR/release/tessera"
for t in $tests; do
    name=$(basename "$t" | sed 's/-[0-9a-f]*$//')
    strip -o ".gpu/tests/$name" "$t"
done
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json \
    modules.json sentence_bert_config.json config_sentence_transformers.json 1_Pooling/config.json; do
    [ -e "$minilm/$f" ] && cp "$minilm/$f" ".gpu/minilm/$f"
done
# Test binaries find tests/data through the path they were compiled in.
pwd >.gpu/compiled_root
# CUDA kernels travel as PTX text, which compresses about 5:1; the transfer limit is 64 MiB.
xz -T0 -9 .gpu/tessera .gpu/tests/*
du -sh .gpu
