//! `itsm-bridge doctor`'s probes of a Jira site: `myself`, the project and its
//! issue types, `mypermissions` for what the mapping makes the bridge do, and what
//! each failure means.

use bridge_core::config::TicketSystemConfig;
use bridge_core::mapping::{Mapping, MergePolicy};
use serde_json::Value;

use crate::doctor::{Check, Problem, common_advice, shown, skip_all};
use crate::http::Api;

pub(crate) async fn jira_checks(
    checks: &mut Vec<Check>,
    system: &TicketSystemConfig,
    api: &Api,
    email: &str,
) {
    let rest = |segments: &[&str]| {
        api.segments_url(
            ["rest", "api", "3"]
                .into_iter()
                .chain(segments.iter().copied()),
        )
    };
    let project_key = system.project_key.clone().unwrap_or_default();
    let issue_type = system.issue_type.clone().unwrap_or_else(|| "Task".into());
    let project_check = format!("project {project_key}");
    let type_check = format!("issue type {issue_type}");
    let later = [
        "account time zone",
        project_check.as_str(),
        type_check.as_str(),
        "permissions",
    ];

    let url = rest(&["myself"]);
    let me = match api.get_json::<Value>(url.clone()).await {
        Ok(me) => me,
        Err(e) => {
            checks.push(Check::fail(
                "sign in",
                format!("{}: {}", shown(&url), e.message),
                jira_sign_in_advice(&Problem::of(&e), email, &system.base_url),
            ));
            skip_all(checks, &later, "needs a working sign-in");
            return;
        }
    };
    let name = me["displayName"].as_str().unwrap_or("");
    let address = me["emailAddress"].as_str().unwrap_or(email);
    checks.push(Check::pass(
        "sign in",
        format!("{}: signed in as {name} <{address}>", shown(&url)),
    ));
    checks.push(jira_time_zone_check(me["timeZone"].as_str()));

    let url = rest(&["project", &project_key]);
    match api.get_json::<Value>(url.clone()).await {
        Ok(project) => {
            checks.push(Check::pass(
                project_check.as_str(),
                format!(
                    "{}: {}",
                    shown(&url),
                    project["name"].as_str().unwrap_or(&project_key)
                ),
            ));
            let offered: Vec<String> = project["issueTypes"]
                .as_array()
                .map(|types| {
                    types
                        .iter()
                        .filter(|t| t["subtask"].as_bool() != Some(true))
                        .filter_map(|t| t["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            checks.push(jira_issue_type_check(
                &type_check,
                &project_key,
                &issue_type,
                &offered,
            ));
        }
        Err(e) => {
            checks.push(Check::fail(
                project_check.as_str(),
                format!("{}: {}", shown(&url), e.message),
                jira_project_advice(&Problem::of(&e), &project_key, email),
            ));
            checks.push(Check::skip(type_check.as_str(), "needs the project"));
        }
    }

    let wanted = jira_permissions_needed(&system.mapping);
    let mut url = rest(&["mypermissions"]);
    url.query_pairs_mut()
        .append_pair("projectKey", &project_key)
        .append_pair("permissions", &wanted.join(","));
    checks.push(match api.get_json::<Value>(url.clone()).await {
        Ok(answer) => jira_permissions_check(&answer, &wanted, &project_key, email),
        Err(e) => Check::fail(
            "permissions",
            format!("{}: {}", shown(&url), e.message),
            jira_project_advice(&Problem::of(&e), &project_key, email),
        ),
    });
}

/// What a failed Jira sign-in (`GET /myself`) means.
pub fn jira_sign_in_advice(problem: &Problem, email: &str, base_url: &str) -> String {
    match problem.status {
        Some(401) => format!(
            "Jira refused email {email} with this api_token: create an API token at \
             https://id.atlassian.com/manage-profile/security/api-tokens while signed in as \
             {email} and put it where api_token points (an account password is not accepted, and \
             tokens expire)"
        ),
        Some(403) => format!(
            "Jira refused the sign-in: after failed logins it asks for a CAPTCHA, so sign in once \
             in a browser as {email}; otherwise the organization may block API tokens for this \
             account (admin.atlassian.com > Security > Authentication policies)"
        ),
        Some(404) => format!(
            "base_url {base_url} has no Jira REST API: set it to the site itself, e.g. \
             https://acme.atlassian.net (no /jira or other path)"
        ),
        _ => common_advice(problem, "base_url", base_url)
            .unwrap_or_else(|| format!("check base_url {base_url}, email and api_token")),
    }
}

/// What a failed project (or permission) lookup in Jira means.
pub fn jira_project_advice(problem: &Problem, project_key: &str, email: &str) -> String {
    match problem.status {
        Some(404 | 403) => format!(
            "project {project_key} does not exist, or {email} cannot see it: check project_key \
             (the project's key, e.g. SEC, not its name), and give the account the Browse \
             Projects permission in the project's permission scheme (Project settings > \
             Permissions)"
        ),
        Some(401) => format!("Jira refused the credentials of {email}: check api_token"),
        _ => common_advice(problem, "base_url", "the Jira site")
            .unwrap_or_else(|| format!("check project_key {project_key}")),
    }
}

/// The account's time zone: JQL reads dates in it, and the bridge writes UTC.
pub fn jira_time_zone_check(zone: Option<&str>) -> Check {
    const UTC: &[&str] = &[
        "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu",
    ];
    match zone {
        Some(zone) if UTC.contains(&zone) => Check::pass("account time zone", zone),
        Some(zone) => Check::warn(
            "account time zone",
            zone,
            "JQL reads dates in the account's time zone and the bridge writes them in UTC: set \
             the account's time zone to UTC (Profile > Account settings), or west of UTC updates \
             inside the offset are missed",
        ),
        None => Check::pass("account time zone", "not shown (treated as UTC)"),
    }
}

/// Whether the project offers the configured issue type.
pub fn jira_issue_type_check(
    name: &str,
    project_key: &str,
    issue_type: &str,
    offered: &[String],
) -> Check {
    if offered.iter().any(|t| t.eq_ignore_ascii_case(issue_type)) {
        return Check::pass(name, format!("offered by project {project_key}"));
    }
    Check::fail(
        name,
        format!(
            "project {project_key} offers no issue type {issue_type:?} (it offers: {})",
            offered.join(", ")
        ),
        format!(
            "set issue_type to one of the project's types, or add {issue_type:?} to the project's \
             issue type scheme"
        ),
    )
}

/// The Jira permissions the bridge uses with this mapping, as `mypermissions` keys.
pub fn jira_permissions_needed(mapping: &Mapping) -> Vec<&'static str> {
    let writes = |attr: &str| {
        mapping
            .fields
            .iter()
            .any(|f| f.ticket == attr && f.flow.to_ticket())
    };
    let closes = mapping.merge == MergePolicy::CloseAsDuplicate;
    let mut keys = vec!["BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES"];
    if writes("status") || closes {
        keys.push("TRANSITION_ISSUES");
    }
    if writes("resolution") || (closes && mapping.close_with.iter().any(|(k, _)| k == "resolution"))
    {
        keys.push("RESOLVE_ISSUES");
    }
    if writes("assignee") {
        keys.push("ASSIGN_ISSUES");
    }
    if mapping.comments.to_ticket || mapping.merge != MergePolicy::KeepOpen {
        keys.push("ADD_COMMENTS");
    }
    if writes("assignee") {
        keys.push("USER_PICKER");
    }
    keys
}

/// What a Jira permission is, and what the bridge needs it for.
fn jira_permission(key: &str) -> (&'static str, &'static str) {
    match key {
        "BROWSE_PROJECTS" => ("Browse Projects", "see the project and its issues"),
        "CREATE_ISSUES" => ("Create Issues", "open tickets"),
        "EDIT_ISSUES" => (
            "Edit Issues",
            "update fields, labels and its issue property",
        ),
        "TRANSITION_ISSUES" => ("Transition Issues", "move a ticket's status"),
        "RESOLVE_ISSUES" => ("Resolve Issues", "set the resolution"),
        "ASSIGN_ISSUES" => ("Assign Issues", "set the assignee"),
        "ADD_COMMENTS" => ("Add Comments", "copy comments"),
        "USER_PICKER" => (
            "Browse users and groups (global)",
            "find assignees by email",
        ),
        _ => ("", ""),
    }
}

/// The `mypermissions` answer against the permissions wanted.
pub fn jira_permissions_check(
    answer: &Value,
    wanted: &[&str],
    project_key: &str,
    email: &str,
) -> Check {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|key| answer["permissions"][key]["havePermission"].as_bool() != Some(true))
        .collect();
    let names =
        |keys: &[&str]| -> Vec<&str> { keys.iter().map(|k| jira_permission(k).0).collect() };
    if missing.is_empty() {
        return Check::pass(
            "permissions",
            format!("in {project_key}: {}", names(wanted).join(", ")),
        );
    }
    let why: Vec<String> = missing
        .iter()
        .map(|k| {
            let (name, what) = jira_permission(k);
            format!("{name} (to {what})")
        })
        .collect();
    Check::fail(
        "permissions",
        format!(
            "{email} lacks {} in {project_key}",
            names(&missing).join(", ")
        ),
        format!(
            "grant the account {} in project {project_key}'s permission scheme (Project settings > \
             Permissions; global ones under Settings > System > Global permissions)",
            why.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use crate::doctor::fixtures::{problem, shipped};
    use bridge_core::ports::ErrorKind;
    use serde_json::json;

    #[test]
    fn jira_failures_name_credentials_and_permissions() {
        let advice = |status: &str| {
            jira_sign_in_advice(
                &problem(ErrorKind::Auth, &format!("HTTP {status}: x")),
                "bridge@acme.example",
                "https://acme.atlassian.net",
            )
        };
        let unauthorized = advice("401 Unauthorized");
        assert!(unauthorized.contains("api_token"), "{unauthorized}");
        assert!(
            unauthorized.contains("bridge@acme.example"),
            "{unauthorized}"
        );
        assert!(advice("403 Forbidden").contains("CAPTCHA"));
        assert!(advice("404 Not Found").contains("base_url"));
        let project = jira_project_advice(
            &problem(
                ErrorKind::NotFound,
                "HTTP 404 Not Found: No project could be found",
            ),
            "SEC",
            "bridge@acme.example",
        );
        assert!(project.contains("project_key") && project.contains("Browse Projects"));

        let answer = json!({"permissions": {
            "BROWSE_PROJECTS": {"havePermission": true},
            "EDIT_ISSUES": {"havePermission": false},
            "TRANSITION_ISSUES": {"havePermission": true},
        }});
        let check = jira_permissions_check(
            &answer,
            &[
                "BROWSE_PROJECTS",
                "EDIT_ISSUES",
                "TRANSITION_ISSUES",
                "ADD_COMMENTS",
            ],
            "SEC",
            "bridge@acme.example",
        );
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("Edit Issues") && check.detail.contains("Add Comments"));
        assert!(
            !check.detail.contains("Browse Projects"),
            "{}",
            check.detail
        );
        let offered = vec!["Bug".to_string(), "Task".to_string()];
        assert_eq!(
            jira_issue_type_check("t", "SEC", "task", &offered).status,
            Status::Pass
        );
        let missing = jira_issue_type_check("t", "SEC", "Incident", &offered);
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.detail.contains("Bug, Task"));
        assert_eq!(jira_time_zone_check(Some("Etc/UTC")).status, Status::Pass);
        assert_eq!(
            jira_time_zone_check(Some("America/New_York")).status,
            Status::Warn
        );
    }

    #[test]
    fn permissions_come_from_the_mapping() {
        let jira = shipped(crate::sims::JIRA_MAPPING, "jira.toml");
        let wanted = jira_permissions_needed(&jira);
        for key in [
            "BROWSE_PROJECTS",
            "CREATE_ISSUES",
            "EDIT_ISSUES",
            "TRANSITION_ISSUES",
            "RESOLVE_ISSUES",
            "ASSIGN_ISSUES",
            "ADD_COMMENTS",
        ] {
            assert!(wanted.contains(&key), "{key} in {wanted:?}");
        }
    }
}
