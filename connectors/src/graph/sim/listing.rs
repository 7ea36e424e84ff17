//! Listing Graph's incidents: the `$filter`/`$top`/`$skip`/`$count` query, live or frozen
//! paging, and the opaque `$skiptoken` next links bound to their query.

use super::*;

/// What a `$skiptoken` encodes (opaque to clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SkipToken {
    pub(super) offset: usize,
    /// The frozen result list; 0 under live paging.
    pub(super) snapshot: u64,
    /// The query the token belongs to.
    pub(super) fingerprint: u64,
    /// The empty page before this offset was already served (`set_empty_pages`).
    pub(super) empty_served: bool,
}

impl SkipToken {
    pub(super) fn encode(&self) -> String {
        let raw = format!(
            "v1.{}.{}.{:x}.{}",
            self.offset, self.snapshot, self.fingerprint, self.empty_served as u8
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub(super) fn decode(token: &str) -> Option<SkipToken> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
        let mut parts = raw.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let offset = parts.next()?.parse().ok()?;
        let snapshot = parts.next()?.parse().ok()?;
        let fingerprint = u64::from_str_radix(parts.next()?, 16).ok()?;
        let empty_served = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        parts.next().is_none().then_some(SkipToken {
            offset,
            snapshot,
            fingerprint,
            empty_served,
        })
    }
}

#[derive(Debug)]
pub(super) struct ListQuery {
    pub(super) pairs: Vec<(String, String)>,
    pub(super) filter: Vec<Clause>,
    pub(super) top: usize,
    pub(super) skip: Option<usize>,
    pub(super) count: bool,
    pub(super) expand_alerts: bool,
    pub(super) token: Option<SkipToken>,
    pub(super) fingerprint: u64,
}

pub(super) fn is_paging_option(name: &str) -> bool {
    name.eq_ignore_ascii_case("$skip") || name.eq_ignore_ascii_case("$skiptoken")
}

pub(super) fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, GraphError> {
    let pairs = query_pairs(raw)?;
    let mut query = ListQuery {
        pairs: Vec::new(),
        filter: Vec::new(),
        top: MAX_TOP,
        skip: None,
        count: false,
        expand_alerts: false,
        token: None,
        fingerprint: 0,
    };
    for (name, value) in &pairs {
        if !name.starts_with('$') {
            continue; // non-OData parameters are ignored, as OData services do
        }
        match name.to_ascii_lowercase().as_str() {
            "$filter" => query.filter = parse_filter(value)?,
            "$top" => {
                let top = non_negative("$top", value)?;
                if top > MAX_TOP {
                    return Err(GraphError::top_exceeded(value.trim()));
                }
                query.top = top;
            }
            "$skip" => query.skip = Some(non_negative("$skip", value)?),
            "$count" => {
                query.count = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(GraphError::bad_request(format!(
                            "'{value}' is not a valid count option."
                        )));
                    }
                }
            }
            "$expand" => query.expand_alerts = expand_alerts(value)?,
            "$skiptoken" => {
                query.token = Some(SkipToken::decode(value).ok_or_else(|| {
                    GraphError::bad_request("The $skiptoken value is not valid.")
                })?);
            }
            _ => return Err(unsupported_option(name)),
        }
    }
    let mut hasher = DefaultHasher::new();
    let mut canonical: Vec<(String, &String)> = pairs
        .iter()
        .filter(|(name, _)| !is_paging_option(name))
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    canonical.sort();
    canonical.hash(&mut hasher);
    query.fingerprint = hasher.finish();
    query.pairs = pairs;
    Ok(query)
}

pub(super) fn next_link(base: &str, pairs: &[(String, String)], token: SkipToken) -> String {
    let mut url = Url::parse(&format!("{base}/v1.0/security/incidents"))
        .expect("the simulator's base URL is a URL");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs.iter().filter(|(name, _)| !is_paging_option(name)) {
            query.append_pair(name, value);
        }
        query.append_pair("$skiptoken", &token.encode());
    }
    url.to_string()
}

#[derive(Debug, Serialize)]
pub(super) struct ListBody {
    #[serde(rename = "@odata.context")]
    pub(super) context: String,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    pub(super) count: Option<usize>,
    pub(super) value: Vec<Incident>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub(super) next_link: Option<String>,
}

pub(super) fn list(
    shared: &Shared,
    raw: Option<&str>,
    prefer: bool,
    base: &str,
) -> Result<ListBody, GraphError> {
    let query = parse_list_query(raw)?;
    let mut state = shared.lock();
    let context = format!("{base}/v1.0/$metadata#security/incidents");
    let (ids, offset, snapshot) = match query.token {
        None => (state.query(&query.filter), query.skip.unwrap_or(0), None),
        Some(token) => {
            if query.skip.is_some() && state.reject_skip_with_token {
                return Err(GraphError::bad_request(
                    "$skip cannot be combined with $skiptoken: request the @odata.nextLink exactly as returned.",
                ));
            }
            if token.fingerprint != query.fingerprint {
                return Err(GraphError::bad_request(
                    "The $skiptoken does not belong to this query: request the @odata.nextLink exactly as returned.",
                ));
            }
            let ids = if token.snapshot == 0 {
                state.query(&query.filter)
            } else {
                state
                    .snapshots
                    .iter()
                    .find(|s| s.id == token.snapshot && s.fingerprint == token.fingerprint)
                    .map(|s| s.ids.clone())
                    .ok_or_else(|| {
                        GraphError::bad_request(
                            "The $skiptoken has expired; start the listing again.",
                        )
                    })?
            };
            (ids, token.offset, Some(token.snapshot))
        }
    };
    if let Some(token) = query.token
        && state.empty_pages
        && !token.empty_served
    {
        let token = SkipToken {
            empty_served: true,
            ..token
        };
        return Ok(ListBody {
            context,
            count: None,
            value: Vec::new(),
            next_link: Some(next_link(base, &query.pairs, token)),
        });
    }
    if state.skip_limit.is_some_and(|limit| offset > limit) {
        return Ok(ListBody {
            context,
            count: (query.count && query.token.is_none()).then_some(ids.len()),
            value: Vec::new(),
            next_link: None,
        });
    }
    let start = offset.min(ids.len());
    let end = (start + query.top).min(ids.len());
    let next = if end < ids.len() && query.top > 0 {
        let snapshot = match snapshot {
            Some(s) => s,
            None if state.live_paging => 0,
            None => state.keep_snapshot(query.fingerprint, ids.clone()),
        };
        Some(SkipToken {
            offset: end,
            snapshot,
            fingerprint: query.fingerprint,
            empty_served: false,
        })
    } else {
        None
    };
    let value = ids[start..end]
        .iter()
        .filter_map(|id| state.incidents.get(id))
        .map(|incident| {
            let mut wire = incident.to_wire(&shared.context.tenant_id, prefer);
            if query.expand_alerts {
                wire.alerts = Some(Vec::new());
            }
            wire
        })
        .collect();
    Ok(ListBody {
        context,
        count: (query.count && query.token.is_none()).then_some(ids.len()),
        value,
        next_link: next.map(|token| next_link(base, &query.pairs, token)),
    })
}
