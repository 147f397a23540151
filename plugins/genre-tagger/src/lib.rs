//! `genre-tagger`: tags a title's genres by zero-shot scoring of its poster and its synopsis with
//! a two-tower model (CLIP or SigLIP), against a taxonomy an operator sets in the manifest.
//!
//! Config (all optional):
//! - `model`: the two-tower model (default `clip`);
//! - `genre.<name>`: prompts for genre `<name>`, separated by `|`
//!   (e.g. `genre.horror = "a horror film poster | a frightening scene"`); without any, a
//!   built-in taxonomy of eight genres is used;
//! - `top`: how many genres to tag at most (default 2); `min-score`: the lowest score tagged
//!   (default 0.15).
//!
//! When both the poster and the synopsis are there, a genre's score is the mean of the two, and
//! the evidence says what each one scored.

use std::collections::BTreeMap;
use tessera_plugin_sdk::models::{self, ZeroShotLabel};
use tessera_plugin_sdk::{
    Analysis, Input, MediaKind, Plugin, PluginError, PluginInfo, Title, config, export_plugin, log,
};

struct GenreTagger;

const DEFAULT_GENRES: [(&str, &str); 8] = [
    ("action", "an action film | explosions, chases and fights"),
    ("comedy", "a comedy film | a funny, lighthearted story"),
    ("drama", "a drama film | an emotional story about people"),
    ("horror", "a horror film | a frightening, scary story"),
    ("romance", "a romance film | two people falling in love"),
    (
        "science-fiction",
        "a science fiction film | space, the future and technology",
    ),
    ("thriller", "a thriller film | suspense, crime and danger"),
    (
        "documentary",
        "a documentary film | real events and real people",
    ),
];

fn taxonomy() -> Vec<ZeroShotLabel> {
    let configured: Vec<ZeroShotLabel> = config::all()
        .into_iter()
        .filter_map(|(key, prompts)| {
            Some(models::label_from(key.strip_prefix("genre.")?, &prompts))
        })
        .collect();
    if !configured.is_empty() {
        return configured;
    }
    DEFAULT_GENRES
        .iter()
        .map(|(name, prompts)| models::label_from(name, prompts))
        .collect()
}

impl Plugin for GenreTagger {
    fn describe() -> PluginInfo {
        PluginInfo::new("genre-tagger", env!("CARGO_PKG_VERSION")).with_tags(&["genre"])
    }

    fn analyze(title: Title, input: Input) -> Result<Analysis, PluginError> {
        let model = config::get("model").unwrap_or_else(|| "clip".to_string());
        let top: usize = config::parse("top", 2)?;
        let min_score: f32 = config::parse("min-score", 0.15)?;
        let labels = taxonomy();

        // (genre) -> [(source, score)]
        let mut scores: BTreeMap<String, Vec<(&str, f32)>> = BTreeMap::new();
        let poster = input
            .asset("poster")
            .or_else(|| input.assets_of(MediaKind::Image).next());
        if let Some(poster) = poster {
            for s in models::zero_shot_image(&model, poster, &labels)? {
                scores.entry(s.name).or_default().push(("poster", s.score));
            }
        }
        let synopsis = title.synopsis.trim();
        if !synopsis.is_empty() {
            for s in models::zero_shot_text(&model, synopsis, &labels)? {
                scores
                    .entry(s.name)
                    .or_default()
                    .push(("synopsis", s.score));
            }
        }
        if scores.is_empty() {
            log::info("no poster and no synopsis: no genre to score");
            return Ok(Analysis::new());
        }
        let mut ranked: Vec<(String, f32, String)> = scores
            .into_iter()
            .map(|(genre, by_source)| {
                let mean = by_source.iter().map(|(_, s)| s).sum::<f32>() / by_source.len() as f32;
                let evidence = by_source
                    .iter()
                    .map(|(source, s)| format!("{source} {s:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                (genre, mean, evidence)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut analysis = Analysis::new();
        for (genre, score, evidence) in ranked.into_iter().take(top) {
            if score >= min_score {
                let evidence = format!("{model} zero-shot: {evidence}");
                analysis = analysis.tag_with(
                    "genre",
                    Some(&genre),
                    score.clamp(0.0, 1.0),
                    None,
                    Some(&evidence),
                );
            }
        }
        Ok(analysis)
    }
}

export_plugin!(GenreTagger);
