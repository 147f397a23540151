//! `synopsis-embedder`: embeds a title's synopsis with the host's text model and tags the facts a
//! content team checks first — how long the synopsis is, which script it is written in, which
//! language it reads as, and whether that language disagrees with the catalog.
//!
//! Language detection is a stop-word vote: short function words are the most reliable signal in a
//! few dozen words of prose, need no model, and say plainly when the evidence is thin (the
//! confidence is the winner's share of the votes, and fewer than three votes give no tag).
//!
//! Config: `model`, the host model it embeds with (default: the host's `text` model). The store
//! names the vector after that model's identity, so two embedders on two models give two vectors.

use tessera_plugin_sdk::{
    Analysis, Input, Plugin, PluginError, PluginInfo, Title, config, export_plugin, log, models,
};

struct SynopsisEmbedder;

/// The output's name (the store names the vector after its model).
const EMBEDDING: &str = "synopsis";

/// The host model to embed with: the `model` config key, else the host's default text model.
fn model() -> String {
    config::get("model").unwrap_or_else(|| models::DEFAULT_TEXT.to_string())
}

impl Plugin for SynopsisEmbedder {
    fn describe() -> PluginInfo {
        PluginInfo::new("synopsis-embedder", env!("CARGO_PKG_VERSION"))
            .with_tags(&[
                "synopsis-length",
                "script",
                "language",
                "language-mismatch",
                "missing-synopsis",
            ])
            .with_embedding(EMBEDDING, &model())
    }

    fn analyze(title: Title, _input: Input) -> Result<Analysis, PluginError> {
        let synopsis = title.synopsis.trim();
        if synopsis.is_empty() {
            log::warn("title has no synopsis; nothing to embed");
            return Ok(Analysis::new().tag("missing-synopsis", None, 1.0));
        }

        let words = synopsis.split_whitespace().count();
        let mut analysis = Analysis::new().tag("synopsis-length", Some(length_bucket(words)), 1.0);

        if let Some((script, share)) = dominant_script(synopsis) {
            analysis = analysis.tag("script", Some(script), share);
        }
        if let Some((language, confidence)) = guess_language(synopsis) {
            analysis = analysis.tag("language", Some(language), confidence);
            let declared = title
                .language
                .split('-')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !declared.is_empty() && declared != language && confidence >= 0.6 {
                let value = format!("catalog={declared} detected={language}");
                analysis = analysis.tag("language-mismatch", Some(&value), confidence);
            }
        }

        let model = model();
        let vector = models::embed_one(&model, synopsis)?;
        Ok(analysis.embedding(EMBEDDING, &model, vector))
    }
}

export_plugin!(SynopsisEmbedder);

/// Buckets a synopsis by word count: editors want 25–60 words for a catalog page.
fn length_bucket(words: usize) -> &'static str {
    match words {
        0..=24 => "short",
        25..=60 => "medium",
        _ => "long",
    }
}

/// The script most letters belong to, with the share of letters in it.
fn dominant_script(text: &str) -> Option<(&'static str, f32)> {
    const SCRIPTS: [&str; 9] = [
        "latin",
        "greek",
        "cyrillic",
        "arabic",
        "hebrew",
        "devanagari",
        "han",
        "kana",
        "hangul",
    ];
    let mut counts = [0usize; SCRIPTS.len()];
    let mut letters = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        let index = match c as u32 {
            0x0041..=0x024F | 0x1E00..=0x1EFF => 0,
            0x0370..=0x03FF => 1,
            0x0400..=0x04FF => 2,
            0x0600..=0x06FF => 3,
            0x0590..=0x05FF => 4,
            0x0900..=0x097F => 5,
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => 6,
            0x3040..=0x30FF => 7,
            0xAC00..=0xD7AF => 8,
            _ => continue,
        };
        counts[index] += 1;
    }
    let (best, &count) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    (count > 0).then(|| (SCRIPTS[best], count as f32 / letters as f32))
}

/// Guesses the language of Latin-script prose by voting with stop words.
fn guess_language(text: &str) -> Option<(&'static str, f32)> {
    const STOP_WORDS: [(&str, &[&str]); 6] = [
        (
            "en",
            &[
                "the", "and", "of", "to", "a", "in", "is", "his", "her", "with", "who", "that",
                "when", "for", "on", "an", "their",
            ],
        ),
        (
            "fr",
            &[
                "le", "la", "les", "et", "des", "un", "une", "du", "est", "dans", "qui", "que",
                "sur", "pour", "au", "son", "sa",
            ],
        ),
        (
            "es",
            &[
                "el", "la", "los", "las", "y", "de", "que", "en", "un", "una", "del", "por", "con",
                "para", "su", "es", "se",
            ],
        ),
        (
            "de",
            &[
                "der", "die", "das", "und", "ein", "eine", "ist", "mit", "sich", "den", "dem",
                "auf", "für", "nicht", "von", "zu", "sein",
            ],
        ),
        (
            "it",
            &[
                "il", "lo", "gli", "e", "di", "che", "un", "una", "per", "con", "del", "della",
                "sono", "nel", "suo",
            ],
        ),
        (
            "pt",
            &[
                "o", "os", "as", "e", "de", "que", "um", "uma", "do", "da", "em", "com", "para",
                "seu", "sua", "não",
            ],
        ),
    ];
    let mut votes = [0usize; STOP_WORDS.len()];
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        for (i, (_, list)) in STOP_WORDS.iter().enumerate() {
            if list.contains(&word.as_str()) {
                votes[i] += 1;
            }
        }
    }
    let total: usize = votes.iter().sum();
    let (best, &count) = votes.iter().enumerate().max_by_key(|(_, n)| **n)?;
    // Three votes is the least that tells a language from a coincidence.
    (count >= 3).then(|| (STOP_WORDS[best].0, count as f32 / total as f32))
}
