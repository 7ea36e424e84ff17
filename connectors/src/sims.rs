//! All simulators started together on loopback — the Entra ID token endpoint (TLS,
//! with a CA made at start-up), Microsoft Graph and Jira Cloud — registered with
//! one demo tenant, app and Jira account, seeded with realistic incidents, and the
//! config (with its CA bundle, secret files and mapping) that points the bridge at
//! them. `itsm-bridge demo`, `itsm-bridge sim` and the end-to-end tests use it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::auth::registry::TokenRegistry;
use crate::auth::sim::TokenSim;
use crate::graph::GraphSim;
use crate::graph::sim::SeedIncident;
use crate::jira::JiraSim;
use crate::jira::sim::Workflow;
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

/// The shipped Graph → Jira mapping.
pub const JIRA_MAPPING: &str = include_str!("../../mappings/jira.toml");

/// Ports to listen on; 0 picks a free one.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimPorts {
    pub login: u16,
    pub graph: u16,
    pub jira: u16,
}

/// The running simulators.
#[derive(Debug)]
pub struct Sims {
    pub tls: SimTls,
    pub registry: Arc<TokenRegistry>,
    pub login: TokenSim,
    pub graph: GraphSim,
    pub jira: JiraSim,
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
        let graph = GraphSim::start(
            bind_loopback(ports.graph).await?,
            registry.clone(),
            TENANT_ID,
        )
        .await;
        graph.set_audience(GRAPH_AUDIENCE);
        let jira = JiraSim::start(bind_loopback(ports.jira).await?).await;
        jira.set_credentials(JIRA_EMAIL, JIRA_API_TOKEN);
        jira.add_project(JIRA_PROJECT, Workflow::standard());
        jira.add_user(JIRA_EMAIL, "itsm-bridge");
        for (email, name) in ANALYSTS {
            jira.add_user(email, name);
        }
        Ok(Sims {
            tls,
            registry,
            login,
            graph,
            jira,
        })
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
        std::fs::write(dir.join("jira.toml"), JIRA_MAPPING)?;
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

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "{jira}"
email = "{JIRA_EMAIL}"
api_token = {{ file = "secrets/jira-api-token" }}
project_key = "{JIRA_PROJECT}"
issue_type = "Task"
mapping = "jira.toml"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/10 * * * * *"
conflict = "newest_wins"
since = "{since}"
"#,
            db = toml_escape(&db.display().to_string()),
            login = self.login.authority_host(),
            graph = self.graph.base_url(),
            jira = self.jira.base_url(),
            since = (Utc::now() - Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let path = dir.join("bridge.toml");
        std::fs::write(&path, config)?;
        Ok(path)
    }

    /// Requests answered so far: (token endpoint, Graph, Jira).
    pub fn request_counts(&self) -> (usize, usize, usize) {
        (
            self.login.kit.request_count(),
            self.graph.kit.request_count(),
            self.jira.kit.request_count(),
        )
    }

    pub fn shutdown(&self) {
        self.login.shutdown();
        self.graph.shutdown();
        self.jira.shutdown();
    }
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
