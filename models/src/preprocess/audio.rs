//! Audio files to mono samples at the model's rate: symphonia decodes (WAV PCM and float, FLAC,
//! MP3, Ogg Vorbis, AAC in MP4/M4A), channels are averaged, and rubato's FFT resampler (band-limited)
//! converts to the target rate while decoding, so memory follows the *output* length.
//!
//! Nothing here trusts a header: the duration limit is enforced on decoded samples as they arrive,
//! and a stream that ends well short of what its header promised is refused as truncated.

use crate::ModelError;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use std::fs::File;
use std::path::Path;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// Bounds on what one audio file may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// Longest accepted duration in seconds (decoded, not as the header claims). The default, two
    /// hours, is a feature film; at 16 kHz it is 460 MB of samples.
    pub max_seconds: f64,
    /// Largest accepted file in bytes.
    pub max_file_bytes: u64,
}

impl Default for AudioLimits {
    fn default() -> Self {
        AudioLimits {
            max_seconds: 2.0 * 3600.0,
            max_file_bytes: 4 << 30,
        }
    }
}

/// A decoded clip: mono samples at `sample_rate`, and what the source was.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples in [-1, 1] at `sample_rate`.
    pub samples: Vec<f32>,
    /// The rate of `samples`.
    pub sample_rate: u32,
    /// The source's rate.
    pub source_rate: u32,
    /// The source's channel count.
    pub source_channels: usize,
    /// Packets the decoder rejected and that were skipped.
    pub skipped_packets: usize,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes the audio file at `path` to mono at `target_rate`.
pub fn read_audio(
    path: &Path,
    target_rate: u32,
    limits: &AudioLimits,
) -> Result<DecodedAudio, ModelError> {
    let name = path.display().to_string();
    let media = |reason: String| ModelError::Media {
        file: name.clone(),
        reason,
    };
    let file = File::open(path).map_err(|e| media(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| media(format!("cannot stat: {e}")))?
        .len();
    if len == 0 {
        return Err(media("the file is empty (0 bytes)".into()));
    }
    if len > limits.max_file_bytes {
        return Err(ModelError::MediaLimit {
            file: name.clone(),
            reason: format!(
                "{len} bytes is over the {} byte limit",
                limits.max_file_bytes
            ),
        });
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
    decode_stream(stream, &hint, &name, target_rate, limits)
}

/// Decodes in-memory audio bytes; `name` is used in errors and its extension as a format hint.
pub fn decode_audio(
    bytes: Vec<u8>,
    name: &str,
    target_rate: u32,
    limits: &AudioLimits,
) -> Result<DecodedAudio, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::Media {
            file: name.to_string(),
            reason: "the file is empty (0 bytes)".into(),
        });
    }
    let mut hint = Hint::new();
    if let Some(ext) = Path::new(name).extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    decode_stream(stream, &hint, name, target_rate, limits)
}

