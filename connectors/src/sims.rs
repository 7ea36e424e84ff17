//! All simulators started together on loopback — the Entra ID token endpoint (TLS,
//! with a CA made at start-up), Microsoft Graph, Microsoft Sentinel, Jira Cloud,
//! ServiceNow and a generic REST ticket system — registered with one demo tenant,
//! its apps and accounts, seeded with realistic incidents, and the config (with its
//! CA bundle, secret files and mappings) that points the bridge at them:
//! Defender → Jira, Sentinel → ServiceNow and Sentinel → the generic system.
//! `itsm-bridge demo`, `itsm-bridge sim` and the end-to-end tests use it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use bridge_core::config::SentinelWorkspace;

use crate::auth::certificate::testdata::{APP_PEM, certificate_der};
use crate::auth::mi_sim::ManagedIdentitySim;
use crate::auth::registry::TokenRegistry;
use crate::auth::sim::TokenSim;
use crate::generic::GenericSim;
use crate::graph::GraphSim;
use crate::graph::sim::SeedIncident;
use crate::jira::JiraSim;
use crate::jira::sim::Workflow;
use crate::keyvault::sim::KeyVaultSim;
use crate::sentinel::SentinelSim;
use crate::sentinel::sim::SeedIncident as SentinelSeed;
use crate::servicenow::ServiceNowSim;
use crate::simkit::{SimTls, bind_loopback};

/// The demo tenant, app and accounts. These are simulator credentials only.
pub const TENANT_ID: &str = "6d1f9a4e-0c3b-4b8e-9d51-3a0f2c7e8b10";
pub const GRAPH_CLIENT_ID: &str = "2b7c4e1a-5f60-4d2b-8a9e-1c3d5e7f9a0b";
pub const GRAPH_CLIENT_SECRET: &str = "sim-graph-client-secret-value";
pub const JIRA_EMAIL: &str = "bridge@contoso.example";
pub const JIRA_API_TOKEN: &str = "sim-jira-api-token-value";
pub const JIRA_PROJECT: &str = "SEC";
/// The audience Graph tokens are issued for, as in production.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
pub const ARM_CLIENT_ID: &str = "7a1e5c3b-9d2f-4e8a-b6c4-0f1e2d3c4b5a";
pub const ARM_CLIENT_SECRET: &str = "sim-arm-client-secret-value";
/// The audience Azure Resource Manager tokens are issued for.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
pub const SUBSCRIPTION_ID: &str = "3b5c7d9e-1f2a-4b6c-8d0e-2f4a6b8c0d1e";
pub const RESOURCE_GROUP: &str = "soc-rg";
pub const WORKSPACE_NAME: &str = "soc-ws";
pub const SERVICENOW_USER: &str = "itsm.bridge";
pub const SERVICENOW_PASSWORD: &str = "sim-servicenow-password-value";
pub const GENERIC_TOKEN: &str = "sim-helpdesk-api-token-value";
/// The managed identity endpoint's `IDENTITY_HEADER` secret.
pub const MI_IDENTITY_HEADER: &str = "sim-identity-header-value";
/// A user-assigned managed identity attached to the simulated host.
pub const UAMI_CLIENT_ID: &str = "5e8d1c7a-3b2f-4a6e-9c0d-7f1e2a3b4c5d";
pub const UAMI_RESOURCE_ID: &str = "/subscriptions/3b5c7d9e-1f2a-4b6c-8d0e-2f4a6b8c0d1e/resourceGroups/soc-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/itsm-bridge";
/// The AKS cluster's OIDC issuer and the bridge's service account, federated
/// with the Graph app.
pub const AKS_ISSUER: &str = "https://oidc.prod-aks.azure.com/sim-cluster/";
pub const AKS_SUBJECT: &str = "system:serviceaccount:soc:itsm-bridge";
/// The vault the tests keep secrets in, as a config names it.
pub const VAULT_URL: &str = "https://contoso-soc-kv.vault.azure.net";

