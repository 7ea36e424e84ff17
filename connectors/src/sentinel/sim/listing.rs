//! Listing Sentinel incidents and their comments: `$filter`, `$orderby`, `$top` and
//! the `$skipToken` next links bound to their query.

use super::*;

/// What a `$skipToken` encodes (opaque to clients): the sort position of the last
/// item served (keyset paging: an item changed meanwhile moves, it is not skipped)
/// and the query it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SkipToken {
    pub(super) key: i64,
    pub(super) tie: i64,
    pub(super) fingerprint: u64,
}

impl SkipToken {
    pub(super) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1.{}.{}.{:x}",
            self.key, self.tie, self.fingerprint
        ))
    }

    pub(super) fn decode(token: &str) -> Option<SkipToken> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
        let mut parts = raw.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let token = SkipToken {
            key: parts.next()?.parse().ok()?,
            tie: parts.next()?.parse().ok()?,
            fingerprint: u64::from_str_radix(parts.next()?, 16).ok()?,
        };
        parts.next().is_none().then_some(token)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SortField {
    LastModified,
    Created,
    Number,
    Severity,
}

#[derive(Debug)]
pub(super) struct ListQuery {
    /// `$filter`, `$orderby`, `$top` as given, in order: echoed in `nextLink`.
    pub(super) echo: Vec<(String, String)>,
    pub(super) filter: Vec<Clause>,
    pub(super) sort: SortField,
    pub(super) descending: bool,
    pub(super) top: usize,
    pub(super) token: Option<SkipToken>,
    pub(super) fingerprint: u64,
}

pub(super) fn parse_orderby(value: &str, scope: Scope) -> Result<(SortField, bool), ArmError> {
    let mut words = value.split_whitespace();
    let field = words.next().unwrap_or("");
    let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ArmError::bad_request(format!(
                "Invalid $orderby: '{other}' is not asc or desc."
            )));
        }
    };
    if words.next().is_some() || value.contains(',') {
        return Err(ArmError::bad_request(
            "Invalid $orderby: order by one property.",
        ));
    }
    let sort = match (field, scope) {
        ("properties/lastModifiedTimeUtc", _) => SortField::LastModified,
        ("properties/createdTimeUtc", _) => SortField::Created,
        ("properties/incidentNumber", Scope::Incidents) => SortField::Number,
        ("properties/severity", Scope::Incidents) => SortField::Severity,
        _ => {
            return Err(ArmError::bad_request(format!(
                "Invalid $orderby: could not find a property named '{field}'."
            )));
        }
    };
    Ok((sort, descending))
}

pub(super) fn parse_list_query(
    pairs: &[(String, String)],
    path: &str,
    scope: Scope,
) -> Result<ListQuery, ArmError> {
    let mut query = ListQuery {
        echo: Vec::new(),
        filter: Vec::new(),
        sort: match scope {
            Scope::Incidents => SortField::LastModified,
            Scope::Comments => SortField::Created,
        },
        // [U] the service's default order; newest change first for incidents.
        descending: scope == Scope::Incidents,
        top: DEFAULT_PAGE_SIZE,
        token: None,
        fingerprint: 0,
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs {
        let lower = name.to_ascii_lowercase();
        if lower == "api-version" || !lower.starts_with('$') {
            continue;
        }
        if seen.contains(&lower) {
            return Err(ArmError::bad_request(format!(
                "The query parameter '{name}' was specified more than once."
            )));
        }
        seen.push(lower.clone());
        match lower.as_str() {
            "$filter" => query.filter = parse_filter(value, scope)?,
            "$orderby" => (query.sort, query.descending) = parse_orderby(value, scope)?,
            "$top" => {
                query.top = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|t| (1..=MAX_TOP).contains(t))
                    .ok_or_else(|| {
                        ArmError::bad_request(format!(
                            "The value '{value}' of $top is invalid: it must be an integer from 1 to {MAX_TOP}."
                        ))
                    })?;
            }
            "$skiptoken" => {
                query.token =
                    Some(SkipToken::decode(value).ok_or_else(|| {
                        ArmError::bad_request("The $skipToken value is not valid.")
                    })?);
                continue;
            }
            _ => {
                return Err(ArmError::bad_request(format!(
                    "The query parameter '{name}' is not supported."
                )));
            }
        }
        query.echo.push((name.clone(), value.clone()));
    }
    let mut hasher = DefaultHasher::new();
    path.to_ascii_lowercase().hash(&mut hasher);
    let mut canonical: Vec<(String, &String)> = query
        .echo
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .collect();
    canonical.sort();
    canonical.hash(&mut hasher);
    query.fingerprint = hasher.finish();
    if let Some(token) = query.token
        && token.fingerprint != query.fingerprint
    {
        return Err(ArmError::bad_request(
            "The $skipToken does not belong to this query: request the nextLink exactly as returned.",
        ));
    }
    Ok(query)
}

