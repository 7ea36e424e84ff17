//! Real helpdesks described by the generic kind's `[api]` table, end to end: the
//! shipped `mappings/freshservice.toml` against the strict Freshservice simulator
//! (integer statuses and priorities, `{"ticket": …}` answers, read-only fields and
//! string codes refused with Freshservice's 400 shape), and `mappings/zendesk.toml`
//! against the strict Zendesk simulator (wrapped requests, a first comment on
//! create, comments as updates, the incremental export in Unix seconds).

use std::path::PathBuf;

use connectors::generic::sim::freshservice::{API_AGENT_ID, HUMAN_AGENT_ID, VERDICT_FIELD};
use connectors::generic::sim::zendesk;
use connectors::generic::{FreshserviceSim, ZendeskSim};
use serde_json::Value;

use crate::common::{Env, assert_success};

const PAIR: &str = "sentinel->freshservice";
const API_KEY: &str = "fs-test-api-key";

/// The Sentinel simulator (with the other simulators the harness starts), the
/// Freshservice simulator, and a config whose one pair joins them.
struct Desk {
    env: Env,
    fs: FreshserviceSim,
    config: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl Desk {
    fn start(incidents: usize) -> Desk {
        let env = Env::start_with(0, incidents);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fs = runtime.block_on(async {
            FreshserviceSim::start(connectors::simkit::bind_loopback(0).await.unwrap()).await
        });
        fs.set_api_key(API_KEY);
        let dir = env.dir.path();
        std::fs::write(
            dir.join("freshservice.toml"),
            include_str!("../../mappings/freshservice.toml"),
        )
        .unwrap();
        std::fs::write(dir.join("secrets/freshservice-x"), "X").unwrap();
        let system = format!(
            r#"[[ticket_system]]
name = "freshservice"
kind = "generic"
base_url = "{base}"
username = "{API_KEY}"
password = {{ file = "secrets/freshservice-x" }}
mapping = "freshservice.toml"
search_lag = "2s"
"#,
            base = fs.base_url(),
        );
        let path = write_config(&env, &system, "freshservice");
        Desk {
            env,
            fs,
            config: path,
            _runtime: runtime,
        }
    }

    fn sync(&self) {
        let out = self
            .env
            .bridge(&["run", "--once", "--config", self.config.to_str().unwrap()]);
        assert_success(&out);
    }

    fn open_incidents(&self) -> Vec<String> {
        self.env
            .sims
            .sentinel
            .incidents()
            .into_iter()
            .filter(|i| i.status != "Closed")
            .map(|i| i.name)
            .collect()
    }

    fn ticket_id(&self, incident: &str) -> u64 {
        self.env
            .ticket_in(Some(PAIR), incident)
            .expect("the incident has a ticket")
            .parse()
            .expect("Freshservice ids are numbers")
    }

    /// The bodies of the updates sent to one ticket, oldest first.
    fn updates_of(&self, id: u64) -> Vec<Value> {
        let path = format!("/api/v2/tickets/{id}");
        self.fs
            .writes()
            .into_iter()
            .filter(|w| w.method == "PUT" && w.path == path)
            .map(|w| w.body)
            .collect()
    }
}

/// A config with the harness's sources, `system` and one pair from Sentinel to it.
fn write_config(env: &Env, system: &str, name: &str) -> PathBuf {
    let generated = std::fs::read_to_string(&env.config).unwrap();
    let sources = &generated[..generated.find("[[ticket_system]]").unwrap()];
    let since = (chrono::Utc::now() - chrono::Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ");
    let config = format!(
        r#"{sources}
{system}
[[sync]]
source = "sentinel"
tickets = "{name}"
schedule = "*/15 * * * * *"
conflict = "ticket_wins"
since = "{since}"
"#
    );
    let path = env.dir.path().join(format!("{name}-bridge.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

fn run_once(env: &Env, config: &std::path::Path) {
    let out = env.bridge(&["run", "--once", "--config", config.to_str().unwrap()]);
    assert_success(&out);
}

fn open_incidents(env: &Env) -> Vec<String> {
    env.sims
        .sentinel
        .incidents()
        .into_iter()
        .filter(|i| i.status != "Closed")
        .map(|i| i.name)
        .collect()
}

fn ticket_id(env: &Env, pair: &str, incident: &str) -> u64 {
    env.ticket_in(Some(pair), incident)
        .expect("the incident has a ticket")
        .parse()
        .expect("the helpdesk's ids are numbers")
}

#[test]
fn first_sync_opens_one_typed_ticket_per_open_incident_and_a_quiet_rerun_writes_nothing() {
    let desk = Desk::start(4);
    desk.sync();
    let open = desk.open_incidents();
    assert!(!open.is_empty());
    assert_eq!(
        desk.fs.tickets().len(),
        open.len(),
        "one ticket per open incident"
    );
    for id in &open {
        let ticket = desk.fs.ticket(desk.ticket_id(id)).unwrap();
        // The create carried the fixed fields, integer codes and the correlation id.
        assert_eq!(ticket.requester, "soc-bridge@contoso.example");
        assert_eq!(ticket.status, 2);
        assert!((1..=4).contains(&ticket.priority));
        let correlation = ticket.custom_fields["security_correlation"]
            .as_str()
            .unwrap();
        assert!(correlation.starts_with("sentinel:") && correlation.ends_with(id.as_str()));
        assert_eq!(ticket.tags, ["itsm-bridge", "sentinel"]);
        // The write-back: a tag and a comment on the incident.
        let incident = desk.env.sims.sentinel.incident(id).unwrap();
        assert!(
            incident.has_label(&format!("freshservice:{}", ticket.id)),
            "{:?}",
            incident.labels
        );
        assert!(
            incident
                .comments
                .iter()
                .any(|c| c.message.contains("Freshservice ticket #")),
            "the write-back comment"
        );
    }
    for write in desk
        .fs
        .writes()
        .iter()
        .filter(|w| w.method == "POST" && w.path == "/api/v2/tickets")
    {
        assert!(
            write.body["status"].is_i64() && write.body["priority"].is_i64(),
            "{}",
            write.body
        );
        assert_eq!(write.body["source"], 2);
        assert!(
            write.body.get("ticket").is_none(),
            "Freshservice takes the ticket unwrapped"
        );
    }

    let writes = desk.fs.writes().len();
    let sentinel_seen = desk.env.sims.sentinel.kit.request_count();
    desk.sync();
    assert_eq!(
        desk.fs.writes().len(),
        writes,
        "a quiet rerun writes nothing to Freshservice"
    );
    let sentinel_writes: Vec<_> = desk.env.sims.sentinel.kit.requests()[sentinel_seen..]
        .iter()
        .filter(|r| r.method != "GET" && r.method != "POST")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(sentinel_writes, Vec::<String>::new(), "nor to Sentinel");
}

#[test]
fn resolving_in_freshservice_closes_the_incident_with_its_classification() {
    let desk = Desk::start(3);
    desk.sync();
    let id = desk.open_incidents()[0].clone();
    let ticket = desk.ticket_id(&id);

    desk.fs.resolve_as_agent(ticket, "false_positive").unwrap();
    desk.sync();

    let incident = desk.env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(incident.classification.as_deref(), Some("FalsePositive"));
    assert_eq!(
        incident.classification_reason.as_deref(),
        Some("IncorrectAlertLogic")
    );
    let after = desk.fs.ticket(ticket).unwrap();
    assert_eq!(after.status, 4, "the resolve stays");
    assert_eq!(after.custom_fields[VERDICT_FIELD], "false_positive");
}

#[test]
fn a_severity_change_sends_only_the_changed_fields_and_an_agents_edit_survives() {
    let desk = Desk::start(3);
    desk.sync();
    let id = desk.open_incidents()[0].clone();
    let ticket = desk.ticket_id(&id);
    let before = desk.updates_of(ticket).len();

    // An agent takes the ticket in Freshservice while the SOC raises the severity.
    desk.fs
        .update_as_agent(ticket, |t| t.responder_id = Some(HUMAN_AGENT_ID))
        .unwrap();
    let severity = desk.env.sims.sentinel.incident(&id).unwrap().severity;
    let raised = if severity == "High" { "Low" } else { "High" };
    assert!(desk.env.sims.sentinel.set_severity(&id, raised));
    desk.sync();

    let updates = desk.updates_of(ticket);
    assert_eq!(updates.len(), before + 1, "{updates:?}");
    let sent = updates.last().unwrap().as_object().unwrap();
    let mut keys: Vec<&str> = sent.keys().map(String::as_str).collect();
    keys.sort();
    // The priority and the description (it quotes the severity): nothing else,
    // no id, no times, no conversations, no field the bridge did not change.
    assert_eq!(keys, ["description", "priority"], "{sent:?}");
    assert_eq!(sent["priority"], if raised == "High" { 3 } else { 1 });
    let after = desk.fs.ticket(ticket).unwrap();
    assert_eq!(
        after.responder_id,
        Some(HUMAN_AGENT_ID),
        "the agent's edit survives"
    );
    assert_ne!(after.responder_id, Some(API_AGENT_ID));
}

// ---------------------------------------------------------------------------------
// Zendesk Support

const ZD_PAIR: &str = "sentinel->zendesk";
const ZD_EMAIL: &str = "soc-bridge@contoso.example";
const ZD_TOKEN: &str = "zd-test-token";

struct Zendesk {
    env: Env,
    zd: ZendeskSim,
    config: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl Zendesk {
    fn start(incidents: usize) -> Zendesk {
        let env = Env::start_with(0, incidents);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let zd = runtime.block_on(async {
            ZendeskSim::start(connectors::simkit::bind_loopback(0).await.unwrap()).await
        });
        zd.set_api_token(ZD_EMAIL, ZD_TOKEN);
        // Zendesk's export leaves out the last minute; these tests play minutes of
        // activity in seconds, so the simulator shows every change at once.
        zd.set_export_delay(std::time::Duration::ZERO);
        let dir = env.dir.path();
        std::fs::write(
            dir.join("zendesk.toml"),
            include_str!("../../mappings/zendesk.toml"),
        )
        .unwrap();
        std::fs::write(dir.join("secrets/zendesk-token"), ZD_TOKEN).unwrap();
        let system = format!(
            r#"[[ticket_system]]
name = "zendesk"
kind = "generic"
base_url = "{base}"
username = "{ZD_EMAIL}/token"
password = {{ file = "secrets/zendesk-token" }}
mapping = "zendesk.toml"
search_lag = "2s"
"#,
            base = zd.base_url(),
        );
        let config = write_config(&env, &system, "zendesk");
        Zendesk {
            env,
            zd,
            config,
            _runtime: runtime,
        }
    }

    fn sync(&self) {
        run_once(&self.env, &self.config);
    }

    /// The `ticket` members of the updates sent to one ticket, oldest first.
    fn updates_of(&self, id: u64) -> Vec<Value> {
        let path = format!("/api/v2/tickets/{id}");
        self.zd
            .writes()
            .into_iter()
            .filter(|w| w.method == "PUT" && w.path == path)
            .map(|w| w.body["ticket"].clone())
            .collect()
    }
}

#[test]
fn zendesk_first_sync_opens_one_wrapped_ticket_per_open_incident_and_a_quiet_rerun_writes_nothing()
{
    let desk = Zendesk::start(4);
    desk.sync();
    let open = open_incidents(&desk.env);
    assert!(!open.is_empty());
    assert_eq!(
        desk.zd.tickets().len(),
        open.len(),
        "one ticket per open incident"
    );
    for id in &open {
        let ticket = desk.zd.ticket(ticket_id(&desk.env, ZD_PAIR, id)).unwrap();
        assert_eq!(ticket.status, "open");
        let correlation = ticket.external_id.clone().unwrap();
        assert!(correlation.starts_with("sentinel:") && correlation.ends_with(id.as_str()));
        // The first comment, rendered from the summary and the correlation id.
        let first = &ticket.comments[0];
        assert!(first.body.starts_with("[Sentinel #") && first.body.contains(&correlation));
        assert!(!first.public);
        let incident = desk.env.sims.sentinel.incident(id).unwrap();
        assert!(incident.has_label(&format!("zendesk:{}", ticket.id)));
    }
    for write in desk.zd.writes().iter().filter(|w| w.method == "POST") {
        assert!(
            write.body["ticket"]["subject"].is_string(),
            "{}",
            write.body
        );
    }

    let writes = desk.zd.writes().len();
    desk.sync();
    assert_eq!(
        desk.zd.writes().len(),
        writes,
        "a quiet rerun writes nothing to Zendesk"
    );
}

#[test]
fn zendesk_solving_closes_the_incident_with_its_classification() {
    let desk = Zendesk::start(3);
    desk.sync();
    let id = open_incidents(&desk.env)[0].clone();
    let ticket = ticket_id(&desk.env, ZD_PAIR, &id);

    desk.zd.solve_as_agent(ticket, "expected_activity").unwrap();
    desk.sync();

    let incident = desk.env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(incident.classification.as_deref(), Some("BenignPositive"));
    assert_eq!(
        incident.classification_reason.as_deref(),
        Some("SuspiciousButExpected")
    );
    assert_eq!(desk.zd.ticket(ticket).unwrap().status, "solved");
}

#[test]
fn zendesk_a_severity_change_sends_only_the_priority_and_an_agents_edit_survives() {
    let desk = Zendesk::start(3);
    desk.sync();
    let id = open_incidents(&desk.env)[0].clone();
    let ticket = ticket_id(&desk.env, ZD_PAIR, &id);
    let before = desk.updates_of(ticket).len();

    desk.zd
        .update_as_agent(ticket, |t| t.assignee_id = Some(zendesk::HUMAN_AGENT_ID))
        .unwrap();
    let severity = desk.env.sims.sentinel.incident(&id).unwrap().severity;
    let raised = if severity == "High" { "Low" } else { "High" };
    assert!(desk.env.sims.sentinel.set_severity(&id, raised));
    desk.sync();

    let updates = desk.updates_of(ticket);
    assert_eq!(updates.len(), before + 1, "{updates:?}");
    let sent = updates.last().unwrap();
    let expected = if raised == "High" { "high" } else { "low" };
    assert_eq!(sent, &serde_json::json!({ "priority": expected }));
    let after = desk.zd.ticket(ticket).unwrap();
    assert_eq!(
        after.assignee_id,
        Some(zendesk::HUMAN_AGENT_ID),
        "the agent's edit survives"
    );
}
