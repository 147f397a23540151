//! Conversions between each contract version's WIT types and the host's own, with the checks
//! that keep a plugin's output honest before anything reaches the store. Both versions convert
//! into one raw shape first, so the checks exist once.

use super::bindings::{v0, v1};
use crate::catalog::Title;
use tessera_indexes::Tag;

/// Caps on what one analysis may hold.
const MAX_TAGS: usize = 256;
const MAX_EMBEDDINGS: usize = 16;
const MAX_SEQUENCES: usize = 16;
const MAX_TOKENS: usize = 4096;
const MAX_NAME: usize = 128;
const MAX_VALUE: usize = 1024;

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Tag names it may produce.
    pub tags: Vec<String>,
    /// Embeddings it produces: (output name, host model, or `model:modality`).
    pub embeddings: Vec<(String, String)>,
    /// Token sequences it produces: (output name, host model, or `model:modality`).
    pub token_sequences: Vec<(String, String)>,
    /// Plugins whose tags it reads, which must run before it.
    pub after: Vec<String>,
    /// The contract version it was built against (the newest it imports).
    pub contract: semver::Version,
}

/// One vector a plugin produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The output's name, as `describe` declared it (the store names the vector after the
    /// declared model: [`crate::runtime::Plugin::store_name`]).
    pub name: String,
    /// Host model that produced it.
    pub model: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// A sequence of vectors a plugin produced (one per audio window, image, text chunk).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSequence {
    /// The output's name, as `describe` declared it (stored as a multivector named after the
    /// declared model).
    pub name: String,
    /// Host model that produced it.
    pub model: String,
    /// The vectors, all of one length.
    pub vectors: Vec<Vec<f32>>,
}

/// A plugin's validated output for one title, tags carrying their provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Tags with provenance.
    pub tags: Vec<Tag>,
    /// Named embeddings.
    pub embeddings: Vec<Embedding>,
    /// Named token sequences.
    pub token_sequences: Vec<TokenSequence>,
}

/// A tag before validation, from either contract version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawTag {
    pub name: String,
    pub value: Option<String>,
    pub confidence: f32,
    pub span: Option<(f64, f64)>,
    pub evidence: Option<String>,
}

/// An analysis before validation, from either contract version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawAnalysis {
    pub tags: Vec<RawTag>,
    pub embeddings: Vec<Embedding>,
    pub token_sequences: Vec<TokenSequence>,
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{what} name {name:?} must be 1..={MAX_NAME} bytes"));
    }
    Ok(())
}

impl PluginInfo {
    fn checked(self) -> Result<Self, String> {
        check_name("plugin", &self.name)?;
        for (name, _) in self.embeddings.iter().chain(&self.token_sequences) {
            check_name("embedding", name)?;
        }
        if let Some(dup) = self
            .embeddings
            .iter()
            .chain(&self.token_sequences)
            .enumerate()
            .find(|(i, (name, _))| {
                self.embeddings
                    .iter()
                    .chain(&self.token_sequences)
                    .skip(i + 1)
                    .any(|(other, _)| other == name)
            })
        {
            return Err(format!("output {:?} is declared twice", dup.1.0));
        }
        if self.after.contains(&self.name) {
            return Err(format!("plugin {} lists itself in `after`", self.name));
        }
        Ok(self)
    }

    pub(crate) fn from_v1(
        info: v1::types::PluginInfo,
        contract: semver::Version,
    ) -> Result<Self, String> {
        let specs =
            |s: Vec<v1::types::OutputSpec>| s.into_iter().map(|e| (e.name, e.model)).collect();
        PluginInfo {
            name: info.name,
            version: info.version,
            tags: info.tags,
            embeddings: specs(info.embeddings),
            token_sequences: specs(info.token_sequences),
            after: info.after,
            contract,
        }
        .checked()
    }

    pub(crate) fn from_v0(
        info: v0::types::PluginInfo,
        contract: semver::Version,
    ) -> Result<Self, String> {
        PluginInfo {
            name: info.name,
            version: info.version,
            tags: info.tags,
            embeddings: info
                .embeddings
                .into_iter()
                .map(|e| (e.name, e.model))
                .collect(),
            token_sequences: Vec::new(),
            after: Vec::new(),
            contract,
        }
        .checked()
    }
}