pub(super) fn severity_rank(severity: &str) -> i64 {
    match severity {
        "Informational" => 0,
        "Low" => 1,
        "Medium" => 2,
        _ => 3,
    }
}

pub(super) fn nanos(t: &DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// One page of `rows` (each with its sort key and tie-breaker): the rows after the
/// token, at most `top`, and the token for the rest if any.
pub(super) fn page<T>(
    mut rows: Vec<(i64, i64, T)>,
    query: &ListQuery,
) -> (Vec<T>, Option<SkipToken>) {
    rows.sort_by_key(|(k, t, _)| (*k, *t));
    if query.descending {
        rows.reverse();
    }
    let after = |k: i64, t: i64| match query.token {
        None => true,
        Some(token) if query.descending => (k, t) < (token.key, token.tie),
        Some(token) => (k, t) > (token.key, token.tie),
    };
    let mut rest = rows
        .into_iter()
        .filter(|(k, t, _)| after(*k, *t))
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    while items.len() < query.top {
        let Some((k, t, item)) = rest.next() else {
            break;
        };
        last = Some((k, t));
        items.push(item);
    }
    let next = match (rest.peek(), last) {
        (Some(_), Some((key, tie))) => Some(SkipToken {
            key,
            tie,
            fingerprint: query.fingerprint,
        }),
        _ => None,
    };
    (items, next)
}

pub(super) fn next_link(
    base: &str,
    path: &str,
    api_version: &str,
    query: &ListQuery,
    token: SkipToken,
) -> String {
    let mut link = format!("{base}{path}?api-version={}", encode(api_version));
    for (name, value) in &query.echo {
        link.push('&');
        link.push_str(name);
        link.push('=');
        link.push_str(&encode(value));
    }
    link.push_str("&$skipToken=");
    link.push_str(&token.encode());
    link
}

pub(super) struct Call<'a> {
    pub(super) shared: &'a Shared,
    pub(super) method: &'a Method,
    pub(super) uri: &'a Uri,
    pub(super) headers: &'a HeaderMap,
    pub(super) pairs: Vec<(String, String)>,
    pub(super) api_version: String,
    pub(super) body: &'a [u8],
}

impl Call<'_> {
    pub(super) fn link_base(&self) -> String {
        link_base(self.shared, self.headers)
    }

    pub(super) fn not_allowed(&self) -> ArmError {
        ArmError::method_not_allowed(self.uri, &self.api_version, self.method)
    }
}

pub(super) fn list_incidents(call: &Call) -> Result<Response, ArmError> {
    let path = call.uri.path();
    let query = parse_list_query(&call.pairs, path, Scope::Incidents)?;
    let state = call.shared.lock();
    let bug = state.undetermined_bug && query.filter.iter().any(Clause::is_undetermined_bug);
    let rows = state
        .incidents
        .values()
        .filter(|i| !bug && query.filter.iter().all(|c| c.matches(*i)))
        .map(|i| {
            let key = match query.sort {
                SortField::LastModified => nanos(&i.modified),
                SortField::Created => nanos(&i.created),
                SortField::Number => i.number,
                SortField::Severity => severity_rank(&i.severity),
            };
            (key, i.number, i)
        })
        .collect();
    let (items, next) = page(rows, &query);
    let preview = is_preview(&state, &call.api_version);
    let body = ResourceList {
        value: items
            .into_iter()
            .map(|i| call.shared.render(i, preview))
            .collect::<Vec<_>>(),
        next_link: next.map(|t| next_link(&call.link_base(), path, &call.api_version, &query, t)),
    };
    Ok(json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &body))
}

pub(super) fn list_comments(call: &Call, id: &str) -> Result<Response, ArmError> {
    let path = call.uri.path();
    let query = parse_list_query(&call.pairs, path, Scope::Comments)?;
    let state = call.shared.lock();
    let incident = state
        .get(id)
        .ok_or_else(|| ArmError::not_found("Incident", id))?;
    let rows = incident
        .comments
        .iter()
        .filter(|c| query.filter.iter().all(|f| f.matches(*c)))
        .map(|c| {
            let key = match query.sort {
                SortField::LastModified => nanos(&c.modified),
                _ => nanos(&c.created),
            };
            (key, c.seq, c)
        })
        .collect();
    let (items, next) = page(rows, &query);
    let body = ResourceList {
        value: items
            .into_iter()
            .map(|c| {
                call.shared
                    .context
                    .resources
                    .comment_wire(&incident.name, c)
            })
            .collect::<Vec<_>>(),
        next_link: next.map(|t| next_link(&call.link_base(), path, &call.api_version, &query, t)),
    };
    Ok(json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &body))
}
