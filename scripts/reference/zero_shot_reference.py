#!/usr/bin/env python3
"""Reference text/image embeddings and zero-shot scores of a CLIP or SigLIP checkpoint from
Hugging Face transformers, for the Rust port's fidelity tests
(models/tests/clip_zero_shot_fidelity.rs, models/tests/siglip_fidelity.rs).

Usage: python zero_shot_reference.py MODEL_DIR TAXONOMY_TOML IMAGES_DIR OUT_JSON

MODEL_DIR is a full CLIP or SigLIP directory (config.json with model_type clip or siglip,
model.safetensors, tokenizer files, preprocessor_config.json), e.g. the project's tiny models from
`tessera models tiny-clip --with-text --out DIR` or `tessera models tiny-siglip --out DIR`.
The script records:

- for every prompt of the taxonomy (templates filled in with each tag's label, or the tag's own
  prompts): the token ids and the L2-normalised text embedding. CLIP: transformers'
  CLIPTokenizer, the text tower pooled at the first end-of-text token, then text_projection.
  SigLIP: tokenizer.json through PreTrainedTokenizerFast padded with the pad token to the full
  context (as SigLIP was trained), the last position through the text head;
- for a few free texts and the images listed below: the zero-shot result -- each tag's vector is
  the normalised mean of its prompts' normalised embeddings, the query is normalised, cosine per
  tag, then CLIP's softmax(exp(logit_scale) * cosine) over the tags or SigLIP's per-tag
  sigmoid(exp(logit_scale) * cosine + logit_bias) -- and the query's own embedding.

Images go through the Pillow backend of the model's image processor (CLIPImageProcessorPil,
SiglipImageProcessorPil; see clip_reference.py). float32, CPU, one thread, batch 1 throughout.
"""

import json
import sys
import tomllib
from pathlib import Path

import torch
import transformers
from PIL import Image, ImageOps
from transformers import (
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTokenizer,
    PreTrainedTokenizerFast,
    SiglipImageProcessorPil,
    SiglipModel,
)

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
    siglip = json.loads((model_dir / "config.json").read_text())["model_type"] == "siglip"
    if siglip:
        model = SiglipModel.from_pretrained(model_dir).eval()
        context = model.config.text_config.max_position_embeddings
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
        tokenizer.pad_token_id = model.config.text_config.pad_token_id
        processor = SiglipImageProcessorPil.from_pretrained(model_dir)
    else:
        model = CLIPModel.from_pretrained(model_dir).eval()
        context = 77
        tokenizer = CLIPTokenizer.from_pretrained(model_dir)
        processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    taxonomy = tomllib.loads(taxonomy_path.read_text())

    def embed_text(text: str) -> tuple[list[int], torch.Tensor]:
        padding = "max_length" if siglip else False
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=context,
                        padding=padding)
        with torch.no_grad():
            if siglip:
                vec = normalise(model.text_model(input_ids=enc.input_ids).pooler_output)[0]
            else:
                pooled = model.text_model(**enc).pooler_output
                vec = normalise(model.text_projection(pooled))[0]
        return enc.input_ids[0].tolist(), vec

    def embed_image(path: Path) -> torch.Tensor:
        image = ImageOps.exif_transpose(Image.open(path))
        pixels = processor(images=image, return_tensors="pt").pixel_values
        with torch.no_grad():
            pooled = model.vision_model(pixel_values=pixels).pooler_output
            if siglip:
                return normalise(pooled)[0]
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
    bias = model.logit_bias.item() if siglip else None

    def zero_shot(query: torch.Tensor) -> dict:
        cosines = tags @ normalise(query)
        if siglip:
            scores = torch.sigmoid(scale * cosines + bias)
        else:
            scores = torch.softmax(scale * cosines, dim=0)
        return {"cosines": [float(f"{c:.7g}") for c in cosines],
                "scores": [float(f"{s:.7g}") for s in scores],
                "embedding": [float(f"{v:.7g}") for v in normalise(query)]}

    queries = []
    for text in TEXTS:
        ids, vec = embed_text(text)
        queries.append({"text": text, "ids": ids, **zero_shot(vec)})
    for name in IMAGES:
        queries.append({"image": name, **zero_shot(embed_image(images_dir / name))})

    out = {
        "generator": "scripts/reference/zero_shot_reference.py",
        "model_type": "siglip" if siglip else "clip",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "logit_scale": model.logit_scale.item(),
        "logit_bias": bias,
        "tags": [t["name"] for t in taxonomy["tag"]],
        "prompts": prompts,
        "queries": queries,
    }
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(prompts)} prompts, {len(queries)} queries -> {out_path}")


if __name__ == "__main__":
    main()
