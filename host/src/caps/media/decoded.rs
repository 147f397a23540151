//! Assets decoded for one title, shared by every plugin (and every call) that runs on it: an
//! image is decoded once, an audio file once per sample rate, however many plugins ask. The
//! cache lives as long as the title's analysis, so memory is bounded by one title's assets
//! (each under the media limits).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tessera_models::ModelError;
use tessera_models::preprocess::audio::{AudioLimits, DecodedAudio, read_audio};
use tessera_models::preprocess::image::{ImageLimits, read_image};

/// Most bytes of decoded media kept for one title: beyond it, further decodes are used and
/// dropped instead of kept, so titles in flight × this bounds the cache's memory.
pub const MAX_CACHED_BYTES: usize = 512 << 20;

/// Decoded assets of one title.
#[derive(Debug, Default)]
pub struct Decoded {
    images: Mutex<HashMap<PathBuf, Arc<image::RgbImage>>>,
    audio: Mutex<HashMap<(PathBuf, u32), Arc<DecodedAudio>>>,
    decodes: AtomicUsize,
    reuses: AtomicUsize,
    cached_bytes: AtomicUsize,
}

/// How often assets were decoded and how often a decoded one was reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCounts {
    /// Files decoded.
    pub decodes: usize,
    /// Requests served from an earlier decode.
    pub reuses: usize,
}

impl Decoded {
    /// A cache for one title.
    pub fn new() -> Arc<Self> {
        Arc::new(Decoded::default())
    }

    // Plugins on a title run one after another, so a lock held across a decode never makes
    // another plugin wait; only failures are not kept (each caller gets its own typed error).
    fn cached<K: std::hash::Hash + Eq, T>(
        &self,
        map: &Mutex<HashMap<K, Arc<T>>>,
        key: K,
        bytes: impl FnOnce(&T) -> usize,
        decode: impl FnOnce() -> Result<T, ModelError>,
    ) -> Result<Arc<T>, ModelError> {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = map.get(&key) {
            self.reuses.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        let value = Arc::new(blocking(decode)?);
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let size = bytes(&value);
        let kept = self.cached_bytes.load(Ordering::Relaxed);
        if kept.saturating_add(size) <= MAX_CACHED_BYTES {
            self.cached_bytes.fetch_add(size, Ordering::Relaxed);
            map.insert(key, value.clone());
        }
        Ok(value)
    }

    /// The image at `path`, decoded under `limits`.
    pub fn image(
        &self,
        path: &Path,
        limits: &ImageLimits,
    ) -> Result<Arc<image::RgbImage>, ModelError> {
        self.cached(
            &self.images,
            path.to_path_buf(),
            |i| i.as_raw().len(),
            || read_image(path, limits),
        )
    }

    /// The audio at `path`, mono at `rate`, decoded under `limits`.
    pub fn audio(
        &self,
        path: &Path,
        rate: u32,
        limits: &AudioLimits,
    ) -> Result<Arc<DecodedAudio>, ModelError> {
        self.cached(
            &self.audio,
            (path.to_path_buf(), rate),
            |a| a.samples.len() * std::mem::size_of::<f32>(),
            || read_audio(path, rate, limits),
        )
    }

    /// Decodes and reuses so far.
    pub fn counts(&self) -> DecodeCounts {
        DecodeCounts {
            decodes: self.decodes.load(Ordering::Relaxed),
            reuses: self.reuses.load(Ordering::Relaxed),
        }
    }
}

/// Runs CPU-heavy work (decoding a poster, seconds of audio) from a plugin call: on a thread of
/// the plugin runtime, the runtime's other calls move to another thread meanwhile, so a long
/// decode does not stall titles that are ready to run (their deadlines keep running). Outside
/// a multi-threaded runtime it simply runs.
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_image_once_and_keeps_failures_out() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.png");
        image::RgbImage::from_pixel(8, 4, image::Rgb([10, 20, 30])).save(&path)?;
        let decoded = Decoded::new();
        let limits = ImageLimits::default();
        let a = decoded.image(&path, &limits)?;
        let b = decoded.image(&path, &limits)?;
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.dimensions(), (8, 4));
        let missing = dir.path().join("missing.png");
        assert!(decoded.image(&missing, &limits).is_err());
        assert!(decoded.image(&missing, &limits).is_err());
        assert_eq!(
            decoded.counts(),
            DecodeCounts {
                decodes: 1,
                reuses: 1
            }
        );
        Ok(())
    }
}
