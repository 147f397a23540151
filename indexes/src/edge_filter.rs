//! qdrant-edge's filter types: the condition builders [`crate::filter::translate`] uses, and the
//! few conditions the edge store builds itself.

use crate::IndexError;
use crate::convert::point_id;
use crate::filter::Conditions;
use crate::search::SearchFilter;
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

fn range(field: &str, range: Range<OrderedFloat<f64>>) -> Result<Condition, IndexError> {
    Ok(Condition::Field(FieldCondition::new_range(
        path(field)?,
        range,
    )))
}

/// qdrant-edge's condition types.
pub(crate) struct Edge;

impl Conditions for Edge {
    type Condition = Condition;
    type Filter = Filter;

    fn keyword(field: &str, value: String) -> Result<Condition, IndexError> {
        keyword(field, value)
    }

    fn any_keyword(field: &str, values: Vec<String>) -> Result<Condition, IndexError> {
        Ok(Condition::Field(FieldCondition::new_match(
            path(field)?,
            Match::from(values),
        )))
    }

    fn at_least(field: &str, min: f64) -> Result<Condition, IndexError> {
        range(
            field,
            Range {
                gte: Some(OrderedFloat(min)),
                ..Range::default()
            },
        )
    }

    fn at_most(field: &str, max: f64) -> Result<Condition, IndexError> {
        range(
            field,
            Range {
                lte: Some(OrderedFloat(max)),
                ..Range::default()
            },
        )
    }

    fn above(field: &str, value: u64) -> Result<Condition, IndexError> {
        range(
            field,
            Range {
                gt: Some(OrderedFloat(value as f64)),
                ..Range::default()
            },
        )
    }

    fn nested(field: &str, inner: Vec<Condition>) -> Result<Condition, IndexError> {
        Ok(Condition::new_nested(
            path(field)?,
            Filter {
                must: Some(inner),
                ..Filter::new()
            },
        ))
    }

    fn is_title(id: &str) -> Condition {
        let ids: ahash::AHashSet<_> = [point_id(id)].into_iter().collect();
        Condition::HasId(HasIdCondition::from(ids))
    }

    fn filter(must: Vec<Condition>, must_not: Vec<Condition>) -> Filter {
        Filter {
            must: (!must.is_empty()).then_some(must),
            must_not: (!must_not.is_empty()).then_some(must_not),
            ..Filter::new()
        }
    }
}

/// `filter` (already validated) as a qdrant-edge filter, leaving out the title `exclude`.
pub(crate) fn to_qdrant(
    filter: &SearchFilter,
    exclude: Option<&str>,
) -> Result<Option<Filter>, IndexError> {
    crate::filter::translate::<Edge>(filter, exclude)
}
