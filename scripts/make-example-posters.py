#!/usr/bin/env python3
"""Writes the example catalog's posters (examples/posters/*.png): small abstract gradients whose
colours follow each title's genre, so image plugins and reports have real files to read.
Standard library only. Run from anywhere:

    python3 scripts/make-example-posters.py
"""
import json
import pathlib
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "catalog.jsonl"
OUT = ROOT / "examples" / "posters"
WIDTH, HEIGHT = 96, 144
GENRE_COLOURS = {
    "crime": ((20, 24, 40), (170, 40, 40)),
    "sci-fi": ((10, 20, 60), (60, 200, 220)),
    "comedy": ((250, 200, 60), (240, 110, 40)),
    "drama": ((60, 40, 70), (200, 170, 140)),
    "documentary": ((30, 70, 40), (200, 220, 160)),
    "animation": ((90, 30, 140), (250, 140, 200)),
    "horror": ((5, 5, 5), (120, 0, 20)),
    "romance": ((120, 20, 60), (250, 180, 190)),
}


def png(width, height, pixel):
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for line in CATALOG.read_text().splitlines():
        if not line.strip():
            continue
        title = json.loads(line)
        genre = title.get("metadata", {}).get("genre", "drama")
        top, bottom = GENRE_COLOURS.get(genre, GENRE_COLOURS["drama"])
        seed = sum(title["id"].encode())
        for asset in title.get("assets", []):
            if asset["kind"] != "poster":
                continue

            def pixel(x, y):
                t = y / (HEIGHT - 1)
                ring = ((x - 48) ** 2 + (y - 60 - seed % 30) ** 2) < (18 + seed % 12) ** 2
                return tuple(
                    min(255, int(a + (b - a) * t) + (40 if ring else 0)) for a, b in zip(top, bottom)
                )

            path = CATALOG.parent / asset["uri"]
            path.write_bytes(png(WIDTH, HEIGHT, pixel))
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
