//! The `$filter` subset the simulator understands: comparisons on the properties
//! integrators filter on (API.md §3.2) — `properties/lastModifiedTimeUtc` and
//! `properties/createdTimeUtc` against unquoted date-times, `properties/status`,
//! `severity`, `classification`, `title`, `providerIncidentId` against quoted
//! strings, `properties/incidentNumber` against integers, `contains(properties/title,
//! '…')` — joined with `and`. Anything else is a 400. The bridge's lookup of a
//! merged incident's target uses `properties/incidentNumber eq N` (common in
//! integrators' code [O]) and `properties/providerIncidentId eq '…'` (an ordinary
//! string comparison on a documented property; not seen in integrators' code [U]).

use chrono::{DateTime, Utc};

use super::ArmError;
use crate::sentinel::wire;

/// What a listing filters: incidents or one incident's comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Incidents,
    Comments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    LastModified,
    Created,
    Status,
    Severity,
    Classification,
    Title,
    ProviderIncidentId,
    IncidentNumber,
}

/// A property's value as a filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldValue<'a> {
    Time(DateTime<Utc>),
    Number(i64),
    Text(Option<&'a str>),
}

/// Something a filter can be applied to.
pub(super) trait Filterable {
    fn value(&self, field: Field) -> FieldValue<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Time(DateTime<Utc>),
    Number(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Clause {
    field: Field,
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
            Op::Contains => false,
        }
    }
}

impl Field {
    /// Enum-valued properties compare case-insensitively.
    fn is_enum(self) -> bool {
        matches!(
            self,
            Field::Status | Field::Severity | Field::Classification
        )
    }
}

impl Clause {
    /// `properties/classification eq 'Undetermined'`, which Sentinel answers with an
    /// empty list (azure-rest-api-specs#27165).
    pub(super) fn is_undetermined_bug(&self) -> bool {
        self.field == Field::Classification
            && self.op == Op::Eq
            && matches!(&self.value, Literal::Text(t) if t.eq_ignore_ascii_case("Undetermined"))
    }

