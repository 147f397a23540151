//! Whisper's log-mel spectrogram, as transformers' `WhisperFeatureExtractor` computes it: a
//! window of `chunk_length` seconds zero-padded to its full length, a centred STFT (reflect
//! padding, periodic Hann window, `n_fft`, `hop_length`) whose last frame is dropped, the power
//! spectrum through a Slaney-normalised Slaney-scale mel filter bank (0 Hz to Nyquist),
//! `log10(max(x, 1e-10))`, clamped to 8 below the window's maximum, then `(x + 4) / 4`.

use crate::ModelError;
use crate::text::read_json;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The fields of a Whisper `preprocessor_config.json` the spectrogram depends on.
#[derive(Debug, Clone, Deserialize)]
struct FeatureConfig {
    #[serde(default = "d_mels")]
    feature_size: usize,
    #[serde(default = "d_rate")]
    sampling_rate: u32,
    #[serde(default = "d_hop")]
    hop_length: usize,
    #[serde(default = "d_chunk")]
    chunk_length: usize,
    #[serde(default = "d_fft")]
    n_fft: usize,
    #[serde(default)]
    dither: f64,
}
fn d_mels() -> usize {
    80
}
fn d_rate() -> u32 {
    16_000
}
fn d_hop() -> usize {
    160
}
fn d_chunk() -> usize {
    30
}
fn d_fft() -> usize {
    400
}

/// A configured log-mel extractor; cheap to share between threads.
#[derive(Clone)]
pub struct LogMel {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    sample_rate: u32,
    window_samples: usize,
    hann: Vec<f32>,
    /// `n_mels × (n_fft/2 + 1)`, row-major.
    filters: Vec<f32>,
    fft: Arc<dyn realfft::RealToComplex<f32>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("n_mels", &self.n_mels)
            .field("sample_rate", &self.sample_rate)
            .field("window_samples", &self.window_samples)
            .finish()
    }
}

impl LogMel {
    /// Whisper's defaults (16 kHz, n_fft 400, hop 160, 30 s windows) with `n_mels` bins.
    pub fn whisper(n_mels: usize) -> Self {
        Self::new(400, 160, n_mels, 16_000, 30)
    }