fn decode_stream(
    stream: MediaSourceStream<'static>,
    hint: &Hint,
    name: &str,
    target_rate: u32,
    limits: &AudioLimits,
) -> Result<DecodedAudio, ModelError> {
    let media = |reason: String| ModelError::Media {
        file: name.to_string(),
        reason,
    };
    let mut format = symphonia::default::get_probe()
        .probe(
            hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| media(format!("not a supported audio file ({e})")))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| media("the file holds no audio track".into()))?;
    let track_id = track.id;
    let header_frames = track.num_frames;
    let Some(CodecParameters::Audio(params)) = track.codec_params.clone() else {
        return Err(media("the audio track has no codec parameters".into()));
    };
    let source_rate = params
        .sample_rate
        .filter(|r| *r > 0)
        .ok_or_else(|| media("the header gives no sample rate".into()))?;
    // Outside this range a header is lying or the file is not audio; an absurd ratio would also
    // size the resampler's buffers absurdly.
    if !(MIN_RATE..=MAX_RATE).contains(&source_rate) {
        return Err(media(format!(
            "a sample rate of {source_rate} Hz is outside {MIN_RATE}..={MAX_RATE} Hz"
        )));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| media(format!("unsupported codec ({e})")))?;

    let max_source_frames = (limits.max_seconds * f64::from(source_rate)).ceil() as u64;
    let mut resample = ToRate::new(source_rate, target_rate).map_err(|e| media(e.to_string()))?;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut frames_total: u64 = 0;
    let mut channels = params.channels.as_ref().map_or(0, |c| c.count());
    let mut skipped = 0usize;
    let mut packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A stream cut short mid-packet: keep what decoded, the length check below decides.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(media(format!("unreadable stream ({e})"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymError::DecodeError(reason)) => {
                skipped += 1;
                tracing::debug!(file = name, reason, "skipped an undecodable packet");
                continue;
            }
            Err(e) => return Err(media(format!("decoding failed ({e})"))),
        };
        let spec_channels = decoded.spec().channels().count();
        if spec_channels == 0 {
            return Err(media("a packet decoded to zero channels".into()));
        }
        channels = spec_channels;
        decoded.copy_to_vec_interleaved(&mut interleaved);
        let frames = interleaved.len() / spec_channels;
        frames_total += frames as u64;
        if frames_total > max_source_frames {
            return Err(ModelError::MediaLimit {
                file: name.to_string(),
                reason: format!("longer than the {} s limit", limits.max_seconds),
            });
        }
        mono.clear();
        mono.extend(
            interleaved
                .chunks_exact(spec_channels)
                .map(|frame| frame.iter().sum::<f32>() / spec_channels as f32),
        );
        resample.push(&mono).map_err(media)?;
    }
    if frames_total == 0 {
        return Err(media(if skipped > 0 {
            format!("none of its {skipped} packets could be decoded")
        } else {
            "the stream holds no audio samples".into()
        }));
    }
    if skipped * 2 > packets {
        return Err(media(format!(
            "{skipped} of {packets} packets could not be decoded"
        )));
    }
    // Lossy codecs trim encoder delay and padding, so a few thousand frames either way are normal;
    // a header promising far more than the file holds is a lie (or a truncated file).
    if let Some(promised) = header_frames
        && promised > frames_total + u64::from(source_rate) / 10 + 4096
    {
        return Err(media(format!(
            "the header promises {promised} frames ({:.2} s) but the file holds {frames_total} \
             ({:.2} s): truncated or a lying header",
            promised as f64 / f64::from(source_rate),
            frames_total as f64 / f64::from(source_rate)
        )));
    }
    if skipped > 0 {
        tracing::warn!(file = name, skipped, "skipped undecodable packets");
    }
    let samples = resample.finish().map_err(media)?;
    Ok(DecodedAudio {
        samples,
        sample_rate: target_rate,
        source_rate,
        source_channels: channels,
        skipped_packets: skipped,
    })
}

/// Resamples mono audio to `to` Hz; see [`ToRate`].
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ModelError> {
    let fail = |e: String| ModelError::Media {
        file: "<samples>".into(),
        reason: e,
    };
    let mut r = ToRate::new(from, to).map_err(|e| fail(e.to_string()))?;
    r.push(samples).map_err(fail)?;
    r.finish().map_err(fail)
}

/// A streaming mono resampler: samples go in as they are decoded, and the output is trimmed of
/// the resampler's delay and cut to `ceil(len × to / from)`, so it lines up with the input.
struct ToRate {
    resampler: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    out: Vec<f32>,
    to_trim: usize,
    input_total: usize,
    ratio: f64,
}

/// Sample rates accepted from a header (telephone audio to studio masters).
const MIN_RATE: u32 = 4_000;
const MAX_RATE: u32 = 384_000;

/// Input frames per resampler call: large enough for FFT efficiency, small enough to stream.
const CHUNK: usize = 4096;

