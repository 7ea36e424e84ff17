//! `itsm-bridge doctor`'s probes of a Sentinel source: one incident listed with
//! `$top=1` and the app's permissions on the workspace (ARM's
//! `Microsoft.Authorization/permissions`), and what a failed listing means.

use bridge_core::config::SourceConfig;
use serde_json::Value;

use crate::auth::doctor::EntraSettings;
use crate::doctor::{Check, LIST_INCIDENTS, Problem, common_advice, first_sentence, plural, shown};
use crate::http::{Api, Request};
use crate::sentinel::SentinelSource;

/// The `api-version` of ARM's `Microsoft.Authorization/permissions` listing.
pub const ARM_PERMISSIONS_API_VERSION: &str = "2022-04-01";
/// What the bridge does to Sentinel incidents, as ARM actions.
pub const SENTINEL_ACTIONS: &[(&str, &str)] = &[
    (
        "Microsoft.SecurityInsights/incidents/read",
        "read incidents",
    ),
    (
        "Microsoft.SecurityInsights/incidents/write",
        "update incidents",
    ),
    (
        "Microsoft.SecurityInsights/incidents/comments/write",
        "write comments",
    ),
];
/// The name of the check of the app's role on the workspace.
pub(crate) const WORKSPACE_ROLE: &str = "role on workspace";

pub(crate) async fn sentinel_checks(
    checks: &mut Vec<Check>,
    config: &SourceConfig,
    api: Api,
    settings: &EntraSettings,
) {
    let Some(workspace) = config.workspace.clone() else {
        checks.push(Check::fail(
            LIST_INCIDENTS,
            "no workspace configured",
            "set subscription_id, resource_group and workspace_name",
        ));
        return;
    };
    let source = SentinelSource::new(api.clone(), workspace.clone(), config.api_version.clone());
    let mut url = source.incidents_url();
    url.query_pairs_mut().append_pair("$top", "1");
    let listed = match api.send(Request::get(url.clone())).await {
        Ok(response) => match response.json::<Value>(api.system()) {
            Ok(body) if body["value"].is_array() => {
                checks.push(Check::pass(
                    LIST_INCIDENTS,
                    format!(
                        "{}: HTTP {} ({})",
                        shown(&url),
                        response.status.as_u16(),
                        plural(
                            body["value"].as_array().map_or(0, Vec::len),
                            "incident",
                            "incidents"
                        )
                    ),
                ));
                true
            }
            Ok(_) | Err(_) => {
                checks.push(Check::fail(
                    LIST_INCIDENTS,
                    format!("{}: the answer is not an ARM incident list", shown(&url)),
                    format!(
                        "base_url {} must be the Azure Resource Manager host, e.g. https://management.azure.com",
                        settings.base_url
                    ),
                ));
                false
            }
        },
        Err(e) => {
            checks.push(Check::fail(
                LIST_INCIDENTS,
                format!("{}: {}", shown(&url), e.message),
                sentinel_list_advice(&Problem::of(&e), settings, config),
            ));
            false
        }
    };
    if !listed {
        checks.push(Check::skip(WORKSPACE_ROLE, "needs the incident list"));
        return;
    }
    let mut url = api.segments_url([
        "subscriptions",
        workspace.subscription_id.as_str(),
        "resourceGroups",
        workspace.resource_group.as_str(),
        "providers",
        "Microsoft.OperationalInsights",
        "workspaces",
        workspace.workspace_name.as_str(),
        "providers",
        "Microsoft.Authorization",
        "permissions",
    ]);
    url.query_pairs_mut()
        .append_pair("api-version", ARM_PERMISSIONS_API_VERSION);
    checks.push(match api.get_json::<Value>(url.clone()).await {
        Ok(permissions) if permissions["value"].is_array() => sentinel_role_check(&permissions),
        Ok(_) => Check::skip(
            WORKSPACE_ROLE,
            format!(
                "{}: the answer is not a permission list; the first incident update shows \
                 whether the app may write",
                shown(&url)
            ),
        ),
        Err(e) => Check::skip(
            WORKSPACE_ROLE,
            format!(
                "could not read the app's permissions on the workspace ({}); the first \
                 incident update shows whether it may write",
                first_sentence(&e.message)
            ),
        ),
    });
}

