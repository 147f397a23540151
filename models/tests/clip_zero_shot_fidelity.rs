//! CLIP's text tower and zero-shot scoring against transformers: the project's tiny full CLIP
//! (generated here, byte for byte the model scripts/reference/zero_shot_reference.py was
//! run on) must reproduce the reference token ids, text embeddings (cosine ≥ 0.9999) and the
//! per-tag cosines and softmax scores of tests/data/clip_zero_shot_reference.json, for texts and
//! images scored against tests/data/taxonomy.toml.

mod common;

use common::{cosine, data, zero_shot_reference};
use tessera_models::preprocess::image::{ImageLimits, read_image};
use tessera_models::tiny::{TinyClipSpec, write_tiny_clip};
use tessera_models::zero_shot::{Scoring, Taxonomy, ZeroShot};
use tessera_models::{ClipTextEncoder, ClipVisionEncoder, ImageEmbedder, TextEmbedder};

#[test]
fn text_tower_and_zero_shot_match_transformers() -> Result<(), Box<dyn std::error::Error>> {
    let reference = zero_shot_reference("clip_zero_shot_reference.json")?;
    let dir = tempfile::tempdir()?;
    write_tiny_clip(dir.path(), &TinyClipSpec::default())?;
    let device = common::device();
    let text = ClipTextEncoder::load(dir.path(), "tiny-clip", &device)?;
    let vision = ClipVisionEncoder::load(dir.path(), "tiny-clip", &device)?;
    assert_eq!(text.logit_scale(), Some(reference.logit_scale));

    // Prompts: ids and embeddings, alone and all in one padded batch.
    let texts: Vec<&str> = reference.prompts.iter().map(|p| p.text.as_str()).collect();
    let batched = text.embed(&texts)?;
    let mut worst = 1.0f32;
    for (prompt, in_batch) in reference.prompts.iter().zip(&batched) {
        assert_eq!(
            text.token_ids(&prompt.text)?,
            prompt.ids,
            "{:?}",
            prompt.text
        );
        let alone = text.embed(&[&prompt.text])?.remove(0);
        let c = cosine(&alone, &prompt.embedding);
        worst = worst.min(c);
        assert!(c >= 0.9999, "{:?}: cosine {c}", prompt.text);
        let diff = alone
            .iter()
            .zip(in_batch)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{:?}: alone vs batched {diff}", prompt.text);
    }
    println!(
        "{} prompts: token ids equal, worst text cosine {worst:.7}",
        reference.prompts.len()
    );

    let taxonomy = Taxonomy::read(&data().join("taxonomy.toml"))?;
    let tags: Vec<&str> = taxonomy.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tags, reference.tags);
    let scoring = Scoring::Softmax {
        logit_scale: reference.logit_scale,
    };
    let zero_shot = ZeroShot::new(&text, &taxonomy, scoring)?;
    // Image vectors carry the image path's own small differences (≥ 0.99996 cosine, see
    // clip_fidelity), so image queries get a looser bar than text ones.
    let (mut worst_text, mut worst_image, mut worst_score) = (0.0f32, 0.0f32, 0.0f32);
    for query in &reference.queries {
        let vector = match (&query.text, &query.image) {
            (Some(t), _) => {
                assert_eq!(text.token_ids(t)?, query.ids, "{t:?}");
                text.embed(&[t])?.remove(0)
            }
            (None, Some(name)) => {
                let image = read_image(&data().join("images").join(name), &ImageLimits::default())?;
                vision.embed(&[image])?.remove(0)
            }
            (None, None) => return Err("a query with neither text nor image".into()),
        };
        let scores = zero_shot.score(&vector)?;
        let worst_cos = if query.text.is_some() {
            &mut worst_text
        } else {
            &mut worst_image
        };
        for ((got, cos), p) in scores.iter().zip(&query.cosines).zip(&query.scores) {
            *worst_cos = worst_cos.max((got.cosine - cos).abs());
            worst_score = worst_score.max((got.score - p).abs());
        }
        let label = query
            .text
            .as_deref()
            .or(query.image.as_deref())
            .unwrap_or("");
        println!(
            "{label:?}: top {} ({:.4})",
            scores
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .map_or("", |s| s.tag.as_str()),
            scores.iter().map(|s| s.score).fold(0.0f32, f32::max)
        );
    }
    println!(
        "zero-shot: max |Δcosine| {worst_text:e} (texts), {worst_image:e} (images); max |Δscore| {worst_score:e}"
    );
    assert!(
        worst_text < 1e-5,
        "text query cosine differs by {worst_text}"
    );
    assert!(
        worst_image < 1e-2,
        "image query cosine differs by {worst_image}"
    );
    assert!(worst_score < 1e-3, "score differs by {worst_score}");
    Ok(())
}
