//! `content-advisory`: flags what a synopsis says about violence, strong language, sexual
//! content, drug use and frightening scenes, by zero-shot scoring against advisory prompts.
//!
//! Each advisory is judged on its own, so a SigLIP model (independent sigmoid per label) is the
//! right one; with CLIP (softmax over the labels) a score says how an advisory compares with the
//! others, and the threshold should be set with that in mind.
//!
//! Config (all optional): `model` (default `siglip`); `advisory.<name>` = prompts separated by
//! `|`, replacing the built-in advisories; `threshold` (default 0.5): the lowest score tagged.

use tessera_plugin_sdk::models::{self, ZeroShotLabel};
use tessera_plugin_sdk::{
    Analysis, Input, Plugin, PluginError, PluginInfo, Title, config, export_plugin,
};

struct ContentAdvisory;

const ADVISORIES: [(&str, &str); 5] = [
    (
        "violence",
        "a story with violence, fights and killing | a violent crime",
    ),
    (
        "strong-language",
        "characters swear and use strong language",
    ),
    ("sexual-content", "a story with sex and nudity"),
    (
        "drug-use",
        "characters take drugs | a story about drug addiction",
    ),
    (
        "frightening",
        "a frightening, disturbing story | scenes of horror",
    ),
];

fn labels() -> Vec<ZeroShotLabel> {
    let configured: Vec<ZeroShotLabel> = config::all()
        .into_iter()
        .filter_map(|(key, prompts)| {
            Some(models::label_from(key.strip_prefix("advisory.")?, &prompts))
        })
        .collect();
    if !configured.is_empty() {
        return configured;
    }
    ADVISORIES
        .iter()
        .map(|(name, prompts)| models::label_from(name, prompts))
        .collect()
}

impl Plugin for ContentAdvisory {
    fn describe() -> PluginInfo {
        PluginInfo::new("content-advisory", env!("CARGO_PKG_VERSION")).with_tags(&["advisory"])
    }

    fn analyze(title: Title, _input: Input) -> Result<Analysis, PluginError> {
        let synopsis = title.synopsis.trim();
        if synopsis.is_empty() {
            return Ok(Analysis::new());
        }
        let model = config::get("model").unwrap_or_else(|| "siglip".to_string());
        let threshold: f32 = config::parse("threshold", 0.5)?;
        let mut analysis = Analysis::new();
        for score in models::zero_shot_text(&model, synopsis, &labels())? {
            if score.score >= threshold {
                let evidence = format!(
                    "{model} zero-shot on the synopsis, cosine {:.3}",
                    score.cosine
                );
                analysis = analysis.tag_with(
                    "advisory",
                    Some(&score.name),
                    score.score.clamp(0.0, 1.0),
                    None,
                    Some(&evidence),
                );
            }
        }
        Ok(analysis)
    }
}

export_plugin!(ContentAdvisory);