/// What a failed incident listing on Sentinel (ARM) means.
pub fn sentinel_list_advice(problem: &Problem, s: &EntraSettings, config: &SourceConfig) -> String {
    let (subscription, group, workspace) = match &config.workspace {
        Some(w) => (
            w.subscription_id.as_str(),
            w.resource_group.as_str(),
            w.workspace_name.as_str(),
        ),
        None => ("", "", ""),
    };
    match problem.status {
        Some(401) if problem.mentions("expired") || problem.mentions("lifetime") => {
            "Azure Resource Manager says the token had expired: check this machine's clock"
                .to_string()
        }
        Some(401) => format!(
            "Azure Resource Manager refused the token: it must be issued for ARM in the same cloud \
             as base_url {}: scope is {} and should be that cloud's ({}), or unset for \
             <base_url>/.default; authority_host must be of the same cloud",
            s.base_url,
            s.scope,
            s.scope_example()
        ),
        Some(403) => format!(
            "the app has no role that may read incidents in workspace {workspace}: assign app {}'s \
             service principal the \"Microsoft Sentinel Responder\" role on the workspace (or its \
             resource group {group}); \"Microsoft Sentinel Reader\" is not enough, because the \
             bridge updates incidents and writes comments",
            s.client_id
        ),
        Some(404) if problem.mentions("SubscriptionNotFound") => format!(
            "subscription {subscription} was not found, or the app has no access to it: check \
             subscription_id"
        ),
        Some(404) if problem.mentions("ResourceGroupNotFound") => format!(
            "resource group {group} was not found in subscription {subscription}: check \
             resource_group"
        ),
        Some(404)
            if problem.mentions("ParentResourceNotFound")
                || problem.mentions("ResourceNotFound")
                || problem.mentions("WorkspaceNotFound") =>
        {
            format!(
                "workspace {workspace} was not found in resource group {group}: check \
                 workspace_name (the Log Analytics workspace's name, not its id)"
            )
        }
        Some(404) => format!(
            "no Sentinel incidents at that path: check subscription_id ({subscription}), \
             resource_group ({group}) and workspace_name ({workspace}), that Microsoft Sentinel is \
             enabled on the workspace, and that base_url {} is the ARM host (e.g. \
             https://management.azure.com)",
            s.base_url
        ),
        Some(400) if problem.mentions("api-version") => format!(
            "the api-version is not accepted: remove api_version to use {}, or set one Sentinel \
             supports",
            crate::sentinel::client::DEFAULT_API_VERSION
        ),
        _ => common_advice(problem, "base_url", &s.base_url).unwrap_or_else(|| {
            format!(
                "check base_url {}, the workspace settings and the app's role",
                s.base_url
            )
        }),
    }
}

