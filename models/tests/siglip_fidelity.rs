//! SigLIP against transformers: the project's tiny SigLIP (generated here, byte for byte the model
//! scripts/reference/zero_shot_reference.py was run on) must reproduce the reference token ids,
//! text embeddings (cosine ≥ 0.9999), image embeddings (cosine ≥ 0.999, through the BILINEAR
//! exact-resize preprocessing) and the sigmoid zero-shot scores of
//! tests/data/siglip_tiny_reference.json.

mod common;

use common::{cosine, data, zero_shot_reference};
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::tiny::{TinySiglipSpec, write_tiny_siglip};
use tessera_models::zero_shot::{Scoring, Taxonomy, ZeroShot};
use tessera_models::{ImageEmbedder, SiglipTextEncoder, SiglipVisionEncoder, TextEmbedder};

#[test]
fn siglip_towers_and_zero_shot_match_transformers() -> Result<(), Box<dyn std::error::Error>> {
    let reference = zero_shot_reference("siglip_tiny_reference.json")?;
    let dir = tempfile::tempdir()?;
    write_tiny_siglip(dir.path(), &TinySiglipSpec::default())?;
    let device = common::device();
    let text = SiglipTextEncoder::load(dir.path(), "tiny-siglip", &device)?;
    let vision = SiglipVisionEncoder::load(dir.path(), "tiny-siglip", &device)?;
    let (scale, bias) = text.logits().ok_or("no logit scale/bias")?;
    assert!((scale - reference.logit_scale).abs() < 1e-6);
    assert!(
        (bias
            - reference
                .logit_bias
                .ok_or("no logit_bias in the reference")?)
        .abs()
            < 1e-6
    );

    let texts: Vec<&str> = reference.prompts.iter().map(|p| p.text.as_str()).collect();
    let batched = text.embed(&texts)?;
    let mut worst_text = 1.0f32;
    for (prompt, in_batch) in reference.prompts.iter().zip(&batched) {
        assert_eq!(
            text.token_ids(&prompt.text)?,
            prompt.ids,
            "{:?}",
            prompt.text
        );
        let alone = text.embed(&[&prompt.text])?.remove(0);
        worst_text = worst_text.min(cosine(&alone, &prompt.embedding));
        let diff = alone
            .iter()
            .zip(in_batch)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{:?}: alone vs batched {diff}", prompt.text);
    }
    assert!(worst_text >= 0.9999, "worst text cosine {worst_text}");

    let taxonomy = Taxonomy::read(&data().join("taxonomy.toml"))?;
    let scoring = Scoring::Sigmoid {
        logit_scale: scale,
        logit_bias: bias,
    };
    let zero_shot = ZeroShot::new(&text, &taxonomy, scoring)?;
    let (mut worst_image, mut worst_score) = (1.0f32, 0.0f32);
    for query in &reference.queries {
        let vector = match (&query.text, &query.image) {
            (Some(t), _) => {
                assert_eq!(text.token_ids(t)?, query.ids, "{t:?}");
                text.embed(&[t])?.remove(0)
            }
            (None, Some(name)) => {
                let image = read_image(&data().join("images").join(name), &ImageLimits::default())?;
                let v = vision.embed(&[image])?.remove(0);
                worst_image = worst_image.min(cosine(&v, &query.embedding));
                v
            }
            (None, None) => return Err("a query with neither text nor image".into()),
        };
        for (got, want) in zero_shot.score(&vector)?.iter().zip(&query.scores) {
            worst_score = worst_score.max((got.score - want).abs());
        }
        assert_eq!(query.cosines.len(), taxonomy.tags.len());
    }
    // Every image alone vs all of them in one batch.
    let images = reference
        .queries
        .iter()
        .filter_map(|q| q.image.as_ref())
        .map(|name| read_image(&data().join("images").join(name), &ImageLimits::default()))
        .collect::<Result<Vec<_>, _>>()?;
    let together = vision.embed(&images)?;
    for (image, in_batch) in images.iter().zip(&together) {
        let alone = vision.embed(std::slice::from_ref(image))?.remove(0);
        let diff = alone
            .iter()
            .zip(in_batch)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "image alone vs batched: {diff}");
    }
    println!(
        "SigLIP: worst text cosine {worst_text:.7}, worst image cosine {worst_image:.7}, max |Δscore| {worst_score:e}"
    );
    assert!(worst_image >= 0.999, "worst image cosine {worst_image}");
    assert!(worst_score < 1e-3, "score differs by {worst_score}");
    Ok(())
}
