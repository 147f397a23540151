//! Pillow's resampling (`Image.resize` without `reducing_gap`), bit for bit: separable
//! convolution with the filter stretched by the scale when downsampling, 8-bit fixed-point
//! weights, horizontal pass then vertical. BICUBIC is CLIP's, BILINEAR SigLIP's.

use image::RgbImage;

/// A resampling filter, as PIL numbers them in preprocessor configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// PIL 2: the triangle filter, support 1.
    Bilinear,
    /// PIL 3: Keys' cubic with a = -0.5, support 2.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Bicubic => bicubic_filter(x),
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output position, the first input
/// index and fixed-point weights.
fn coefficients(in_size: u32, out_size: u32, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if scaled < 0.0 {
                        scaled - 0.5
                    } else {
                        scaled + 0.5
                    }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes with Pillow's BICUBIC filter.
pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize(image, width, height, Filter::Bicubic)
}

/// Resizes with `filter`, bit for bit as Pillow: horizontal pass, then vertical.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (iw, ih) = image.dimensions();
    let src = image.as_raw();
    let horizontal = if width != iw {
        let coeffs = coefficients(iw, width, filter);
        let mut out = vec![0u8; (width * ih * 3) as usize];
        for y in 0..ih as usize {
            let row = &src[y * iw as usize * 3..(y + 1) * iw as usize * 3];
            for (x, (xmin, k)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                    for (i, w) in k.iter().enumerate() {
                        sum += i64::from(row[(xmin + i) * 3 + c]) * i64::from(*w);
                    }
                    out[(y * width as usize + x) * 3 + c] = clip8(sum);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    let vertical = if height != ih {
        let coeffs = coefficients(ih, height, filter);
        let stride = width as usize * 3;
        let mut out = vec![0u8; stride * height as usize];
        for (y, (ymin, k)) in coeffs.iter().enumerate() {
            for i in 0..stride {
                let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                for (j, w) in k.iter().enumerate() {
                    sum += i64::from(horizontal[(ymin + j) * stride + i]) * i64::from(*w);
                }
                out[y * stride + i] = clip8(sum);
            }
        }
        out
    } else {
        horizontal
    };
    // The buffer length is width × height × 3 by construction.
    RgbImage::from_raw(width, height, vertical).unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_keeps_flat_images_flat_and_averages_when_halving() {
        let flat = RgbImage::from_pixel(31, 17, image::Rgb([9, 99, 199]));
        assert!(
            resize(&flat, 8, 40, Filter::Bilinear)
                .pixels()
                .all(|p| p.0 == [9, 99, 199])
        );
        // Halving a 0/200 checker row with the stretched triangle gives the mean, ±1 for
        // rounding at the edges.
        let stripes = RgbImage::from_fn(8, 1, |x, _| {
            image::Rgb([if x % 2 == 0 { 0 } else { 200 }; 3])
        });
        let half = resize(&stripes, 4, 1, Filter::Bilinear);
        for p in half.pixels().skip(1).take(2) {
            assert!((i32::from(p.0[0]) - 100).abs() <= 1, "{p:?}");
        }
    }
}