impl From<v1::types::Analysis> for RawAnalysis {
    fn from(a: v1::types::Analysis) -> Self {
        RawAnalysis {
            tags: a
                .tags
                .into_iter()
                .map(|t| RawTag {
                    name: t.name,
                    value: t.value,
                    confidence: t.confidence,
                    span: t.span.map(|s| (s.start, s.end)),
                    evidence: t.evidence,
                })
                .collect(),
            embeddings: a
                .embeddings
                .into_iter()
                .map(|e| Embedding {
                    name: e.name,
                    model: e.model,
                    vector: e.vector,
                })
                .collect(),
            token_sequences: a
                .token_sequences
                .into_iter()
                .map(|t| TokenSequence {
                    name: t.name,
                    model: t.model,
                    vectors: t.vectors,
                })
                .collect(),
        }
    }
}

impl From<v0::types::Analysis> for RawAnalysis {
    fn from(a: v0::types::Analysis) -> Self {
        RawAnalysis {
            tags: a
                .tags
                .into_iter()
                .map(|t| RawTag {
                    name: t.name,
                    value: t.value,
                    confidence: t.confidence,
                    span: None,
                    evidence: None,
                })
                .collect(),
            embeddings: a
                .embeddings
                .into_iter()
                .map(|e| Embedding {
                    name: e.name,
                    model: e.model,
                    vector: e.vector,
                })
                .collect(),
            token_sequences: Vec::new(),
        }
    }
}

fn check_vector(what: &str, name: &str, v: &[f32]) -> Result<(), String> {
    if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{what} {name:?} is empty or holds NaN/infinity"));
    }
    Ok(())
}

impl Analysis {
    pub(crate) fn validate(raw: RawAnalysis, info: &PluginInfo) -> Result<Self, String> {
        if raw.tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags; at most {MAX_TAGS} per title",
                raw.tags.len()
            ));
        }
        if raw.embeddings.len() > MAX_EMBEDDINGS {
            return Err(format!(
                "{} embeddings; at most {MAX_EMBEDDINGS} per title",
                raw.embeddings.len()
            ));
        }
        if raw.token_sequences.len() > MAX_SEQUENCES {
            return Err(format!(
                "{} token sequences; at most {MAX_SEQUENCES} per title",
                raw.token_sequences.len()
            ));
        }
        let mut tags = Vec::with_capacity(raw.tags.len());
        for tag in raw.tags {
            check_name("tag", &tag.name)?;
            if !(0.0..=1.0).contains(&tag.confidence) {
                return Err(format!(
                    "tag {:?} has confidence {} outside 0..=1",
                    tag.name, tag.confidence
                ));
            }
            let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE);
            if too_long(&tag.value) || too_long(&tag.evidence) {
                return Err(format!(
                    "tag {:?} has a value or evidence over {MAX_VALUE} bytes",
                    tag.name
                ));
            }
            if let Some((start, end)) = tag.span
                && !(start.is_finite() && end.is_finite() && 0.0 <= start && start <= end)
            {
                return Err(format!(
                    "tag {:?} has the time span {start}..{end}; it must be finite with 0 <= start <= end",
                    tag.name
                ));
            }
            tags.push(Tag {
                name: tag.name,
                value: tag.value,
                confidence: tag.confidence,
                plugin: info.name.clone(),
                plugin_version: info.version.clone(),
                run: None,
                span: tag.span,
                evidence: tag.evidence,
                models: Vec::new(),
            });
        }
        // The store names an output's vector after its declared model, so the output must come
        // from that model.
        let from_declared = |kind: &str, declared: &[(String, String)], name: &str, model: &str| {
            match declared.iter().find(|(n, _)| n == name) {
                None => Err(format!("{kind} {name:?} was not declared by describe()")),
                Some((_, m)) if m != model => Err(format!(
                    "{kind} {name:?} says it comes from model {model:?}, but describe() declared {m:?}"
                )),
                Some(_) => Ok(()),
            }
        };
        for e in &raw.embeddings {
            from_declared("embedding", &info.embeddings, &e.name, &e.model)?;
            check_vector("embedding", &e.name, &e.vector)?;
        }
        for t in &raw.token_sequences {
            from_declared("token sequence", &info.token_sequences, &t.name, &t.model)?;
            if t.vectors.is_empty() || t.vectors.len() > MAX_TOKENS {
                return Err(format!(
                    "token sequence {:?} has {} vectors; 1..={MAX_TOKENS} are allowed",
                    t.name,
                    t.vectors.len()
                ));
            }
            let dim = t.vectors[0].len();
            for v in &t.vectors {
                check_vector("token sequence", &t.name, v)?;
                if v.len() != dim {
                    return Err(format!(
                        "token sequence {:?} mixes {dim}-d and {}-d vectors",
                        t.name,
                        v.len()
                    ));
                }
            }
        }
        Ok(Analysis {
            tags,
            embeddings: raw.embeddings,
            token_sequences: raw.token_sequences,
        })
    }
}

