//! The probes behind `itsm-bridge doctor`: for every `[[source]]` and
//! `[[ticket_system]]` of a config, the read-only requests that show whether the
//! bridge can sign in there and do its work (an Entra ID token and one incident with
//! `$top=1`; Jira's `myself`, the project, its issue types and `mypermissions`;
//! ServiceNow one-row reads of `incident` and `sys_journal_field` and the close
//! codes in `sys_choice`; the generic system's read endpoints), each as a [`Check`]
//! that says, when it fails, what that means and how to fix it.
//!
//! Nothing here writes to a remote system: every request is a token request or a
//! GET. The advice is chosen by pure functions over the failure (HTTP status,
//! AADSTS code, the vendor's error code in the message), tested on their own. No
//! secret reaches a report: the errors carry none, and every configured secret is
//! blanked out of the finished report besides.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridge_core::config::{Config, SourceConfig, TicketAuth, TicketSystemConfig};
use bridge_core::mapping::{Mapping, MergePolicy};
use bridge_core::ports::{ConnectorError, ErrorKind};
use bridge_core::vocab::{SourceKind, TicketKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::auth::EntraTokenProvider;
pub use crate::generic::doctor::generic_advice;
use crate::generic::doctor::generic_checks;
use crate::graph::GraphSource;
use crate::http::{Api, Auth, Request, RetryPolicy, TokenProvider, build_client};
use crate::sentinel::SentinelSource;
use crate::servicenow::ClientCredentials;
use crate::wiring::{BuildError, http_settings};

/// The Graph application permission the bridge needs (reads, updates, comments).
pub const GRAPH_WRITE_PERMISSION: &str = "SecurityIncident.ReadWrite.All";
/// The read-only Graph permission: enough to list, not to write back.
pub const GRAPH_READ_PERMISSION: &str = "SecurityIncident.Read.All";
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

// ---------------------------------------------------------------------------------
// The report

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Works, but something will bite later; does not fail the run.
    Warn,
    Fail,
    /// Not tried: an earlier check failed, or there is nothing to try it on.
    Skip,
}

impl Status {
    /// The word printed in the status column.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check: what was tried, what happened, and (unless it passed) what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub name: String,
    /// What was seen: the request and its answer, or the error.
    pub detail: String,
    /// What it means and how to fix it.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Pass,
            name: name.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            name: name.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            name: name.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            name: name.into(),
            detail: detail.into(),
            fix: None,
        }
    }
}

/// The checks of one `[[source]]` or `[[ticket_system]]`.
#[derive(Debug, Clone)]
pub struct SystemReport {
    /// `source` or `ticket system`.
    pub section: &'static str,
    pub name: String,
    pub kind: &'static str,
    pub base_url: String,
    pub checks: Vec<Check>,
}

