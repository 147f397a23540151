//! The CLIP vision path against transformers: the project's tiny CLIP (generated here, byte for
//! byte the model scripts/reference/clip_reference.py was run on) must reproduce the reference
//! pixel tensors and embeddings in tests/data/clip_tiny_reference.json, for every fixture image
//! in tests/data/images (odd sizes, alpha, palette, grey, EXIF rotation, CMYK, 16-bit, ...). Bad
//! fixtures in tests/data/images/bad must fail with a typed error naming the file.

mod common;

use common::{cosine, data};
use serde::Deserialize;
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::tiny::{TinyClipSpec, write_tiny_clip_vision};
use tessera_models::{ClipVisionEncoder, ImageEmbedder, ModelError};

#[derive(Deserialize)]
struct Reference {
    generator: String,
    images: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    #[serde(default)]
    pixel_values: Vec<f32>,
    #[serde(default)]
    embedding: Vec<f32>,
    #[serde(default)]
    error: Option<String>,
}

#[test]
fn matches_transformers_on_every_fixture() -> Result<(), Box<dyn std::error::Error>> {
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(data().join("clip_tiny_reference.json"))?)?;
    let model_dir = tempfile::tempdir()?;
    write_tiny_clip_vision(model_dir.path(), &TinyClipSpec::default())?;
    let encoder = ClipVisionEncoder::load(model_dir.path(), "tiny-clip", &common::device())?;
    let mut compared = 0;
    let (mut worst_pixel, mut worst_cos) = (0.0f32, 1.0f32);
    for entry in &reference.images {
        let path = data().join("images").join(&entry.file);
        let image = read_image(&path, &ImageLimits::default())?;
        if let Some(error) = &entry.error {
            // The reference could not process it; we must still decode it into something sane.
            println!(
                "{}: no reference ({error}); decoded to {}×{}",
                entry.file,
                image.width(),
                image.height()
            );
            continue;
        }
        let (pixels, _) = encoder.preprocess().pixels(&image);
        assert_eq!(pixels.len(), entry.pixel_values.len(), "{}", entry.file);
        let pixel_diff = pixels
            .iter()
            .zip(&entry.pixel_values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let embedding = encoder.embed(std::slice::from_ref(&image))?.remove(0);
        let cos = cosine(&embedding, &entry.embedding);
        println!(
            "{}: max pixel diff {pixel_diff:e}, cosine {cos}",
            entry.file
        );
        assert!(
            cos >= 0.999,
            "{}: cosine {cos} to {}",
            entry.file,
            reference.generator
        );
        worst_pixel = worst_pixel.max(pixel_diff);
        worst_cos = worst_cos.min(cos);
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} images compared");
    println!(
        "vs {}: {compared} images, max pixel diff {worst_pixel:e}, min cosine {worst_cos}",
        reference.generator
    );
    Ok(())
}

#[test]
fn bad_images_are_typed_errors_naming_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let mut seen = 0;
    for entry in std::fs::read_dir(data().join("images/bad"))? {
        let path = entry?.path();
        match read_image(&path, &ImageLimits::default()) {
            // Decompression bombs are refused as over a limit, the rest as unreadable.
            Err(ModelError::Media { file, reason } | ModelError::MediaLimit { file, reason }) => {
                assert!(
                    file.ends_with(&*path.file_name().unwrap_or_default().to_string_lossy()),
                    "{file}"
                );
                println!("{}: {reason}", path.display());
            }
            other => panic!("{}: expected a media error, got {other:?}", path.display()),
        }
        seen += 1;
    }
    assert!(seen >= 5);
    let bomb = read_image(&data().join("images/bad/bomb.png"), &ImageLimits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        bomb.contains("100000×100000") && bomb.contains("decompression bomb"),
        "{bomb}"
    );
    Ok(())
}
