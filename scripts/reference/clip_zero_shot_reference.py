#!/usr/bin/env python3
"""Reference CLIP text embeddings and zero-shot scores from Hugging Face transformers, for the
Rust port's fidelity test (models/tests/clip_zero_shot_fidelity.rs).

Usage: python clip_zero_shot_reference.py MODEL_DIR TAXONOMY_TOML IMAGES_DIR OUT_JSON

MODEL_DIR is a full CLIP directory (config.json with model_type clip, model.safetensors,
tokenizer files, preprocessor_config.json), e.g. the project's tiny model from
`tessera models tiny-clip --with-text --out DIR`. The script records:

- for every prompt of the taxonomy (templates filled in with each tag's label, or the tag's own
  prompts): the token ids from transformers' CLIPTokenizer and the L2-normalised text embedding
  (CLIPModel's text tower, pooled at the first end-of-text token, then text_projection);
- for a few free texts and every image directly in IMAGES_DIR: the zero-shot result -- each
  tag's vector is the normalised mean of its prompts' normalised embeddings, the query is
  normalised, cosine per tag, and softmax(exp(logit_scale) * cosine) over the tags.

Images go through CLIPImageProcessorPil (the Pillow backend, as clip_reference.py explains).
float32, CPU, one thread, batch 1 for every forward pass.
"""

import json
import sys
import tomllib
from pathlib import Path

import torch
import transformers
from PIL import Image, ImageOps
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

TEXTS = [
    "a dog running on the beach",
    "Astronauts stranded on Mars must grow food to survive until rescue arrives.",
    "",
    "RED RED red!!!",
]
IMAGES = ["photo.jpg", "gray.png", "wide.png", "one_pixel.png", "palette.gif", "alpha.png"]


def prompts_of(taxonomy: dict) -> list[tuple[str, list[str]]]:
    out = []
    for tag in taxonomy["tag"]:
        label = tag.get("label", tag["name"])
        templates = tag.get("prompts") or taxonomy.get("templates", [])
        out.append((tag["name"], [t.replace("{}", label) for t in templates]))
    return out


def normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    model_dir, taxonomy_path, images_dir, out_path = map(Path, sys.argv[1:])
    torch.set_num_threads(1)
    model = CLIPModel.from_pretrained(model_dir).eval()
    tokenizer = CLIPTokenizer.from_pretrained(model_dir)
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    taxonomy = tomllib.loads(taxonomy_path.read_text())

    def embed_text(text: str) -> tuple[list[int], torch.Tensor]:
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=77)
        with torch.no_grad():
            pooled = model.text_model(**enc).pooler_output
            vec = normalise(model.text_projection(pooled))[0]
        return enc.input_ids[0].tolist(), vec

    def embed_image(path: Path) -> torch.Tensor:
        image = ImageOps.exif_transpose(Image.open(path))
        pixels = processor(images=image, return_tensors="pt").pixel_values
        with torch.no_grad():
            pooled = model.vision_model(pixel_values=pixels).pooler_output
            return normalise(model.visual_projection(pooled))[0]

    prompts, tag_vectors = [], []
    for name, texts in prompts_of(taxonomy):
        vectors = []
        for text in texts:
            ids, vec = embed_text(text)
            vectors.append(vec)
            prompts.append({"tag": name, "text": text, "ids": ids,
                            "embedding": [float(f"{v:.7g}") for v in vec]})
        tag_vectors.append(normalise(torch.stack(vectors).mean(0)))
    tags = torch.stack(tag_vectors)
    scale = model.logit_scale.exp().item()

    def zero_shot(query: torch.Tensor) -> dict:
        cosines = tags @ normalise(query)
        scores = torch.softmax(scale * cosines, dim=0)
        return {"cosines": [float(f"{c:.7g}") for c in cosines],
                "scores": [float(f"{s:.7g}") for s in scores]}

    queries = []
    for text in TEXTS:
        ids, vec = embed_text(text)
        queries.append({"text": text, "ids": ids, **zero_shot(vec)})
    for name in IMAGES:
        queries.append({"image": name, **zero_shot(embed_image(images_dir / name))})

    out = {
        "generator": "scripts/reference/clip_zero_shot_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "logit_scale": model.logit_scale.item(),
        "tags": [t["name"] for t in taxonomy["tag"]],
        "prompts": prompts,
        "queries": queries,
    }
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(prompts)} prompts, {len(queries)} queries -> {out_path}")


if __name__ == "__main__":
    main()
