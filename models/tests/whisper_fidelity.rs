//! The audio path against transformers: the project's tiny Whisper (generated here, byte for byte
//! the model scripts/reference/audio_reference.py was run on) must reproduce the reference
//! embeddings in tests/data/whisper_tiny_reference.json for every fixture in tests/data/audio
//! (WAV PCM and float, FLAC, MP3, Ogg Vorbis, AAC/M4A; 0.2 s to 62 s; mono and stereo; 8 to
//! 48 kHz). The reference decodes with FFmpeg and resamples with SciPy, we decode with symphonia
//! and resample with rubato, so the bar is cosine ≥ 0.99; the log-mel spectrogram of the 16 kHz
//! file, where no resampling is involved, is compared value by value. Bad fixtures in
//! tests/data/audio/bad must fail with a typed error naming the file.

mod common;

use common::{cosine, data};
use serde::Deserialize;
use std::collections::BTreeMap;
use tessera_models::preprocess::audio::{AudioLimits, read_audio};
use tessera_models::tiny::{TinyWhisperSpec, write_tiny_whisper};
use tessera_models::{AudioEmbedder, ModelError, WhisperAudioEncoder};

#[derive(Deserialize)]
struct Reference {
    generator: String,
    files: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    source_rate: u32,
    source_channels: usize,
    samples: usize,
    positions: Vec<usize>,
    windows: Vec<Vec<f32>>,
    pooled: Vec<f32>,
    #[serde(default)]
    mel_frames: BTreeMap<String, Vec<f32>>,
}

fn tiny_encoder() -> Result<(tempfile::TempDir, WhisperAudioEncoder), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    write_tiny_whisper(dir.path(), &TinyWhisperSpec::default())?;
    let encoder = WhisperAudioEncoder::load(dir.path(), "tiny-whisper", &common::device())?;
    Ok((dir, encoder))
}

#[test]
fn matches_transformers_on_every_fixture() -> Result<(), Box<dyn std::error::Error>> {
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(data().join("whisper_tiny_reference.json"))?)?;
    assert!(reference.generator.ends_with("audio_reference.py"));
    assert!(reference.files.len() >= 8, "the reference lost fixtures");
    let (_dir, encoder) = tiny_encoder()?;
    let mut worst = 1.0f32;
    for entry in &reference.files {
        let path = data().join("audio").join(&entry.file);
        let audio = read_audio(&path, 16_000, &AudioLimits::default())?;
        assert_eq!(audio.source_rate, entry.source_rate, "{}", entry.file);
        assert_eq!(
            audio.source_channels, entry.source_channels,
            "{}",
            entry.file
        );
        // Lossy decoders differ in how much encoder delay and padding they trim.
        let slack = entry.samples / 20 + 64;
        assert!(
            audio.samples.len().abs_diff(entry.samples) <= slack,
            "{}: {} samples, reference {}",
            entry.file,
            audio.samples.len(),
            entry.samples
        );
        let embedding = encoder
            .embed(&[&audio.samples])?
            .pop()
            .ok_or("no embedding")?;
        assert_eq!(
            embedding.windows.len(),
            entry.windows.len(),
            "{}",
            entry.file
        );
        let pooled = cosine(&embedding.pooled, &entry.pooled);
        let per_window: Vec<f32> = embedding
            .windows
            .iter()
            .zip(&entry.windows)
            .map(|(a, b)| cosine(a, b))
            .collect();
        println!(
            "{:20} {} samples (ref {}), positions {:?} (ref {:?}), pooled cos {pooled:.6}, windows {per_window:?}",
            entry.file,
            audio.samples.len(),
            entry.samples,
            embedding.window_positions,
            entry.positions
        );
        for c in per_window.iter().chain([&pooled]) {
            worst = worst.min(*c);
        }
        assert!(pooled >= 0.99, "{}: pooled cosine {pooled}", entry.file);
        assert!(
            per_window.iter().all(|c| *c >= 0.99),
            "{}: window cosines {per_window:?}",
            entry.file
        );
    }
    println!("worst cosine over all fixtures and windows: {worst:.6}");
    Ok(())
}

#[test]
fn log_mel_matches_the_feature_extractor() -> Result<(), Box<dyn std::error::Error>> {
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(data().join("whisper_tiny_reference.json"))?)?;
    let entry = reference
        .files
        .iter()
        .find(|e| !e.mel_frames.is_empty())
        .ok_or("the reference holds no mel frames")?;
    let (_dir, encoder) = tiny_encoder()?;
    let audio = read_audio(
        &data().join("audio").join(&entry.file),
        16_000,
        &AudioLimits::default(),
    )?;
    let mel = encoder.mel().compute(&audio.samples);
    let frames = encoder.mel().frames();
    let mut worst = 0.0f32;
    for (frame, values) in &entry.mel_frames {
        let t: usize = frame.parse()?;
        for (m, want) in values.iter().enumerate() {
            worst = worst.max((mel[m * frames + t] - want).abs());
        }
    }
    println!(
        "log-mel max abs diff over {} frames: {worst:e}",
        entry.mel_frames.len()
    );
    assert!(worst < 1e-4, "log-mel max abs diff {worst}");
    Ok(())
}

#[test]
fn windows_are_batch_invariant() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, encoder) = tiny_encoder()?;
    let read = |name: &str| {
        read_audio(
            &data().join("audio").join(name),
            16_000,
            &AudioLimits::default(),
        )
    };
    let short = read("short_0_2s.wav")?.samples;
    let long = read("long_62s.flac")?.samples;
    let stereo = read("stereo_44k1.wav")?.samples;
    let alone = encoder.embed(&[&short])?;
    let mixed = encoder.embed(&[&long, &short, &stereo])?;
    assert_eq!(mixed[0].windows.len(), 3);
    let diff = alone[0]
        .pooled
        .iter()
        .zip(&mixed[1].pooled)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("short clip alone vs in a batch of 5 windows: max abs diff {diff:e}");
    assert!(diff < 1e-5, "batch invariance: max abs diff {diff}");
    Ok(())
}

#[test]
fn bad_audio_fails_with_a_typed_error_naming_the_file() {
    let bad = data().join("audio/bad");
    let cases = [
        ("empty.wav", "empty"),
        ("text.wav", "not a supported audio file"),
        ("garbage.mp3", ""),
        ("truncated.flac", ""),
        ("lying_header.wav", "header promises"),
    ];
    for (file, reason) in cases {
        let path = bad.join(file);
        match read_audio(&path, 16_000, &AudioLimits::default()) {
            Err(ModelError::Media {
                file: named,
                reason: why,
            }) => {
                println!("{file}: {why}");
                assert!(named.ends_with(file), "{named} does not name {file}");
                assert!(why.contains(reason), "{file}: {why:?} lacks {reason:?}");
            }
            Ok(audio) => panic!("{file} decoded to {} samples", audio.samples.len()),
            Err(other) => panic!("{file}: untyped error {other}"),
        }
    }
}

#[test]
fn audio_over_the_duration_limit_is_refused_while_decoding() {
    let limits = AudioLimits {
        max_seconds: 30.0,
        ..AudioLimits::default()
    };
    let path = data().join("audio/long_62s.flac");
    match read_audio(&path, 16_000, &limits) {
        Err(ModelError::MediaLimit { reason, .. }) => {
            assert!(reason.contains("longer than the 30 s limit"), "{reason}")
        }
        other => panic!("expected a duration error, got {other:?}"),
    }
}
