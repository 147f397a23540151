//! `media::HostAsset` on [`MediaView`]: every method resolves the handle, checks the limits, then
//! reads only what it must.

use super::{Asset, MediaView, media_error};
use crate::runtime::bindings::v1::media::{self, RgbImage};
use crate::runtime::bindings::v1::types::{MediaError, MediaKind};
use std::io::{Read, Seek, SeekFrom};
use tessera_models::preprocess::image::image_dimensions;
use tessera_models::preprocess::resize::{Filter, resize};
use wasmtime::component::Resource;

/// Audio duration is measured on samples decoded at this rate (the rate does not change the
/// duration; a low one keeps the resampler cheap).
const DURATION_RATE: u32 = 16_000;

impl MediaView<'_> {
    fn asset(&self, handle: &Resource<Asset>) -> Result<&Asset, MediaError> {
        self.table.get(handle).map_err(|e| {
            MediaError::Unavailable(format!("plugin {}: bad asset handle: {e}", self.ctx.plugin))
        })
    }
}

fn unavailable(asset: &Asset, e: impl std::fmt::Display) -> MediaError {
    MediaError::Unavailable(format!("{}: {e}", asset.describe()))
}

impl media::HostAsset for MediaView<'_> {
    fn role(&mut self, handle: Resource<Asset>) -> String {
        self.asset(&handle)
            .map(|a| a.role.clone())
            .unwrap_or_default()
    }

    fn media_kind(&mut self, handle: Resource<Asset>) -> MediaKind {
        self.asset(&handle)
            .map(Asset::media_kind)
            .unwrap_or(MediaKind::Other)
    }

    fn byte_size(&mut self, handle: Resource<Asset>) -> Result<u64, MediaError> {
        let asset = self.asset(&handle)?;
        std::fs::metadata(&asset.path)
            .map(|m| m.len())
            .map_err(|e| unavailable(asset, e))
    }

    fn image_size(&mut self, handle: Resource<Asset>) -> Result<(u32, u32), MediaError> {
        let asset = self.asset(&handle)?;
        image_dimensions(&asset.path, &self.ctx.limits.image).map_err(media_error)
    }

    fn thumbnail(
        &mut self,
        handle: Resource<Asset>,
        max_side: u32,
    ) -> Result<RgbImage, MediaError> {
        let limit = self.ctx.limits.max_thumbnail_side;
        if max_side == 0 || max_side > limit {
            return Err(MediaError::Invalid(format!(
                "thumbnail side {max_side} is outside 1..={limit}"
            )));
        }
        let asset = self.asset(&handle)?;
        let image = self
            .ctx
            .decoded
            .image(&asset.path, &self.ctx.limits.image)
            .map_err(media_error)?;
        let (w, h) = image.dimensions();
        let scale = f64::from(max_side) / f64::from(w.max(h));
        let image = if scale < 1.0 {
            let fit = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
            resize(&image, fit(w), fit(h), Filter::Bilinear)
        } else {
            (*image).clone()
        };
        Ok(RgbImage {
            width: image.width(),
            height: image.height(),
            pixels: image.into_raw(),
        })
    }

    fn audio_duration(&mut self, handle: Resource<Asset>) -> Result<f64, MediaError> {
        let asset = self.asset(&handle)?;
        self.ctx
            .decoded
            .audio(&asset.path, DURATION_RATE, &self.ctx.limits.audio)
            .map(|audio| audio.seconds())
            .map_err(media_error)
    }

    fn text(&mut self, handle: Resource<Asset>) -> Result<String, MediaError> {
        let asset = self.asset(&handle)?;
        let limit = self.ctx.limits.max_text_bytes;
        let size = std::fs::metadata(&asset.path)
            .map_err(|e| unavailable(asset, e))?
            .len();
        if size > limit {
            return Err(MediaError::TooLarge(format!(
                "{}: {size} bytes; the text limit is {limit} bytes",
                asset.describe()
            )));
        }
        let bytes = std::fs::read(&asset.path).map_err(|e| unavailable(asset, e))?;
        String::from_utf8(bytes).map_err(|e| {
            MediaError::Invalid(format!(
                "{}: not UTF-8 text (invalid byte at {})",
                asset.describe(),
                e.utf8_error().valid_up_to()
            ))
        })
    }

    fn read(
        &mut self,
        handle: Resource<Asset>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, MediaError> {
        let limit = self.ctx.limits.max_read_bytes;
        if len > limit {
            return Err(MediaError::TooLarge(format!(
                "read of {len} bytes; at most {limit} per call"
            )));
        }
        let asset = self.asset(&handle)?;
        let mut file = std::fs::File::open(&asset.path).map_err(|e| unavailable(asset, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| unavailable(asset, e))?;
        let mut out = Vec::with_capacity(len as usize);
        file.take(u64::from(len))
            .read_to_end(&mut out)
            .map_err(|e| unavailable(asset, e))?;
        Ok(out)
    }

    fn drop(&mut self, handle: Resource<Asset>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl media::Host for MediaView<'_> {}
