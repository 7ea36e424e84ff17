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

impl simkit::IncidentAdmin<Context> for SimState {
    type Seed = SeedIncident;
    type Change = DefenderChange;
    type View = Incident;

    fn seed(&mut self, seed: SeedIncident) -> Result<String, String> {
        SimState::seed(self, seed)
    }

    fn contains(&self, id: &str) -> bool {
        self.incidents.contains_key(id)
    }

    fn apply_change(&mut self, id: &str, change: DefenderChange) -> Result<(), String> {
        self.apply_defender_change(id, change).map(|_| ())
    }

    fn view(&self, context: &Context, id: &str) -> Incident {
        self.incidents[id].to_wire(&context.tenant_id, true)
    }

    fn admin_error(status: StatusCode, message: String) -> Response {
        admin_error(status, message)
    }
}
