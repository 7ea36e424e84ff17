//! The generic system's part of `itsm-bridge doctor`: its GET endpoints tried
//! through [`GenericTickets`], so every answer is read with the shapes the mapping's
//! `[api]` describes (record wrappers, envelopes, `{since}` format) and every error
//! with the details `error_message` and `error_details` point at; and the advice
//! per failure. Never writes remotely. The report types and redaction stay in
//! `crate::doctor`.

use bridge_core::config::{Config, TicketSystemConfig};
use bridge_core::mapping::HttpMethod;
use bridge_core::model::Correlation;
use bridge_core::ports::{ErrorKind, TicketSystem};

use super::GenericTickets;
use crate::doctor::{Check, Problem, common_advice, skip_all};
use crate::http::Api;

/// Tries the search, find and get endpoints (GET only).
pub(crate) async fn generic_checks(
    checks: &mut Vec<Check>,
    config: &Config,
    system: &TicketSystemConfig,
    api: Api,
) {
    let Some(spec) = system.mapping.api.clone() else {
        checks.push(Check::fail(
            "[api] table",
            "the mapping has no [api] table",
            format!(
                "describe the REST API in {} ([api], see mappings/README.md)",
                system.mapping.file.display()
            ),
        ));
        return;
    };
    let base = system.base_url.clone();
    let (search_method, search_path) = (spec.search.method, spec.search.path.as_str().to_string());
    let (find_method, find_path) = (spec.find.method, spec.find.path.as_str().to_string());
    let (get_method, get_path) = (spec.get.method, spec.get.path.as_str().to_string());
    let tickets = GenericTickets::new(api, spec);
    let since = config
        .syncs
        .iter()
        .filter(|s| s.tickets == system.name)
        .map(|s| s.since)
        .min()
        .unwrap_or_else(|| chrono::Utc::now() - chrono::Duration::days(30));

    let mut a_key = None;
    let name = "search endpoint";
    if search_method == HttpMethod::Get {
        match tickets.changed_since(since).await {
            Ok(page) => {
                a_key = page.items.first().map(|t| t.key.clone());
                checks.push(Check::pass(
                    name,
                    match page.items.len() {
                        0 => format!("GET {search_path}: answered (no ticket of the bridge's yet)"),
                        n => format!("GET {search_path}: answered ({n} of the bridge's tickets)"),
                    },
                ));
            }
            Err(e) => {
                let problem = Problem::of(&e);
                checks.push(Check::fail(
                    name,
                    format!("GET {search_path}: {}", e.message),
                    generic_advice(&problem, "search", &base),
                ));
                if problem.unreachable() || problem.status == Some(401) {
                    // The other endpoints would only say the same.
                    skip_all(
                        checks,
                        &["find endpoint", "get endpoint"],
                        "needs the system to answer",
                    );
                    return;
                }
            }
        }
    } else {
        checks.push(Check::skip(
            name,
            format!(
                "{} {search_path}: not tried (doctor only sends GET requests)",
                search_method.as_str()
            ),
        ));
    }

    let name = "find endpoint";
    if find_method == HttpMethod::Get {
        let probe = Correlation::new("itsm-bridge-doctor", "probe").with_scope("doctor");
        checks.push(match tickets.find_by_correlation(&probe).await {
            Ok(_) => Check::pass(
                name,
                format!("GET {find_path}: answered (looked up a correlation id no ticket has)"),
            ),
            Err(e) => Check::fail(
                name,
                format!("GET {find_path}: {}", e.message),
                generic_advice(&Problem::of(&e), "find", &base),
            ),
        });
    } else {
        checks.push(Check::skip(
            name,
            format!(
                "{} {find_path}: not tried (doctor only sends GET requests)",
                find_method.as_str()
            ),
        ));
    }

    let name = "get endpoint";
    checks.push(match (get_method, a_key) {
        (HttpMethod::Get, Some(key)) => match tickets.get(&key).await {
            Ok(ticket) => Check::pass(name, format!("GET {get_path}: read {}", ticket.key)),
            Err(e) => Check::fail(
                name,
                format!("GET {get_path} ({key}): {}", e.message),
                generic_advice(&Problem::of(&e), "get", &base),
            ),
        },
        (HttpMethod::Get, None) => Check::skip(
            name,
            format!(
                "GET {get_path}: not tried (the search found no ticket of the bridge's to read)"
            ),
        ),
        (method, _) => Check::skip(
            name,
            format!(
                "{} {get_path}: not tried (doctor only sends GET requests)",
                method.as_str()
            ),
        ),
    });
}

/// What a failed request to a generic system's endpoint means.
pub fn generic_advice(problem: &Problem, endpoint: &str, base_url: &str) -> String {
    match problem.status {
        Some(401) => "the system refused the credentials: check token (or username and \
                      password) in this [[ticket_system]]"
            .to_string(),
        Some(403) => format!(
            "the account may not use the {endpoint} endpoint: give it read and write access to \
             tickets in the system"
        ),
        Some(404 | 405) => format!(
            "the {endpoint} endpoint's path or method is wrong for this system: check [api] \
             {endpoint} in the mapping file (paths are relative to base_url {base_url})"
        ),
        Some(400) => format!(
            "the system refused the {endpoint} request: check the query parameters in [api] \
             {endpoint}"
        ),
        _ if problem.kind == ErrorKind::InvalidPayload && problem.status.is_none() => format!(
            "the answer does not have the shape [api] describes: check items, next and the ticket \
             pointers in the mapping file against a real answer of the {endpoint} endpoint"
        ),
        _ => common_advice(problem, "base_url", base_url)
            .unwrap_or_else(|| format!("check [api] {endpoint} and base_url {base_url}")),
    }
}
