//! `audio-mood`: tags the mood of a title's audio (a trailer, a soundtrack) window by window, by
//! comparing each 30 s window's embedding with mood prototypes, and the title's overall mood.
//!
//! Prototypes are vectors in the audio model's space, set in the manifest: an operator embeds a
//! few reference clips per mood with `tessera embed --modality audio --model M --input CLIP`
//! and pastes the vectors (or their mean) into the config.
//!
//! Config:
//! - `model`: the audio model (default `whisper`);
//! - `prototype.<mood>`: the mood's vector, comma-separated numbers (at least one prototype);
//! - `min-cosine`: windows whose best cosine is lower get no tag (default 0.0);
//! - `store-windows`: `true` also returns the window vectors as the token sequence
//!   `audio-windows` (the store needs multivectors for that).
//!
//! Each window gets a `mood` tag with its time span; the confidence is the window's softmax over
//! the prototypes (temperature 0.05 on cosines) and the evidence names the cosine. The title
//! gets one `mood` tag without a span: the mood of most windows, its share as confidence.

use tessera_plugin_sdk::{
    Analysis, Input, MediaKind, Plugin, PluginError, PluginInfo, Title, config, export_plugin,
    models,
};

struct AudioMood;

fn prototypes() -> Result<Vec<(String, Vec<f32>)>, PluginError> {
    let mut out = Vec::new();
    for (key, value) in config::all() {
        let Some(mood) = key.strip_prefix("prototype.") else {
            continue;
        };
        let vector = value
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|e| PluginError::InvalidInput(format!("config {key}: {e}")))?;
        out.push((mood.to_string(), vector));
    }
    if out.is_empty() {
        return Err(PluginError::InvalidInput(
            "no prototype.<mood> vectors in the config".into(),
        ));
    }
    Ok(out)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}

impl Plugin for AudioMood {
    fn describe() -> PluginInfo {
        let model = config::get("model").unwrap_or_else(|| "whisper".to_string());
        let info = PluginInfo::new("audio-mood", env!("CARGO_PKG_VERSION")).with_tags(&["mood"]);
        if config::get("store-windows").as_deref() == Some("true") {
            info.with_token_sequence("audio-windows", &model)
        } else {
            info
        }
    }

    fn analyze(_title: Title, input: Input) -> Result<Analysis, PluginError> {
        let model = config::get("model").unwrap_or_else(|| "whisper".to_string());
        let min_cosine: f32 = config::parse("min-cosine", 0.0)?;
        let prototypes = prototypes()?;
        let Some(audio) = input
            .asset("trailer")
            .or_else(|| input.assets_of(MediaKind::Audio).next())
        else {
            return Ok(Analysis::new());
        };
        let embedding = models::embed_audio(&model, audio, true, None)?;
        if let Some((mood, p)) = prototypes
            .iter()
            .find(|(_, p)| p.len() != embedding.vector.len())
        {
            return Err(PluginError::InvalidInput(format!(
                "prototype.{mood} has {} numbers; model {model} gives {}-d vectors",
                p.len(),
                embedding.vector.len()
            )));
        }
        let mut analysis = Analysis::new();
        let mut votes: Vec<usize> = vec![0; prototypes.len()];
        let mut counted = 0usize;
        let mut windows = Vec::with_capacity(embedding.windows.len());
        for window in embedding.windows {
            let cosines: Vec<f32> = prototypes
                .iter()
                .map(|(_, p)| cosine(&window.vector, p))
                .collect();
            let (best, &best_cos) = cosines
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .ok_or_else(|| PluginError::Internal("no prototypes".into()))?;
            // Softmax over cosines at temperature 0.05: a clear winner gets most of the mass.
            let exp: Vec<f32> = cosines
                .iter()
                .map(|c| ((c - best_cos) / 0.05).exp())
                .collect();
            let confidence = exp[best] / exp.iter().sum::<f32>();
            if best_cos >= min_cosine {
                let evidence = format!("cosine {best_cos:.3} to prototype {}", prototypes[best].0);
                analysis = analysis.tag_with(
                    "mood",
                    Some(&prototypes[best].0),
                    confidence,
                    Some(window.span),
                    Some(&evidence),
                );
                votes[best] += 1;
                counted += 1;
            }
            windows.push(window.vector);
        }
        if let Some((best, &n)) = votes.iter().enumerate().max_by_key(|(_, n)| **n)
            && n > 0
        {
            let evidence = format!("{n} of {counted} windows");
            analysis = analysis.tag_with(
                "mood",
                Some(&prototypes[best].0),
                n as f32 / counted as f32,
                None,
                Some(&evidence),
            );
        }
        if config::get("store-windows").as_deref() == Some("true") {
            analysis = analysis.token_sequence("audio-windows", &model, windows);
        }
        Ok(analysis)
    }
}

export_plugin!(AudioMood);