/// Whether an ARM action pattern (`*` matches any run of characters, compared
/// case-insensitively) covers `action`.
fn arm_pattern_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether ARM's permission listing (`{"value":[{"actions","notActions"}]}`) allows
/// `action`: some entry has an action that covers it and no not-action that does.
pub fn arm_allows(permissions: &Value, action: &str) -> bool {
    let patterns = |entry: &Value, key: &str| -> Vec<String> {
        entry[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    permissions["value"].as_array().is_some_and(|entries| {
        entries.iter().any(|entry| {
            patterns(entry, "actions")
                .iter()
                .any(|p| arm_pattern_matches(p, action))
                && !patterns(entry, "notActions")
                    .iter()
                    .any(|p| arm_pattern_matches(p, action))
        })
    })
}

/// What the app's permissions on the workspace allow, against what the bridge does.
pub fn sentinel_role_check(permissions: &Value) -> Check {
    let missing: Vec<&str> = SENTINEL_ACTIONS
        .iter()
        .filter(|(action, _)| !arm_allows(permissions, action))
        .map(|(_, what)| *what)
        .collect();
    if missing.is_empty() {
        return Check::pass(
            WORKSPACE_ROLE,
            "the app may read and update incidents and write comments",
        );
    }
    Check::fail(
        WORKSPACE_ROLE,
        format!("the app's roles do not let it {}", missing.join(", ")),
        "assign the app's service principal the \"Microsoft Sentinel Responder\" role on the \
         workspace (or its resource group): \"Microsoft Sentinel Reader\" can list incidents but \
         not update them or add comments",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use crate::doctor::fixtures::problem;
    use bridge_core::ports::ErrorKind;
    use bridge_core::vocab::SourceKind;
    use serde_json::json;

    fn sentinel_source() -> SourceConfig {
        SourceConfig {
            name: "sentinel".into(),
            kind: SourceKind::Sentinel,
            tenant_id: "t".into(),
            client_id: "c".into(),
            auth: bridge_core::config::SourceAuth::ClientSecret {
                client_secret: bridge_core::config::SecretRef::Env("X".into()),
            },
            authority_host: "https://login.microsoftonline.com".into(),
            base_url: "https://management.azure.com".into(),
            scope: "https://management.azure.com/.default".into(),
            workspace: Some(bridge_core::config::SentinelWorkspace {
                subscription_id: "sub-1".into(),
                resource_group: "rg-1".into(),
                workspace_name: "ws-1".into(),
            }),
            api_version: None,
            rate_limit: None,
        }
    }

    #[test]
    fn sentinel_statuses_map_to_roles_and_names() {
        let config = sentinel_source();
        let s = EntraSettings::of(&config);
        let advice = |status: &str, body: &str| {
            sentinel_list_advice(
                &problem(ErrorKind::Auth, &format!("HTTP {status}: {body}")),
                &s,
                &config,
            )
        };
        let forbidden = advice("403 Forbidden", "AuthorizationFailed: no");
        assert!(
            forbidden.contains("Microsoft Sentinel Responder"),
            "{forbidden}"
        );
        assert!(forbidden.contains("Reader"), "{forbidden}");
        assert!(advice("404 Not Found", "SubscriptionNotFound: x").contains("subscription_id"));
        assert!(advice("404 Not Found", "ResourceGroupNotFound: x").contains("resource_group"));
        assert!(advice("404 Not Found", "ParentResourceNotFound: x").contains("workspace_name"));
        let other = advice("404 Not Found", "NotFound: x");
        assert!(other.contains("subscription_id") && other.contains("workspace_name"));
        assert!(
            advice("401 Unauthorized", "InvalidAuthenticationToken")
                .contains("management.usgovcloudapi.net")
        );
        assert!(
            advice(
                "400 Bad Request",
                "InvalidApiVersionParameter: The api-version 'x' is invalid"
            )
            .contains("api_version")
        );
    }

    #[test]
    fn arm_patterns_and_not_actions() {
        assert!(arm_pattern_matches(
            "*",
            "Microsoft.SecurityInsights/incidents/write"
        ));
        assert!(arm_pattern_matches(
            "Microsoft.SecurityInsights/incidents/*",
            "microsoft.securityinsights/Incidents/comments/write"
        ));
        assert!(arm_pattern_matches(
            "*/read",
            "Microsoft.SecurityInsights/incidents/read"
        ));
        assert!(!arm_pattern_matches(
            "*/read",
            "Microsoft.SecurityInsights/incidents/write"
        ));
        assert!(arm_pattern_matches(
            "Microsoft.SecurityInsights/*/read",
            "Microsoft.SecurityInsights/incidents/read"
        ));
        assert!(!arm_pattern_matches(
            "Microsoft.Insights/*",
            "Microsoft.SecurityInsights/x"
        ));

        let responder = json!({"value": [{
            "actions": ["Microsoft.SecurityInsights/*/read", "Microsoft.SecurityInsights/incidents/*"],
            "notActions": ["Microsoft.SecurityInsights/incidents/delete"]
        }]});
        assert_eq!(sentinel_role_check(&responder).status, Status::Pass);
        let reader = json!({"value": [{"actions": ["*/read"], "notActions": []}]});
        let check = sentinel_role_check(&reader);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.detail.contains("update incidents"),
            "{}",
            check.detail
        );
        assert!(check.fix.unwrap().contains("Microsoft Sentinel Responder"));
        let contributor_without_writes = json!({"value": [{
            "actions": ["*"], "notActions": ["Microsoft.SecurityInsights/*/write"]
        }]});
        assert_eq!(
            sentinel_role_check(&contributor_without_writes).status,
            Status::Fail
        );
        assert_eq!(
            sentinel_role_check(&json!({"value": []})).status,
            Status::Fail
        );
    }
}
