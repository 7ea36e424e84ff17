//! The ServiceNow simulator's admin surface under `/_sim/` (no auth): the
//! incidents, and resolving one as an analyst would.

use super::*;

pub(super) async fn admin_incidents(State(sim): State<Shared>) -> Response {
    let state = sim.lock();
    let all: Vec<Value> = state.rows("incident").iter().map(|r| json!(r)).collect();
    json_response(StatusCode::OK, Value::Array(all))
}

pub(super) async fn admin_resolve(
    State(sim): State<Shared>,
    Path(number): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (code, notes) = (field("close_code"), field("close_notes"));
    let result = sim.lock().analyst_edit(
        &number,
        ANALYST,
        |r| {
            r.insert("state".into(), "6".into());
            r.insert("close_code".into(), code);
            r.insert("close_notes".into(), notes);
        },
        true,
    );
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => SnError::bad("Resolve failed", e).into_response(),
    }
}
