//! Search filters in any engine's terms: the one translation of a [`SearchFilter`] into
//! conditions, over a small set of condition builders that each backend provides (qdrant-edge
//! and the Qdrant server have the same filter model but different types).
//!
//! The payload layout filters select on is written by `convert.rs`: `year` (integer or null),
//! `language`, `tags` (objects with `name`, `value`, `confidence`) and `sid_prefixes` (every
//! prefix of the semantic ID as a keyword).

use crate::IndexError;
use crate::convert::SID_PREFIXES;
use crate::search::SearchFilter;
use crate::sid::SemanticId;

/// The condition builders a backend's filter types offer.
pub(crate) trait Conditions {
    type Condition;
    type Filter;
    /// `field` equals the keyword `value` (or, for an array, holds it).
    fn keyword(field: &str, value: String) -> Result<Self::Condition, IndexError>;
    /// `field` is one of `values`.
    fn any_keyword(field: &str, values: Vec<String>) -> Result<Self::Condition, IndexError>;
    /// `field` ≥ `min`.
    fn at_least(field: &str, min: f64) -> Result<Self::Condition, IndexError>;
    /// `field` ≤ `max`.
    fn at_most(field: &str, max: f64) -> Result<Self::Condition, IndexError>;
    /// `field` > `value`, for integer fields up to 2^53 (Qdrant compares ranges as f64): the
    /// change feed's "after this number".
    fn above(field: &str, value: u64) -> Result<Self::Condition, IndexError>;
    /// Some element of the array `field` meets all of `inner`.
    fn nested(field: &str, inner: Vec<Self::Condition>) -> Result<Self::Condition, IndexError>;
    /// The point is the title `id`.
    fn is_title(id: &str) -> Self::Condition;
    /// All of `must` and none of `must_not`.
    fn filter(must: Vec<Self::Condition>, must_not: Vec<Self::Condition>) -> Self::Filter;
}

/// `filter` (already validated) in the backend's terms, leaving out the title `exclude`; `None`
/// when nothing is to be filtered.
pub(crate) fn translate<C: Conditions>(
    filter: &SearchFilter,
    exclude: Option<&str>,
) -> Result<Option<C::Filter>, IndexError> {
    let mut must = Vec::new();
    for tag in &filter.tags {
        // One nested condition per tag, so name, value and confidence must hold in the same
        // tag entry (not "some tag is drama, some other tag has confidence 0.9").
        let mut inner = vec![C::keyword("name", tag.name.clone())?];
        if let Some(value) = &tag.value {
            inner.push(C::keyword("value", value.clone())?);
        }
        if tag.min_confidence > 0.0 {
            inner.push(C::at_least("confidence", f64::from(tag.min_confidence))?);
        }
        must.push(C::nested("tags", inner)?);
    }
    if let Some(min) = filter.year_min {
        must.push(C::at_least("year", f64::from(min))?);
    }
    if let Some(max) = filter.year_max {
        must.push(C::at_most("year", f64::from(max))?);
    }
    if !filter.languages.is_empty() {
        must.push(C::any_keyword("language", filter.languages.clone())?);
    }
    if !filter.sid_prefix.is_empty() {
        let key = SemanticId(filter.sid_prefix.clone()).to_string();
        must.push(C::keyword(SID_PREFIXES, key)?);
    }
    let must_not: Vec<_> = exclude.map(C::is_title).into_iter().collect();
    if must.is_empty() && must_not.is_empty() {
        return Ok(None);
    }
    Ok(Some(C::filter(must, must_not)))
}
