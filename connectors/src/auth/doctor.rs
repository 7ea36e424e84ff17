//! `itsm-bridge doctor`'s Entra ID token probe, and what a failed token request
//! means (AADSTS code, HTTP status → the setting to fix). The claims of an issued
//! token are read here too: they say what the service will allow.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridge_core::config::SourceConfig;
use bridge_core::vocab::SourceKind;
use secrecy::SecretString;
use serde_json::Value;

use crate::auth::EntraTokenProvider;
use crate::doctor::{Check, Problem, common_advice};
use crate::http::TokenProvider;
use crate::keyvault::SecretCell;

/// The name of the token check.
pub(crate) const TOKEN: &str = "Entra ID token";

/// Asks Entra ID for a token as the source's settings say, and records how that
/// went as the token check. `None` when there is no token to go on with.
pub(crate) async fn token_check(
    checks: &mut Vec<Check>,
    config: &SourceConfig,
    client: reqwest::Client,
    settings: &EntraSettings,
) -> Option<(Arc<EntraTokenProvider>, SecretString)> {
    let secret = match config.auth.secret() {
        None => None,
        Some((key, reference)) => match reference.resolve() {
            Ok(secret) => Some(SecretCell::fixed(secret)),
            Err(e) => {
                checks.push(Check::fail(
                    TOKEN,
                    format!("{key}: {e}"),
                    format!("set the secret where {key} points (`itsm-bridge check` names it)"),
                ));
                return None;
            }
        },
    };
    let tokens = match EntraTokenProvider::for_identity(
        &config.identity(),
        secret,
        config.scope.clone(),
        client,
    ) {
        Ok(tokens) => Arc::new(tokens),
        Err(e) => {
            checks.push(Check::fail(
                TOKEN,
                e.message.clone(),
                "fix the setting the message names in this [[source]]",
            ));
            return None;
        }
    };
    match tokens.token().await {
        Ok(token) => {
            checks.push(Check::pass(
                TOKEN,
                match &config.auth {
                    bridge_core::config::SourceAuth::ManagedIdentity { .. } => format!(
                        "issued for {} by the managed identity endpoint",
                        config.scope
                    ),
                    bridge_core::config::SourceAuth::AzureCli => {
                        format!("issued for {} by the Azure CLI", config.scope)
                    }
                    auth => format!(
                        "issued for {} by {} ({})",
                        config.scope,
                        config.authority_host.trim_end_matches('/'),
                        auth.name()
                    ),
                },
            ));
            Some((tokens, token))
        }
        Err(e) => {
            checks.push(Check::fail(
                TOKEN,
                token_error(&e.message),
                entra_advice(&Problem::of(&e), settings),
            ));
            None
        }
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

/// The settings an Entra ID token request is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    pub kind: SourceKind,
    pub authority_host: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
    pub base_url: String,
    /// The `auth` choice (`client_secret`, `managed_identity`, …).
    pub auth: &'static str,
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
            auth: config.auth.name(),
        }
    }

    pub(crate) fn scope_example(&self) -> &'static str {
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

/// What a failed token request means for an identity that is not a client
/// secret: the certificate, the federated credential, the managed identity or
/// the Azure CLI to fix.
fn identity_advice(problem: &Problem, s: &EntraSettings) -> Option<String> {
    let client = &s.client_id;
    let code = problem.aadsts();
    Some(match (s.auth, code) {
        ("client_certificate", Some(700027)) => format!(
            "app {client} does not accept this certificate: upload the certificate (the .cer/.pem, public part) to the app registration (Certificates & secrets), or renew an expired one and replace the file certificate points to"
        ),
        ("client_certificate", Some(700024)) => "the client assertion is outside its valid time: check this machine's clock (NTP)".to_string(),
        ("workload_identity", Some(70021 | 700212 | 700027)) => format!(
            "app {client} has no federated credential matching this service account token: add one (app registration > Certificates & secrets > Federated credentials) with the cluster's OIDC issuer, subject system:serviceaccount:<namespace>:<service account> and audience api://AzureADTokenExchange"
        ),
        ("workload_identity", _) if problem.mentions("federated token") => "the federated token file cannot be read: on AKS label the pod azure.workload.identity/use: \"true\" and give its service account the azure.workload.identity/client-id annotation, or set token_file".to_string(),
        ("managed_identity", _) if problem.mentions("not been assigned") || problem.mentions("No MSI found") => format!(
            "the managed identity {} is not assigned to this host: assign it (Identity > User assigned, or turn System assigned on) on the VM, App Service, Container App or Arc server",
            if client.is_empty() { "(system-assigned)" } else { client }
        ),
        ("managed_identity", _) if problem.unreachable() || problem.mentions("Resource IDs aren't supported") => "the managed identity endpoint cannot be used here: run the bridge on an Azure VM, App Service, Container App or Arc server with an identity (App Service and Container Apps take a user-assigned identity by client_id, not resource_id), or choose another auth".to_string(),
        ("azure_cli", _) => "the Azure CLI gave no token: install az, run `az login --tenant <tenant_id>` as the user the bridge runs as, and check `az account get-access-token --scope <scope>` works".to_string(),
        _ => return None,
    })
}

/// What a failed token request means.
pub fn entra_advice(problem: &Problem, s: &EntraSettings) -> String {
    if let Some(advice) = identity_advice(problem, s) {
        return advice;
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::doctor::fixtures::problem;
    use bridge_core::ports::ErrorKind;
    use serde_json::json;

    pub(crate) fn settings(kind: SourceKind) -> EntraSettings {
        EntraSettings {
            kind,
            authority_host: "https://login.microsoftonline.com".into(),
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            scope: "https://graph.microsoft.com/.default".into(),
            base_url: "https://graph.microsoft.com".into(),
            auth: "client_secret",
        }
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
    fn each_auth_choice_gets_its_own_fix() {
        let with = |auth: &'static str, message: &str| {
            let s = EntraSettings {
                auth,
                ..settings(SourceKind::Graph)
            };
            entra_advice(&problem(ErrorKind::Auth, message), &s)
        };
        let cert = with(
            "client_certificate",
            "HTTP 401 invalid_client: AADSTS700027: x",
        );
        assert!(cert.contains("upload the certificate"), "{cert}");
        let wi = with(
            "workload_identity",
            "HTTP 401 invalid_client: AADSTS70021: x",
        );
        assert!(wi.contains("api://AzureADTokenExchange"), "{wi}");
        let mi = with(
            "managed_identity",
            "HTTP 400: The requested identity has not been assigned to this resource",
        );
        assert!(mi.contains("is not assigned to this host"), "{mi}");
        let cli = with("azure_cli", "AzureCliCredential: az: not found");
        assert!(cli.contains("az login"), "{cli}");
        // A client secret keeps the advice it had.
        let secret = with("client_secret", "HTTP 401 invalid_client: AADSTS700027: x");
        assert!(!secret.contains("upload"), "{secret}");
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
    fn token_errors_drop_what_the_line_already_says() {
        assert_eq!(
            token_error("token request to https://l for tenant t failed: HTTP 401 x: y"),
            "HTTP 401 x: y"
        );
        assert_eq!(token_error("scope is empty"), "scope is empty");
    }
}
