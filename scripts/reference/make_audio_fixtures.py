#!/usr/bin/env python3
"""Writes the audio fixtures of tests/data/audio (deterministic synthetic signals).

Usage: python make_audio_fixtures.py OUT_DIR

Good files (OUT_DIR): every container/codec the host decodes, odd rates and lengths --
  tone_16k_mono.wav   PCM16, 16 kHz mono, 3 s (no resampling: checks the mel spectrogram alone)
  stereo_44k1.wav     PCM16, 44.1 kHz, two different channels, 1.5 s (downmix + resampling)
  float_48k.wav       IEEE float32 WAV, 48 kHz mono, 0.75 s
  short_0_2s.wav      PCM16, 22.05 kHz mono, 0.2 s (one window, mostly padding)
  long_62s.flac       FLAC, 8 kHz mono, 62 s of tones (three 30 s windows; upsampling)
  music_44k1.mp3      MP3 (libsndfile/LAME), 44.1 kHz stereo, 2 s
  vorbis_48k.ogg      Ogg Vorbis, 48 kHz stereo, 2 s
  aac_44k1.m4a        AAC-LC in MP4 (PyAV/FFmpeg), 44.1 kHz mono, 2 s
Refused files (OUT_DIR/bad): empty.wav (0 bytes), text.wav (a text file), garbage.mp3 (random
bytes), truncated.flac (the first 30% of a FLAC file), lying_header.wav (a WAV whose data chunk
claims ten minutes but holds 0.1 s).

Signals come from a seeded NumPy generator; lossless files are byte-identical between runs.
The lossy encoders (LAME, libvorbis, FFmpeg's AAC) may differ between library versions, which is
why the reference embeddings are computed from the committed files, never regenerated signals.
"""

import struct
import sys
from pathlib import Path

import av
import numpy as np
import soundfile as sf


def signal(
    rate: int, seconds: float, seed: int, base: float = 220.0, plain: bool = False
) -> np.ndarray:
    """Tones with a slow tremolo, a rising chirp and a little noise, peak below 0.9; `plain`
    keeps the tones only (a long file that FLAC compresses to almost nothing)."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(round(rate * seconds))) / rate
    tones = sum(
        np.sin(2 * np.pi * f * t + p) / (k + 1)
        for k, (f, p) in enumerate([(base, 0.0), (base * 3, 0.5), (base * 8, 1.0)])
    )
    tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)
    top = min(6000.0, rate / 2 * 0.9)
    chirp = np.sin(2 * np.pi * (100 * t + (top - 100) / (2 * max(seconds, 1e-9)) * t * t))
    x = 0.45 * tones * tremolo
    if not plain:
        x = x + 0.25 * chirp + 0.003 * rng.standard_normal(t.size)
    return (0.85 * x / max(1e-9, np.abs(x).max())).astype(np.float32)


def write_aac(path: Path, x: np.ndarray, rate: int) -> None:
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("aac", rate=rate, layout="mono")
    stream.bit_rate = 96_000
    frame_size = 1024
    pts = 0
    for start in range(0, x.size, frame_size):
        chunk = x[start : start + frame_size].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        pts += chunk.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


def float_wav(path: Path, x: np.ndarray, rate: int) -> None:
    """A plain IEEE-float WAV; libsndfile's adds a PEAK chunk with a timestamp (not reproducible)."""
    data = x.astype("<f4").tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def lying_wav(path: Path) -> None:
    rate = 16_000
    data = (signal(rate, 0.1, 9) * 32767).astype("<i2").tobytes()
    claimed = rate * 600 * 2  # ten minutes of 16-bit mono
    header = b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    path.write_bytes(header + fmt + b"data" + struct.pack("<I", claimed) + data)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    bad = out / "bad"
    bad.mkdir(parents=True, exist_ok=True)

    sf.write(out / "tone_16k_mono.wav", signal(16_000, 3.0, 1), 16_000, subtype="PCM_16")
    left, right = signal(44_100, 1.5, 2, 180.0), signal(44_100, 1.5, 3, 410.0)
    sf.write(out / "stereo_44k1.wav", np.stack([left, right], 1), 44_100, subtype="PCM_16")
    float_wav(out / "float_48k.wav", signal(48_000, 0.75, 4, 300.0), 48_000)
    sf.write(out / "short_0_2s.wav", signal(22_050, 0.2, 5, 500.0), 22_050, subtype="PCM_16")
    sf.write(out / "long_62s.flac", signal(8_000, 62.0, 6, 150.0, plain=True), 8_000, subtype="PCM_16")
    stereo = np.stack([signal(44_100, 2.0, 7, 260.0), signal(44_100, 2.0, 8, 330.0)], 1)
    sf.write(out / "music_44k1.mp3", stereo, 44_100, format="MP3", subtype="MPEG_LAYER_III")
    stereo48 = np.stack([signal(48_000, 2.0, 10, 200.0), signal(48_000, 2.0, 11, 240.0)], 1)
    sf.write(out / "vorbis_48k.ogg", stereo48, 48_000, format="OGG", subtype="VORBIS")
    write_aac(out / "aac_44k1.m4a", signal(44_100, 2.0, 12, 350.0), 44_100)

    (bad / "empty.wav").write_bytes(b"")
    (bad / "text.wav").write_text("This is a subtitle file, not audio.\n" * 20)
    (bad / "garbage.mp3").write_bytes(np.random.RandomState(13).bytes(20_000))
    flac = (out / "long_62s.flac").read_bytes()
    (bad / "truncated.flac").write_bytes(flac[: len(flac) * 3 // 10])
    lying_wav(bad / "lying_header.wav")

    for p in sorted(out.glob("*.*")):
        info = sf.info(str(p)) if p.suffix != ".m4a" else None
        desc = f"{info.samplerate} Hz, {info.channels} ch, {info.duration:.2f} s" if info else ""
        print(f"{p.name:20} {p.stat().st_size:8} bytes  {desc}")


if __name__ == "__main__":
    main()
