//! `itsm-bridge doctor`'s probes of a ServiceNow instance: the OAuth token (when
//! it signs in so), one-row reads of `incident` and `sys_journal_field`, the close
//! codes in `sys_choice` against the mapping's, and what each failure means.

use bridge_core::config::{TicketAuth, TicketSystemConfig};
use bridge_core::mapping::Mapping;
use serde_json::Value;

use crate::doctor::{Check, Problem, common_advice, plural, shown, skip_all};
use crate::http::{Api, Auth};

pub(crate) async fn servicenow_checks(
    checks: &mut Vec<Check>,
    system: &TicketSystemConfig,
    api: &Api,
    auth: &Auth,
    user: &str,
) {
    let oauth = matches!(system.auth, TicketAuth::OAuthClient { .. });
    let later = ["read incidents", "read work notes", "close codes"];
    if oauth && let Auth::Bearer(provider) = auth {
        match provider.token().await {
            Ok(_) => checks.push(Check::pass(
                "OAuth token",
                "issued by /oauth_token.do (client credentials)",
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "OAuth token",
                    e.message.clone(),
                    servicenow_oauth_advice(&Problem::of(&e)),
                ));
                skip_all(checks, &later, "needs a token");
                return;
            }
        }
    }
    let table = |table: &str, query: &str, fields: &str, limit: &str| {
        let mut url = api.segments_url(["api", "now", "table", table]);
        {
            let mut pairs = url.query_pairs_mut();
            if !query.is_empty() {
                pairs.append_pair("sysparm_query", query);
            }
            pairs
                .append_pair("sysparm_fields", fields)
                .append_pair("sysparm_limit", limit)
                .append_pair("sysparm_no_count", "true");
        }
        url
    };

    let url = table("incident", "", "sys_id,number", "1");
    match api.get_json::<Value>(url.clone()).await {
        Ok(body) => checks.push(Check::pass(
            "read incidents",
            format!(
                "{}: {}",
                shown(&url),
                plural(body["result"].as_array().map_or(0, Vec::len), "row", "rows")
            ),
        )),
        Err(e) => {
            checks.push(Check::fail(
                "read incidents",
                format!("{}: {}", shown(&url), e.message),
                servicenow_read_advice(&Problem::of(&e), user, oauth, &system.base_url),
            ));
            skip_all(checks, &later[1..], "needs the incident table");
            return;
        }
    }

    let url = table(
        "sys_journal_field",
        "name=incident^elementINwork_notes,comments",
        "sys_id",
        "1",
    );
    checks.push(match api.get_json::<Value>(url.clone()).await {
        Ok(_) => Check::pass("read work notes", format!("{}: answered", shown(&url))),
        Err(e) => Check::fail(
            "read work notes",
            format!("{}: {}", shown(&url), e.message),
            servicenow_journal_advice(&Problem::of(&e), user),
        ),
    });

    let needed = servicenow_close_codes(&system.mapping);
    let url = table(
        "sys_choice",
        "name=incident^element=close_code^inactive=false",
        "value,label",
        "1000",
    );
    checks.push(match api.get_json::<Value>(url.clone()).await {
        Ok(body) => {
            let offered: Vec<String> = body["result"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r["value"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            close_codes_check(&needed, &offered, &system.mapping)
        }
        Err(e) => Check::warn(
            "close codes",
            format!("{}: {}", shown(&url), e.message),
            format!(
                "{user} cannot read sys_choice, so the bridge sends the mapping's close codes \
                 unchecked and a code this instance lacks fails only when a ticket is resolved: \
                 grant the user read access to sys_choice (an ACL), or make sure the codes exist"
            ),
        ),
    });
}

/// What a failed OAuth token request to a ServiceNow instance means.
pub fn servicenow_oauth_advice(problem: &Problem) -> String {
    if problem.unreachable() {
        return "the instance's /oauth_token.do cannot be reached: check base_url, DNS, the \
                firewall and [http] proxy"
            .to_string();
    }
    match problem.status {
        Some(400 | 401 | 403) => "the instance refused the OAuth client: check client_id and \
             client_secret against System OAuth > Application Registry, that the client \
             credentials grant is enabled (glide.oauth.inbound.client.credential.grant_type.enabled \
             = true) and that the application has an OAuth application user"
            .to_string(),
        Some(404) => "base_url has no /oauth_token.do: set it to the instance URL, e.g. \
                      https://acme.service-now.com, and check the OAuth plugin is active"
            .to_string(),
        _ => common_advice(problem, "base_url", "the instance")
            .unwrap_or_else(|| "check client_id, client_secret and base_url".to_string()),
    }
}

/// What a failed one-row read of `incident` means.
pub fn servicenow_read_advice(
    problem: &Problem,
    user: &str,
    oauth: bool,
    base_url: &str,
) -> String {
    match problem.status {
        Some(401) if oauth => "the instance refused the OAuth token: check the OAuth \
             application's user is active and may use the REST API"
            .to_string(),
        Some(401) => format!(
            "ServiceNow refused user {user} with this password: check username and password (a \
             locked-out or inactive user is refused too; a single-sign-on user has no password \
             for the API: use a local integration user, or OAuth)"
        ),
        Some(403) => format!(
            "{user} may not read the incident table: give the user the itil role (or read, write \
             and create ACLs on incident); the bridge also reads sys_user, sys_user_group, \
             sys_journal_field and sys_choice"
        ),
        Some(404) => format!(
            "base_url {base_url} has no Table API: set it to the instance URL, e.g. \
             https://acme.service-now.com"
        ),
        _ => common_advice(problem, "base_url", base_url)
            .unwrap_or_else(|| format!("check base_url {base_url} and the credentials")),
    }
}

/// What a failed read of `sys_journal_field` means.
pub fn servicenow_journal_advice(problem: &Problem, user: &str) -> String {
    match problem.status {
        Some(401 | 403) => format!(
            "{user} may not read sys_journal_field, so work notes cannot be read back and \
             ServiceNow comments do not sync: the itil role normally allows it; check the ACLs \
             on sys_journal_field"
        ),
        _ => common_advice(problem, "base_url", "the instance")
            .unwrap_or_else(|| "check the user's access to sys_journal_field".to_string()),
    }
}

/// The close codes the mapping writes to ServiceNow: values of rules that write
/// `close_code` and `[merge] close_with`.
pub fn servicenow_close_codes(mapping: &Mapping) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    let mut add = |code: &str| {
        if !code.is_empty() && !codes.iter().any(|c| c == code) {
            codes.push(code.to_string());
        }
    };
    for rule in &mapping.fields {
        if rule.ticket == "close_code"
            && rule.flow.to_ticket()
            && let Some(map) = &rule.to_ticket
        {
            for (_, value) in &map.entries {
                add(value);
            }
            if let Some(default) = &map.default {
                add(default);
            }
        }
    }
    for (attr, value) in &mapping.close_with {
        if attr == "close_code" {
            add(value);
        }
    }
    codes
}

