#!/usr/bin/env python3
"""Reference embeddings for all-MiniLM-L6-v2 from sentence-transformers.

Usage: python minilm_reference.py MODEL_DIR OUT_JSON

MODEL_DIR is a local sentence-transformers model directory (config.json,
model.safetensors, tokenizer.json, modules.json, 1_Pooling/...). Nothing is
fetched from a hub. The output is the fixture tests/data/minilm_reference.json.
"""

import json
import os
import sys

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

S3 = "Astronauts stranded on Mars must grow food to survive until rescue arrives."

SENTENCES = [
    "A retired detective returns to her hometown to solve one last case.",
    "An ex-investigator goes back to the town she grew up in for a final mystery.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    S3,
    "Kurz",
    " ".join([S3] * 40),  # longer than max_seq_length: exercises truncation
]


def sig7(x: float) -> float:
    """Round to 7 significant digits."""
    return float(f"{x:.7g}")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out_path = sys.argv[1], sys.argv[2]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()

    module_types = [type(m).__name__ for m in model]
    normalized_by_model = "Normalize" in module_types

    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok_json = json.load(f)
    truncation = tok_json.get("truncation")
    tokenizer_max_length = truncation.get("max_length") if truncation else None

    # Exactly what the model sees: token ids after the model's own truncation.
    prep = getattr(model, "preprocess", None) or model.tokenize
    features = prep(SENTENCES)
    ids = features["input_ids"]
    mask = features["attention_mask"]
    token_ids = [ids[i][mask[i].bool()].tolist() for i in range(len(SENTENCES))]

    with torch.no_grad():
        emb = model.encode(
            SENTENCES,
            normalize_embeddings=False,
            convert_to_numpy=True,
            batch_size=len(SENTENCES),
        )
    emb = np.asarray(emb, dtype=np.float32)

    out = {
        "model": "all-MiniLM-L6-v2",
        "generator": (
            f"sentence-transformers {sentence_transformers.__version__}, "
            f"torch {torch.__version__}"
        ),
        "modules": module_types,
        "normalized_by_model": normalized_by_model,
        "max_seq_length": int(model.max_seq_length),
        "tokenizer_max_length": tokenizer_max_length,
        "tokenizer_json_truncation": truncation,
        "tokenizer_json_padding": tok_json.get("padding"),
        "dimension": int(emb.shape[1]),
        "sentences": SENTENCES,
        "token_counts": [len(t) for t in token_ids],
        "token_ids": token_ids,
        "norms": [sig7(float(np.linalg.norm(e.astype(np.float64)))) for e in emb],
        "embeddings": [[sig7(float(v)) for v in e] for e in emb],
        "cosine": {
            "paraphrase": cosine(emb[0], emb[1]),
            "unrelated": cosine(emb[0], emb[2]),
        },
    }

    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")

    print(out["generator"])
    print("modules:", module_types, "normalized_by_model:", normalized_by_model)
    print("max_seq_length:", out["max_seq_length"],
          "tokenizer.json truncation:", truncation)
    print("token_counts:", out["token_counts"])
    print("norms:", out["norms"])
    print("cosine:", out["cosine"])


if __name__ == "__main__":
    main()
