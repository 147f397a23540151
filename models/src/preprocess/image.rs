//! Images in, CLIP pixel tensors out: decode safely, orient, make RGB, then resize, crop, rescale
//! and normalise exactly as transformers' (PIL-based) `CLIPImageProcessor` does.
//!
//! Decoding is bounded before any pixel is allocated: file size, and width × height from the
//! header, so a decompression bomb is refused from its header alone. The resize is a port of
//! Pillow's BICUBIC resampler (Resample.c: Keys a = -0.5, support widened by the downscale
//! factor, 22-bit fixed-point coefficients, horizontal pass first, rounding to 8 bits between
//! passes), because the reference models were trained on Pillow's output and a different bicubic
//! moves every pixel by a level or two.

use super::resize::{Filter, resize};
use crate::ModelError;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde::Deserialize;
use std::io::Cursor;
use std::path::Path;

/// Bounds on what an image may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded file, in bytes.
    pub max_bytes: u64,
    /// Largest decoded image, in pixels (width × height).
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        // 64 MiB files; 50 megapixels, beyond any poster or still and far below a bomb.
        ImageLimits {
            max_bytes: 64 << 20,
            max_pixels: 50_000_000,
        }
    }
}

fn media(source: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Media {
        file: source.to_string(),
        reason: reason.into(),
    }
}

fn over_limit(source: &str, reason: impl Into<String>) -> ModelError {
    ModelError::MediaLimit {
        file: source.to_string(),
        reason: reason.into(),
    }
}

/// Decodes an image file's bytes into upright RGB. `source` names the file in errors.
///
/// Transparent pixels are composited onto white (as transformers' `convert_rgb` does), grey and
/// palette images are expanded, 16-bit channels are rounded to 8 bits, and the EXIF orientation
/// is applied.
pub fn decode_image(
    bytes: &[u8],
    source: &str,
    limits: &ImageLimits,
) -> Result<RgbImage, ModelError> {
    if bytes.is_empty() {
        return Err(media(source, "the file is empty (0 bytes)"));
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(over_limit(
            source,
            format!(
                "{} bytes; the limit is {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| media(source, e.to_string()))?;
    if reader.format().is_none() {
        return Err(media(
            source,
            "not an image in a supported format (PNG, JPEG, WebP, GIF, BMP, TIFF)",
        ));
    }
    let mut reader = reader;
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decode_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| media(source, format!("unreadable image header: {e}")))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(media(
            source,
            format!("the image is {width}×{height} pixels"),
        ));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(over_limit(
            source,
            format!(
                "the header claims {width}×{height} pixels; the limit is {} pixels (a decompression bomb?)",
                limits.max_pixels
            ),
        ));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| media(source, format!("corrupt or truncated image: {e}")))?;
    image.apply_orientation(orientation);
    Ok(to_rgb(image))
}

/// Reads and decodes an image file.
pub fn read_image(path: &Path, limits: &ImageLimits) -> Result<RgbImage, ModelError> {
    let source = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| media(&source, e.to_string()))?
        .len();
    if size > limits.max_bytes {
        return Err(over_limit(
            &source,
            format!("{size} bytes; the limit is {} bytes", limits.max_bytes),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| media(&source, e.to_string()))?;
    decode_image(&bytes, &source, limits)
}

/// Width and height of the image file at `path`, read from its header: nothing is decoded, and
/// the file's size and pixel count are checked against `limits` as [`read_image`] would.
pub fn image_dimensions(path: &Path, limits: &ImageLimits) -> Result<(u32, u32), ModelError> {
    let source = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| media(&source, e.to_string()))?
        .len();
    if size == 0 {
        return Err(media(&source, "the file is empty (0 bytes)"));
    }
    if size > limits.max_bytes {
        return Err(over_limit(
            &source,
            format!("{size} bytes; the limit is {} bytes", limits.max_bytes),
        ));
    }
    let reader = ImageReader::open(path)
        .map_err(|e| media(&source, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| media(&source, e.to_string()))?;
    if reader.format().is_none() {
        return Err(media(
            &source,
            "not an image in a supported format (PNG, JPEG, WebP, GIF, BMP, TIFF)",
        ));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| media(&source, format!("unreadable image header: {e}")))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(over_limit(
            &source,
            format!(
                "the header claims {width}×{height} pixels; the limit is {} pixels",
                limits.max_pixels
            ),
        ));
    }
    Ok((width, height))
}

/// RGB with transparency composited onto white.
fn to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let alpha = u32::from(src[3]);
        for c in 0..3 {
            // Pillow's `alpha_composite` over opaque white, in its own fixed-point arithmetic
            // (AlphaComposite.c, 7 precision bits, divide by 255 as two shifts).
            let blended = (u32::from(src[c]) * alpha + 255 * (255 - alpha)) * 128 + (0x80 << 7);
            dst[c] = ((((blended >> 8) + blended) >> 8) >> 7) as u8;
        }
    }
    out
}

