#!/usr/bin/env python3
"""Reference Whisper-encoder audio embeddings from Hugging Face transformers, for the Rust port's
fidelity test (models/tests/whisper_fidelity.rs).

Usage: python audio_reference.py MODEL_DIR AUDIO_DIR OUT_JSON

MODEL_DIR is a Whisper model directory (config.json with model_type whisper, model.safetensors,
preprocessor_config.json), e.g. the project's tiny model from
`tessera models tiny-whisper --out DIR`. For every audio file directly in AUDIO_DIR (sorted; bad/
is skipped) the pipeline is:

- decode with PyAV (FFmpeg's demuxers and decoders) to float32, all channels;
- downmix: the mean of the channels;
- resample to the feature extractor's rate with soxr at "VHQ" (the SoX resampler, which librosa
  uses by default; band-limited with a stopband far below Whisper's 80 dB log-mel range, as is
  rubato's FFT resampler on the Rust side, so the two agree closely but not bit for bit — a
  resampler with a shallow stopband, e.g. scipy's default resample_poly, leaves images of the
  signal that show up in the empty upper mel bins of upsampled 8 kHz audio);
- cut into windows of chunk_length seconds; each window goes through transformers'
  WhisperFeatureExtractor (zero-padded to the full window, log-mel) and WhisperModel's encoder
  (float32, CPU, one thread, batch 1);
- a window's vector is the mean of the encoder's last_hidden_state over the positions covering
  real audio, ceil(samples / (2 * hop_length)); the clip's vector is the mean of the window
  vectors weighted by those position counts.

It also records, for the 16 kHz file (no resampling involved), a slice of the first window's
log-mel features, so that the spectrogram is checked on its own.
"""

import json
import math
import sys
from pathlib import Path

import av
import numpy as np
import soxr
import torch
import transformers
from transformers import WhisperFeatureExtractor, WhisperModel

MEL_FILE = "tone_16k_mono.wav"
MEL_FRAMES = [0, 1, 2, 50, 151, 299, 300, 301, 2999]


def to_float(data: np.ndarray) -> np.ndarray:
    """Integer PCM to [-1, 1) as every decoder does (full scale = 2^(bits-1)); floats as they are."""
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return (data.astype(np.float64) / float(2 ** (8 * data.itemsize - 1))).astype(np.float32)
    return data.astype(np.float32)


def decode(path: Path) -> tuple[np.ndarray, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, rate, channels = [], None, None
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if frame.format.is_packed:
                data = data.reshape(-1, len(frame.layout.channels)).T
            chunks.append(to_float(data))
            rate, channels = frame.sample_rate, len(frame.layout.channels)
    samples = np.concatenate(chunks, axis=1)
    return samples.mean(axis=0), rate, channels


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model_dir, audio_dir, out_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    extractor = WhisperFeatureExtractor.from_pretrained(model_dir)
    model, info = WhisperModel.from_pretrained(model_dir, output_loading_info=True)
    missing_encoder = [k for k in info["missing_keys"] if k.startswith("encoder.")]
    if missing_encoder:
        sys.exit(f"encoder weights missing from the checkpoint: {missing_encoder}")
    encoder = model.get_encoder().eval()
    rate = extractor.sampling_rate
    window = extractor.chunk_length * rate
    per_position = 2 * extractor.hop_length

    files = []
    for path in sorted(p for p in audio_dir.iterdir() if p.is_file()):
        mono, source_rate, channels = decode(path)
        if source_rate != rate:
            mono = soxr.resample(mono, source_rate, rate, quality="VHQ")
        mono = mono.astype(np.float32)
        windows, positions = [], []
        mel = None
        for start in range(0, max(len(mono), 1), window):
            piece = mono[start : start + window]
            features = extractor(piece, sampling_rate=rate, return_tensors="pt").input_features
            if path.name == MEL_FILE and start == 0:
                mel = {str(f): [round(float(v), 6) for v in features[0, :, f]] for f in MEL_FRAMES}
            with torch.no_grad():
                hidden = encoder(features).last_hidden_state[0]
            real = max(1, min(hidden.shape[0], math.ceil(len(piece) / per_position)))
            windows.append(hidden[:real].mean(0).numpy())
            positions.append(real)
        weights = np.array(positions, dtype=np.float64) / sum(positions)
        pooled = (np.stack(windows) * weights[:, None]).sum(0)
        entry = {
            "file": path.name,
            "source_rate": source_rate,
            "source_channels": channels,
            "samples": int(len(mono)),
            "positions": positions,
            "windows": [[float(f"{v:.7g}") for v in w] for w in windows],
            "pooled": [float(f"{v:.7g}") for v in pooled],
        }
        if mel is not None:
            entry["mel_frames"] = mel
        files.append(entry)
        print(f"{path.name:20} {source_rate:6} Hz {channels} ch -> {len(mono):7} samples, "
              f"{len(windows)} window(s)")

    out = {
        "generator": "scripts/reference/audio_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "soxr": soxr.__version__,
        "av": av.__version__,
        "model": model_dir.name,
        "files": files,
    }
    out_path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
