//! The Graph simulator's admin surface under `/_sim/` (no auth): list, read, seed and
//! change incidents as Defender would.

use super::*;

pub(super) fn admin_error(status: StatusCode, message: String) -> Response {
    graph_error(status, "SimulatorAdmin", &message)
}

pub(super) async fn admin_list(State(shared): State<Arc<Shared>>) -> Response {
    let mut all: Vec<SimIncident> = shared.lock().incidents.values().cloned().collect();
    all.sort_by(|a, b| id_order(&a.id).cmp(&id_order(&b.id)));
    let value: Vec<Incident> = all
        .iter()
        .map(|i| i.to_wire(&shared.context.tenant_id, true))
        .collect();
    json_response_as(
        JSON_CONTENT_TYPE,
        StatusCode::OK,
        serde_json::json!({ "value": value }),
    )
}

pub(super) async fn admin_get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    match shared.lock().incidents.get(&id) {
        Some(incident) => json_response_as(
            JSON_CONTENT_TYPE,
            StatusCode::OK,
            incident.to_wire(&shared.context.tenant_id, true),
        ),
        None => admin_error(
            StatusCode::NOT_FOUND,
            format!("incident {id} does not exist"),
        ),
    }
}

pub(super) async fn admin_seed(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let seed: SeedIncident = match serde_json::from_slice(&body) {
        Ok(seed) => seed,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("bad seed: {e}")),
    };
    let mut state = shared.lock();
    match state.seed(seed) {
        Ok(id) => json_response_as(
            JSON_CONTENT_TYPE,
            StatusCode::CREATED,
            state.incidents[&id].to_wire(&shared.context.tenant_id, true),
        ),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("bad seed: {e}")),
    }
}

pub(super) async fn admin_change(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let change: DefenderChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("bad change: {e}")),
    };
    let mut state = shared.lock();
    if !state.incidents.contains_key(&id) {
        return admin_error(
            StatusCode::NOT_FOUND,
            format!("incident {id} does not exist"),
        );
    }
    match state.apply_defender_change(&id, change) {
        Ok(incident) => json_response_as(
            JSON_CONTENT_TYPE,
            StatusCode::OK,
            incident.to_wire(&shared.context.tenant_id, true),
        ),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("bad change: {e}")),
    }
}
