#!/usr/bin/env python3
"""Writes the image fixtures in tests/data/images (deterministic: fixed seeds, no network).

Usage: python make_image_fixtures.py [OUT_DIR]   (default: tests/data/images of this checkout)

Good images (what clip_reference.py and the Rust decoder read; size after EXIF orientation):

    photo.jpg         64x48  RGB   JPEG quality 90, gradients + 3 solid discs
    wide.png         400x20  RGB   (resize: 640x32 before the crop)
    one_pixel.png      1x1   RGB
    alpha.png         64x64  RGBA  rows 0-15 alpha 0 with RGB (10,200,30) underneath; below that
                                   columns 0-15 alpha 0 (gradient underneath), 16-31 alpha 128,
                                   32-63 alpha 255
    palette.gif       40x30  P     16-colour adaptive palette, no transparency
    gray.png          50x50  L
    exif_rotated.jpg  60x40 stored, EXIF Orientation 6 -> 40x60 upright (exif_transpose)
    cmyk.jpg          32x32  CMYK  JPEG (Pillow writes Adobe-inverted CMYK, APP14 transform 0)
    rgb16.png         24x24  16-bit RGB PNG (raw encoder below: Pillow cannot write it);
                                   v = (v8 * 257 + column) mod 65536, so "v >> 8" (what Pillow
                                   does) and "round(v * 255 / 65535)" disagree on 51 samples
    lossless.webp     48x48  RGB   lossless WebP
    small.bmp         20x10  RGB   24-bit BMP
    small.tiff        20x10  RGB   uncompressed TIFF

Bad inputs in OUT_DIR/bad, each must be refused with a clear error:

    empty.png      0 bytes
    text.png       UTF-8 text named .png
    truncated.jpg  the first 300 bytes of photo.jpg
    bomb.png       valid PNG (correct CRCs) whose IHDR says 100000x100000 RGB 8-bit; the IDAT
                   holds 3 zero rows (filter 0), zlib level 9, < 1 KB in all
    lying.gif      GIF89a claiming a 65535x65535 screen and image, no colour table, a 2-byte
                   LZW stream (clear, 0, end)

After writing, the script re-opens everything with Pillow and checks formats, modes and sizes
(good ones) and that Pillow refuses the bad ones; it fails if the total exceeds 200 KB.
"""

import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (Pillow format, mode after exif_transpose, size after exif_transpose)
EXPECTED = {
    "photo.jpg": ("JPEG", "RGB", (64, 48)),
    "wide.png": ("PNG", "RGB", (400, 20)),
    "one_pixel.png": ("PNG", "RGB", (1, 1)),
    "alpha.png": ("PNG", "RGBA", (64, 64)),
    "palette.gif": ("GIF", "P", (40, 30)),
    "gray.png": ("PNG", "L", (50, 50)),
    "exif_rotated.jpg": ("JPEG", "RGB", (40, 60)),
    "cmyk.jpg": ("JPEG", "CMYK", (32, 32)),
    "rgb16.png": ("PNG", "RGB", (24, 24)),  # Pillow keeps the high byte of each sample
    "lossless.webp": ("WEBP", "RGB", (48, 48)),
    "small.bmp": ("BMP", "RGB", (20, 10)),
    "small.tiff": ("TIFF", "RGB", (20, 10)),
}
BAD = ("empty.png", "text.png", "truncated.jpg", "bomb.png", "lying.gif")


