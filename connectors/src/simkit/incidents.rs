//! What the two incident-source simulators (Graph, Sentinel) share beyond the
//! shell, over their own seed and change types: the admin surface's read, seed
//! and change handlers (`GET`, `POST /_sim/incidents`, `PATCH /_sim/incidents/{id}`), the
//! analyst's setters (`set_status`, `set_severity`, `set_title`) and the seed
//! builders' setters ([`seed_setters!`](crate::simkit::seed_setters)). What each
//! vendor does with a seed or a change stays with the vendor.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::shell::{Shared, Sim, VendorState, json_response_as};

/// A source simulator's incidents as its admin surface seeds and changes them.
pub trait IncidentAdmin<C>: VendorState {
    /// The vendor's seed (`POST /_sim/incidents`).
    type Seed: DeserializeOwned;
    /// The vendor's change (`PATCH /_sim/incidents/{id}` and the analyst's setters).
    type Change: DeserializeOwned + AnalystEdit;
    /// The incident as the admin surface shows it.
    type View: Serialize;

    /// Seeds an incident; its id, or why the seed is refused.
    fn seed(&mut self, seed: Self::Seed) -> Result<String, String>;
    fn contains(&self, id: &str) -> bool;
    /// Applies a change as the vendor's portal would, or says why it is refused.
    fn apply_change(&mut self, id: &str, change: Self::Change) -> Result<(), String>;
    /// The incident `id` (which exists) as the admin surface shows it.
    fn view(&self, context: &C, id: &str) -> Self::View;
    /// The vendor's error answer, for the admin surface.
    fn admin_error(status: StatusCode, message: String) -> Response;
}

/// The fields every vendor's change has, for the analyst's setters.
pub trait AnalystEdit: Default {
    /// The change's `(status, severity, title)`.
    fn common(
        &mut self,
    ) -> (
        &mut Option<String>,
        &mut Option<String>,
        &mut Option<String>,
    );
}

/// `GET /_sim/incidents/{id}`: one incident as the admin surface shows it.
pub async fn admin_get<S: IncidentAdmin<C>, C>(
    State(shared): State<Arc<Shared<S, C>>>,
    Path(id): Path<String>,
) -> Response {
    let state = shared.lock();
    if !state.contains(&id) {
        return S::admin_error(
            StatusCode::NOT_FOUND,
            format!("incident {id} does not exist"),
        );
    }
    json_response_as(
        S::JSON_CONTENT_TYPE,
        StatusCode::OK,
        state.view(&shared.context, &id),
    )
}

/// `POST /_sim/incidents`: seeds one incident from the vendor's seed JSON.
pub async fn admin_seed<S: IncidentAdmin<C>, C>(
    State(shared): State<Arc<Shared<S, C>>>,
    body: Bytes,
) -> Response {
    let seed: S::Seed = match serde_json::from_slice(&body) {
        Ok(seed) => seed,
        Err(e) => return S::admin_error(StatusCode::BAD_REQUEST, format!("bad seed: {e}")),
    };
    let mut state = shared.lock();
    match state.seed(seed) {
        Ok(id) => json_response_as(
            S::JSON_CONTENT_TYPE,
            StatusCode::CREATED,
            state.view(&shared.context, &id),
        ),
        Err(e) => S::admin_error(StatusCode::BAD_REQUEST, format!("bad seed: {e}")),
    }
}

/// `PATCH /_sim/incidents/{id}`: changes one incident with the vendor's change JSON.
pub async fn admin_change<S: IncidentAdmin<C>, C>(
    State(shared): State<Arc<Shared<S, C>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let change: S::Change = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => return S::admin_error(StatusCode::BAD_REQUEST, format!("bad change: {e}")),
    };
    let mut state = shared.lock();
    if !state.contains(&id) {
        return S::admin_error(
            StatusCode::NOT_FOUND,
            format!("incident {id} does not exist"),
        );
    }
    match state.apply_change(&id, change) {
        Ok(()) => json_response_as(
            S::JSON_CONTENT_TYPE,
            StatusCode::OK,
            state.view(&shared.context, &id),
        ),
        Err(e) => S::admin_error(StatusCode::BAD_REQUEST, format!("bad change: {e}")),
    }
}

impl<S: IncidentAdmin<C>, C: Send + Sync + 'static> Sim<S, C> {
    /// Sets any status the vendor has; false when there is no such incident or
    /// the change is refused.
    pub fn set_status(&self, id: &str, status: &str) -> bool {
        self.edit(id, |c| *c.common().0 = Some(status.into()))
    }

    pub fn set_severity(&self, id: &str, severity: &str) -> bool {
        self.edit(id, |c| *c.common().1 = Some(severity.into()))
    }

    pub fn set_title(&self, id: &str, title: &str) -> bool {
        self.edit(id, |c| *c.common().2 = Some(title.into()))
    }

    /// Applies the change `f` makes to an empty one; false when refused.
    fn edit(&self, id: &str, f: impl FnOnce(&mut S::Change)) -> bool {
        let mut change = S::Change::default();
        f(&mut change);
        self.lock().apply_change(id, change).is_ok()
    }
}

/// The setters of a simulator's seed builder: `new(title)`, and for each `set
/// field` or `some field` a method `field(value)` that sets it (wrapped in `Some`
/// for `some`); `at field` takes a time.
macro_rules! seed_setters {
    ($seed:ident { $($how:ident $field:ident),* $(,)? }) => {
        impl $seed {
            pub fn new(title: impl Into<String>) -> $seed {
                $seed {
                    title: title.into(),
                    ..$seed::default()
                }
            }
            $($crate::simkit::seed_setters!(@ $how $field);)*
        }
    };
    (@ set $field:ident) => {
        pub fn $field(mut self, $field: impl Into<String>) -> Self {
            self.$field = $field.into();
            self
        }
    };
    (@ at $field:ident) => {
        pub fn $field(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
            self.$field = Some(at);
            self
        }
    };
    (@ some $field:ident) => {
        pub fn $field(mut self, $field: impl Into<String>) -> Self {
            self.$field = Some($field.into());
            self
        }
    };
}
pub(crate) use seed_setters;
