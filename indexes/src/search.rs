//! Similarity search requests: what to rank by, which titles may match, which page of hits.
//! Backend-neutral; each store translates a [`SearchFilter`] into its engine's filter.

use crate::IndexError;
use crate::schema::{MAX_TOKENS, Schema, VectorKind, check_vector};

/// Most tag conditions one filter may hold.
pub const MAX_FILTER_TAGS: usize = 32;
/// Most languages one filter may list.
pub const MAX_FILTER_LANGUAGES: usize = 64;
/// Longest tag name, tag value or language a filter may name, in bytes.
pub const MAX_FILTER_TEXT: usize = 256;
/// Most codes in a semantic-ID prefix.
pub const MAX_SID_CODES: usize = 16;

/// What a search ranks by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchQuery<'a> {
    /// A dense vector: cosine similarity.
    Dense(&'a [f32]),
    /// Token vectors: MaxSim against a multivector.
    Multi(&'a [Vec<f32>]),
}

/// A tag a hit must carry, all in one tag entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TagFilter {
    /// Tag name.
    pub name: String,
    /// Tag value, when it must have a particular one.
    pub value: Option<String>,
    /// Least confidence (0 accepts any).
    pub min_confidence: f32,
}

/// Conditions every hit must meet. The default matches every title.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    /// Tags that must all be present.
    pub tags: Vec<TagFilter>,
    /// Least release year, inclusive; titles without a year never match a year bound.
    pub year_min: Option<u16>,
    /// Greatest release year, inclusive.
    pub year_max: Option<u16>,
    /// Allowed catalog languages (exact match); empty allows any.
    pub languages: Vec<String>,
    /// Required semantic-ID prefix; empty allows any.
    pub sid_prefix: Vec<u16>,
}

impl SearchFilter {
    /// Whether the filter lets every title through.
    pub fn is_empty(&self) -> bool {
        *self == SearchFilter::default()
    }

    /// Checks the filter's bounds, naming the offending part.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |reason: String| Err(IndexError::Filter(reason));
        if self.tags.len() > MAX_FILTER_TAGS {
            return bad(format!(
                "{} tag conditions; at most {MAX_FILTER_TAGS}",
                self.tags.len()
            ));
        }
        for tag in &self.tags {
            if tag.name.is_empty() || tag.name.len() > MAX_FILTER_TEXT {
                return bad(format!(
                    "tag name {:?} must be 1..={MAX_FILTER_TEXT} bytes",
                    tag.name
                ));
            }
            if tag
                .value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_FILTER_TEXT)
            {
                return bad(format!(
                    "value of tag {:?} is longer than {MAX_FILTER_TEXT} bytes",
                    tag.name
                ));
            }
            if !(0.0..=1.0).contains(&tag.min_confidence) {
                return bad(format!(
                    "min_confidence {} of tag {:?} is outside 0..=1",
                    tag.min_confidence, tag.name
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.year_min, self.year_max)
            && min > max
        {
            return bad(format!("year_min {min} is after year_max {max}"));
        }
        if self.languages.len() > MAX_FILTER_LANGUAGES {
            return bad(format!(
                "{} languages; at most {MAX_FILTER_LANGUAGES}",
                self.languages.len()
            ));
        }
        if let Some(l) = self
            .languages
            .iter()
            .find(|l| l.is_empty() || l.len() > MAX_FILTER_TEXT)
        {
            return bad(format!(
                "language {l:?} must be 1..={MAX_FILTER_TEXT} bytes"
            ));
        }
        if self.sid_prefix.len() > MAX_SID_CODES {
            return bad(format!(
                "semantic-ID prefix has {} codes; at most {MAX_SID_CODES}",
                self.sid_prefix.len()
            ));
        }
        Ok(())
    }
}

/// One similarity search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search<'a> {
    /// The named vector to rank on.
    pub vector_name: &'a str,
    /// What to rank by; its kind must match the named vector's.
    pub query: SearchQuery<'a>,
    /// Which titles may be hits.
    pub filter: SearchFilter,
    /// Most hits.
    pub limit: usize,
    /// Hits skipped first (paging).
    pub offset: usize,
    /// A title never returned (the query's own title).
    pub exclude: Option<&'a str>,
    /// Return each hit's searched vector.
    pub with_vectors: bool,
}

/// How validation errors name a query.
const QUERY: &str = "(query)";

impl Search<'_> {
    /// Checks the query against `schema` (vector name, kind, dimension, finite values, token
    /// count) and the filter against its bounds: what every backend does before reading.
    pub(crate) fn validate(&self, schema: &Schema) -> Result<(), IndexError> {
        let name = self.vector_name;
        match self.query {
            SearchQuery::Dense(vector) => {
                let spec = schema.spec(QUERY, name, VectorKind::Dense)?;
                check_vector(QUERY, name, spec, vector)?;
            }
            SearchQuery::Multi(tokens) => {
                let spec = schema.spec(QUERY, name, VectorKind::Multi)?;
                if tokens.is_empty() || tokens.len() > MAX_TOKENS {
                    return Err(IndexError::TokenCount {
                        entity: QUERY.into(),
                        vector: name.into(),
                        got: tokens.len(),
                        max: MAX_TOKENS,
                    });
                }
                for token in tokens {
                    check_vector(QUERY, name, spec, token)?;
                }
            }
        }
        self.filter.validate()
    }
}

impl<'a> Search<'a> {
    /// The `limit` best hits on `vector_name` for `query`, no filter, first page, no vectors.
    pub fn new(vector_name: &'a str, query: SearchQuery<'a>, limit: usize) -> Self {
        Search {
            vector_name,
            query,
            filter: SearchFilter::default(),
            limit,
            offset: 0,
            exclude: None,
            with_vectors: false,
        }
    }
}

/// A hit's searched vector, when asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum HitVector {
    /// A dense vector (unit-normalised, as stored).
    Dense(Vec<f32>),
    /// Token vectors.
    Multi(Vec<Vec<f32>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, min_confidence: f32) -> TagFilter {
        TagFilter {
            name: name.into(),
            value: None,
            min_confidence,
        }
    }

    #[test]
    fn filters_out_of_bounds_are_refused_with_the_reason() {
        assert!(SearchFilter::default().validate().is_ok());
        let cases = [
            (
                SearchFilter {
                    tags: vec![tag("", 0.0)],
                    ..Default::default()
                },
                "tag name",
            ),
            (
                SearchFilter {
                    tags: vec![tag("drama", 1.5)],
                    ..Default::default()
                },
                "min_confidence",
            ),
            (
                SearchFilter {
                    tags: vec![tag("drama", f32::NAN)],
                    ..Default::default()
                },
                "min_confidence",
            ),
            (
                SearchFilter {
                    year_min: Some(2001),
                    year_max: Some(2000),
                    ..Default::default()
                },
                "year_min",
            ),
            (
                SearchFilter {
                    languages: vec![String::new()],
                    ..Default::default()
                },
                "language",
            ),
            (
                SearchFilter {
                    sid_prefix: vec![1; MAX_SID_CODES + 1],
                    ..Default::default()
                },
                "prefix",
            ),
            (
                SearchFilter {
                    tags: vec![tag("a", 0.0); MAX_FILTER_TAGS + 1],
                    ..Default::default()
                },
                "tag conditions",
            ),
        ];
        for (filter, needle) in cases {
            match filter.validate() {
                Err(IndexError::Filter(reason)) => {
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
                }
                other => panic!("{filter:?}: {other:?}"),
            }
        }
    }
}
