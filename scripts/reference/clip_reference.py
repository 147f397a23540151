"""Reference CLIP image embeddings from Hugging Face transformers, for the Rust port's fidelity test.

usage: python clip_reference.py MODEL_DIR IMAGES_DIR OUT_JSON

MODEL_DIR holds a CLIPVisionModelWithProjection (config.json, model.safetensors,
preprocessor_config.json), e.g. the project's tiny model from `tessera models tiny-clip --out DIR`.
For every image file directly in IMAGES_DIR (sorted; bad/ is skipped) it records the decoded size,
the processor's pixel_values and the L2-normalised image_embeds.

What the reference does (transformers 5.23, `CLIPImageProcessorPil`, the Pillow backend; the
default `CLIPImageProcessor` in transformers 5 is the torchvision backend, which resizes in float
with torch's antialiasing and so differs by a level here and there):
- load: PIL `Image.open`, then `ImageOps.exif_transpose` (as transformers' `load_image` does);
- do_convert_rgb: images with an alpha band or a `transparency` entry are converted to RGBA and
  `Image.alpha_composite`d onto opaque white, everything else is `convert("RGB")` (grey expands,
  palette expands, CMYK uses Pillow's CMYK->RGB);
- resize: shortest edge to `size.shortest_edge`, the long edge `int(edge * long / short)`, with
  Pillow BICUBIC (`Image.resize`, no reducing_gap);
- center crop: offsets `(h - crop_h) // 2`, `(w - crop_w) // 2`;
- rescale by 1/255, normalise with image_mean / image_std, channels first.
"""
import json
import os
import sys

import numpy as np
import PIL
import torch
import transformers
from PIL import Image, ImageOps
from transformers import CLIPVisionModelWithProjection
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


def main(model_dir, images_dir, out_json):
    for required in ("config.json", "model.safetensors", "preprocessor_config.json"):
        if not os.path.isfile(os.path.join(model_dir, required)):
            sys.exit(f"{model_dir} lacks {required}: generate it with `tessera models tiny-clip --out {model_dir}`")
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    model = CLIPVisionModelWithProjection.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    entries = []
    for name in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, name)
        if not os.path.isfile(path):
            continue
        entry = {"file": name}
        try:
            image = ImageOps.exif_transpose(Image.open(path))
            entry["decoded_size"] = list(image.size)
            entry["mode"] = image.mode
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                embeds = model(pixel_values=pixels).image_embeds
            embeds = torch.nn.functional.normalize(embeds, dim=-1)[0]
            entry["pixel_values_shape"] = list(pixels.shape)
            entry["pixel_values"] = [round(float(v), 6) for v in pixels.flatten()]
            entry["embedding"] = [float(f"{v:.7g}") for v in embeds]
        except Exception as e:  # recorded, not hidden: the Rust test reports it
            entry["error"] = f"{type(e).__name__}: {e}"
        entries.append(entry)
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        preprocessor_config = json.load(f)
    out = {
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}, pillow {PIL.__version__}",
        "processor": type(processor).__name__,
        "preprocessor_config": preprocessor_config,
        "images": entries,
    }
    with open(out_json, "w") as f:
        json.dump(out, f)
    for e in entries:
        print(e["file"], e.get("mode"), e.get("decoded_size"), e.get("error", "ok"))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
