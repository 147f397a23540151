//! Search filters in qdrant's terms. The payload layout they select on is written by
//! `convert.rs`: `year` (integer or null), `language`, `tags` (objects with `name`, `value`,
//! `confidence`) and `sid_prefixes` (every prefix of the semantic ID as a keyword).

use crate::IndexError;
use crate::convert::{SID_PREFIXES, point_id};
use crate::search::SearchFilter;
use crate::sid::SemanticId;
use ordered_float::OrderedFloat;
use qdrant_edge::{Condition, FieldCondition, Filter, HasIdCondition, JsonPath, Match, Range};

pub(crate) fn path(field: &str) -> Result<JsonPath, IndexError> {
    field
        .parse()
        .map_err(|()| IndexError::Engine(format!("bad payload path {field:?}")))
}

pub(crate) fn keyword(field: &str, value: String) -> Result<Condition, IndexError> {
    Ok(Condition::Field(FieldCondition::new_match(
        path(field)?,
        Match::from(value),
    )))
}

fn at_least(field: &str, min: f64) -> Result<Condition, IndexError> {
    Ok(Condition::Field(FieldCondition::new_range(
        path(field)?,
        Range {
            gte: Some(OrderedFloat(min)),
            ..Range::default()
        },
    )))
}

/// `field` > `value`, for integer fields up to 2^53 (qdrant compares ranges as f64).
pub(crate) fn above(field: &str, value: u64) -> Result<Condition, IndexError> {
    Ok(Condition::Field(FieldCondition::new_range(
        path(field)?,
        Range {
            gt: Some(OrderedFloat(value as f64)),
            ..Range::default()
        },
    )))
}

fn at_most(field: &str, max: f64) -> Result<Condition, IndexError> {
    Ok(Condition::Field(FieldCondition::new_range(
        path(field)?,
        Range {
            lte: Some(OrderedFloat(max)),
            ..Range::default()
        },
    )))
}

/// `filter` (already validated) as a qdrant filter, leaving out the title `exclude`; `None` when
/// nothing is to be filtered.
pub(crate) fn to_qdrant(
    filter: &SearchFilter,
    exclude: Option<&str>,
) -> Result<Option<Filter>, IndexError> {
    let mut must = Vec::new();
    for tag in &filter.tags {
        // One nested condition per tag, so name, value and confidence must hold in the same
        // tag entry (not "some tag is drama, some other tag has confidence 0.9").
        let mut inner = vec![keyword("name", tag.name.clone())?];
        if let Some(value) = &tag.value {
            inner.push(keyword("value", value.clone())?);
        }
        if tag.min_confidence > 0.0 {
            inner.push(at_least("confidence", f64::from(tag.min_confidence))?);
        }
        must.push(Condition::new_nested(
            path("tags")?,
            Filter {
                must: Some(inner),
                ..Filter::new()
            },
        ));
    }
    if let Some(min) = filter.year_min {
        must.push(at_least("year", f64::from(min))?);
    }
    if let Some(max) = filter.year_max {
        must.push(at_most("year", f64::from(max))?);
    }
    if !filter.languages.is_empty() {
        must.push(Condition::Field(FieldCondition::new_match(
            path("language")?,
            Match::from(filter.languages.clone()),
        )));
    }
    if !filter.sid_prefix.is_empty() {
        let key = SemanticId(filter.sid_prefix.clone()).to_string();
        must.push(keyword(SID_PREFIXES, key)?);
    }
    let must_not = match exclude {
        Some(id) => {
            let ids: ahash::AHashSet<_> = [point_id(id)].into_iter().collect();
            Some(vec![Condition::HasId(HasIdCondition::from(ids))])
        }
        None => None,
    };
    if must.is_empty() && must_not.is_none() {
        return Ok(None);
    }
    Ok(Some(Filter {
        must: (!must.is_empty()).then_some(must),
        must_not,
        ..Filter::new()
    }))
}
