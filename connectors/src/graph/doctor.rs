//! `itsm-bridge doctor`'s probes of a Graph source: the permissions the token
//! carries and one incident listed with `$top=1`, and what a failed listing means.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::auth::doctor::{EntraSettings, token_roles};
use crate::doctor::{Check, LIST_INCIDENTS, Problem, common_advice, plural, shown};
use crate::graph::GraphSource;
use crate::http::{Api, Request};

/// The Graph application permission the bridge needs (reads, updates, comments).
pub const GRAPH_WRITE_PERMISSION: &str = "SecurityIncident.ReadWrite.All";
/// The read-only Graph permission: enough to list, not to write back.
pub const GRAPH_READ_PERMISSION: &str = "SecurityIncident.Read.All";
/// The name of the check of the token's permissions.
pub(crate) const GRAPH_PERMISSIONS: &str = "app permissions";

pub(crate) async fn graph_checks(
    checks: &mut Vec<Check>,
    api: Api,
    token: &SecretString,
    settings: &EntraSettings,
) {
    checks.push(match token_roles(token.expose_secret()) {
        Some(roles) => graph_roles_check(&roles),
        None => Check::skip(
            GRAPH_PERMISSIONS,
            format!(
                "the token is not a JWT, so the permissions granted cannot be read from it; \
                 a missing {GRAPH_WRITE_PERMISSION} shows on the first write-back"
            ),
        ),
    });
    let source = GraphSource::new(api.clone());
    let mut url = source.incidents_url();
    url.query_pairs_mut().append_pair("$top", "1");
    checks.push(match api.send(Request::get(url.clone())).await {
        Ok(response) => match response.json::<Value>(api.system()) {
            Ok(body) if body["value"].is_array() => Check::pass(
                LIST_INCIDENTS,
                format!(
                    "{}: HTTP {} ({})",
                    shown(&url),
                    response.status.as_u16(),
                    plural(body["value"].as_array().map_or(0, Vec::len), "incident", "incidents")
                ),
            ),
            Ok(_) | Err(_) => Check::fail(
                LIST_INCIDENTS,
                format!("{}: the answer is not a Graph incident list", shown(&url)),
                format!(
                    "base_url {} must be the Graph host without a version, e.g. https://graph.microsoft.com",
                    settings.base_url
                ),
            ),
        },
        Err(e) => Check::fail(
            LIST_INCIDENTS,
            format!("{}: {}", shown(&url), e.message),
            graph_list_advice(&Problem::of(&e), settings),
        ),
    });
}

/// What a failed incident listing on Graph means.
pub fn graph_list_advice(problem: &Problem, s: &EntraSettings) -> String {
    match problem.status {
        Some(401) if problem.mentions("expired") || problem.mentions("lifetime") => {
            "Graph says the token had expired: check this machine's clock (it must be within \
             minutes of the real time)"
                .to_string()
        }
        Some(401) => format!(
            "Graph refused the token: it must be issued for Graph in the same cloud as base_url \
             {}: scope is {} and should be that cloud's ({}), or unset for \
             <base_url>/.default; authority_host must be of the same cloud",
            s.base_url,
            s.scope,
            s.scope_example()
        ),
        Some(403) => format!(
            "the app may not read security incidents: add the Microsoft Graph application \
             permission {GRAPH_WRITE_PERMISSION} to app {} (API permissions > Add a permission > \
             Microsoft Graph > Application permissions) and grant admin consent; \
             {GRAPH_READ_PERMISSION} alone is not enough, because the bridge writes status, tags \
             and comments back",
            s.client_id
        ),
        Some(404) => format!(
            "base_url {} has no security incidents API: set it to the Graph host without a version, \
             e.g. https://graph.microsoft.com",
            s.base_url
        ),
        Some(400) => format!(
            "Graph refused the request as malformed: check base_url {} is Graph itself, not a proxy \
             that rewrites requests",
            s.base_url
        ),
        _ => common_advice(problem, "base_url", &s.base_url)
            .unwrap_or_else(|| format!("check base_url {} and the app's permissions", s.base_url)),
    }
}

/// What the claims of a (JWT) access token say about Graph permissions.
pub fn graph_roles_check(roles: &[String]) -> Check {
    let has = |name: &str| roles.iter().any(|r| r.eq_ignore_ascii_case(name));
    let fix = format!(
        "add the Microsoft Graph application permission {GRAPH_WRITE_PERMISSION} to the app \
         registration (API permissions > Add a permission > Microsoft Graph > Application \
         permissions) and grant admin consent; the bridge writes status, tags and comments back, \
         which {GRAPH_READ_PERMISSION} does not allow"
    );
    if has(GRAPH_WRITE_PERMISSION) {
        Check::pass(
            GRAPH_PERMISSIONS,
            format!("the token carries {GRAPH_WRITE_PERMISSION}"),
        )
    } else if has(GRAPH_READ_PERMISSION) {
        Check::fail(
            GRAPH_PERMISSIONS,
            format!(
                "the token carries {GRAPH_READ_PERMISSION} but not {GRAPH_WRITE_PERMISSION}: \
                 incidents can be read, not updated"
            ),
            fix,
        )
    } else if roles.is_empty() {
        Check::fail(
            GRAPH_PERMISSIONS,
            "the token carries no application permission at all",
            fix,
        )
    } else {
        Check::fail(
            GRAPH_PERMISSIONS,
            format!(
                "the token carries no SecurityIncident permission (it has: {})",
                roles.join(", ")
            ),
            fix,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::doctor::tests::settings;
    use crate::doctor::Status;
    use crate::doctor::fixtures::problem;
    use bridge_core::ports::ErrorKind;
    use bridge_core::vocab::SourceKind;

    #[test]
    fn graph_statuses_map_to_permissions_and_scope() {
        let s = settings(SourceKind::Graph);
        let advice = |status: &str| {
            graph_list_advice(&problem(ErrorKind::Auth, &format!("HTTP {status}: x")), &s)
        };
        let forbidden = advice("403 Forbidden");
        assert!(forbidden.contains(GRAPH_WRITE_PERMISSION), "{forbidden}");
        assert!(forbidden.contains("admin consent"), "{forbidden}");
        assert!(forbidden.contains(GRAPH_READ_PERMISSION), "{forbidden}");
        let unauthorized = advice("401 Unauthorized");
        assert!(unauthorized.contains("scope"), "{unauthorized}");
        assert!(
            unauthorized.contains("graph.microsoft.us"),
            "{unauthorized}"
        );
        assert!(advice("404 Not Found").contains("base_url"));
        let expired = graph_list_advice(
            &problem(
                ErrorKind::Auth,
                "HTTP 401 Unauthorized: InvalidAuthenticationToken: Lifetime validation failed, the token is expired.",
            ),
            &s,
        );
        assert!(expired.contains("clock"), "{expired}");
        let down = graph_list_advice(
            &problem(ErrorKind::Transient, "HTTP 503 Service Unavailable"),
            &s,
        );
        assert!(down.contains("server error"), "{down}");
    }

    #[test]
    fn graph_token_roles_decide_write_back() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            graph_roles_check(&roles(&["SecurityIncident.ReadWrite.All"])).status,
            Status::Pass
        );
        let read_only = graph_roles_check(&roles(&["SecurityIncident.Read.All", "User.Read.All"]));
        assert_eq!(read_only.status, Status::Fail);
        assert!(read_only.fix.unwrap().contains(GRAPH_WRITE_PERMISSION));
        assert_eq!(graph_roles_check(&[]).status, Status::Fail);
    }
}
