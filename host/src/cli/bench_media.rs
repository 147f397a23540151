//! `tessera bench audio|image`: media throughput of the encoders, split into decode, preprocess
//! and inference, for the tiny models and for published model shapes with random weights.
//!
//! Each model runs in its own child process so that its peak RSS (VmHWM) is its own.
//!
//! With `--concurrency N`, a second figure runs the way ingestion does: N callers each decode and
//! preprocess their own media and submit to the model's batching scheduler, so CPU work overlaps
//! with inference and batches fill from many callers at once.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tessera_models::audio::{WindowFeatures, pool_windows};
use tessera_models::batching::BatchConfig;
use tessera_models::preprocess::audio::{AudioLimits, read_audio};
use tessera_models::preprocess::image::{ImageLimits, decode_image};
use tessera_models::tiny::{
    TinyClipSpec, TinyWhisperSpec, write_tiny_clip_vision, write_tiny_whisper,
};
use tessera_models::{
    AudioEmbedder, BatchedAudio, BatchedImage, ClipVisionEncoder, DeviceChoice, ImageEmbedder,
    WhisperAudioEncoder, select_device,
};

/// Most concurrent callers. Each has one request waiting at a time, so this stays well inside
/// the batching queue's default capacity (1024), past which requests are refused as overloaded.
const MAX_CONCURRENCY: usize = 512;

/// Published encoder shapes (random weights): name, d_model, layers, heads, ffn.
const WHISPER_SHAPES: [(&str, usize, usize, usize, usize); 4] = [
    ("tiny", 64, 2, 4, 128),
    ("whisper-tiny", 384, 4, 6, 1536),
    ("whisper-base", 512, 6, 8, 2048),
    ("whisper-small", 768, 12, 12, 3072),
];

/// Published CLIP vision shapes (random weights): name, hidden, layers, heads, ffn, image, patch,
/// projection.
type ClipShape = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);
const CLIP_SHAPES: [ClipShape; 3] = [
    ("tiny", 32, 2, 4, 64, 32, 8, 16),
    ("clip-vit-base-patch32", 768, 12, 12, 3072, 224, 32, 512),
    ("clip-vit-large-patch14", 1024, 24, 16, 4096, 224, 14, 768),
];