/// A size in a preprocessor config: `224`, `{"shortest_edge": 224}` or `{"height": .., "width": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Square(u32),
    Shortest { shortest_edge: u32 },
    Exact { height: u32, width: u32 },
}

#[derive(Debug, Deserialize)]
struct PreprocessorConfig {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<SizeSpec>,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "one_over_255")]
    rescale_factor: f32,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn one_over_255() -> f32 {
    1.0 / 255.0
}

/// How a preprocessor resizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The shorter side becomes this long, the aspect ratio kept (CLIP).
    ShortestEdge(u32),
    /// Exactly (height, width), the aspect ratio dropped (SigLIP).
    Exact(u32, u32),
}

/// How images become pixel tensors, as `preprocessor_config.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocess {
    /// How to resize (None: no resize).
    pub resize: Option<Resize>,
    /// The resampling filter.
    pub filter: Filter,
    /// Center crop to (height, width) (None: no crop).
    pub crop: Option<(u32, u32)>,
    /// Multiplier from 0..255 to the model's range.
    pub rescale: f32,
    /// Per-channel mean subtracted after rescaling.
    pub mean: [f32; 3],
    /// Per-channel std divided by after subtracting the mean.
    pub std: [f32; 3],
}

impl ClipPreprocess {
    /// Reads `preprocessor_config.json`.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let config: PreprocessorConfig =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        // PIL's numbering: 2 = BILINEAR, 3 = BICUBIC.
        let filter = match config.resample {
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            other if config.do_resize => {
                return Err(bad(format!(
                    "resample {other} is not supported (2, bilinear, or 3, bicubic)"
                )));
            }
            _ => Filter::Bicubic,
        };
        let resize = match (config.do_resize, config.size) {
            (false, _) => None,
            (true, Some(SizeSpec::Square(s) | SizeSpec::Shortest { shortest_edge: s })) => {
                Some(Resize::ShortestEdge(s))
            }
            (true, Some(SizeSpec::Exact { height, width })) => Some(Resize::Exact(height, width)),
            (true, None) => return Err(bad("do_resize without a size".into())),
        };
        let crop = match (config.do_center_crop, config.crop_size) {
            (false, _) => None,
            (true, Some(SizeSpec::Square(s))) => Some((s, s)),
            (true, Some(SizeSpec::Exact { height, width })) => Some((height, width)),
            // Processors without a crop step (SigLIP's) name no crop_size.
            (true, None) => None,
            (true, Some(other @ SizeSpec::Shortest { .. })) => {
                return Err(bad(format!("crop_size {other:?} is not supported")));
            }
        };
        let (mean, std) = if config.do_normalize {
            (
                config.image_mean.unwrap_or([0.0; 3]),
                config.image_std.unwrap_or([1.0; 3]),
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(bad(format!(
                "image_std {std:?} must be finite and non-zero"
            )));
        }
        let rescale = if config.do_rescale {
            config.rescale_factor
        } else {
            1.0
        };
        Ok(ClipPreprocess {
            resize,
            filter,
            crop,
            rescale,
            mean,
            std,
        })
    }

