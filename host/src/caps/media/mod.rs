//! The `media` capability (contract 1.x): a title's assets as `asset` resources.
//!
//! The host resolves each catalog asset to a file before the call and hands the plugin one handle
//! per asset. Nothing is read until the plugin asks; every answer is bounded by [`MediaLimits`],
//! and every failure names the plugin, the asset and the reason.

mod decoded;
mod host;

pub(crate) use decoded::blocking;
pub use decoded::{DecodeCounts, Decoded};

use crate::runtime::bindings::v1::types::{MediaError, MediaKind};
use std::path::PathBuf;
use tessera_models::preprocess::audio::AudioLimits;
use tessera_models::preprocess::image::ImageLimits;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// Bounds on what media calls may cost the host.
#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// Image decoding limits (file bytes, pixels).
    pub image: ImageLimits,
    /// Audio decoding limits (duration, file bytes).
    pub audio: AudioLimits,
    /// Largest text asset returned by `text`, in bytes.
    pub max_text_bytes: u64,
    /// Largest `read` chunk, in bytes.
    pub max_read_bytes: u32,
    /// Largest thumbnail side, in pixels.
    pub max_thumbnail_side: u32,
}

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            image: ImageLimits::default(),
            audio: AudioLimits::default(),
            max_text_bytes: 4 << 20,
            max_read_bytes: 1 << 20,
            max_thumbnail_side: 1024,
        }
    }
}

/// One asset of the title being analysed: what the guest's `asset` handle points at.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// The catalog's role: `poster`, `trailer`, `subtitles`, ...
    pub role: String,
    /// The file, resolved against the catalog's directory.
    pub path: PathBuf,
}

impl Asset {
    /// What the file holds, from its extension.
    pub fn media_kind(&self) -> MediaKind {
        let ext = self
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "png" | "jpg" | "jpeg" | "webp" | "gif" | "bmp" | "tif" | "tiff" => MediaKind::Image,
            "wav" | "flac" | "mp3" | "ogg" | "oga" | "m4a" | "mp4" | "aac" => MediaKind::Audio,
            "txt" | "srt" | "vtt" | "md" | "json" => MediaKind::Text,
            _ => MediaKind::Other,
        }
    }

    /// The name errors use: role and path.
    pub fn describe(&self) -> String {
        format!("{} asset {}", self.role, self.path.display())
    }
}

/// Per-instance state of the media capability.
#[derive(Debug, Clone)]
pub struct MediaCtx {
    /// The calling plugin, for errors and logs.
    pub plugin: String,
    /// Bounds on every call.
    pub limits: MediaLimits,
    /// The title's decoded assets, shared with the other plugins that run on it.
    pub decoded: std::sync::Arc<Decoded>,
}

/// What the media host functions see: their own state and the store's resource table, where
/// the asset handles live.
#[derive(Debug)]
pub struct MediaView<'a> {
    /// The capability's state.
    pub ctx: &'a mut MediaCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

struct MediaData;

impl HasData for MediaData {
    type Data<'a> = MediaView<'a>;
}

/// Links the `media` interface, with `get` building a [`MediaView`] from the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> MediaView<'_>,
) -> wasmtime::Result<()> {
    crate::runtime::bindings::v1::media::add_to_linker::<T, MediaData>(linker, get)
}

/// A models-crate media error as the guest sees it: over a limit, or not decodable.
pub(crate) fn media_error(e: tessera_models::ModelError) -> MediaError {
    match e {
        tessera_models::ModelError::MediaLimit { .. } => MediaError::TooLarge(e.to_string()),
        other => MediaError::Invalid(other.to_string()),
    }
}