/// Runs each named shape in a child process (`--one`), or this one when given one.
pub fn audio(
    shapes: &[String],
    seconds: f64,
    device: DeviceChoice,
    concurrency: usize,
) -> anyhow::Result<ExitCode> {
    check_concurrency(concurrency)?;
    for shape in shapes {
        let Some(&(_, d, layers, heads, ffn)) = WHISPER_SHAPES.iter().find(|s| s.0 == shape) else {
            bail!(
                "unknown audio shape {shape:?}; known: {}",
                WHISPER_SHAPES.map(|s| s.0).join(", ")
            );
        };
        if shapes.len() > 1 {
            child(&[
                "audio",
                "--shapes",
                shape,
                "--seconds",
                &seconds.to_string(),
                "--device",
                &device.to_string(),
                "--concurrency",
                &concurrency.to_string(),
            ])?;
            continue;
        }
        let dir = scratch(shape)?;
        write_tiny_whisper(
            &dir,
            &TinyWhisperSpec {
                d_model: d,
                layers,
                heads,
                ffn,
                ..TinyWhisperSpec::default()
            },
        )?;
        let device = select_device(device)?;
        let encoder = WhisperAudioEncoder::load(&dir, shape, &device)?;
        let wav = dir.join("bench.wav");
        write_test_wav(&wav, 44_100, 2, seconds)?;
        let rss_loaded = rss_kib("VmRSS");

        let t = Instant::now();
        let audio = read_audio(&wav, encoder.sample_rate(), &AudioLimits::default())?;
        let decode = t.elapsed().as_secs_f64();
        // Each stage is timed on its own (features, then the encoder over every window at once),
        // as the batching scheduler runs them: on a GPU the encoder is a small share, and
        // subtracting stage times from a total would drown it in noise.
        let t = Instant::now();
        let features: Vec<WindowFeatures> = audio
            .samples
            .chunks(encoder.window_samples())
            .map(|w| encoder.window_features(w))
            .collect();
        let mel = t.elapsed().as_secs_f64();
        encoder.embed_windows(&features[..1])?; // warm-up: kernels, allocator
        let t = Instant::now();
        let vectors = encoder.embed_windows(&features)?;
        let inference = t.elapsed().as_secs_f64();
        let positions: Vec<usize> = features.iter().map(|f| f.positions).collect();
        if pool_windows(&vectors, &positions).len() != encoder.dimension() {
            bail!("the {shape} encoder returned vectors of the wrong length");
        }
        println!(
            "{shape:14} d={d:<4} {seconds:.0} s of 44.1 kHz stereo WAV, {} windows: decode+resample {:.1} ms, \
             log-mel {:.1} ms, encoder {:.1} ms -> {:.1} audio-s/s end to end ({:.1} audio-s/s encoder only); \
             RSS after load {} MiB, peak {} MiB",
            vectors.len(),
            decode * 1e3,
            mel * 1e3,
            inference * 1e3,
            seconds / (decode + mel + inference),
            seconds / inference.max(1e-9),
            rss_loaded / 1024,
            rss_kib("VmHWM") / 1024,
        );
        if concurrency > 0 {
            let clips = 4 * concurrency;
            let rate = audio_concurrent(Arc::new(encoder), &wav, clips, concurrency)? * seconds;
            println!(
                "{shape:14} {concurrency} callers, {clips} clips, each decoded and turned into log-mel on \
                 its caller's thread, windows batched across callers: {rate:.1} audio-s/s end to end"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// Clips per second when `callers` threads each decode, resample and featurise whole clips and
/// submit their windows to one batching scheduler.
fn audio_concurrent(
    encoder: Arc<dyn AudioEmbedder>,
    wav: &Path,
    clips: usize,
    callers: usize,
) -> anyhow::Result<f64> {
    let batched = BatchedAudio::start(encoder, BatchConfig::default())?;
    let rate = batched.sample_rate();
    concurrently(clips, callers, |_| {
        let audio = read_audio(wav, rate, &AudioLimits::default())?;
        batched.embed(&[&audio.samples])?;
        Ok(())
    })
}

/// Images per second for each named CLIP shape, one child process each.
pub fn image(
    shapes: &[String],
    images: usize,
    batch: usize,
    device: DeviceChoice,
    concurrency: usize,
) -> anyhow::Result<ExitCode> {
    if batch == 0 || images == 0 {
        bail!("--images and --batch must be positive");
    }
    check_concurrency(concurrency)?;
    for shape in shapes {
        let Some(&(_, hidden, layers, heads, ffn, side, patch, projection)) =
            CLIP_SHAPES.iter().find(|s| s.0 == shape)
        else {
            bail!(
                "unknown image shape {shape:?}; known: {}",
                CLIP_SHAPES.map(|s| s.0).join(", ")
            );
        };
        if shapes.len() > 1 {
            child(&[
                "image",
                "--shapes",
                shape,
                "--images",
                &images.to_string(),
                "--batch",
                &batch.to_string(),
                "--device",
                &device.to_string(),
                "--concurrency",
                &concurrency.to_string(),
            ])?;
            continue;
        }
        let dir = scratch(shape)?;
        write_tiny_clip_vision(
            &dir,
            &TinyClipSpec {
                hidden,
                layers,
                heads,
                intermediate: ffn,
                image_size: side,
                patch_size: patch,
                projection,
                ..TinyClipSpec::default()
            },
        )?;
        let device = select_device(device)?;
        let encoder = ClipVisionEncoder::load(&dir, shape, &device)?;
        let rss_loaded = rss_kib("VmRSS");
        let jpeg = test_jpeg()?;

        let t = Instant::now();
        let decoded = (0..images)
            .map(|i| decode_image(&jpeg, &format!("bench-{i}.jpg"), &ImageLimits::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let decode = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let pixels: Vec<Vec<f32>> = decoded
            .iter()
            .map(|i| ImageEmbedder::preprocess(&encoder, i))
            .collect();
        let preprocess = t.elapsed().as_secs_f64();
        encoder.embed_pixels(&pixels[..1])?; // warm-up: kernels, allocator
        let t = Instant::now();
        for chunk in pixels.chunks(batch) {
            encoder.embed_pixels(chunk)?;
        }
        let inference = t.elapsed().as_secs_f64();
        let n = images as f64;
        println!(
            "{shape:22} {images} 1280×720 JPEGs, batch {batch}: decode {:.2} ms/image, preprocess {:.2} ms/image, \
             encoder {:.2} ms/image -> {:.1} images/s end to end ({:.1} encoder only); RSS after load {} MiB, peak {} MiB",
            decode * 1e3 / n,
            preprocess * 1e3 / n,
            inference * 1e3 / n,
            n / (decode + preprocess + inference),
            n / inference.max(1e-9),
            rss_loaded / 1024,
            rss_kib("VmHWM") / 1024,
        );
        if concurrency > 0 {
            let batched = BatchedImage::start(
                Arc::new(encoder),
                BatchConfig {
                    max_items: batch,
                    ..BatchConfig::default()
                },
            )?;
            let rate = concurrently(images, concurrency, |i| {
                let image =
                    decode_image(&jpeg, &format!("bench-{i}.jpg"), &ImageLimits::default())?;
                let pixels = batched.preprocess(&image);
                batched.embed_pixels(&[pixels])?;
                Ok(())
            })?;
            println!(
                "{shape:22} {} callers, each decoding and preprocessing its own image, \
                 images batched across callers (at most {batch}): {rate:.1} images/s end to end",
                concurrency.min(images)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExitCode::SUCCESS)
}

fn check_concurrency(concurrency: usize) -> anyhow::Result<()> {
    if concurrency > MAX_CONCURRENCY {
        bail!("--concurrency {concurrency} is over the most this bench runs, {MAX_CONCURRENCY}");
    }
    Ok(())
}

/// Runs `work(0..jobs)` on `callers` threads, each taking the next job when it is done with one,
/// and returns jobs per second. After a failure the others stop taking jobs; the first failure
/// is returned, naming its job.
fn concurrently(
    jobs: usize,
    callers: usize,
    work: impl Fn(usize) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<f64> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let outcomes: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..callers.min(jobs))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            return Ok(());
                        }
                        if let Err(e) = work(job).with_context(|| format!("benchmark job {job}")) {
                            // Past the end: the other callers stop at their next job.
                            next.store(jobs, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a benchmark caller panicked")))
            })
            .collect()
    });
    outcomes.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(jobs as f64 / start.elapsed().as_secs_f64())
}

fn child(args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the tessera binary")?;
    let status = std::process::Command::new(exe)
        .arg("bench")
        .args(args)
        .status()
        .context("running a benchmark child")?;
    if !status.success() {
        bail!("benchmark child {args:?} failed: {status}");
    }
    Ok(())
}

fn scratch(shape: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tessera-bench-{shape}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A kernel memory figure of this process from /proc/self/status, in KiB (0 where unavailable).
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A 16-bit PCM WAV of tones and a chirp, `channels` different channels.
fn write_test_wav(path: &Path, rate: u32, channels: u16, seconds: f64) -> anyhow::Result<()> {
    let frames = (f64::from(rate) * seconds) as usize;
    let mut data = Vec::with_capacity(frames * usize::from(channels) * 2);
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            let f = 220.0 * f64::from(c + 1);
            let v = 0.4 * (std::f64::consts::TAU * f * t).sin()
                + 0.2 * (std::f64::consts::TAU * (100.0 + 300.0 * t) * t).sin();
            data.extend_from_slice(&((v * 32_767.0) as i16).to_le_bytes());
        }
    }
    let block = channels * 2;
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// A 1280×720 JPEG still with gradients and edges (a typical poster/still size).
fn test_jpeg() -> anyhow::Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(1280, 720, |x, y| {
        image::Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            if (x / 40 + y / 40) % 2 == 0 { 200 } else { 30 },
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[test]
    fn concurrently_runs_every_job_once_and_reports_a_failure() -> anyhow::Result<()> {
        let seen = Mutex::new(Vec::new());
        let rate = concurrently(100, 4, |job| {
            seen.lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(job);
            Ok(())
        })?;
        assert!(rate > 0.0);
        let seen = seen.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
        assert_eq!(seen.len(), 100);
        assert_eq!(seen.into_iter().collect::<HashSet<_>>().len(), 100);
        let failed = concurrently(10, 3, |job| {
            if job == 7 {
                bail!("job 7 failed");
            }
            Ok(())
        });
        assert!(failed.is_err_and(|e| format!("{e:#}").contains("benchmark job 7: job 7 failed")));
        Ok(())
    }

    #[test]
    fn tiny_media_run_through_the_batching_scheduler() -> anyhow::Result<()> {
        let tiny = || vec!["tiny".to_string()];
        assert_eq!(
            image(&tiny(), 4, 2, DeviceChoice::Cpu, 2)?,
            ExitCode::SUCCESS
        );
        assert_eq!(
            audio(&tiny(), 1.0, DeviceChoice::Cpu, 2)?,
            ExitCode::SUCCESS
        );
        let too_many = image(&tiny(), 4, 2, DeviceChoice::Cpu, MAX_CONCURRENCY + 1);
        assert!(too_many.is_err_and(|e| e.to_string().contains("--concurrency 513")));
        Ok(())
    }
}