impl ToRate {
    fn new(from: u32, to: u32) -> Result<Self, rubato::ResamplerConstructionError> {
        let resampler = if from == to {
            None
        } else {
            Some(Fft::<f32>::new(
                from as usize,
                to as usize,
                CHUNK,
                1,
                FixedSync::Input,
            )?)
        };
        let (scratch, to_trim) = match &resampler {
            Some(r) => (vec![0.0; r.output_frames_max()], r.output_delay()),
            None => (Vec::new(), 0),
        };
        Ok(ToRate {
            resampler,
            pending: Vec::new(),
            scratch,
            out: Vec::new(),
            to_trim,
            input_total: 0,
            ratio: f64::from(to) / f64::from(from),
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<(), String> {
        self.input_total += samples.len();
        let Some(resampler) = &self.resampler else {
            self.out.extend_from_slice(samples);
            return Ok(());
        };
        self.pending.extend_from_slice(samples);
        let need = resampler.input_frames_next();
        // Taken out for the loop so that `run` (which needs `&mut self`) reads it without a copy.
        let mut pending = std::mem::take(&mut self.pending);
        let mut start = 0;
        let mut result = Ok(());
        while pending.len() - start >= need {
            result = self.run(&pending[start..start + need], None);
            if result.is_err() {
                break;
            }
            start += need;
        }
        pending.drain(..start);
        self.pending = pending;
        result
    }

    fn run(&mut self, input: &[f32], partial: Option<usize>) -> Result<(), String> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let frames = input.len();
        let input = InterleavedSlice::new(input, 1, frames)
            .map_err(|e| format!("resampler buffer: {e}"))?;
        let out_frames = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, out_frames)
            .map_err(|e| format!("resampler buffer: {e}"))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| format!("resampling failed: {e}"))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        self.out.extend_from_slice(&self.scratch[skip..produced]);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f32>, String> {
        if self.resampler.is_none() {
            return Ok(self.out);
        }
        let expected = (self.ratio * self.input_total as f64).ceil() as usize;
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.run(&rest, Some(rest.len()))?;
        }
        // Pump silence through until the delayed tail of the real signal has come out.
        let mut guard = 0;
        while self.out.len() < expected && guard < 64 {
            self.run(&[], Some(0))?;
            guard += 1;
        }
        self.out.resize(expected, 0.0);
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (seconds * rate as f32) as usize;
        (0..n)
            .map(|i| (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn resampling_keeps_length_and_pitch() -> Result<(), ModelError> {
        let input = sine(440.0, 44_100, 1.0);
        let out = resample(&input, 44_100, 16_000)?;
        assert_eq!(out.len(), 16_000);
        // Away from the edges the resampled sine matches the sine generated at 16 kHz. rubato's
        // FFT resampler leads by half an input sample (11 µs here), which a 10 ms spectrogram
        // hop cannot see; the comparison allows for it.
        let lead = 0.5 * 16_000.0 / 44_100.0;
        let err = (500..15_500)
            .map(|i| {
                let t = (i as f32 + lead) / 16_000.0;
                (out[i] - (std::f32::consts::TAU * 440.0 * t).sin() * 0.5).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(err < 2e-3, "max error {err}");
        Ok(())
    }

    #[test]
    fn resampling_removes_content_above_the_new_nyquist() -> Result<(), ModelError> {
        // 10 kHz cannot exist at 16 kHz: a band-limited resampler removes it instead of folding
        // it down to 6 kHz.
        let out = resample(&sine(10_000.0, 48_000, 1.0), 48_000, 16_000)?;
        let rms = (out[1000..15_000].iter().map(|x| x * x).sum::<f32>() / 14_000.0).sqrt();
        assert!(rms < 1e-3, "alias rms {rms}");
        Ok(())
    }

    #[test]
    fn short_clips_survive_resampling() -> Result<(), ModelError> {
        let out = resample(&sine(300.0, 22_050, 0.01), 22_050, 16_000)?;
        assert_eq!(out.len(), 160);
        assert!(out.iter().any(|x| x.abs() > 0.1));
        Ok(())
    }

    #[test]
    fn absurd_header_rates_are_refused() {
        // A WAV header claiming 1 Hz: no real audio, and a 16 000× resampling ratio.
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&44u32.to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u32.to_le_bytes());
        wav.extend_from_slice(&2u32.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&8u32.to_le_bytes());
        wav.extend_from_slice(&[0u8; 8]);
        let err = decode_audio(wav, "one-hertz.wav", 16_000, &AudioLimits::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("one-hertz.wav") && err.contains("1 Hz is outside"),
            "{err}"
        );
    }

    #[test]
    fn same_rate_is_a_copy() -> Result<(), ModelError> {
        let input = sine(100.0, 16_000, 0.1);
        assert_eq!(resample(&input, 16_000, 16_000)?, input);
        Ok(())
    }
}
