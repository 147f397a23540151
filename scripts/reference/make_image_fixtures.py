"""Writes the image fixtures in tests/data/images (deterministic: fixed seeds, no network).

Good images cover what catalogs send: odd sizes (1x1, very wide), alpha, palette, grey, an EXIF
rotation, CMYK JPEG, 16-bit PNG, WebP, BMP, TIFF. tests/data/images/bad holds files that must be
refused with a clear error: empty, text named .png, truncated JPEG, and two decompression-bomb
headers (a PNG and a GIF that claim enormous sizes in a few hundred bytes).

usage: python make_image_fixtures.py OUT_DIR   (OUT_DIR = tests/data/images)
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def gradient(w, h, seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    base = np.concatenate([x * np.ones((h, w, 1)), y * np.ones((h, w, 1)), (1 - x) * (1 - y) * np.ones((h, w, 1))], axis=2)
    img = (base * 255).astype(np.float64)
    # a few solid shapes, so edges exist for the resampler
    for _ in range(3):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(2, max(3, min(w, h) // 3))
        yy, xx = np.ogrid[:h, :w]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[mask] = rng.integers(0, 256, 3)
    return img.clip(0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows):
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b"")


def main(out):
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    save = lambda name, img, **kw: img.save(os.path.join(out, name), **kw)

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

    save("palette.gif", Image.fromarray(gradient(40, 30, 4), "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16))
    save("gray.png", Image.fromarray(gradient(50, 50, 5)[:, :, 0], "L"))

    # Stored sideways: 60x40 pixels with EXIF orientation 6 (rotate 90° clockwise to view),
    # so the upright image is 40x60.
    upright = Image.fromarray(gradient(40, 60, 6), "RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rotated.jpg", stored, quality=90, exif=exif.tobytes())

    save("cmyk.jpg", Image.fromarray(gradient(32, 32, 7), "RGB").convert("CMYK"), quality=90)

    rgb16 = (gradient(24, 24, 8).astype(np.uint16) * 257 + np.arange(24, dtype=np.uint16)[None, :, None]).astype(">u2")
    rows = b"".join(b"\x00" + rgb16[y].tobytes() for y in range(24))
    with open(os.path.join(out, "rgb16.png"), "wb") as f:
        f.write(raw_png(24, 24, 16, 2, rows))

    save("lossless.webp", Image.fromarray(gradient(48, 48, 9), "RGB"), lossless=True)
    save("small.bmp", Image.fromarray(gradient(20, 10, 10), "RGB"))
    save("small.tiff", Image.fromarray(gradient(20, 10, 11), "RGB"), compression="raw")

    open(os.path.join(bad, "empty.png"), "wb").close()
    with open(os.path.join(bad, "text.png"), "w", encoding="utf-8") as f:
        f.write("This is a synopsis, not a poster.\n")
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    with open(os.path.join(bad, "truncated.jpg"), "wb") as f:
        f.write(buf.getvalue()[:300])
    # 100000 x 100000 RGB claimed by the header, three zero rows of data.
    with open(os.path.join(bad, "bomb.png"), "wb") as f:
        f.write(raw_png(100000, 100000, 8, 2, b"\x00" * (3 * (1 + 3 * 100000))))
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00" + b"\x3b"
    with open(os.path.join(bad, "lying.gif"), "wb") as f:
        f.write(gif)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/images")
