//! `itsm-bridge doctor`: for every `[[source]]` and `[[ticket_system]]` of a
//! config, the read-only requests that show whether the bridge can sign in there
//! and do its work, each as a [`Check`] that says, when it fails, what that means
//! and how to fix it.
//!
//! This file holds the report, the run over a config's systems and the advice
//! every system shares (unreachable hosts, TLS, throttling). Each connector ships
//! its own probes and the advice for its failures beside its code:
//! `auth/doctor.rs` (the Entra ID token), `graph/doctor.rs`, `sentinel/doctor.rs`,
//! `jira/doctor.rs`, `servicenow/doctor.rs`; the generic system's probe is below.
//!
//! Nothing here writes to a remote system: every request is a token request or a
//! GET. The advice is chosen by pure functions over the failure (HTTP status,
//! AADSTS code, the vendor's error code in the message), tested on their own. No
//! secret reaches a report: the errors carry none, and every configured secret is
//! blanked out of the finished report besides.

use std::sync::Arc;
use std::time::Duration;

use bridge_core::config::{Config, SourceConfig, TicketAuth, TicketSystemConfig};
use bridge_core::ports::{ConnectorError, ErrorKind};
use bridge_core::vocab::{SourceKind, TicketKind};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::doctor::{EntraSettings, token_check};
pub use crate::generic::doctor::generic_advice;
use crate::generic::doctor::generic_checks;
use crate::graph::doctor::{GRAPH_PERMISSIONS, graph_checks};
use crate::http::{Api, Auth, RetryPolicy, build_client};
use crate::jira::doctor::jira_checks;
use crate::sentinel::doctor::{WORKSPACE_ROLE, sentinel_checks};
use crate::servicenow::ClientCredentials;
use crate::servicenow::doctor::servicenow_checks;
use crate::wiring::{BuildError, http_settings};

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
    // First: the secrets the other probes sign in with may be in Key Vault.
    let key_vault = crate::keyvault::doctor::key_vault_checks(config, client.clone()).await;
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
    if !key_vault.is_empty() {
        let vault = config
            .azure
            .key_vault_endpoint_override
            .clone()
            .unwrap_or_default();
        systems.insert(
            0,
            SystemReport {
                section: "secrets",
                name: "key vault".into(),
                kind: "key_vault",
                base_url: vault,
                checks: key_vault,
            },
        );
    }
    let mut report = Report { systems };
    report.redact(&configured_secrets(config));
    Ok(report)
}

/// Every secret the config names that can be read now.
fn configured_secrets(config: &Config) -> Vec<SecretString> {
    config
        .secret_refs()
        .into_iter()
        .filter_map(|(_, _, r)| r.resolve().ok())
        .collect()
}

/// Few, short retries: doctor reports what it sees rather than waiting it out.
pub(crate) fn doctor_retry() -> RetryPolicy {
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
pub(crate) fn shown(url: &Url) -> String {
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
pub(crate) fn first_sentence(message: &str) -> &str {
    match message.find(". ") {
        Some(at) => &message[..=at],
        None => message,
    }
}

pub(crate) fn skip_all(checks: &mut Vec<Check>, names: &[&str], why: &str) {
    for name in names {
        checks.push(Check::skip(*name, why));
    }
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
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
    let Some((tokens, token)) = token_check(checks, config, client.clone(), &settings).await else {
        skip_all(checks, later, "needs a token");
        return report;
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

/// The name of the check that lists one incident (both kinds of source).
pub(crate) const LIST_INCIDENTS: &str = "list incidents";

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

/// What the tests of every system's probes share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A failure as the connectors report it: an `HTTP nnn` answer carries its
    /// status, as the HTTP layer and the token clients set it.
    pub(crate) fn problem(kind: ErrorKind, message: &str) -> Problem {
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

    pub(crate) fn shipped(text: &str, name: &str) -> bridge_core::mapping::Mapping {
        bridge_core::mapping::parse(std::path::Path::new(name), text).expect("shipped mapping")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::problem;
    use super::*;

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
        assert_eq!(first_sentence("HTTP 400: Bad. The rest."), "HTTP 400: Bad.");
    }

    #[test]
    fn generic_statuses_name_the_endpoint() {
        let p = |status: &str| problem(ErrorKind::Auth, &format!("HTTP {status}: x"));
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