    pub(super) fn matches(&self, record: &impl Filterable) -> bool {
        match (record.value(self.field), &self.value) {
            (FieldValue::Time(at), Literal::Time(t)) => self.op.holds(at.cmp(t)),
            (FieldValue::Number(n), Literal::Number(want)) => self.op.holds(n.cmp(want)),
            (FieldValue::Text(text), Literal::Text(want)) => {
                let text = text.unwrap_or("");
                match self.op {
                    Op::Contains => text.to_lowercase().contains(&want.to_lowercase()),
                    op => {
                        let equal = if self.field.is_enum() {
                            text.eq_ignore_ascii_case(want)
                        } else {
                            text == want
                        };
                        if op == Op::Eq { equal } else { !equal }
                    }
                }
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn bad(message: String) -> ArmError {
    ArmError::bad_request(message)
}

fn tokenize(filter: &str) -> Result<Vec<Token>, ArmError> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
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
                            return Err(bad(format!(
                                "Invalid $filter: unterminated string literal in '{filter}'."
                            )));
                        }
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "'(),".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// `clause [and clause]…` for `scope`.
pub(super) fn parse_filter(filter: &str, scope: Scope) -> Result<Vec<Clause>, ArmError> {
    let tokens = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let tail = match rest {
            [
                Token::Word(f),
                Token::Open,
                Token::Word(field),
                Token::Comma,
                Token::Quoted(text),
                Token::Close,
                tail @ ..,
            ] if f.eq_ignore_ascii_case("contains") => {
                let field = parse_field(field, scope)?;
                if field != Field::Title {
                    return Err(bad(
                        "Invalid $filter: contains() applies to properties/title only.".into(),
                    ));
                }
                clauses.push(Clause {
                    field,
                    op: Op::Contains,
                    value: Literal::Text(text.clone()),
                });
                tail
            }
            [Token::Word(field), Token::Word(op), value, tail @ ..] => {
                clauses.push(parse_clause(field, op, value, scope)?);
                tail
            }
            _ => {
                return Err(bad(format!(
                    "Invalid $filter: expected 'property operator value' in '{filter}'."
                )));
            }
        };
        match tail {
            [] => return Ok(clauses),
            [Token::Word(and), more @ ..] if and.eq_ignore_ascii_case("and") => rest = more,
            [Token::Word(word), ..]
                if word.eq_ignore_ascii_case("or") || word.eq_ignore_ascii_case("not") =>
            {
                return Err(bad(format!(
                    "Invalid $filter: the operator '{word}' is not supported."
                )));
            }
            _ => return Err(bad(format!("Invalid $filter: syntax error in '{filter}'."))),
        }
    }
}

fn parse_field(name: &str, scope: Scope) -> Result<Field, ArmError> {
    let property = name.strip_prefix("properties/").ok_or_else(|| {
        bad(format!(
            "Invalid $filter: could not find a property named '{name}'."
        ))
    })?;
    let field = match property {
        "lastModifiedTimeUtc" => Field::LastModified,
        "createdTimeUtc" => Field::Created,
        "status" => Field::Status,
        "severity" => Field::Severity,
        "classification" => Field::Classification,
        "title" => Field::Title,
        "providerIncidentId" => Field::ProviderIncidentId,
        "incidentNumber" => Field::IncidentNumber,
        _ => {
            return Err(bad(format!(
                "Invalid $filter: could not find a property named '{name}'."
            )));
        }
    };
    if scope == Scope::Comments && !matches!(field, Field::LastModified | Field::Created) {
        return Err(bad(format!(
            "Invalid $filter: could not find a property named '{name}' on comments."
        )));
    }
    Ok(field)
}

fn parse_clause(field: &str, op: &str, value: &Token, scope: Scope) -> Result<Clause, ArmError> {
    let field_kind = parse_field(field, scope)?;
    let op_kind = match op {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        other => {
            return Err(bad(format!("Invalid $filter: unknown operator '{other}'.")));
        }
    };
    let value = match (field_kind, value) {
        (Field::LastModified | Field::Created, Token::Word(w)) => Literal::Time(
            wire::parse_timestamp(w)
                .filter(|_| w.contains('T'))
                .ok_or_else(|| {
                    bad(format!(
                        "Invalid $filter: '{w}' is not a valid date-time literal."
                    ))
                })?,
        ),
        (Field::LastModified | Field::Created, _) => {
            return Err(bad(format!(
                "Invalid $filter: {field} compares with an unquoted date-time literal."
            )));
        }
        (Field::IncidentNumber, Token::Word(w)) => Literal::Number(
            w.parse()
                .map_err(|_| bad(format!("Invalid $filter: '{w}' is not an integer.")))?,
        ),
        (Field::IncidentNumber, _) => {
            return Err(bad(format!(
                "Invalid $filter: {field} compares with an integer literal."
            )));
        }
        (_, Token::Quoted(text)) => {
            if !matches!(op_kind, Op::Eq | Op::Ne) {
                return Err(bad(format!(
                    "Invalid $filter: the operator '{op}' cannot be applied to '{field}'."
                )));
            }
            Literal::Text(text.clone())
        }
        (_, _) => {
            return Err(bad(format!(
                "Invalid $filter: {field} compares with a quoted string literal."
            )));
        }
    };
    Ok(Clause {
        field: field_kind,
        op: op_kind,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        modified: DateTime<Utc>,
        status: &'static str,
        title: &'static str,
        number: i64,
    }

    impl Filterable for Row {
        fn value(&self, field: Field) -> FieldValue<'_> {
            match field {
                Field::LastModified | Field::Created => FieldValue::Time(self.modified),
                Field::Status => FieldValue::Text(Some(self.status)),
                Field::Title => FieldValue::Text(Some(self.title)),
                Field::IncidentNumber => FieldValue::Number(self.number),
                _ => FieldValue::Text(None),
            }
        }
    }

    #[test]
    fn sentinel_filter_subset() {
        let row = Row {
            modified: wire::parse_timestamp("2025-05-01T10:00:00Z").unwrap(),
            status: "Active",
            title: "Mailbox rule",
            number: 8801,
        };
        let holds = |f: &str| {
            parse_filter(f, Scope::Incidents)
                .unwrap()
                .iter()
                .all(|c| c.matches(&row))
        };
        assert!(holds(
            "properties/lastModifiedTimeUtc ge 2025-05-01T10:00:00Z"
        ));
        assert!(!holds(
            "properties/lastModifiedTimeUtc gt 2025-05-01T10:00:00Z"
        ));
        assert!(holds(
            "properties/status eq 'active' and properties/incidentNumber lt 9000"
        ));
        assert!(holds("contains(properties/title,'mailbox')"));
        assert!(!holds("properties/status ne 'Active'"));
        for bad in [
            "properties/lastModifiedTimeUtc ge '2025-05-01T10:00:00Z'",
            "properties/status eq Active",
            "properties/status gt 'Active'",
            "properties/owner eq 'x'",
            "status eq 'New'",
            "properties/status eq 'New' or properties/status eq 'Active'",
            "properties/status eq 'New",
        ] {
            assert!(parse_filter(bad, Scope::Incidents).is_err(), "{bad}");
        }
        assert!(parse_filter("properties/status eq 'New'", Scope::Comments).is_err());
        let bug = parse_filter(
            "properties/classification eq 'Undetermined'",
            Scope::Incidents,
        )
        .unwrap();
        assert!(bug[0].is_undetermined_bug());
    }
}
