//! The Jira simulator's admin surface under `/_sim/` (no auth): the issues, and
//! transitions made by an analyst.

use super::*;

pub(super) async fn admin_issues(State(sim): State<Shared>) -> Response {
    let state = sim.lock();
    let issues: Vec<Value> = state
        .records
        .iter()
        .map(|r| {
            issue_json(
                &state,
                &r.current,
                &FieldSelection::all(),
                &["*all".to_string()],
            )
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(issues))
}

pub(super) async fn admin_transition(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(to) = body.get("to").and_then(Value::as_str) else {
        return JiraError::bad("body must be {\"to\": \"<status name>\", \"resolution\"?: \"…\"}")
            .into_response();
    };
    let resolution = body.get("resolution").and_then(Value::as_str);
    let by = body.get("by").and_then(Value::as_str);
    match analyst_transition(&sim, &key, by, to, resolution) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => JiraError::bad(e).into_response(),
    }
}

pub(super) fn analyst_transition(
    sim: &Shared,
    key: &str,
    by: Option<&str>,
    to_status_name: &str,
    resolution: Option<&str>,
) -> Result<(), String> {
    let mut state = sim.lock();
    let i = state.find(key).ok_or(NOT_FOUND)?;
    let mut issue = state.records[i].current.clone();
    let to = state
        .workflow(&issue)
        .status(to_status_name)
        .cloned()
        .ok_or_else(|| format!("status {to_status_name:?} is not in the workflow"))?;
    let resolution = match resolution {
        None => None,
        Some(r) => Some(Some(
            RESOLUTIONS
                .iter()
                .find(|x| x.eq_ignore_ascii_case(r))
                .map(|x| x.to_string())
                .ok_or_else(|| format!("resolution {r:?} does not exist"))?,
        )),
    };
    apply_status(&mut issue, &to, resolution);
    issue.updated = state.tick();
    state.acting = by.map(|who| state.account_named(who));
    state.commit(i, issue);
    Ok(())
}
