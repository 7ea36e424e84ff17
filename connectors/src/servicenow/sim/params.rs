//! The Table API's `sysparm_*` parameters as the simulator reads them (display values,
//! fields, limit and offset, query, the pagination switches) and the `Link` header they
//! make.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DisplayMode {
    Raw,
    Display,
    All,
}

#[derive(Debug, Clone)]
pub(super) struct Params {
    pub(super) pairs: Vec<(String, String)>,
    pub(super) query: Query,
    pub(super) fields: Option<Vec<String>>,
    pub(super) limit: usize,
    pub(super) offset: usize,
    pub(super) display: DisplayMode,
    pub(super) exclude_links: bool,
    pub(super) input_display: bool,
    pub(super) no_count: bool,
    pub(super) suppress_pagination: bool,
}

/// The default `sysparm_limit`.
pub const DEFAULT_LIMIT: usize = 10_000;

impl Params {
    pub(super) fn parse(query: &Option<String>) -> Params {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let flag = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let fields = get("sysparm_fields").map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
        let display = match get("sysparm_display_value")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("true") => DisplayMode::Display,
            Some("all") => DisplayMode::All,
            _ => DisplayMode::Raw,
        };
        Params {
            query: encoded::parse(get("sysparm_query").unwrap_or("")),
            fields: fields.filter(|f| !f.is_empty()),
            limit: get("sysparm_limit")
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_LIMIT),
            offset: get("sysparm_offset")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0),
            display,
            exclude_links: flag("sysparm_exclude_reference_link"),
            input_display: flag("sysparm_input_display_value"),
            no_count: flag("sysparm_no_count"),
            suppress_pagination: flag("sysparm_suppress_pagination_header"),
            pairs,
        }
    }

    /// This request's URL with another offset, for the `Link` header.
    pub(super) fn page_link(&self, base: &str, path: &str, offset: usize, rel: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("sysparm_offset", &offset.to_string())
            .append_pair("sysparm_limit", &self.limit.to_string());
        for (k, v) in &self.pairs {
            if k != "sysparm_offset" && k != "sysparm_limit" {
                query.append_pair(k, v);
            }
        }
        format!("<{base}{path}?{}>;rel=\"{rel}\"", query.finish())
    }
}