/// The mapping's close codes against the instance's active choices (matched as the
/// client matches them: case-insensitively).
pub fn close_codes_check(needed: &[String], offered: &[String], mapping: &Mapping) -> Check {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|code| !offered.iter().any(|o| o.eq_ignore_ascii_case(code)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Check::pass(
            "close codes",
            if needed.is_empty() {
                format!(
                    "the mapping writes no close code ({} offered)",
                    plural(offered.len(), "code", "codes")
                )
            } else {
                format!(
                    "all {} the mapping writes exist in sys_choice",
                    plural(needed.len(), "code", "codes")
                )
            },
        );
    }
    Check::fail(
        "close codes",
        format!(
            "not offered by this instance: {} (it offers: {})",
            missing.join(", "),
            offered.join(", ")
        ),
        format!(
            "resolving a ticket with a code the instance lacks is refused: change these codes in \
             {} (the close_code field's values and [merge] close_with) to ones the instance \
             offers, or add them as choices of incident.close_code",
            mapping.file.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use crate::doctor::fixtures::{problem, shipped};
    use bridge_core::ports::ErrorKind;

    #[test]
    fn servicenow_statuses_name_roles_and_credentials() {
        let p = |status: &str| problem(ErrorKind::Auth, &format!("HTTP {status}: x"));
        let basic =
            servicenow_read_advice(&p("401 Unauthorized"), "itsm.bridge", false, "https://i");
        assert!(
            basic.contains("password") && basic.contains("itsm.bridge"),
            "{basic}"
        );
        assert!(
            servicenow_read_advice(&p("401 Unauthorized"), "u", true, "https://i")
                .contains("OAuth")
        );
        assert!(
            servicenow_read_advice(&p("403 Forbidden"), "u", false, "https://i").contains("itil")
        );
        assert!(servicenow_oauth_advice(&p("401 Unauthorized")).contains("client_secret"));
        assert!(servicenow_journal_advice(&p("403 Forbidden"), "u").contains("sys_journal_field"));
    }

    #[test]
    fn close_codes_come_from_the_mapping() {
        let snow = shipped(crate::sims::SERVICENOW_MAPPING, "servicenow.toml");
        let codes = servicenow_close_codes(&snow);
        for code in [
            "Solution provided",
            "Resolved by caller",
            "No resolution provided",
            "Duplicate",
        ] {
            assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
        }
        // Codes only read back from ServiceNow need not exist.
        assert!(
            !codes.iter().any(|c| c == "Solved (Permanently)"),
            "{codes:?}"
        );
        let utah: Vec<String> = crate::servicenow::sim::CLOSE_CODES_UTAH
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        assert_eq!(close_codes_check(&codes, &utah, &snow).status, Status::Pass);
        let legacy: Vec<String> = crate::servicenow::sim::CLOSE_CODES_LEGACY
            .iter()
            .map(|c| c.to_string())
            .collect();
        let check = close_codes_check(&codes, &legacy, &snow);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.detail.contains("Solution provided"),
            "{}",
            check.detail
        );
        assert!(check.fix.unwrap().contains("servicenow.toml"));
    }
}