fn metadata(title: &Title) -> Vec<(String, String)> {
    title
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn title_to_v1(title: &Title) -> v1::types::Title {
    v1::types::Title {
        id: title.id.clone(),
        name: title.name.clone(),
        synopsis: title.synopsis.clone(),
        year: title.year,
        language: title.language.clone(),
        metadata: metadata(title),
    }
}

pub(crate) fn title_to_v0(title: &Title) -> v0::types::Title {
    v0::types::Title {
        id: title.id.clone(),
        name: title.name.clone(),
        synopsis: title.synopsis.clone(),
        year: title.year,
        language: title.language.clone(),
        metadata: metadata(title),
        assets: title
            .assets
            .iter()
            .map(|a| v0::types::AssetRef {
                kind: a.kind.clone(),
                uri: a.uri.clone(),
            })
            .collect(),
    }
}

pub(crate) fn prior_tag_to_v1(tag: &Tag) -> v1::types::PriorTag {
    v1::types::PriorTag {
        plugin: tag.plugin.clone(),
        tag: v1::types::Tag {
            name: tag.name.clone(),
            value: tag.value.clone(),
            confidence: tag.confidence,
            span: tag
                .span
                .map(|(start, end)| v1::types::TimeSpan { start, end }),
            evidence: tag.evidence.clone(),
        },
    }
}

fn media_error_text(e: v1::types::MediaError) -> String {
    match e {
        v1::types::MediaError::Unavailable(m) => format!("unavailable: {m}"),
        v1::types::MediaError::Invalid(m) => format!("invalid: {m}"),
        v1::types::MediaError::TooLarge(m) => format!("too large: {m}"),
    }
}

pub(crate) fn plugin_error_parts_v1(error: v1::types::PluginError) -> (&'static str, String) {
    use v1::types::{ModelError as M, PluginError as P};
    match error {
        P::InvalidInput(m) => ("invalid-input", m),
        P::Internal(m) => ("internal", m),
        P::Media(e) => ("media", media_error_text(e)),
        P::Model(e) => (
            "model",
            match e {
                M::UnknownModel(m) => format!("unknown model: {m}"),
                M::Denied(m) => format!("denied: {m}"),
                M::InvalidInput(m) => format!("invalid input: {m}"),
                M::Media(e) => format!("media: {}", media_error_text(e)),
                M::Overloaded(m) => format!("overloaded: {m}"),
                M::Failed(m) => format!("failed: {m}"),
            },
        ),
    }
}

pub(crate) fn plugin_error_parts_v0(error: v0::types::PluginError) -> (&'static str, String) {
    use v0::types::{ModelError as M, PluginError as P};
    match error {
        P::InvalidInput(m) => ("invalid-input", m),
        P::Internal(m) => ("internal", m),
        P::Model(e) => (
            "model",
            match e {
                M::UnknownModel(m) => format!("unknown model: {m}"),
                M::Denied(m) => format!("denied: {m}"),
                M::InvalidInput(m) => format!("invalid input: {m}"),
                M::Failed(m) => format!("failed: {m}"),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1.0.0".into(),
            tags: vec![],
            embeddings: vec![("synopsis".into(), "text".into())],
            token_sequences: vec![("audio-windows".into(), "whisper".into())],
            after: vec![],
            contract: semver::Version::new(1, 0, 0),
        }
    }

    fn tag(confidence: f32) -> RawTag {
        RawTag {
            name: "t".into(),
            value: None,
            confidence,
            span: None,
            evidence: None,
        }
    }

    fn raw(
        tags: Vec<RawTag>,
        embeddings: Vec<Embedding>,
        token_sequences: Vec<TokenSequence>,
    ) -> RawAnalysis {
        RawAnalysis {
            tags,
            embeddings,
            token_sequences,
        }
    }

    fn emb(name: &str, vector: Vec<f32>) -> Embedding {
        Embedding {
            name: name.into(),
            model: "text".into(),
            vector,
        }
    }

    fn seq(name: &str, vectors: Vec<Vec<f32>>) -> TokenSequence {
        TokenSequence {
            name: name.into(),
            model: "whisper".into(),
            vectors,
        }
    }

    #[test]
    fn accepts_valid_output_and_adds_provenance() -> Result<(), String> {
        let mut spanned = tag(0.5);
        spanned.span = Some((30.0, 60.0));
        spanned.evidence = Some("loud".into());
        let analysis = Analysis::validate(
            raw(
                vec![spanned],
                vec![emb("synopsis", vec![0.1, 0.2])],
                vec![seq("audio-windows", vec![vec![1.0, 0.0], vec![0.0, 1.0]])],
            ),
            &info(),
        )?;
        assert_eq!(analysis.tags[0].plugin, "p");
        assert_eq!(analysis.tags[0].plugin_version, "1.0.0");
        assert_eq!(analysis.tags[0].span, Some((30.0, 60.0)));
        assert_eq!(analysis.token_sequences[0].vectors.len(), 2);
        Ok(())
    }

    #[test]
    fn rejects_bad_tags_undeclared_outputs_and_bad_vectors() {
        let with = |r: RawAnalysis| Analysis::validate(r, &info()).err().unwrap_or_default();
        assert!(with(raw(vec![tag(1.5)], vec![], vec![])).contains("outside 0..=1"));
        assert!(with(raw(vec![tag(f32::NAN)], vec![], vec![])).contains("outside 0..=1"));
        let mut backwards = tag(0.5);
        backwards.span = Some((10.0, 5.0));
        assert!(with(raw(vec![backwards], vec![], vec![])).contains("time span 10..5"));
        assert!(with(raw(vec![], vec![emb("other", vec![1.0])], vec![])).contains("not declared"));
        // Its vector is stored under the declared model's name: another model is refused.
        let mut elsewhere = emb("synopsis", vec![1.0]);
        elsewhere.model = "clip".into();
        assert!(
            with(raw(vec![], vec![elsewhere], vec![]))
                .contains("comes from model \"clip\", but describe() declared \"text\"")
        );
        assert!(
            with(raw(
                vec![],
                vec![emb("synopsis", vec![f32::INFINITY])],
                vec![]
            ))
            .contains("NaN/infinity")
        );
        assert!(with(raw(vec![], vec![emb("synopsis", vec![])], vec![])).contains("empty"));
        assert!(
            with(raw(vec![], vec![], vec![seq("other", vec![vec![1.0]])])).contains("not declared")
        );
        assert!(
            with(raw(
                vec![],
                vec![],
                vec![seq("audio-windows", vec![vec![1.0], vec![1.0, 2.0]])]
            ))
            .contains("mixes 1-d and 2-d")
        );
        assert!(
            with(raw(vec![], vec![], vec![seq("audio-windows", vec![])])).contains("0 vectors")
        );
    }

    #[test]
    fn refuses_duplicate_outputs_and_self_ordering() {
        let mut dup = info();
        dup.token_sequences.push(("synopsis".into(), "text".into()));
        assert!(
            dup.checked()
                .err()
                .unwrap_or_default()
                .contains("declared twice")
        );
        let mut selfish = info();
        selfish.after.push("p".into());
        assert!(
            selfish
                .checked()
                .err()
                .unwrap_or_default()
                .contains("itself")
        );
    }
}
