//! `/rest/api/3/search/jql` (GET and POST): JQL over the lagging index, field
//! selection, and `nextPageToken` paging bound to its query.

use super::*;

pub(super) struct SearchParams {
    pub(super) jql: String,
    pub(super) next_page_token: Option<String>,
    pub(super) max_results: Option<i64>,
    pub(super) fields: Vec<String>,
    pub(super) properties: Vec<String>,
    pub(super) reconcile: Vec<String>,
    pub(super) expand: Vec<String>,
}

pub(super) async fn search_get(State(sim): State<Shared>, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let max_results = match query_value(&pairs, "maxResults") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| JiraError::bad("maxResults must be a number"))?,
        ),
    };
    let params = SearchParams {
        jql: query_value(&pairs, "jql").unwrap_or("").to_string(),
        next_page_token: query_value(&pairs, "nextPageToken").map(str::to_string),
        max_results,
        fields: query_list(&pairs, "fields"),
        properties: query_list(&pairs, "properties"),
        reconcile: query_list(&pairs, "reconcileIssues"),
        expand: query_list(&pairs, "expand"),
    };
    search(&sim, params)
}

pub(super) async fn search_post(State(sim): State<Shared>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    reject_unknown(
        &body,
        &[
            "jql",
            "nextPageToken",
            "maxResults",
            "fields",
            "expand",
            "properties",
            "fieldsByKeys",
            "failFast",
            "reconcileIssues",
        ],
    )?;
    let strings = |name: &str| -> Result<Vec<String>, JiraError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(JiraError::bad(format!(
                        "'{name}' must be an array of strings"
                    ))),
                })
                .collect(),
            Some(_) => Err(JiraError::bad(format!("'{name}' must be an array"))),
        }
    };
    let params = SearchParams {
        jql: match body.get("jql") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(JiraError::bad("'jql' must be a string")),
        },
        next_page_token: match body.get("nextPageToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(JiraError::bad("'nextPageToken' must be a string")),
        },
        max_results: match body.get("maxResults") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| JiraError::bad("'maxResults' must be an integer"))?,
            ),
        },
        fields: strings("fields")?,
        properties: strings("properties")?,
        reconcile: strings("reconcileIssues")?,
        // A comma-separated string, as in the GET query.
        expand: match body.get("expand") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            Some(_) => return Err(JiraError::bad("'expand' must be a string")),
        },
    };
    search(&sim, params)
}

pub(super) fn jql_hash(jql: &str, fields: &[String]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    jql.hash(&mut h);
    fields.hash(&mut h);
    h.finish()
}

pub(super) fn search(sim: &Shared, params: SearchParams) -> Reply {
    if params.reconcile.len() > 50 {
        return Err(JiraError::bad(
            "reconcileIssues accepts at most 50 issue ids",
        ));
    }
    if params.properties.len() > 5 {
        return Err(JiraError::bad("At most 5 properties can be requested"));
    }
    let query = jql::parse(&params.jql).map_err(JiraError::bad)?;
    let Some(filter) = &query.filter else {
        return Err(JiraError::bad(UNBOUNDED));
    };
    if let Some((field, _)) = query.order.iter().find(|(f, _)| !jql::sortable(f)) {
        return Err(JiraError::bad(format!(
            "Error in the JQL Query: Not able to sort using field '{field}'."
        )));
    }
    let selection = FieldSelection::parse(&params.fields);
    let cap: i64 = if matches!(selection, FieldSelection::IdOnly) {
        5000
    } else {
        100
    };
    let max_results = match params.max_results {
        None => 50,
        Some(n) if n < 0 => return Err(JiraError::bad("maxResults must not be negative")),
        Some(n) => n.clamp(1, cap),
    } as usize;
    let hash = jql_hash(&params.jql, &params.fields);
    let offset = match &params.next_page_token {
        None => 0,
        Some(token) => decode_token(token)
            .filter(|(h, _)| *h == hash)
            .map(|(_, o)| o)
            .ok_or_else(|| JiraError::bad("The provided next page token is invalid or expired."))?,
    };

    let state = sim.lock();
    jql::validate(filter, &state).map_err(JiraError::bad)?;
    let mut matches: Vec<&SimIssue> = state
        .records
        .iter()
        .filter_map(|record| {
            let reconcile = params.reconcile.iter().any(|r| {
                *r == record.current.id.to_string() || r.eq_ignore_ascii_case(&record.current.key)
            });
            state.indexed(record, reconcile)
        })
        .filter(|issue| jql::matches(filter, issue, &state))
        .collect();
    jql::sort(&mut matches, &query.order);
    let page: Vec<Value> = matches
        .iter()
        .skip(offset)
        .take(max_results)
        .map(|issue| {
            let mut out = issue_json(&state, issue, &selection, &params.properties);
            if expands_changelog(&params.expand) {
                out["changelog"] = changelog_json(&state, issue);
            }
            out
        })
        .collect();
    let end = offset + page.len();
    let mut out = json!({"issues": page, "isLast": end >= matches.len()});
    if end < matches.len() {
        out["nextPageToken"] = json!(encode_token(hash, end));
    }
    Ok(json_response(StatusCode::OK, out))
}

pub(super) fn encode_token(hash: u64, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{hash:016x}:{offset}"))
}

pub(super) fn decode_token(token: &str) -> Option<(u64, usize)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (hash, offset) = raw.split_once(':')?;
    Some((u64::from_str_radix(hash, 16).ok()?, offset.parse().ok()?))
}