    fn new(
        n_fft: usize,
        hop: usize,
        n_mels: usize,
        sample_rate: u32,
        chunk_seconds: usize,
    ) -> Self {
        let hann = (0..n_fft)
            .map(|i| {
                let x = std::f64::consts::TAU * i as f64 / n_fft as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        // transformers' WhisperFeatureExtractor fixes the top at 8 kHz whatever the rate.
        let filters = mel_filters(n_fft / 2 + 1, n_mels, f64::from(sample_rate), 8000.0)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        LogMel {
            n_fft,
            hop,
            n_mels,
            sample_rate,
            window_samples: chunk_seconds * sample_rate as usize,
            hann,
            filters,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n_fft),
        }
    }

    /// Reads a Whisper `preprocessor_config.json`.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let config: FeatureConfig = read_json(path)?.ok_or_else(|| ModelError::File {
            path: path.to_path_buf(),
            reason: "missing: a Whisper model directory holds preprocessor_config.json".into(),
        })?;
        let bad = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        if config.n_fft < 2 || config.hop_length == 0 || config.feature_size == 0 {
            return Err(bad(format!(
                "n_fft {}, hop_length {} and feature_size {} must be positive",
                config.n_fft, config.hop_length, config.feature_size
            )));
        }
        if config.chunk_length == 0 || config.sampling_rate == 0 {
            return Err(bad("chunk_length and sampling_rate must be positive".into()));
        }
        if config.dither != 0.0 {
            return Err(bad(format!(
                "dither {} adds random noise; only 0.0 is reproducible",
                config.dither
            )));
        }
        Ok(Self::new(
            config.n_fft,
            config.hop_length,
            config.feature_size,
            config.sampling_rate,
            config.chunk_length,
        ))
    }

    /// Mel bins per frame.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Samples per second the extractor expects.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples in one window (30 s for Whisper).
    pub fn window_samples(&self) -> usize {
        self.window_samples
    }

    /// Frames per window (3000 for Whisper).
    pub fn frames(&self) -> usize {
        self.window_samples / self.hop
    }

    /// Samples per spectrogram frame.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// The log-mel spectrogram of one window (`samples.len() <= window_samples`, zero-padded):
    /// `n_mels × frames` values, row-major (one row per mel bin).
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let n = self.window_samples;
        let real = samples.len().min(n);
        let frames = self.frames();
        let half = self.n_fft / 2;
        let n_freq = half + 1;
        // Reflect padding around a window that is zero past `real`.
        let at = |i: isize| -> f32 {
            let last = n as isize - 1;
            let j = if i < 0 {
                -i
            } else if i > last {
                2 * last - i
            } else {
                i
            };
            let j = j.clamp(0, last) as usize;
            if j < real { samples[j] } else { 0.0 }
        };
        let mut mel = vec![0.0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; n_freq];
        for t in 0..frames {
            let start = (t * self.hop) as isize - half as isize;
            let mut silent = true;
            for (k, slot) in input.iter_mut().enumerate() {
                let v = at(start + k as isize);
                silent &= v == 0.0;
                *slot = v * self.hann[k];
            }
            if silent {
                continue;
            }
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                // Buffers come from the plan itself, so lengths always match.
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = norm_sqr(c);
            }
            for (m, row) in self.filters.chunks_exact(n_freq).enumerate() {
                mel[m * frames + t] = row.iter().zip(&power).map(|(w, p)| w * p).sum();
            }
        }
        let mut max = f32::NEG_INFINITY;
        for v in mel.iter_mut() {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        for v in mel.iter_mut() {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

fn norm_sqr(c: &Complex<f32>) -> f32 {
    c.re * c.re + c.im * c.im
}

fn hz_to_mel(f: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() * logstep
    } else {
        3.0 * f / 200.0
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if m >= 15.0 {
        1000.0 * (logstep * (m - 15.0)).exp()
    } else {
        200.0 * m / 3.0
    }
}

/// Slaney-scale triangular filters from 0 Hz to `max_hz`, each normalised to unit area (Slaney
/// norm), over FFT bins spanning 0..Nyquist, as `n_mels × n_freq` row-major — transformers'
/// `mel_filter_bank` (librosa's `mel`, `htk=False`, `norm="slaney"`).
pub fn mel_filters(n_freq: usize, n_mels: usize, sample_rate: f64, max_hz: f64) -> Vec<f64> {
    let nyquist = (sample_rate / 2.0).floor();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(max_hz));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_freqs: Vec<f64> = (0..n_freq)
        .map(|i| {
            if n_freq > 1 {
                nyquist * i as f64 / (n_freq - 1) as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut out = vec![0.0; n_mels * n_freq];
    for m in 0..n_mels {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        let enorm = 2.0 / (right - left);
        for (k, f) in fft_freqs.iter().enumerate() {
            let down = (f - left) / (centre - left);
            let up = (right - f) / (right - centre);
            out[m * n_freq + k] = down.min(up).max(0.0) * enorm;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bank_matches_librosa_shape() {
        let f = mel_filters(201, 80, 16_000.0, 8000.0);
        // Every filter is a triangle with some weight; the bank covers 0..8 kHz.
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().any(|v| *v > 0.0), "filter {m} is empty");
            assert!(row.iter().all(|v| *v >= 0.0));
        }
        // Slaney scale is linear below 1 kHz: 3 mels per 200 Hz.
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((mel_to_hz(hz_to_mel(4321.0)) - 4321.0).abs() < 1e-9);
    }

    #[test]
    fn a_tone_lights_its_mel_bin() {
        let mel = LogMel::whisper(80);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (std::f32::consts::TAU * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let spec = mel.compute(&tone);
        assert_eq!(spec.len(), 80 * 3000);
        let frame = 50;
        let loudest = (0..80)
            .max_by(|a, b| spec[a * 3000 + frame].total_cmp(&spec[b * 3000 + frame]))
            .unwrap_or(0);
        // 1 kHz is mel 15 of 0..~45.2 over 81 steps: bin ~26 (0-based, centre of filter m+1).
        assert!((25..=27).contains(&loudest), "loudest bin {loudest}");
        // Padding frames sit at the floor: max - 8 → (max - 8 + 4) / 4.
        let max = spec.iter().cloned().fold(f32::MIN, f32::max);
        let tail = spec[2999];
        assert!((tail - (max - 2.0)).abs() < 1e-5, "tail {tail} max {max}");
    }

    #[test]
    fn silence_is_flat() {
        let mel = LogMel::whisper(80);
        let spec = mel.compute(&[]);
        assert!(
            spec.iter()
                .all(|v| (*v - (-10.0f32 + 4.0) / 4.0).abs() < 1e-6)
        );
    }
}
