//! The Sentinel simulator's admin surface under `/_sim/` (no auth): list, read, seed,
//! change, merge and comment on incidents as an analyst would.

use super::*;

pub(super) fn admin_error(status: StatusCode, message: String) -> Response {
    ArmError::new(status, "SimulatorAdmin", message).into_response()
}

pub(super) async fn admin_list(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.lock();
    let mut all: Vec<&SimIncident> = state.incidents.values().collect();
    all.sort_by_key(|i| i.number);
    let value: Vec<Incident> = all.into_iter().map(|i| shared.render(i, true)).collect();
    json_response_as(
        JSON_CONTENT_TYPE,
        StatusCode::OK,
        serde_json::json!({ "value": value }),
    )
}

impl simkit::IncidentAdmin<Context> for SimState {
    type Seed = SeedIncident;
    type Change = AnalystChange;
    type View = Incident;

    fn seed(&mut self, seed: SeedIncident) -> Result<String, String> {
        SimState::seed(self, seed)
    }

    fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn apply_change(&mut self, id: &str, change: AnalystChange) -> Result<(), String> {
        self.apply_analyst_change(id, change).map(|_| ())
    }

    fn view(&self, context: &Context, id: &str) -> Incident {
        let incident = self.get(id).expect("the incident exists");
        context.resources.incident_wire(incident, true)
    }

    fn admin_error(status: StatusCode, message: String) -> Response {
        admin_error(status, message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeRequest {
    pub(super) into: String,
}

pub(super) async fn admin_merge(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request: MergeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("bad merge: {e}")),
    };
    let mut state = shared.lock();
    match state.merge(&id, &request.into) {
        Ok(()) => {
            let incident = state.get(&id).expect("merged");
            json_response_as(
                JSON_CONTENT_TYPE,
                StatusCode::OK,
                shared.render(incident, true),
            )
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("bad merge: {e}")),
    }
}

pub(super) async fn admin_comment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let comment: SeedComment = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("bad comment: {e}")),
    };
    let mut state = shared.lock();
    let change = AnalystChange {
        comment: Some(comment),
        ..AnalystChange::default()
    };
    match state.apply_analyst_change(&id, change) {
        Ok(incident) => {
            let comment = incident.comments.last().expect("just added");
            json_response_as(
                JSON_CONTENT_TYPE,
                StatusCode::CREATED,
                shared
                    .context
                    .resources
                    .comment_wire(&incident.name, comment),
            )
        }
        Err(e) => admin_error(StatusCode::NOT_FOUND, e),
    }
}
