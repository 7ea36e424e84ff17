//! The dashboard's query over links: which links a filter selects (pair, state,
//! a search by incident or ticket id) and one page of them. The `WHERE` clause
//! is written once here for both backends, which differ only in placeholders,
//! case-insensitive matching and how they open a JSON baseline.

/// The states the links table can be narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStateFilter {
    /// Kept in step, the incident not closed.
    Open,
    /// Kept in step, the incident closed (by the baseline both sides agreed on).
    Closed,
    /// The incident was merged into another.
    Merged,
    /// The incident waits in the dead letters.
    Failing,
    /// A remote write was begun and not yet recorded.
    Pending,
}

impl LinkStateFilter {
    pub const ALL: [LinkStateFilter; 5] = [
        LinkStateFilter::Open,
        LinkStateFilter::Closed,
        LinkStateFilter::Merged,
        LinkStateFilter::Failing,
        LinkStateFilter::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkStateFilter::Open => "open",
            LinkStateFilter::Closed => "closed",
            LinkStateFilter::Merged => "merged",
            LinkStateFilter::Failing => "failing",
            LinkStateFilter::Pending => "pending",
        }
    }

    pub fn parse(text: &str) -> Option<LinkStateFilter> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A closed incident, as a link's baseline shows it: in this pair, the mapped
/// field `field` (one whose incident side is the status) agreed on `value`
/// (compared without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWhen {
    pub pair: String,
    pub field: String,
    pub value: String,
}

/// Which links to list, and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkQuery {
    pub pair: Option<String>,
    pub state: Option<LinkStateFilter>,
    /// Part of the incident's id or display id, or of the ticket key (no case).
    pub search: Option<String>,
    /// What a closed incident looks like per pair (from the mappings); with
    /// none, no link is closed.
    pub closed_when: Vec<ClosedWhen>,
    pub offset: u64,
    pub limit: u64,
}

/// One page of links, ordered by pair then incident id, and how many the
/// filter selects in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPage {
    pub links: Vec<crate::model::Link>,
    pub total: u64,
}

/// How a backend spells what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The `WHERE` clause (without the keyword; `TRUE` when nothing filters) and
/// its parameters, all text, in order.
pub(crate) fn where_clause(query: &LinkQuery, dialect: Dialect) -> (String, Vec<String>) {
    let mut params: Vec<String> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    if let Some(pair) = &query.pair {
        clauses.push(format!("pair = {}", bind(dialect, &mut params, pair)));
    }
    let search = query.search.as_deref().map(str::trim);
    if let Some(search) = search.filter(|s| !s.is_empty()) {
        let pattern = bind(dialect, &mut params, &format!("%{}%", escape_like(search)));
        let like = match dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        clauses.push(format!(
            "(incident_id {like} {pattern} ESCAPE '\\' OR incident_display_id {like} {pattern} \
             ESCAPE '\\' OR ticket_key {like} {pattern} ESCAPE '\\')"
        ));
    }
    match query.state {
        None => {}
        Some(LinkStateFilter::Merged) => clauses.push("state = 'merged'".to_owned()),
        Some(LinkStateFilter::Failing) => clauses.push(
            "EXISTS (SELECT 1 FROM dead_letters d \
             WHERE d.pair = links.pair AND d.incident_id = links.incident_id)"
                .to_owned(),
        ),
        Some(LinkStateFilter::Pending) => clauses.push(
            "EXISTS (SELECT 1 FROM outbox o \
             WHERE o.pair = links.pair AND o.incident_id = links.incident_id)"
                .to_owned(),
        ),
        Some(state @ (LinkStateFilter::Open | LinkStateFilter::Closed)) => {
            let is_closed = closed_test(&query.closed_when, dialect, &mut params);
            let not = if state == LinkStateFilter::Open {
                "NOT "
            } else {
                ""
            };
            clauses.push(format!("state = 'active' AND {not}{is_closed}"));
        }
    }
    if clauses.is_empty() {
        clauses.push("TRUE".to_owned());
    }
    (clauses.join(" AND "), params)
}

/// Whether a link's baseline says its incident is closed, as SQL.
fn closed_test(closed_when: &[ClosedWhen], dialect: Dialect, params: &mut Vec<String>) -> String {
    if closed_when.is_empty() {
        return "FALSE".to_owned();
    }
    let (each, incident) = match dialect {
        Dialect::Sqlite => (
            "json_each(links.baseline)",
            "json_extract(j.value, '$.incident')",
        ),
        Dialect::Postgres => ("jsonb_each(links.baseline::jsonb)", "j.value->>'incident'"),
    };
    let alternatives: Vec<String> = closed_when
        .iter()
        .map(|c| {
            let pair = bind(dialect, params, &c.pair);
            let field = bind(dialect, params, &c.field);
            let value = bind(dialect, params, &c.value.to_lowercase());
            format!("(links.pair = {pair} AND j.key = {field} AND lower({incident}) = {value})")
        })
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM {each} j WHERE {})",
        alternatives.join(" OR ")
    )
}

/// Adds a parameter; its placeholder.
fn bind(dialect: Dialect, params: &mut Vec<String>, value: &str) -> String {
    params.push(value.to_owned());
    match dialect {
        Dialect::Sqlite => format!("?{}", params.len()),
        Dialect::Postgres => format!("${}", params.len()),
    }
}

/// A search text as a `LIKE` pattern's literal part (escape character `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_selects_everything() {
        let (sql, params) = where_clause(&LinkQuery::default(), Dialect::Sqlite);
        assert_eq!(sql, "TRUE");
        assert!(params.is_empty());
    }

    #[test]
    fn placeholders_are_numbered_in_binding_order() {
        let query = LinkQuery {
            pair: Some("a->b".into()),
            state: Some(LinkStateFilter::Closed),
            closed_when: vec![ClosedWhen {
                pair: "a->b".into(),
                field: "status".into(),
                value: "Resolved".into(),
            }],
            ..LinkQuery::default()
        };
        let (sql, params) = where_clause(&query, Dialect::Postgres);
        assert_eq!(params, ["a->b", "a->b", "status", "resolved"]);
        assert!(
            sql.starts_with("pair = $1 AND state = 'active' AND EXISTS"),
            "{sql}"
        );
        assert!(
            sql.contains("links.pair = $2 AND j.key = $3 AND lower(j.value->>'incident') = $4"),
            "{sql}"
        );
    }

    #[test]
    fn a_search_is_a_literal_part_of_an_id() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
        let query = LinkQuery {
            search: Some("  SEC-1 ".into()),
            ..LinkQuery::default()
        };
        let (_, params) = where_clause(&query, Dialect::Sqlite);
        assert_eq!(params, ["%SEC-1%"]);
    }
}
