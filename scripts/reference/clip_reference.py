#!/usr/bin/env python3
"""Reference CLIP image embeddings from Hugging Face transformers, for the Rust port's fidelity test.

Usage: python clip_reference.py MODEL_DIR IMAGES_DIR OUT_JSON

MODEL_DIR is a local CLIPVisionModelWithProjection directory (config.json with model_type
clip_vision_model, model.safetensors, preprocessor_config.json), e.g. the project's tiny model from
`tessera models tiny-clip --out DIR`. Nothing is fetched from a hub. For every image file directly
in IMAGES_DIR (sorted by name; sub-directories such as bad/ and dot-files are skipped) it records
the decoded size and mode, the processor's pixel_values and the L2-normalised image_embeds. An
image the reference cannot decode or preprocess gets {"file", "error"} instead (none of
tests/data/images does with the versions in requirements.txt).

What the reference does (transformers 5.23.0, Pillow 13.0.0; every step below is re-implemented
in `documented_pipeline` and checked against the processor for each image, so this text cannot
silently go stale -- the script exits non-zero if it does):

Slow vs fast. In transformers 5 the "fast" processor is the default: `CLIPImageProcessor` IS the
torchvision backend (the `...Fast` names are deprecated aliases) and the Pillow/NumPy one is
`CLIPImageProcessorPil`. `CLIPImageProcessor.from_pretrained` and `AutoImageProcessor` fall back
to `CLIPImageProcessorPil` (with a warning) only when torchvision is missing, as in /work/refvenv;
`AutoImageProcessor.from_pretrained(d, backend="pil")` (or the deprecated `use_fast=False`) picks
it explicitly. This script imports `CLIPImageProcessorPil` directly, so installing torchvision
changes nothing here. (The torchvision backend resizes with torchvision's
`functional.resize(..., antialias=True)` on tensors, which is not bit-identical to Pillow.)

1. Load: `PIL.Image.open`, then `ImageOps.exif_transpose` (orientation 6 -> Transpose.ROTATE_270,
   i.e. turned 90 degrees clockwise; 8 -> ROTATE_90; 3 -> ROTATE_180; 2/4/5/7 flips/transposes).
   Pillow's own decoders already decide two things before transformers sees the image:
   - 16-bit-per-channel RGB PNG opens as mode "RGB" keeping only the HIGH byte of each sample
     (v16 >> 8, truncation, not round(v16 * 255 / 65535); in rgb16.png 51 of 1728 samples differ
     between the two). 16-bit grey PNG opens as "I;16", and "I;16" -> RGB CLAMPS to 0..255
     (256 and 65535 both become 255) rather than scaling. Nothing raises.
   - JPEG CMYK is read as Adobe-inverted ("CMYK;I", whether or not an APP14 Adobe marker is
     present): Pillow's C = 255 - stored byte (same for M, Y, K); Pillow writes it the same way.
   NB: passing a *path* to the processor goes through `transformers.image_utils.load_image`,
   which does exif_transpose and then `convert("RGB")` -- that DROPS alpha instead of compositing
   (alpha.png then differs by up to 3.7 in pixel_values). This script passes the PIL image, which
   is what pipelines and users with PIL images get.
2. do_convert_rgb (`transformers.image_transforms.convert_to_rgb`, on the PIL image):
   - if "A" is one of the bands (RGBA, LA, PA, ...) or `image.info["transparency"]` is set
     (palette or L/RGB PNG with tRNS): `convert("RGBA")`, then `Image.alpha_composite` onto opaque
     white, then `convert("RGB")`. For every channel value c and alpha a this is exactly
     (c*a + 255*(255-a) + 127) // 255   (checked for all 65536 pairs), so fully transparent
     pixels become pure white whatever RGB they hide;
   - otherwise `convert("RGB")`: L -> (v, v, v); P -> palette lookup; CMYK -> with nk = 255 - K,
     R = clip(nk - MULDIV255(C, nk)), same for G/M and B/Y, MULDIV255(a, b) = (t + (t >> 8)) >> 8
     with t = a*b + 128 (exact for all inputs); 1 -> 0/255; I and I;16 -> clamp to 0..255;
     F -> clamp, then truncate.
   Then np.array -> uint8 HWC -> CHW.
3. Resize (do_resize, size={"shortest_edge": S}): target short side = S, long side =
   int(S * long / short) -- FLOOR of the float quotient, never rounded (64x48 -> 42x32,
   100x33 -> 32x96, 7x3 -> 74x32, 400x20 -> 640x32, 1x1 -> 32x32); a square stays SxS. Done by
   Pillow on the uint8 RGB image: `Image.resize((w, h), resample=BICUBIC (3), reducing_gap=None)`
   (no `reduce()` pre-step; Pillow's separable fixed-point bicubic, a = -0.5, support scaled by
   the down-scale factor, result rounded and clamped to uint8; Pillow returns an unfiltered copy
   when the size is unchanged). `resample` comes from preprocessor_config.json.
4. Center crop (crop_size {"height": ch, "width": cw}) on the uint8 CHW array:
   top = (h - ch) // 2, left = (w - cw) // 2 (floor: an odd excess drops the extra column/row at
   the right/bottom). If the image is smaller than the crop it is zero-padded first with
   ceil(excess / 2) before (cannot happen when shortest_edge >= crop size).
5. Rescale: float32(float64(u8) * rescale_factor) with rescale_factor 1/255 as a float64
   (= u8 / 255 correctly rounded to float32; multiplying by float32(1/255) instead differs in 126
   of the 256 values).
6. Normalize in float32: (x - float32(mean[c])) / float32(std[c]), channels first, so
   pixel_values has shape [1, 3, ch, cw].
7. Model: `CLIPVisionModelWithProjection` in float32 eval mode on CPU, one image per forward
   (batch 1), `image_embeds` = visual_projection(post_layernorm(CLS token)), L2-normalised here.

JSON: {"generator", "processor", "processor_backend", "preprocessor_config", "model_config",
"images": [{"file", "format", "decoded_size" [w, h] after exif_transpose, "mode" (PIL mode after
exif_transpose), "resized_size" [w, h] before the crop, "pixel_values_shape", "pixel_values" (flat,
C-order, 6 decimals), "embedding" (7 significant digits), "embedding_norm_before_normalise"} or
{"file", "error"}]}.
"""