/// The shipped mappings.
pub const JIRA_MAPPING: &str = include_str!("../../mappings/jira.toml");
pub const SERVICENOW_MAPPING: &str = include_str!("../../mappings/servicenow.toml");
pub const GENERIC_MAPPING: &str = include_str!("../../mappings/generic.toml");

/// Ports to listen on; 0 picks a free one.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimPorts {
    pub login: u16,
    pub graph: u16,
    pub sentinel: u16,
    pub jira: u16,
    pub servicenow: u16,
    pub generic: u16,
    pub managed_identity: u16,
    pub keyvault: u16,
}

/// The running simulators.
#[derive(Debug)]
pub struct Sims {
    pub tls: SimTls,
    pub registry: Arc<TokenRegistry>,
    pub login: TokenSim,
    pub graph: GraphSim,
    pub sentinel: SentinelSim,
    pub jira: JiraSim,
    pub servicenow: ServiceNowSim,
    pub generic: GenericSim,
    /// App Service style managed identity endpoint (system-assigned identity on,
    /// `UAMI_CLIENT_ID` attached).
    pub managed_identity: ManagedIdentitySim,
    /// Key Vault (TLS, same CA as the token endpoint); empty until a test sets secrets.
    pub keyvault: KeyVaultSim,
}

/// The simulated Sentinel workspace.
pub fn workspace() -> SentinelWorkspace {
    SentinelWorkspace {
        subscription_id: SUBSCRIPTION_ID.into(),
        resource_group: RESOURCE_GROUP.into(),
        workspace_name: WORKSPACE_NAME.into(),
    }
}

/// Analysts known to the Jira simulator (and used as Defender assignees).
pub const ANALYSTS: &[(&str, &str)] = &[
    ("ana.ruiz@contoso.example", "Ana Ruiz"),
    ("li.wei@contoso.example", "Li Wei"),
    ("sam.okafor@contoso.example", "Sam Okafor"),
];

impl Sims {
    pub async fn start(ports: SimPorts) -> io::Result<Sims> {
        let tls = SimTls::generate().map_err(io::Error::other)?;
        let registry = TokenRegistry::new();
        let login = TokenSim::start(
            bind_loopback(ports.login).await?,
            registry.clone(),
            tls.clone(),
        )
        .await;
        login.register_app(TENANT_ID, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET);
        login.register_app(TENANT_ID, ARM_CLIENT_ID, ARM_CLIENT_SECRET);
        // The Graph app also accepts its certificate and the AKS service account.
        login.register_certificate(TENANT_ID, GRAPH_CLIENT_ID, &certificate_der(APP_PEM));
        login.register_federated(TENANT_ID, GRAPH_CLIENT_ID, AKS_ISSUER, AKS_SUBJECT);
        login.set_audiences(&[GRAPH_AUDIENCE, ARM_AUDIENCE, crate::keyvault::sim::AUDIENCE]);
        let managed_identity = ManagedIdentitySim::start(
            bind_loopback(ports.managed_identity).await?,
            registry.clone(),
            MI_IDENTITY_HEADER,
        )
        .await;
        managed_identity.attach_user_assigned(UAMI_CLIENT_ID, UAMI_RESOURCE_ID);
        let keyvault = KeyVaultSim::start(
            bind_loopback(ports.keyvault).await?,
            registry.clone(),
            tls.clone(),
            TENANT_ID,
        )
        .await;
        let graph = GraphSim::start(
            bind_loopback(ports.graph).await?,
            registry.clone(),
            TENANT_ID,
        )
        .await;
        graph.set_audience(GRAPH_AUDIENCE);
        // Kinder than Graph, on purpose: the demo, `sim` and the end-to-end tests
        // play hours of Defender and analyst activity in seconds, and the bridge
        // does not pace a loopback base URL (limits.rs), so 50 requests a minute
        // would turn every test into minutes of waiting out `Retry-After`. The
        // throttle itself is proven by the simulator's tests
        // (graph::sim::tests::graph_sim_throttles_at_the_defender_limits_by_default)
        // and the bridge's answer to it by tests/faults.rs (injected 429s).
        graph.set_rate_limit(None);
        let sentinel = SentinelSim::start(
            bind_loopback(ports.sentinel).await?,
            registry.clone(),
            workspace(),
        )
        .await;
        sentinel.set_audience(ARM_AUDIENCE);
        sentinel.set_tenant_id(TENANT_ID);
        // Kinder than ARM, for the same reason as Graph's above: a first sync of a
        // few hundred incidents writes faster than 10 a second, which ARM would
        // throttle. Proven by sentinel::sim::tests::sentinel_sim_throttles_per_operation_type;
        // `bench` turns buckets back on, scaled.
        sentinel.set_rate_limit(None);
        let jira = JiraSim::start(bind_loopback(ports.jira).await?).await;
        jira.set_credentials(JIRA_EMAIL, JIRA_API_TOKEN);
        // Kinder than Jira: search sees writes at once. The demo and the
        // end-to-end tests act and run the bridge straight after, where a
        // deployment's next poll comes a schedule interval later and overlaps
        // the last by minutes. What the bridge does about the lag is proven
        // against the default lag by
        // jira::client::tests::index_lag_hides_fresh_issues_until_reconciled_or_indexed
        // and a_lost_create_is_found_by_key_while_the_search_still_lags.
        jira.set_index_lag(std::time::Duration::ZERO);
        jira.add_project(JIRA_PROJECT, Workflow::standard());
        jira.add_user(JIRA_EMAIL, "itsm-bridge");
        let servicenow = ServiceNowSim::start(bind_loopback(ports.servicenow).await?).await;
        servicenow.set_credentials(SERVICENOW_USER, SERVICENOW_PASSWORD);
        let generic = GenericSim::start(bind_loopback(ports.generic).await?).await;
        generic.set_bearer_token(GENERIC_TOKEN);
        for (email, name) in ANALYSTS {
            jira.add_user(email, name);
            sentinel.add_user(email, name);
            let user_name = email.split('@').next().unwrap_or(email);
            servicenow.add_user(user_name, name, email);
        }
        Ok(Sims {
            tls,
            registry,
            login,
            graph,
            sentinel,
            jira,
            servicenow,
            generic,
            managed_identity,
            keyvault,
        })
    }

