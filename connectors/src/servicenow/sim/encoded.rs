//! ServiceNow encoded queries (`sysparm_query`) as the simulator reads them: parsing that
//! never fails (what it cannot read it drops, as the instance does), the operators, and
//! `ORDERBY`/`ORDERBYDESC`.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
    StartsWith,
    EndsWith,
    Like,
    NotLike,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
}

/// `<field><op><value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// `^NQ`-separated groups (any matches) of `^`-joined terms (all match), each
/// term a list of `^OR` alternatives (one matches); then the sort keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub groups: Vec<Vec<Vec<Condition>>>,
    /// `(field, descending)`.
    pub order: Vec<(String, bool)>,
}

const OPS: &[(&str, Op)] = &[
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("NOTLIKE", Op::NotLike),
    ("NOT LIKE", Op::NotLike),
    ("DOESNOTCONTAIN", Op::NotLike),
    ("LIKE", Op::Like),
    ("CONTAINS", Op::Like),
    ("NOT IN", Op::NotIn),
    ("IN", Op::In),
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
];

/// One condition, or `None` when the text is not one.
pub fn condition(text: &str) -> Option<Condition> {
    let end = text
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    let (field, rest) = text.split_at(end);
    if field.is_empty() {
        return None;
    }
    let (symbol, op) = OPS.iter().find(|(s, _)| rest.starts_with(s))?;
    Some(Condition {
        field: field.to_string(),
        op: *op,
        value: rest[symbol.len()..].to_string(),
    })
}

/// Parses `sysparm_query`. `^` always separates (encoded queries have no escape
/// for it).
pub fn parse(input: &str) -> Query {
    let mut query = Query::default();
    let mut group: Vec<Vec<Condition>> = Vec::new();
    for (i, token) in input.split('^').enumerate() {
        if token.is_empty() || token == "EQ" {
            continue;
        }
        if let Some(field) = token.strip_prefix("ORDERBYDESC") {
            query.order.push((field.to_string(), true));
            continue;
        }
        if let Some(field) = token.strip_prefix("ORDERBY") {
            query.order.push((field.to_string(), false));
            continue;
        }
        if i > 0
            && let Some(rest) = token.strip_prefix("NQ")
        {
            query.groups.push(std::mem::take(&mut group));
            group.extend(condition(rest).map(|c| vec![c]));
            continue;
        }
        if i > 0
            && let Some(rest) = token.strip_prefix("OR")
        {
            if let Some(c) = condition(rest) {
                match group.last_mut() {
                    Some(alternatives) => alternatives.push(c),
                    None => group.push(vec![c]),
                }
            }
            continue;
        }
        group.extend(condition(token).map(|c| vec![c]));
    }
    query.groups.push(group);
    query
}

/// Numbers compare as numbers, everything else as text (the fixed-width
/// `yyyy-MM-dd HH:mm:ss` compares correctly as text).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl Op {
    /// Whether a field holding `actual` passes `<op><value>`.
    pub fn test(self, actual: &str, value: &str) -> bool {
        match self {
            Op::Eq => actual == value,
            Op::Ne => actual != value,
            Op::Ge => !actual.is_empty() && compare(actual, value) != Ordering::Less,
            Op::Le => !actual.is_empty() && compare(actual, value) != Ordering::Greater,
            Op::Gt => !actual.is_empty() && compare(actual, value) == Ordering::Greater,
            Op::Lt => !actual.is_empty() && compare(actual, value) == Ordering::Less,
            Op::StartsWith => actual.starts_with(value),
            Op::EndsWith => actual.ends_with(value),
            Op::Like => actual.to_lowercase().contains(&value.to_lowercase()),
            Op::NotLike => !actual.to_lowercase().contains(&value.to_lowercase()),
            Op::In => value.split(',').any(|v| v == actual),
            Op::NotIn => !value.split(',').any(|v| v == actual),
            Op::IsEmpty => actual.is_empty(),
            Op::IsNotEmpty => !actual.is_empty(),
        }
    }
}