import json
import os
import sys

MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def sig7(x: float) -> float:
    """Round to 7 significant digits."""
    return float(f"{x:.7g}")


def check_model_dir(model_dir: str) -> dict:
    """Exit with a clear message unless MODEL_DIR looks like a CLIP vision model directory."""
    if not os.path.isdir(model_dir):
        sys.exit(f"error: MODEL_DIR {model_dir!r} is not a directory")
    missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        sys.exit(
            f"error: {model_dir} lacks {', '.join(missing)} (needs {', '.join(MODEL_FILES)}); "
            f"generate the project's tiny model with `tessera models tiny-clip --out {model_dir}`"
        )
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type") != "clip_vision_model":
        sys.exit(
            f"error: {model_dir}/config.json has model_type {config.get('model_type')!r}; "
            "expected 'clip_vision_model' (a CLIPVisionModelWithProjection)"
        )
    return config


def documented_pipeline(image, cfg: dict):
    """The preprocessing exactly as the module docstring describes it, in plain Pillow + NumPy.

    Returns (pixel_values float32 [1, 3, ch, cw], resized (w, h)), or None when the config uses
    options this re-implementation does not cover.
    """
    import numpy as np
    from PIL import Image

    size = {k: v for k, v in (cfg.get("size") or {}).items() if v is not None}
    crop = {k: v for k, v in (cfg.get("crop_size") or {}).items() if v is not None}
    if (
        not cfg.get("do_convert_rgb", True)
        or not cfg.get("do_resize", True)
        or set(size) != {"shortest_edge"}
        or not cfg.get("do_center_crop", True)
        or set(crop) != {"height", "width"}
        or not cfg.get("do_rescale", True)
        or not cfg.get("do_normalize", True)
    ):
        return None

    # 2. do_convert_rgb
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.int64)
        a = rgba[..., 3:4]
        rgb = ((rgba[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    elif image.mode == "CMYK":
        cmyk = np.asarray(image, dtype=np.int64)
        nk = 255 - cmyk[..., 3:4]
        t = cmyk[..., :3] * nk + 128
        rgb = np.clip(nk - ((t + (t >> 8)) >> 8), 0, 255).astype(np.uint8)
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)

    # 3. resize: shortest edge to S, long edge floored
    h, w = rgb.shape[:2]
    s = int(size["shortest_edge"])
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(s * long / short)
    nw, nh = (s, new_long) if w <= h else (new_long, s)
    resample = cfg.get("resample", Image.Resampling.BICUBIC)
    resized = np.asarray(Image.fromarray(rgb, "RGB").resize((nw, nh), resample=resample))

    # 4. center crop (zero-pad first if the crop is larger)
    ch, cw = int(crop["height"]), int(crop["width"])
    if ch > nh or cw > nw:
        ph, pw = max(ch, nh), max(cw, nw)
        padded = np.zeros((ph, pw, 3), np.uint8)
        top_pad, left_pad = -(-(ph - nh) // 2), -(-(pw - nw) // 2)
        padded[top_pad:top_pad + nh, left_pad:left_pad + nw] = resized
        resized, nh2, nw2 = padded, ph, pw
    else:
        nh2, nw2 = nh, nw
    top, left = (nh2 - ch) // 2, (nw2 - cw) // 2
    cropped = resized[top:top + ch, left:left + cw]

    # 5. rescale (float64 product, cast to float32), 6. normalise in float32
    x = (cropped.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.asarray(cfg.get("image_mean"), dtype=np.float32)
    std = np.asarray(cfg.get("image_std"), dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)[None], (nw, nh)


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model_dir, images_dir, out_json = sys.argv[1:]
    model_config = check_model_dir(model_dir)
    if not os.path.isdir(images_dir):
        sys.exit(f"error: IMAGES_DIR {images_dir!r} is not a directory")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import PIL
    import torch
    import transformers
    from PIL import Image, ImageOps
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    torch.set_num_threads(1)  # byte-identical output between runs and machines
    torch.manual_seed(0)

    with open(os.path.join(model_dir, "preprocessor_config.json"), encoding="utf-8") as f:
        preprocessor_config = json.load(f)
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    if processor.backend != "pil":
        sys.exit(f"error: expected the Pillow backend, got {type(processor).__name__}")
    model = CLIPVisionModelWithProjection.from_pretrained(model_dir, dtype=torch.float32)
    model = model.to("cpu").eval()
    # The processor's effective settings (class defaults filled in) drive the re-implementation.
    effective = processor.to_dict()

    entries, stale = [], []
    if documented_pipeline(Image.new("RGB", (1, 1)), effective) is None:
        print("warning: preprocessor_config.json uses options documented_pipeline does not cover; "
              "the docstring check is skipped", file=sys.stderr)
    for name in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        entry = {"file": name}
        try:
            raw = Image.open(path)
            entry["format"] = raw.format
            image = ImageOps.exif_transpose(raw)
            entry["decoded_size"] = list(image.size)
            entry["mode"] = image.mode
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                embeds = model(pixel_values=pixels).image_embeds[0]
        except Exception as e:  # recorded, not hidden: the Rust test reports it
            entry = {"file": name, "error": f"{type(e).__name__}: {e}"}
            print(f"{name}: reference could not process it: {entry['error']}", file=sys.stderr)
            entries.append(entry)
            continue

        mine = documented_pipeline(image, effective)
        if mine is not None:
            ours, resized = mine
            entry["resized_size"] = list(resized)
            if ours.shape != tuple(pixels.shape) or not np.array_equal(ours, pixels.numpy()):
                diff = (
                    float(np.abs(ours - pixels.numpy()).max())
                    if ours.shape == tuple(pixels.shape) else f"shape {ours.shape}"
                )
                stale.append(f"{name}: documented pipeline differs from the processor ({diff})")

        norm = float(torch.linalg.vector_norm(embeds.double()))
        unit = torch.nn.functional.normalize(embeds, dim=-1)
        entry["pixel_values_shape"] = list(pixels.shape)
        entry["pixel_values"] = [round(float(v), 6) for v in pixels.flatten()]
        entry["embedding"] = [sig7(float(v)) for v in unit]
        entry["embedding_norm_before_normalise"] = sig7(norm)
        entries.append(entry)

    if not entries:
        sys.exit(f"error: no image files in {images_dir}")

    out = {
        "generator": (
            f"transformers {transformers.__version__}, torch {torch.__version__}, "
            f"pillow {PIL.__version__}"
        ),
        "processor": type(processor).__name__,
        "processor_backend": processor.backend,
        "preprocessor_config": preprocessor_config,
        "model_config": {
            k: model_config.get(k)
            for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "image_size",
                      "patch_size", "projection_dim", "hidden_act", "layer_norm_eps")
        },
        "images": entries,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")

    print(out["generator"], "|", out["processor"])
    for e in entries:
        if "error" in e:
            print(f"{e['file']}: ERROR {e['error']}")
        else:
            print(f"{e['file']}: {e['format']} {e['mode']} {e['decoded_size'][0]}x"
                  f"{e['decoded_size'][1]} -> resized {e.get('resized_size')} -> "
                  f"{e['pixel_values_shape']}, |image_embeds| {e['embedding_norm_before_normalise']}")
    if stale:
        sys.exit("error: the docstring no longer describes the processor:\n  " + "\n  ".join(stale))


if __name__ == "__main__":
    main()