/// Every system's checks, in config order (sources first).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub systems: Vec<SystemReport>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.checks().filter(|c| c.status == status).count()
    }

    /// No check failed (warnings and skips allowed).
    pub fn passed(&self) -> bool {
        self.count(Status::Fail) == 0
    }

    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.systems.iter().flat_map(|s| s.checks.iter())
    }

    /// Blanks every occurrence of each secret out of the report.
    fn redact(&mut self, secrets: &[SecretString]) {
        let secrets: Vec<&str> = secrets
            .iter()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
            .collect();
        let clean = |text: &mut String| {
            for secret in &secrets {
                *text = bridge_core::ports::redact_secret(text, secret);
            }
        };
        for system in &mut self.systems {
            for check in &mut system.checks {
                clean(&mut check.detail);
                if let Some(fix) = check.fix.as_mut() {
                    clean(fix);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Running the probes

/// Tries every source and ticket system of `config` (all at once; each system's
/// checks in order). Only a setting that stops the shared HTTP client from being
/// built (`[http]`) is an error; everything else is a check in the report.
pub async fn diagnose(config: &Config) -> Result<Report, BuildError> {
    let client = build_client(&http_settings(&config.http)?).map_err(BuildError::Input)?;
    let sources = config
        .sources
        .iter()
        .map(|s| source_report(s, client.clone(), config.http.max_body));
    let tickets = config
        .ticket_systems
        .iter()
        .map(|t| ticket_report(config, t, client.clone()));
    let (mut systems, ticket_systems) = futures::join!(
        futures::future::join_all(sources),
        futures::future::join_all(tickets)
    );
    systems.extend(ticket_systems);
    let mut report = Report { systems };
    report.redact(&configured_secrets(config));
    Ok(report)
}

/// Every secret the config names that can be read now.
fn configured_secrets(config: &Config) -> Vec<SecretString> {
    let mut refs = Vec::new();
    for source in &config.sources {
        refs.push(&source.client_secret);
    }
    for system in &config.ticket_systems {
        refs.push(match &system.auth {
            TicketAuth::JiraToken { api_token, .. } => api_token,
            TicketAuth::Basic { password, .. } => password,
            TicketAuth::Bearer { token } => token,
            TicketAuth::OAuthClient { client_secret, .. } => client_secret,
        });
    }
    refs.into_iter().filter_map(|r| r.resolve().ok()).collect()
}

/// Few, short retries: doctor reports what it sees rather than waiting it out.
fn doctor_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(5),
    }
}

/// `GET path?query` as it reads: the query decoded (`$top=1`, not `%24top=1`),
/// without the parameters that only trim the answer, and an ARM path from its
/// workspace on (the subscription and resource group are in the config).
fn shown(url: &Url) -> String {
    let query: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k != "sysparm_fields" && k != "sysparm_no_count")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let path = url.path();
    let path = match (
        path.starts_with("/subscriptions/"),
        path.find("/workspaces/"),
    ) {
        (true, Some(at)) => format!("…{}", &path[at..]),
        _ => path.to_string(),
    };
    if query.is_empty() {
        format!("GET {path}")
    } else {
        format!("GET {path}?{}", query.join("&"))
    }
}

/// The first sentence of an error message (vendor messages run on).
fn first_sentence(message: &str) -> &str {
    match message.find(". ") {
        Some(at) => &message[..=at],
        None => message,
    }
}

/// An Entra error without the "token request to … failed: " its line already says.
fn token_error(message: &str) -> &str {
    match (
        message.starts_with("token request to "),
        message.find(" failed: "),
    ) {
        (true, Some(at)) => &message[at + " failed: ".len()..],
        _ => message,
    }
}

pub(crate) fn skip_all(checks: &mut Vec<Check>, names: &[&str], why: &str) {
    for name in names {
        checks.push(Check::skip(*name, why));
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

async fn source_report(
    config: &SourceConfig,
    client: reqwest::Client,
    max_body: u64,
) -> SystemReport {
    let mut report = SystemReport {
        section: "source",
        name: config.name.clone(),
        kind: config.kind.as_str(),
        base_url: config.base_url.clone(),
        checks: Vec::new(),
    };
    let later: &[&str] = match config.kind {
        SourceKind::Graph => &[GRAPH_PERMISSIONS, LIST_INCIDENTS],
        SourceKind::Sentinel => &[LIST_INCIDENTS, WORKSPACE_ROLE],
    };
    let checks = &mut report.checks;
    let settings = EntraSettings::of(config);
    let secret = match config.client_secret.resolve() {
        Ok(secret) => secret,
        Err(e) => {
            checks.push(Check::fail(
                TOKEN,
                format!("client_secret: {e}"),
                "set the secret where client_secret points (`itsm-bridge check` names it)",
            ));
            skip_all(checks, later, "needs a token");
            return report;
        }
    };
    let tokens = match EntraTokenProvider::new(
        &config.authority_host,
        &config.tenant_id,
        &config.client_id,
        secret,
        config.scope.clone(),
        client.clone(),
    ) {
        Ok(tokens) => Arc::new(tokens),
        Err(e) => {
            checks.push(Check::fail(
                TOKEN,
                e.message.clone(),
                "fix the setting the message names in this [[source]]",
            ));
            skip_all(checks, later, "needs a token");
            return report;
        }
    };
    let token = match tokens.token().await {
        Ok(token) => {
            checks.push(Check::pass(
                TOKEN,
                format!(
                    "issued for {} by {}",
                    config.scope,
                    config.authority_host.trim_end_matches('/')
                ),
            ));
            token
        }
        Err(e) => {
            checks.push(Check::fail(
                TOKEN,
                token_error(&e.message),
                entra_advice(&Problem::of(&e), &settings),
            ));
            skip_all(checks, later, "needs a token");
            return report;
        }
    };
    let error_message: crate::http::ErrorMessageFn = match config.kind {
        SourceKind::Graph => crate::graph::error_message,
        SourceKind::Sentinel => crate::sentinel::error_message,
    };
    let api = match Api::new(
        config.name.clone(),
        &config.base_url,
        client,
        Auth::Bearer(tokens),
        error_message,
    ) {
        Ok(api) => api.with_retry(doctor_retry()).with_max_body(max_body),
        Err(e) => {
            checks.push(Check::fail(
                later[0],
                e,
                "set base_url to the API's address",
            ));
            return report;
        }
    };
    match config.kind {
        SourceKind::Graph => graph_checks(checks, api, &token, &settings).await,
        SourceKind::Sentinel => sentinel_checks(checks, config, api, &settings).await,
    }
    report
}

const TOKEN: &str = "Entra ID token";
const GRAPH_PERMISSIONS: &str = "app permissions";
const LIST_INCIDENTS: &str = "list incidents";
const WORKSPACE_ROLE: &str = "role on workspace";

async fn graph_checks(
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

async fn sentinel_checks(
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

async fn ticket_report(
    config: &Config,
    system: &TicketSystemConfig,
    client: reqwest::Client,
) -> SystemReport {
    let mut report = SystemReport {
        section: "ticket system",
        name: system.name.clone(),
        kind: system.kind.as_str(),
        base_url: system.base_url.clone(),
        checks: Vec::new(),
    };
    let checks = &mut report.checks;
    let (auth, user) = match ticket_auth(system, &client) {
        Ok(auth) => auth,
        Err(check) => {
            checks.push(check);
            return report;
        }
    };
    let error_message: crate::http::ErrorMessageFn = match system.kind {
        TicketKind::Jira => crate::jira::error_message,
        TicketKind::Servicenow => crate::servicenow::error_message,
        TicketKind::Generic => crate::generic::error_message,
    };
    let api = match Api::new(
        system.name.clone(),
        &system.base_url,
        client,
        auth.clone(),
        error_message,
    ) {
        Ok(api) => api
            .with_retry(doctor_retry())
            .with_max_body(config.http.max_body),
        Err(e) => {
            checks.push(Check::fail(
                "base_url",
                e,
                "set base_url to the system's address",
            ));
            return report;
        }
    };
    match system.kind {
        TicketKind::Jira => jira_checks(checks, system, &api, &user).await,
        TicketKind::Servicenow => servicenow_checks(checks, system, &api, &auth, &user).await,
        TicketKind::Generic => generic_checks(checks, config, system, api).await,
    }
    report
}

/// How to sign in to a ticket system, and who signs in (for the advice). A secret
/// that cannot be read is a failed check.
fn ticket_auth(
    system: &TicketSystemConfig,
    client: &reqwest::Client,
) -> Result<(Auth, String), Check> {
    let read = |key: &str, r: &bridge_core::config::SecretRef| {
        r.resolve().map_err(|e| {
            Check::fail(
                "credentials",
                format!("{key}: {e}"),
                format!("set the secret where {key} points (`itsm-bridge check` names it)"),
            )
        })
    };
    Ok(match &system.auth {
        TicketAuth::JiraToken { email, api_token } => (
            Auth::Basic {
                username: email.clone(),
                password: read("api_token", api_token)?,
            },
            email.clone(),
        ),
        TicketAuth::Basic { username, password } => (
            Auth::Basic {
                username: username.clone(),
                password: read("password", password)?,
            },
            username.clone(),
        ),
        TicketAuth::Bearer { token } => (
            crate::generic::bearer(read("token", token)?),
            "the token's account".to_string(),
        ),
        TicketAuth::OAuthClient {
            client_id,
            client_secret,
        } => {
            let provider = ClientCredentials::new(
                &system.base_url,
                client.clone(),
                client_id.clone(),
                read("client_secret", client_secret)?,
            )
            .map_err(|e| Check::fail("credentials", e, "set base_url to the instance's address"))?;
            (
                Auth::Bearer(Arc::new(provider)),
                format!("the OAuth client {client_id}'s user"),
            )
        }
    })
}

async fn jira_checks(checks: &mut Vec<Check>, system: &TicketSystemConfig, api: &Api, email: &str) {
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

async fn servicenow_checks(
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

// ---------------------------------------------------------------------------------
// Failures, and what to do about them (pure)

/// A failed probe, in the terms the advice is chosen by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ErrorKind,
    /// The HTTP status the remote answered with, if it answered.
    pub status: Option<u16>,
    pub message: String,
}

impl Problem {
    pub fn of(error: &ConnectorError) -> Problem {
        Problem {
            kind: error.kind,
            status: error.status,
            message: error.message.clone(),
        }
    }

    /// The first AADSTS code in the message (Entra ID's error number).
    pub fn aadsts(&self) -> Option<u32> {
        let at = self.message.find("AADSTS")? + "AADSTS".len();
        let digits: String = self.message[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// Whether the message holds `needle` (ASCII case-insensitively).
    pub fn mentions(&self, needle: &str) -> bool {
        self.message
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    }

    /// The request never got an answer (DNS, connection, TLS, timeout).
    pub(crate) fn unreachable(&self) -> bool {
        self.status.is_none() && self.kind == ErrorKind::Transient
    }
}

/// Advice that does not depend on the system: unreachable hosts, TLS trust,
/// throttling, server errors, answers that are not the API's JSON.
pub(crate) fn common_advice(problem: &Problem, setting: &str, address: &str) -> Option<String> {
    if problem.unreachable() {
        let tls = ["certificate", "tls", "unknownissuer", "handshake"]
            .iter()
            .any(|w| problem.mentions(w));
        if tls {
            return Some(format!(
                "the TLS connection to {address} failed: if its certificate comes from a private CA \
                 (a TLS-inspecting proxy, say), add that CA to [http] ca_bundle"
            ));
        }
        if problem.mentions("timed out") {
            return Some(format!(
                "{address} did not answer in time: check the network path (firewall, [http] proxy) \
                 or raise [http] timeout"
            ));
        }
        return Some(format!(
            "{address} cannot be reached: check {setting} (host name and port), DNS and the \
             firewall, and set [http] proxy if this machine must go through one"
        ));
    }
    if let ErrorKind::RateLimited(_) = problem.kind {
        return Some(
            "the service is throttling these credentials: wait a minute and run doctor again \
             (the bridge itself paces its calls and honours Retry-After)"
                .into(),
        );
    }
    if problem.status.is_some_and(|s| s >= 500) {
        return Some(format!(
            "{address} answered with a server error: try again later; if it persists, check the \
             service's status page or the proxy in between"
        ));
    }
    if problem.kind == ErrorKind::InvalidPayload {
        return Some(format!(
            "the answer is not the API's JSON: {setting} {address} may point at a web page, a \
             login portal or a proxy instead of the API"
        ));
    }
    None
}

/// The settings an Entra ID token request is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    pub kind: SourceKind,
    pub authority_host: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
    pub base_url: String,
}

impl EntraSettings {
    pub fn of(config: &SourceConfig) -> EntraSettings {
        EntraSettings {
            kind: config.kind,
            authority_host: config.authority_host.trim_end_matches('/').to_string(),
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            scope: config.scope.clone(),
            base_url: config.base_url.trim_end_matches('/').to_string(),
        }
    }

    fn scope_example(&self) -> &'static str {
        match self.kind {
            SourceKind::Graph => {
                "https://graph.microsoft.com/.default; US Gov: https://graph.microsoft.us/.default; \
                 China: https://microsoftgraph.chinacloudapi.cn/.default"
            }
            SourceKind::Sentinel => {
                "https://management.azure.com/.default; US Gov: \
                 https://management.usgovcloudapi.net/.default; China: \
                 https://management.chinacloudapi.cn/.default"
            }
        }
    }
}

/// The Entra ID authority hosts of the clouds, for advice.
const AUTHORITIES: &str = "https://login.microsoftonline.com; US Gov: \
                           https://login.microsoftonline.us; China: https://login.chinacloudapi.cn";

/// What a failed token request means.
pub fn entra_advice(problem: &Problem, s: &EntraSettings) -> String {
    let (tenant, client, scope, authority) =
        (&s.tenant_id, &s.client_id, &s.scope, &s.authority_host);
    if let Some(code) = problem.aadsts() {
        let advice = match code {
            7000215 => Some(format!(
                "client_secret is not a valid secret of app {client}: use the secret's Value \
                 (shown once, when it was created), not its Secret ID, and check it has not expired \
                 (app registration > Certificates & secrets)"
            )),
            7000222 => Some(format!(
                "the client secret of app {client} has expired: create a new one (app registration > \
                 Certificates & secrets) and put it where client_secret points"
            )),
            7000216 | 7000218 => Some("client_secret is missing: set it".to_string()),
            700016 => Some(format!(
                "tenant {tenant} has no app {client}: check client_id (the app's Application (client) \
                 ID) and tenant_id (its Directory (tenant) ID); a multi-tenant app must be consented \
                 in this tenant first"
            )),
            90002 | 900023 | 900022 => Some(format!(
                "tenant {tenant} was not found at {authority}: check tenant_id, and that authority_host \
                 is your cloud's ({AUTHORITIES})"
            )),
            70011 | 28000 | 28002 | 1002012 => Some(format!(
                "scope {scope} is not valid: it must be one resource's .default scope ({}), or \
                 leave scope unset to use <base_url>/.default",
                s.scope_example()
            )),
            500011 => Some(format!(
                "the resource of scope {scope} does not exist in tenant {tenant}: the scope must name \
                 the API in the tenant's cloud ({})",
                s.scope_example()
            )),
            53003 => Some(
                "a Conditional Access policy blocks the app's sign-in: exclude its service \
                 principal from the policy, or allow the bridge's network location"
                    .to_string(),
            ),
            7000112 | 700005 => Some(format!(
                "app {client} is disabled in tenant {tenant}: enable its service principal \
                 (Enterprise applications > Properties > Enabled for users to sign-in)"
            )),
            _ => None,
        };
        if let Some(advice) = advice {
            return advice;
        }
    }
    if problem.unreachable() {
        if problem.mentions("certificate") || problem.mentions("tls") {
            return format!(
                "the TLS connection to authority_host {authority} failed: if a TLS-inspecting proxy or \
                 a private CA is in between, add its CA certificate to [http] ca_bundle"
            );
        }
        return format!(
            "authority_host {authority} cannot be reached: check it is your cloud's ({AUTHORITIES}), \
             DNS and the firewall, and set [http] proxy if this machine must go through one"
        );
    }
    if let Some(advice) = common_advice(problem, "authority_host", authority) {
        return advice;
    }
    match problem.status {
        Some(400 | 401) => format!(
            "Entra ID refused the app's credentials: check tenant_id ({tenant}), client_id \
             ({client}) and client_secret against the app registration"
        ),
        Some(404) => format!(
            "{authority} has no token endpoint for tenant {tenant}: check authority_host ({AUTHORITIES}) \
             and tenant_id"
        ),
        _ => "the token request failed: check authority_host, tenant_id, client_id and \
              client_secret of this [[source]]"
            .to_string(),
    }
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

/// The `roles` claim of a JWT access token (empty when there is none), or `None`
/// when the token is not a JWT whose claims can be read. The signature is not
/// checked: the claims only explain what the service will say.
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let claims = claims.as_object()?;
    Some(
        claims
            .get("roles")
            .and_then(Value::as_array)
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    )
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
    use serde_json::json;

    /// A failure as the connectors report it: an `HTTP nnn` answer carries its
    /// status, as the HTTP layer and the token clients set it.
    fn problem(kind: ErrorKind, message: &str) -> Problem {
        let error = ConnectorError::new(kind, "x", message);
        let status = message
            .split_once("HTTP ")
            .and_then(|(_, rest)| rest.get(..3))
            .and_then(|digits| digits.parse().ok());
        Problem::of(&match status {
            Some(status) => error.with_status(status),
            None => error,
        })
    }

    fn settings(kind: SourceKind) -> EntraSettings {
        EntraSettings {
            kind,
            authority_host: "https://login.microsoftonline.com".into(),
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            scope: "https://graph.microsoft.com/.default".into(),
            base_url: "https://graph.microsoft.com".into(),
        }
    }

    #[test]
    fn statuses_come_from_the_error_and_aadsts_codes_from_its_message() {
        let error = ConnectorError::new(ErrorKind::Auth, "x", "Forbidden: nope").with_status(403);
        assert_eq!(Problem::of(&error).status, Some(403));
        let p = problem(
            ErrorKind::Auth,
            "token request to https://l for tenant t failed: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret",
        );
        assert_eq!((p.status, p.aadsts()), (Some(401), Some(7000215)));
        let p = problem(ErrorKind::Transient, "could not connect: 127.0.0.1:9/x");
        assert_eq!((p.status, p.aadsts()), (None, None));
        assert!(p.unreachable());
    }

    #[test]
    fn requests_and_errors_are_shown_short() {
        let url = Url::parse(
            "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/\
             Microsoft.OperationalInsights/workspaces/ws/providers/Microsoft.SecurityInsights/\
             incidents?api-version=2025-09-01&%24top=1",
        )
        .unwrap();
        assert_eq!(
            shown(&url),
            "GET …/workspaces/ws/providers/Microsoft.SecurityInsights/incidents?api-version=2025-09-01&$top=1"
        );
        let url = Url::parse(
            "https://i/api/now/table/incident?sysparm_fields=sys_id&sysparm_limit=1&sysparm_no_count=true",
        )
        .unwrap();
        assert_eq!(shown(&url), "GET /api/now/table/incident?sysparm_limit=1");
        assert_eq!(
            token_error("token request to https://l for tenant t failed: HTTP 401 x: y"),
            "HTTP 401 x: y"
        );
        assert_eq!(token_error("scope is empty"), "scope is empty");
        assert_eq!(first_sentence("HTTP 400: Bad. The rest."), "HTTP 400: Bad.");
    }

    #[test]
    fn entra_codes_name_the_setting_to_fix() {
        let s = settings(SourceKind::Graph);
        let advice = |message: &str| entra_advice(&problem(ErrorKind::Auth, message), &s);
        assert!(advice("HTTP 401 invalid_client: AADSTS7000215: bad").contains("Value"));
        assert!(advice("HTTP 401 invalid_client: AADSTS7000222: expired").contains("expired"));
        assert!(advice("HTTP 400 unauthorized_client: AADSTS700016: x").contains("client_id"));
        let tenant = advice("HTTP 400 invalid_request: AADSTS90002: x");
        assert!(tenant.contains("tenant_id") && tenant.contains("login.microsoftonline.us"));
        let scope = advice("HTTP 400 invalid_scope: AADSTS70011: x");
        assert!(scope.contains("scope") && scope.contains("https://graph.microsoft.com/.default"));
        let arm = entra_advice(
            &problem(ErrorKind::Auth, "HTTP 400 invalid_scope: AADSTS70011: x"),
            &settings(SourceKind::Sentinel),
        );
        assert!(
            arm.contains("https://management.azure.com/.default"),
            "{arm}"
        );
        // An unknown code falls back to the status.
        assert!(advice("HTTP 401 invalid_client: AADSTS1: x").contains("client_secret"));
    }

    #[test]
    fn an_unreachable_authority_host_is_named() {
        let s = settings(SourceKind::Graph);
        let advice = entra_advice(
            &problem(
                ErrorKind::Transient,
                "token request failed: could not reach the token endpoint (dns error)",
            ),
            &s,
        );
        assert!(advice.contains("authority_host"), "{advice}");
        assert!(advice.contains("cannot be reached"), "{advice}");
        let tls = entra_advice(
            &problem(
                ErrorKind::Transient,
                "could not reach the token endpoint (invalid peer certificate: UnknownIssuer)",
            ),
            &s,
        );
        assert!(tls.contains("ca_bundle"), "{tls}");
        let throttled = entra_advice(&problem(ErrorKind::RateLimited(None), "HTTP 429"), &s);
        assert!(throttled.contains("wait"), "{throttled}");
    }

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

    fn sentinel_source() -> SourceConfig {
        SourceConfig {
            name: "sentinel".into(),
            kind: SourceKind::Sentinel,
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: bridge_core::config::SecretRef::Env("X".into()),
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

    #[test]
    fn jwt_roles_are_read_and_opaque_tokens_are_not() {
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"aud": "https://graph.microsoft.com", "roles": ["SecurityIncident.Read.All"]})
                .to_string(),
        );
        let token = format!("eyJhbGciOiJub25lIn0.{claims}.c2ln");
        assert_eq!(
            token_roles(&token),
            Some(vec!["SecurityIncident.Read.All".to_string()])
        );
        let no_roles = format!(
            "h.{}.s",
            URL_SAFE_NO_PAD.encode(json!({"aud": "x"}).to_string())
        );
        assert_eq!(token_roles(&no_roles), Some(vec![]));
        assert_eq!(token_roles("sim.0123456789abcdef"), None);
        assert_eq!(token_roles("a.b.c.d"), None);
        assert_eq!(token_roles("a.!!!.c"), None);
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

    fn shipped(text: &str, name: &str) -> Mapping {
        bridge_core::mapping::parse(std::path::Path::new(name), text).expect("shipped mapping")
    }

    #[test]
    fn permissions_and_close_codes_come_from_the_mapping() {
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

    #[test]
    fn servicenow_and_generic_statuses() {
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
        assert!(generic_advice(&p("401 Unauthorized"), "search", "https://h").contains("token"));
        assert!(generic_advice(&p("404 Not Found"), "find", "https://h").contains("[api] find"));
        let shape = generic_advice(
            &problem(
                ErrorKind::InvalidPayload,
                "the list response holds no list of tickets at \"/items\"",
            ),
            "search",
            "https://h",
        );
        assert!(shape.contains("items"), "{shape}");
    }

    #[test]
    fn redaction_blanks_every_secret() {
        let mut report = Report {
            systems: vec![SystemReport {
                section: "source",
                name: "s".into(),
                kind: "graph",
                base_url: "https://x".into(),
                checks: vec![Check::fail(
                    "c",
                    "echoed hunter2-secret back",
                    "not hunter2-secret",
                )],
            }],
        };
        report.redact(&[
            SecretString::from("hunter2-secret".to_string()),
            SecretString::from(String::new()),
        ]);
        let check = &report.systems[0].checks[0];
        assert_eq!(check.detail, "echoed [redacted] back");
        assert_eq!(check.fix.as_deref(), Some("not [redacted]"));
        assert!(!report.passed());
        assert_eq!(report.count(Status::Fail), 1);
    }
}