def gradient(w, h, seed):
    """Smooth RGB gradients plus three solid discs (edges for the resampler), uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    base = np.concatenate(
        [x * np.ones((h, w, 1)), y * np.ones((h, w, 1)), (1 - x) * (1 - y) * np.ones((h, w, 1))],
        axis=2,
    )
    img = (base * 255).astype(np.float64)
    for _ in range(3):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        r = rng.integers(2, max(3, min(w, h) // 3))
        yy, xx = np.ogrid[:h, :w]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[mask] = rng.integers(0, 256, 3)
    return img.clip(0, 255).astype(np.uint8)


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(width, height, bit_depth, color_type, rows):
    """A minimal PNG: IHDR, one IDAT of zlib(rows), IEND. rows already carry filter bytes."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def write(out, bad):
    def save(name, img, **kw):
        img.save(os.path.join(out, name), **kw)

    photo = Image.fromarray(gradient(64, 48, 1), "RGB")
    save("photo.jpg", photo, quality=90)
    save("wide.png", Image.fromarray(gradient(400, 20, 2), "RGB"))
    save("one_pixel.png", Image.new("RGB", (1, 1), (200, 30, 90)))

    rgba = np.dstack([gradient(64, 64, 3), np.zeros((64, 64), np.uint8)])
    rgba[:, 16:32, 3] = 128
    rgba[:, 32:, 3] = 255
    rgba[:16, :, 3] = 0
    rgba[:16, :, :3] = (10, 200, 30)  # colour hidden under full transparency
    save("alpha.png", Image.fromarray(rgba, "RGBA"))

    palette = Image.fromarray(gradient(40, 30, 4), "RGB")
    save("palette.gif", palette.convert("P", palette=Image.Palette.ADAPTIVE, colors=16))
    save("gray.png", Image.fromarray(gradient(50, 50, 5)[:, :, 0], "L"))

    # Stored sideways: 60x40 pixels with EXIF orientation 6 ("rotate 90 degrees clockwise to
    # view"), so exif_transpose gives the 40x60 upright image back.
    upright = Image.fromarray(gradient(40, 60, 6), "RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rotated.jpg", stored, quality=90, exif=exif.tobytes())

    save("cmyk.jpg", Image.fromarray(gradient(32, 32, 7), "RGB").convert("CMYK"), quality=90)

    # 16 bits per sample, big-endian: v8 * 257 + column, modulo 65536. The first version of this
    # script let uint16 arithmetic wrap, so the 46 samples with v8 = 255 and column > 0 became
    # column - 1 (near-black dots in white areas). Kept on purpose: the fixture stays byte-identical
    # and those samples are as valid as any.
    v = gradient(24, 24, 8).astype(np.uint32) * 257 + np.arange(24, dtype=np.uint32)[None, :, None]
    rgb16 = (v % 65536).astype(">u2")
    rows = b"".join(b"\x00" + rgb16[y].tobytes() for y in range(24))
    with open(os.path.join(out, "rgb16.png"), "wb") as f:
        f.write(raw_png(24, 24, 16, 2, rows))

    save("lossless.webp", Image.fromarray(gradient(48, 48, 9), "RGB"), lossless=True)
    save("small.bmp", Image.fromarray(gradient(20, 10, 10), "RGB"))
    save("small.tiff", Image.fromarray(gradient(20, 10, 11), "RGB"), compression="raw")

    open(os.path.join(bad, "empty.png"), "wb").close()
    with open(os.path.join(bad, "text.png"), "w", encoding="utf-8") as f:
        f.write("This is a synopsis, not a poster.\n")
    with open(os.path.join(out, "photo.jpg"), "rb") as f:
        head = f.read(300)
    with open(os.path.join(bad, "truncated.jpg"), "wb") as f:
        f.write(head)
    # 100000 x 100000 RGB claimed by the header, three zero rows of data.
    with open(os.path.join(bad, "bomb.png"), "wb") as f:
        f.write(raw_png(100000, 100000, 8, 2, b"\x00" * (3 * (1 + 3 * 100000))))
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00"
    gif += b"\x02\x02\x44\x01\x00" + b"\x3b"  # min code size 2; codes clear, 0, end
    with open(os.path.join(bad, "lying.gif"), "wb") as f:
        f.write(gif)


def check(out, bad):
    """Re-open everything with Pillow; returns a list of problems."""
    problems, total = [], 0
    for name, (fmt, mode, size) in EXPECTED.items():
        path = os.path.join(out, name)
        total += os.path.getsize(path)
        with Image.open(path) as raw:
            got_fmt = raw.format
            image = ImageOps.exif_transpose(raw)
            image.load()
        got = (got_fmt, image.mode, image.size)
        if got != (fmt, mode, size):
            problems.append(f"{name}: expected {(fmt, mode, size)}, Pillow gives {got}")
        print(f"{name:18} {os.path.getsize(path):6} B  {got_fmt:5} {image.mode:5} "
              f"{image.size[0]}x{image.size[1]}")
    for name in BAD:
        path = os.path.join(bad, name)
        total += os.path.getsize(path)
        try:
            with Image.open(path) as image:
                image.load()
            problems.append(f"bad/{name}: Pillow decoded it")
            why = "DECODED"
        except Exception as e:  # the point: every one of them must fail
            why = f"{type(e).__name__}: {str(e)[:70]}"
        print(f"bad/{name:14} {os.path.getsize(path):6} B  {why}")
    if os.path.getsize(os.path.join(bad, "bomb.png")) >= 1024:
        problems.append("bad/bomb.png is not under 1 KB")
    if total >= 200 * 1024:
        problems.append(f"fixtures total {total} B, over 200 KB")
    print(f"total {total} B")
    return problems


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        sys.exit(__doc__)
    out = sys.argv[1] if len(sys.argv) == 2 else os.path.join(REPO, "tests", "data", "images")
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    write(out, bad)
    problems = check(out, bad)
    if problems:
        sys.exit("error:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