    /// The environment a bridge on an App Service / Container App gets, pointing
    /// azure_identity at the managed identity simulator.
    pub fn managed_identity_env(&self) -> [(&'static str, String); 2] {
        [
            ("IDENTITY_ENDPOINT", self.managed_identity.endpoint()),
            ("IDENTITY_HEADER", MI_IDENTITY_HEADER.to_string()),
        ]
    }

    /// Seeds `count` incidents as Defender would have raised them over the hours
    /// before `now`: mixed severities and statuses, some assigned, some with
    /// comments, a few already resolved. Returns their ids, oldest first.
    pub fn seed_incidents(&self, count: usize, now: DateTime<Utc>) -> Vec<String> {
        (0..count)
            .map(|i| {
                let created = now - Duration::minutes(((count - i) * 7) as i64);
                self.graph.seed_incident(sample_incident(i, created))
            })
            .collect()
    }

    /// Seeds `count` Sentinel incidents: most of them Defender XDR incidents synced
    /// into the workspace (with their Defender portal link), some raised by
    /// Sentinel's own analytics, a few already closed. Returns their ids.
    pub fn seed_sentinel_incidents(&self, count: usize, now: DateTime<Utc>) -> Vec<String> {
        (0..count)
            .map(|i| {
                let created = now - Duration::minutes(((count - i) * 11) as i64);
                self.sentinel
                    .seed_incident(sample_sentinel_incident(i, created))
            })
            .collect()
    }

    /// Writes `bridge.toml` into `dir` with everything it names: the CA bundle the
    /// token endpoint's certificate chains to, the two secrets (as files, mode
    /// 0600) and the mapping. The database goes to `db`. Returns the config path.
    pub fn write_config(&self, dir: &Path, db: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir.join("secrets"))?;
        std::fs::write(dir.join("sim-ca.pem"), &self.tls.ca_pem)?;
        write_private(
            &dir.join("secrets/graph-client-secret"),
            GRAPH_CLIENT_SECRET,
        )?;
        write_private(&dir.join("secrets/jira-api-token"), JIRA_API_TOKEN)?;
        write_private(&dir.join("secrets/arm-client-secret"), ARM_CLIENT_SECRET)?;
        write_private(
            &dir.join("secrets/servicenow-password"),
            SERVICENOW_PASSWORD,
        )?;
        write_private(&dir.join("secrets/helpdesk-token"), GENERIC_TOKEN)?;
        std::fs::write(dir.join("jira.toml"), JIRA_MAPPING)?;
        std::fs::write(dir.join("servicenow.toml"), SERVICENOW_MAPPING)?;
        std::fs::write(dir.join("generic.toml"), GENERIC_MAPPING)?;
        let db = std::path::absolute(db)?;
        let config = format!(
            r#"# itsm-bridge config for the built-in simulators (written by itsm-bridge).
[store]
path = "{db}"

[http]
# The simulated Entra ID endpoint speaks TLS with a certificate from this CA.
ca_bundle = "sim-ca.pem"
timeout = "10s"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "{TENANT_ID}"
client_id = "{GRAPH_CLIENT_ID}"
client_secret = {{ file = "secrets/graph-client-secret" }}
authority_host = "{login}"
base_url = "{graph}"
scope = "{GRAPH_AUDIENCE}/.default"

[[source]]
name = "sentinel"
kind = "sentinel"
tenant_id = "{TENANT_ID}"
client_id = "{ARM_CLIENT_ID}"
client_secret = {{ file = "secrets/arm-client-secret" }}
authority_host = "{login}"
base_url = "{sentinel}"
scope = "{ARM_AUDIENCE}/.default"
subscription_id = "{SUBSCRIPTION_ID}"
resource_group = "{RESOURCE_GROUP}"
workspace_name = "{WORKSPACE_NAME}"

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "{jira}"
email = "{JIRA_EMAIL}"
api_token = {{ file = "secrets/jira-api-token" }}
project_key = "{JIRA_PROJECT}"
issue_type = "Task"
mapping = "jira.toml"
# The simulators' searches show a write at once (real ones lag: 30 s by default).
search_lag = "2s"

[[ticket_system]]
name = "servicenow"
kind = "servicenow"
base_url = "{servicenow}"
username = "{SERVICENOW_USER}"
password = {{ file = "secrets/servicenow-password" }}
mapping = "servicenow.toml"
search_lag = "2s"

[[ticket_system]]
name = "helpdesk"
kind = "generic"
base_url = "{generic}"
token = {{ file = "secrets/helpdesk-token" }}
mapping = "generic.toml"
search_lag = "2s"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/10 * * * * *"
conflict = "newest_wins"
since = "{since}"

[[sync]]
source = "sentinel"
tickets = "servicenow"
schedule = "*/10 * * * * *"
conflict = "newest_wins"
since = "{since}"

[[sync]]
source = "sentinel"
tickets = "helpdesk"
schedule = "*/15 * * * * *"
conflict = "ticket_wins"
since = "{since}"
"#,
            db = toml_escape(&db.display().to_string()),
            login = self.login.authority_host(),
            graph = self.graph.base_url(),
            sentinel = self.sentinel.base_url(),
            jira = self.jira.base_url(),
            servicenow = self.servicenow.base_url(),
            generic = self.generic.base_url(),
            since = (Utc::now() - Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let path = dir.join("bridge.toml");
        std::fs::write(&path, config)?;
        Ok(path)
    }

    /// Requests answered so far, per simulator.
    pub fn request_counts(&self) -> RequestCounts {
        RequestCounts {
            login: self.login.kit.request_count(),
            graph: self.graph.kit.request_count(),
            sentinel: self.sentinel.kit.request_count(),
            jira: self.jira.kit.request_count(),
            servicenow: self.servicenow.kit.request_count(),
            generic: self.generic.kit.request_count(),
        }
    }

    pub fn shutdown(&self) {
        self.login.shutdown();
        self.graph.shutdown();
        self.sentinel.shutdown();
        self.jira.shutdown();
        self.servicenow.shutdown();
        self.generic.shutdown();
        self.managed_identity.shutdown();
        self.keyvault.shutdown();
    }
}

/// Requests each simulator answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub login: usize,
    pub graph: usize,
    pub sentinel: usize,
    pub jira: usize,
    pub servicenow: usize,
    pub generic: usize,
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

const TITLES: &[&str] = &[
    "Multi-stage incident involving Initial access & Lateral movement on one endpoint",
    "Suspicious sign-in followed by mailbox rule creation",
    "Ransomware-linked emerging threat activity group detected on SRV-FS01",
    "Phishing email delivered to 12 mailboxes",
    "Suspicious PowerShell download cradle on WS-0142",
    "Impossible travel activity involving one user",
    "Credential dumping with a known tool on DC-02",
    "Anomalous OAuth application consent grant",
    "Inbox forwarding rule to an external domain",
    "Unusual volume of file deletion on SharePoint site Finance",
    "Defender for Endpoint: suspicious scheduled task created",
    "Password spray against 40 accounts from one IP",
];

const SEVERITIES: &[&str] = &[
    "high",
    "medium",
    "low",
    "medium",
    "informational",
    "high",
    "low",
];

fn sample_incident(i: usize, created: DateTime<Utc>) -> SeedIncident {
    let title = TITLES[i % TITLES.len()];
    let mut seed = SeedIncident::new(format!("{title} ({})", 100 + i))
        .severity(SEVERITIES[i % SEVERITIES.len()])
        .created(created)
        .updated(created + Duration::minutes(3));
    seed = match i % 10 {
        3 | 7 => seed.status("inProgress"),
        9 => seed
            .status("resolved")
            .classification("truePositive")
            .determination("malware"),
        _ => seed.status("active"),
    };
    if i % 3 == 0 {
        seed = seed.assigned_to(ANALYSTS[i % ANALYSTS.len()].0);
    }
    if i % 4 == 1 {
        seed = seed.comment(
            "Ana Ruiz",
            "Triaged: escalating to tier 2, see the attached alerts.",
        );
    }
    if i % 5 == 2 {
        seed = seed.description(
            "Alerts from Microsoft Defender for Endpoint and Defender for Office 365.",
        );
    }
    seed
}

const SENTINEL_TITLES: &[&str] = &[
    "Suspicious sign-in followed by mailbox rule creation",
    "Brute force attack against Azure Portal",
    "Rare subscription-level operations in Azure",
    "Malicious Inbox Rule, affecting multiple users",
    "Anomalous RDP login detected on VM-BUILD-07",
    "Mass secret retrieval from Azure Key Vault",
    "Multi-stage incident involving Execution & Persistence on one endpoint",
    "Sign-ins from IPs that attempt sign-ins to disabled accounts",
];

const SENTINEL_SEVERITIES: &[&str] = &["High", "Medium", "Low", "Medium", "Informational"];

fn sample_sentinel_incident(i: usize, created: DateTime<Utc>) -> SentinelSeed {
    let title = SENTINEL_TITLES[i % SENTINEL_TITLES.len()];
    let mut seed = SentinelSeed::new(title)
        .severity(SENTINEL_SEVERITIES[i % SENTINEL_SEVERITIES.len()])
        .created(created)
        .updated(created + Duration::minutes(2));
    seed = match i % 8 {
        2 | 5 => seed.status("Active"),
        7 => seed
            .status("Closed")
            .classification("TruePositive")
            .classification_reason("SuspiciousActivity"),
        _ => seed.status("New"),
    };
    if i % 3 == 1 {
        seed = seed.owner(ANALYSTS[i % ANALYSTS.len()].0);
    }
    if i % 4 == 3 {
        seed = seed.sentinel_native();
    } else {
        seed = seed.provider_incident_id((52000 + i).to_string());
    }
    if i % 5 == 0 {
        seed = seed.auto_label("phishing");
    }
    seed
}