    /// The (height, width) of the tensors this produces, if fixed.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        match (self.crop, self.resize) {
            (Some(crop), _) => Some(crop),
            (None, Some(Resize::Exact(h, w))) => Some((h, w)),
            _ => None,
        }
    }

    /// Resize, crop, rescale and normalise: a `3 × H × W` tensor laid out channel-major.
    pub fn pixels(&self, image: &RgbImage) -> (Vec<f32>, (u32, u32)) {
        let mut image = image.clone();
        match self.resize {
            Some(Resize::ShortestEdge(edge)) => {
                let (w, h) = shortest_edge_size(image.width(), image.height(), edge);
                image = resize(&image, w, h, self.filter);
            }
            Some(Resize::Exact(h, w)) => image = resize(&image, w, h, self.filter),
            None => {}
        }
        if let Some((ch, cw)) = self.crop {
            image = center_crop(&image, ch, cw);
        }
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut out = vec![0f32; 3 * w * h];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                out[c * w * h + i] =
                    (f32::from(pixel[c]) * self.rescale - self.mean[c]) / self.std[c];
            }
        }
        (out, (h as u32, w as u32))
    }
}

/// transformers' `get_resize_output_image_size(default_to_square=False)`: the short side becomes
/// `edge`, the long side scales with it, truncated.
pub fn shortest_edge_size(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| {
        ((u64::from(edge) * u64::from(long)) / u64::from(short)).max(1) as u32
    };
    if width <= height {
        (edge, scaled(height, width))
    } else {
        (scaled(width, height), edge)
    }
}

/// transformers' `center_crop`: offsets `(orig - crop) // 2`, zero padding when the image is
/// smaller than the crop.
pub fn center_crop(image: &RgbImage, height: u32, width: u32) -> RgbImage {
    let (iw, ih) = (i64::from(image.width()), image.height() as i64);
    let top = (ih - i64::from(height)).div_euclid(2);
    let left = (iw - i64::from(width)).div_euclid(2);
    RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (i64::from(x) + left, i64::from(y) + top);
        if (0..iw).contains(&sx) && (0..ih).contains(&sy) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_transformers_rounding() {
        assert_eq!(shortest_edge_size(640, 480, 224), (298, 224));
        assert_eq!(shortest_edge_size(480, 640, 224), (224, 298));
        assert_eq!(shortest_edge_size(1, 1, 32), (32, 32));
        assert_eq!(shortest_edge_size(400, 20, 32), (640, 32));
    }

    #[test]
    fn resize_keeps_a_flat_image_flat_and_is_identity_at_same_size() {
        let flat = RgbImage::from_pixel(37, 11, image::Rgb([200, 10, 77]));
        let resized = super::super::resize::resize_bicubic(&flat, 13, 29);
        assert!(resized.pixels().all(|p| p.0 == [200, 10, 77]));
        let noisy = RgbImage::from_fn(9, 7, |x, y| {
            image::Rgb([(x * 29 + y * 7) as u8, (x * y) as u8, 3])
        });
        assert_eq!(super::super::resize::resize_bicubic(&noisy, 9, 7), noisy);
    }

    #[test]
    fn center_crop_offsets_and_padding() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let crop = center_crop(&image, 1, 2);
        assert_eq!(crop.get_pixel(0, 0).0, [1, 1, 0]);
        let padded = center_crop(&image, 5, 5);
        assert_eq!(padded.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(padded.get_pixel(2, 2).0, [2, 1, 0]);
    }

    #[test]
    fn transparency_goes_onto_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        let rgb = to_rgb(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }

    #[test]
    fn bad_bytes_are_typed_errors_naming_the_source() {
        let limits = ImageLimits::default();
        let msg = |bytes: &[u8]| {
            decode_image(bytes, "poster.png", &limits)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg(b"").contains("poster.png") && msg(b"").contains("empty"));
        assert!(msg(b"this is text, not a picture").contains("not an image"));
        let tiny = ImageLimits {
            max_bytes: 4,
            ..limits
        };
        let err = decode_image(b"12345", "big.png", &tiny)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("the limit is 4 bytes"), "{err}");
    }
}
