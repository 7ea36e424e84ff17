//! The `$filter` subset the simulator understands: comparisons on the incident's
//! filterable properties (API.md §2.2), joined with `and`. Anything else is a 400,
//! as an unsupported construct would be on Graph.

use bridge_core::vocab::{GRAPH_CLASSIFICATION, GRAPH_SEVERITY, GRAPH_STATUS};
use chrono::{DateTime, Utc};

use super::{GraphError, READ_ONLY_PROPERTIES, SimIncident};
use crate::graph::convert::{canonical_determination, canonical_enum};
use crate::graph::wire;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterField {
    LastUpdate,
    Created,
    Status,
    Severity,
    Classification,
    Determination,
    AssignedTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Time(DateTime<Utc>),
    /// `None` is `null`.
    Text(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Clause {
    field: FilterField,
    op: Op,
    value: Literal,
}

impl Op {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
        }
    }

    fn kind_name(self) -> &'static str {
        match self {
            Op::Eq => "Equal",
            Op::Ne => "NotEqual",
            Op::Gt => "GreaterThan",
            Op::Ge => "GreaterThanOrEqual",
            Op::Lt => "LessThan",
            Op::Le => "LessThanOrEqual",
        }
    }
}

impl Clause {
    pub(super) fn matches(&self, incident: &SimIncident) -> bool {
        let text = |v: Option<&str>| match &self.value {
            Literal::Text(want) => {
                let equal = v == want.as_deref();
                if self.op == Op::Eq { equal } else { !equal }
            }
            Literal::Time(_) => false,
        };
        match self.field {
            FilterField::LastUpdate | FilterField::Created => {
                let at = if self.field == FilterField::LastUpdate {
                    incident.updated
                } else {
                    incident.created
                };
                match &self.value {
                    Literal::Time(t) => self.op.holds(at.cmp(t)),
                    Literal::Text(_) => false,
                }
            }
            FilterField::Status => text(Some(&incident.status)),
            FilterField::Severity => text(Some(&incident.severity)),
            FilterField::Classification => text(incident.classification.as_deref()),
            FilterField::Determination => text(incident.determination.as_deref()),
            FilterField::AssignedTo => text(incident.assigned_to.as_deref()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
}

fn tokenize(filter: &str) -> Result<Vec<Token>, GraphError> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        text.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => text.push(c),
                    None => {
                        return Err(GraphError::bad_request(format!(
                            "Invalid filter clause: there is an unterminated string literal in '{filter}'."
                        )));
                    }
                }
            }
            tokens.push(Token::Quoted(text));
        } else if c == '(' || c == ')' {
            return Err(GraphError::bad_request(
                "Invalid filter clause: grouping with parentheses is not supported.",
            ));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '\'' || c == '(' || c == ')' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

/// `field op value [and field op value]…`, the subset of OData the incidents API
/// documents (comparisons on its filterable properties, joined with `and`).
pub(super) fn parse_filter(filter: &str) -> Result<Vec<Clause>, GraphError> {
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let [Token::Word(field), Token::Word(op), value, tail @ ..] = rest else {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: expected 'property operator value' in '{filter}'."
            )));
        };
        clauses.push(parse_clause(field, op, value)?);
        match tail {
            [] => return Ok(clauses),
            [Token::Word(and), more @ ..] if and == "and" => rest = more,
            [Token::Word(word), ..] if word == "or" || word == "not" => {
                return Err(GraphError::bad_request(format!(
                    "Invalid filter clause: the operator '{word}' is not supported."
                )));
            }
            _ => {
                return Err(GraphError::bad_request(format!(
                    "Invalid filter clause: syntax error in '{filter}'."
                )));
            }
        }
    }
}

fn parse_clause(field: &str, op: &str, value: &Token) -> Result<Clause, GraphError> {
    let field_kind = match field {
        "lastUpdateDateTime" => FilterField::LastUpdate,
        "createdDateTime" => FilterField::Created,
        "status" => FilterField::Status,
        "severity" => FilterField::Severity,
        "classification" => FilterField::Classification,
        "determination" => FilterField::Determination,
        "assignedTo" => FilterField::AssignedTo,
        other if READ_ONLY_PROPERTIES.contains(&other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: the property '{other}' cannot be used in a $filter query."
            )));
        }
        other => {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{other}' on type 'microsoft.graph.security.incident'."
            )));
        }
    };
    let op = match op {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        other => {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: unknown operator '{other}'."
            )));
        }
    };
    let value = match field_kind {
        FilterField::LastUpdate | FilterField::Created => match value {
            Token::Word(w) => Literal::Time(wire::parse_timestamp(w).filter(|_| w.contains('T')).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid filter clause: '{w}' is not a valid Edm.DateTimeOffset literal."
                ))
            })?),
            Token::Quoted(_) => {
                return Err(GraphError::bad_request(format!(
                    "A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '{}'.",
                    op.kind_name()
                )));
            }
        },
        _ => {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(GraphError::bad_request(format!(
                    "Invalid filter clause: the operator '{}' cannot be applied to '{field}'.",
                    op.kind_name()
                )));
            }
            let nullable = matches!(
                field_kind,
                FilterField::Classification | FilterField::Determination | FilterField::AssignedTo
            );
            match value {
                Token::Word(w) if w == "null" && nullable => Literal::Text(None),
                Token::Word(w) => {
                    return Err(GraphError::bad_request(format!(
                        "Invalid filter clause: '{w}' is not a valid literal for '{field}'; quote strings."
                    )));
                }
                Token::Quoted(text) => {
                    let canonical = match field_kind {
                        FilterField::Status => canonical_enum(GRAPH_STATUS, text),
                        FilterField::Severity => canonical_enum(GRAPH_SEVERITY, text),
                        FilterField::Classification => canonical_enum(GRAPH_CLASSIFICATION, text),
                        FilterField::Determination => canonical_determination(text),
                        _ => None,
                    };
                    match (field_kind, canonical) {
                        (FilterField::AssignedTo, _) => Literal::Text(Some(text.clone())),
                        (_, Some(member)) => Literal::Text(Some(member.to_string())),
                        (_, None) => {
                            return Err(GraphError::bad_request(format!(
                                "The string '{text}' is not a valid enumeration type constant."
                            )));
                        }
                    }
                }
            }
        }
    };
    Ok(Clause {
        field: field_kind,
        op,
        value,
    })
}
