//! `bridge.toml` read as situations: what loads, with which defaults, and each
//! bad input named with its file, line and column.

use super::*;

use crate::config::SourceAuth;
use crate::vocab::TicketKind;

const JIRA_MAPPING: &str = include_str!("../../../../mappings/jira.toml");

/// A directory with `mappings/jira.toml` (Graph → Jira) and
/// `mappings/sentinel-jira.toml` (Sentinel → Jira) in it.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mappings")).unwrap();
    std::fs::write(dir.path().join("mappings/jira.toml"), JIRA_MAPPING).unwrap();
    std::fs::write(
        dir.path().join("mappings/sentinel-jira.toml"),
        "version = 1\nsource = \"sentinel\"\ntickets = \"jira\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n",
    )
    .unwrap();
    dir
}

const VALID: &str = r#"
[store]
path = "state/itsm-bridge.db"

[server]
listen = "127.0.0.1:0"

[http]
ca_bundle = "certs/ca.pem"
proxy = "http://proxy.internal:3128/"
timeout = "500ms"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = { env = "BRIDGE_GRAPH_SECRET" }

[[source]]
name = "sentinel-prod"
kind = "sentinel"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = { file = "secrets/arm" }
base_url = "https://management.usgovcloudapi.net/"
authority_host = "https://login.microsoftonline.us"
subscription_id = "33333333-3333-3333-3333-333333333333"
resource_group = "soc-rg"
workspace_name = "soc-ws"

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = { env = "BRIDGE_JIRA_TOKEN" }
project_key = "SEC"
mapping = "mappings/jira.toml"

[[ticket_system]]
name = "jira-sentinel"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = { env = "BRIDGE_JIRA_TOKEN" }
project_key = "SOC"
issue_type = "Incident"
mapping = "mappings/sentinel-jira.toml"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/30 * * * * *"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "sentinel-prod"
tickets = "jira-sentinel"
schedule = "*/5 * * * *"
sweep = "off"
conflict = "ticket_wins"
since = 2026-10-01T12:00:00+02:00
"#;

#[test]
fn valid_config_loads_with_defaults_and_resolved_paths() {
    let dir = workspace();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, VALID).unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), FAKE_CA).unwrap();
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();

    assert_eq!(config.file, path);
    assert_eq!(config.store.path, d.join("state/itsm-bridge.db"));
    assert_eq!(config.server.listen, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(config.http.ca_bundle, Some(d.join("certs/ca.pem")));
    assert_eq!(
        config.http.proxy.as_deref(),
        Some("http://proxy.internal:3128")
    );
    assert_eq!(config.http.timeout, Duration::from_millis(500));
    assert_eq!(config.http.max_body, 16 * 1024 * 1024, "the default");

    let graph = config.source("defender").unwrap();
    assert_eq!(graph.kind, SourceKind::Graph);
    assert_eq!(
        graph.auth,
        SourceAuth::ClientSecret {
            client_secret: SecretRef::Env("BRIDGE_GRAPH_SECRET".into())
        }
    );
    assert_eq!(graph.authority_host, "https://login.microsoftonline.com");
    assert_eq!(graph.base_url, "https://graph.microsoft.com");
    assert_eq!(graph.scope, "https://graph.microsoft.com/.default");
    assert!(graph.workspace.is_none() && graph.api_version.is_none());

    let sentinel = config.source("sentinel-prod").unwrap();
    assert_eq!(
        sentinel.auth,
        SourceAuth::ClientSecret {
            client_secret: SecretRef::File(d.join("secrets/arm"))
        }
    );
    assert_eq!(sentinel.base_url, "https://management.usgovcloudapi.net");
    assert_eq!(
        sentinel.scope,
        "https://management.usgovcloudapi.net/.default"
    );
    assert_eq!(sentinel.authority_host, "https://login.microsoftonline.us");
    assert_eq!(
        sentinel.workspace,
        Some(SentinelWorkspace {
            subscription_id: "33333333-3333-3333-3333-333333333333".into(),
            resource_group: "soc-rg".into(),
            workspace_name: "soc-ws".into(),
        })
    );

    let jira = config.ticket_system("jira").unwrap();
    assert_eq!(jira.kind, TicketKind::Jira);
    assert_eq!(jira.project_key.as_deref(), Some("SEC"));
    assert_eq!(jira.issue_type.as_deref(), Some("Task"));
    assert_eq!(jira.mapping.file, d.join("mappings/jira.toml"));
    assert!(matches!(
        &jira.auth,
        TicketAuth::JiraToken { email, api_token: SecretRef::Env(var) }
            if email == "bridge@acme.example" && var == "BRIDGE_JIRA_TOKEN"
    ));
    assert_eq!(
        config
            .ticket_system("jira-sentinel")
            .unwrap()
            .issue_type
            .as_deref(),
        Some("Incident")
    );

    assert_eq!(config.syncs.len(), 2);
    let first = &config.syncs[0];
    assert_eq!(first.pair_name(), "defender->jira");
    assert_eq!(first.conflict, ConflictPolicy::NewestWins);
    assert_eq!(first.schedule.as_str(), "*/30 * * * * *");
    assert_eq!(
        first.sweep.as_ref().map(|s| s.as_str()),
        Some(DEFAULT_SWEEP),
        "the sweep runs hourly unless told otherwise"
    );
    assert_eq!(first.since.to_rfc3339(), "2026-11-01T00:00:00+00:00");
    let second = &config.syncs[1];
    assert!(second.sweep.is_none(), "sweep = \"off\" switches it off");
    assert_eq!(second.conflict, ConflictPolicy::TicketWins);
    assert_eq!(second.since.to_rfc3339(), "2026-10-01T10:00:00+00:00");
}

#[test]
fn minimal_config_takes_every_default() {
    let dir = workspace();
    let path = dir.path().join("bridge.toml");
    let text = "[[source]]\nname = \"d\"\nkind = \"graph\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\n\n[[ticket_system]]\nname = \"snow\"\nkind = \"generic\"\nbase_url = \"http://127.0.0.1:8080\"\ntoken = { env = \"T\" }\nmapping = \"mappings/generic.toml\"\n\n[[sync]]\nsource = \"d\"\ntickets = \"snow\"\nschedule = \"* * * * *\"\nsince = \"2026-11-01T00:00:00Z\"\n";
    std::fs::write(
        dir.path().join("mappings/generic.toml"),
        "version = 1\nsource = \"graph\"\ntickets = \"generic\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n[api]\ncreate = { path = \"/t\" }\nget = { path = \"/t/{id}\" }\nupdate = { path = \"/t/{id}\" }\nsearch = { path = \"/t?since={since}\" }\nfind = { path = \"/t?c={correlation}\" }\ncomment = { path = \"/t/{id}/c\", text = \"/body\" }\nitems = \"\"\nid = \"/id\"\ncreated = \"/created\"\nupdated = \"/updated\"\ncorrelation = \"/ext\"\n[api.fields]\nsummary = \"/summary\"\n",
    )
    .unwrap();
    let config = parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.store.path, dir.path().join("itsm-bridge.db"));
    assert_eq!(config.server.listen, None);
    assert_eq!(config.http.timeout, Duration::from_secs(30));
    assert_eq!(
        config.ticket_systems[0].search_lag,
        Duration::from_secs(30),
        "a lost create is looked up after 30 s unless the ticket system says"
    );
    assert!(config.http.ca_bundle.is_none() && config.http.proxy.is_none());
    let system = config.ticket_system("snow").unwrap();
    assert!(matches!(&system.auth, TicketAuth::Bearer { token: SecretRef::Env(v) } if v == "T"));
    assert!(system.project_key.is_none() && system.issue_type.is_none());
}

/// A PEM block whose base64 is a DER sequence: enough for `check_ca_bundle`.
const FAKE_CA: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

#[test]
fn what_run_refuses_check_refuses_with_a_position() {
    let dir = workspace();
    std::fs::write(dir.path().join("ca.pem"), FAKE_CA).unwrap();
    let sentinel = SOURCE
        .replace("\"graph\"", "\"sentinel\"")
        .replace("defender", "arm")
        + "subscription_id = \"not-a-guid\"\nresource_group = \"rg.\"\nworkspace_name = \"ws\"\napi_version = \"latest\"\n";
    let text = format!(
        "[store]\npath = \"mappings\"\n[http]\nca_bundle = \"not-pem.pem\"\ntimeout = \"11m\"\nmax_body = \"16 MB of it\"\n\n{}\n{sentinel}\n{}\n{}",
        SOURCE.replace("00000000-0000-0000-0000-000000000000", "my-tenant"),
        TICKETS.replace(
            "https://acme.atlassian.net",
            "http://jira.acme.example:8080"
        ),
        SYNC.replace("*/5 * * * *", "0 0 30 2 *")
            .replace("2026-11-01T00:00:00Z", "2999-01-01T00:00:00Z"),
    );
    assert_eq!(
        errors(&text, &[("not-pem.pem", "hello\n")]),
        vec![
            "DIR/bridge.toml:2:8: store path DIR/mappings is a folder; give the database file's name, e.g. \"mappings/itsm-bridge.db\"",
            "DIR/bridge.toml:4:13: ca_bundle DIR/not-pem.pem is not a PEM certificate bundle; give a file of `-----BEGIN CERTIFICATE-----` blocks (convert DER with `openssl x509 -inform der -in ca.cer -out ca.pem`)",
            "DIR/bridge.toml:5:11: timeout `11m` is longer than 10m; a hung remote would hold its pair that long: give a few seconds, e.g. \"30s\"",
            "DIR/bridge.toml:6:12: max_body `16 MB of it` is not a size; write a number and a unit, e.g. \"16MiB\", \"512KiB\" or \"1GiB\"",
            "DIR/bridge.toml:11:13: tenant_id `my-tenant` is not a tenant id; copy the Directory (tenant) ID, a GUID like \"00000000-0000-0000-0000-000000000000\", from the app registration (or give the tenant's domain, e.g. \"contoso.onmicrosoft.com\")",
            "DIR/bridge.toml:21:19: subscription_id `not-a-guid` is not a valid Azure name; a subscription id is a GUID like \"33333333-3333-3333-3333-333333333333\" (copy it from the workspace's resource id)",
            "DIR/bridge.toml:22:18: resource_group `rg.` is not a valid Azure name; a resource group name is 1-90 letters, digits, `_`, `-`, `.` or parentheses, not ending in `.` (copy it from the workspace's resource id)",
            "DIR/bridge.toml:23:18: workspace_name `ws` is not a valid Azure name; a workspace name is 4-63 letters, digits and `-`, starting and ending with a letter or digit (copy it from the workspace's resource id)",
            "DIR/bridge.toml:24:15: api_version `latest` is not an ARM api-version; write a date, optionally with -preview, e.g. \"2025-09-01\" (remove it for the default)",
            "DIR/bridge.toml:29:12: base_url `http://jira.acme.example:8080` is plain http: the bridge would send its credentials unencrypted; use https:// (plain http is accepted on loopback only, for the simulators)",
            "DIR/bridge.toml:38:12: cron line `0 0 30 2 *` never fires (no such date); check the day of month against the month",
            "DIR/bridge.toml:39:9: since 2999-01-01T00:00:00+00:00 is in the future; the first run would find nothing before then: give the earliest time to sync from, in the past",
        ]
    );
    // The same shapes, well written, pass; so does plain http on loopback.
    let good = format!(
        "[http]\nca_bundle = \"ca.pem\"\nmax_body = \"512KiB\"\ntimeout = \"10m\"\n\n{}\n{}\n{}",
        SOURCE.replace(
            "00000000-0000-0000-0000-000000000000",
            "contoso.onmicrosoft.com"
        ),
        TICKETS.replace("https://acme.atlassian.net", "http://[::1]:8080"),
        SYNC.replace("*/5 * * * *", "0 0 29 2 *"),
    );
    let config = parse(&dir.path().join("bridge.toml"), &good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.http.max_body, 512 * 1024);
    for url in ["http://localhost:1/x", "http://127.9.0.1", "http://[::1]/"] {
        assert!(
            is_loopback_authority(url.trim_start_matches("http://")),
            "{url}"
        );
    }
    for url in [
        "http://localhost.evil.example",
        "http://10.0.0.1:80",
        "http://127.0.0.1.nip.io",
    ] {
        assert!(
            !is_loopback_authority(url.trim_start_matches("http://")),
            "{url}"
        );
    }
    assert!(is_api_version("2025-09-01") && is_api_version("2024-01-01-preview"));
    assert!(!is_api_version("2025-13-01") && !is_api_version("2025-9-1"));
}

/// The config parts the bad-input table builds on.
const SOURCE: &str = "[[source]]\nname = \"defender\"\nkind = \"graph\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\n";
const TICKETS: &str = "[[ticket_system]]\nname = \"jira\"\nkind = \"jira\"\nbase_url = \"https://acme.atlassian.net\"\nemail = \"b@acme.example\"\napi_token = { env = \"T\" }\nproject_key = \"SEC\"\nmapping = \"mappings/jira.toml\"\n";
const SYNC: &str = "[[sync]]\nsource = \"defender\"\ntickets = \"jira\"\nschedule = \"*/5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\"\n";

/// The diagnostics for `text` as `file:line:column: message` lines, with the
/// temporary directory written as `DIR`.
fn errors(text: &str, files: &[(&str, &str)]) -> Vec<String> {
    let dir = workspace();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let path = dir.path().join("bridge.toml");
    let err = parse(&path, text).expect_err("the config should be refused");
    let prefix = format!("{}/", dir.path().display());
    err.diagnostics
        .iter()
        .map(|d| d.to_string().replace(&prefix, "DIR/"))
        .collect()
}

#[test]
fn the_valid_parts_are_valid() {
    let dir = workspace();
    parse(
        &dir.path().join("bridge.toml"),
        &format!("{SOURCE}\n{TICKETS}\n{SYNC}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A config text, extra files to write beside it, and the diagnostics expected.
type Case = (String, Vec<(&'static str, String)>, Vec<&'static str>);

#[test]
fn bad_inputs_name_file_line_and_column() {
    let graph_mapping_for = |tickets: &str| {
        format!(
            "version = 1\nsource = \"graph\"\ntickets = \"{tickets}\"\n[[field]]\ntemplate = \"{{incident.title}}\"\nticket = \"summary\"\n"
        )
    };
    let cases: Vec<Case> = vec![
        // 1. an unknown key
        (
            format!("{SOURCE}timeout = 3\n\n{TICKETS}\n{SYNC}"),
            vec![],
            vec!["DIR/bridge.toml:7:1: unknown key `timeout`, expected one of `name`, `kind`, `auth`, `tenant_id`, `client_id`, `client_secret`, `certificate`, `certificate_password`, `resource_id`, `token_file`, `authority_host`, `base_url`, `scope`, `subscription_id`, `resource_group`, `workspace_name`, `api_version`, `rate_limit`, `burst`"],
        ),
        // 2. a bad kind
        (
            format!("{}\n{TICKETS}\n{SYNC}", SOURCE.replace("\"graph\"", "\"defender\"")),
            vec![],
            vec!["DIR/bridge.toml:3:8: unknown source kind `defender`; write \"graph\" or \"sentinel\""],
        ),
        // 3. a secret written into the file
        (
            format!("{}\n{TICKETS}\n{SYNC}", SOURCE.replace("{ env = \"S\" }", "\"hunter2\"")),
            vec![],
            vec!["DIR/bridge.toml:6:17: put secrets in an environment variable or a file: client_secret = { env = \"...\" }"],
        ),
        // 4. a bad cron line
        (
            format!("{SOURCE}\n{TICKETS}\n{}", SYNC.replace("*/5 * * * *", "every 5 minutes")),
            vec![],
            vec!["DIR/bridge.toml:20:12: cron line `every 5 minutes` has 3 fields; write 5 (min hour day month weekday) or 6 (with seconds first)"],
        ),
        // 5. a sync naming a source that does not exist
        (
            format!("{SOURCE}\n{TICKETS}\n{}", SYNC.replace("\"defender\"", "\"defendr\"")),
            vec![],
            vec!["DIR/bridge.toml:18:10: there is no [[source]] named `defendr`; the names are: defender"],
        ),
        // 6. duplicate names, duplicate pairs
        (
            format!("{SOURCE}\n{SOURCE}\n{TICKETS}\n{SYNC}\n{SYNC}"),
            vec![],
            vec![
                "DIR/bridge.toml:9:8: the [[source]] name `defender` is already used on line 1; give each [[source]] its own name",
                "DIR/bridge.toml:30:1: the pair defender -> jira is already synced by the [[sync]] on line 24; keep one",
            ],
        ),
        // 7. a bad timeout, a bad listen address, an unknown section
        (
            format!("[http]\ntimeout = \"30 seconds\"\n[server]\nlisten = \"localhost:9464\"\n\n{SOURCE}\n{TICKETS}\n{SYNC}"),
            vec![],
            vec![
                "DIR/bridge.toml:2:11: timeout `30 seconds` is not a duration; write a number and a unit: \"500ms\", \"30s\", \"2m\" or \"1h\"",
                "DIR/bridge.toml:4:10: listen `localhost:9464` is not an address and port; write an IP address and a port, e.g. \"127.0.0.1:9464\" (port 0 picks a free one)",
            ],
        ),
        // 8. an http authority host, a URL with credentials
        (
            format!("{}authority_host = \"http://127.0.0.1:8443\"\nbase_url = \"https://u:p@graph.example\"\n\n{TICKETS}\n{SYNC}", SOURCE),
            vec![],
            vec![
                "DIR/bridge.toml:7:18: authority_host must be an https:// URL (azure_identity refuses http); to test against a local token service, serve it over TLS and trust its CA with [http] ca_bundle",
                "DIR/bridge.toml:8:12: base_url must not carry a user name or password (credentials are not kept in the config file); remove them",
            ],
        ),
        // 9. a sentinel source without its workspace; a sentinel key on graph
        (
            format!("{}\n{}resource_group = \"rg\"\n\n{TICKETS}\n{SYNC}", SOURCE.replace("\"graph\"", "\"sentinel\""), SOURCE.replace("defender", "g")),
            vec![],
            vec![
                "DIR/bridge.toml:1:1: add subscription_id = \"<Azure subscription id>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                "DIR/bridge.toml:1:1: add resource_group = \"<resource group>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                "DIR/bridge.toml:1:1: add workspace_name = \"<Log Analytics workspace name>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                "DIR/bridge.toml:14:1: `resource_group` is only valid for kind = \"sentinel\"; remove it",
                "DIR/bridge.toml:27:11: ticket system `jira` maps with DIR/mappings/jira.toml, written for source = \"graph\", but source `defender` is kind = \"sentinel\"; pair it with a [[ticket_system]] whose mapping has source = \"sentinel\"",
            ],
        ),
        // 10. keys of another ticket kind; a missing mapping file
        (
            format!("{SOURCE}\n{}username = \"bridge\"\n\n{SYNC}", TICKETS.replace("mappings/jira.toml", "mappings/nope.toml")),
            vec![],
            vec![
                "DIR/bridge.toml:16:1: `username` is only valid for kind = \"servicenow\" or \"generic\"; remove it",
                "DIR/mappings/nope.toml: cannot read the mapping file (No such file or directory (os error 2)); check the path",
            ],
        ),
        // 11. a mapping for another ticket kind; a mapping for another source kind
        (
            format!("{SOURCE}\n{}\n{}\n{SYNC}", TICKETS.replace("mappings/jira.toml", "snow.toml"), TICKETS.replace("\"jira\"\nkind", "\"jira2\"\nkind").replace("mappings/jira.toml", "mappings/sentinel-jira.toml")) + &SYNC.replace("\"jira\"", "\"jira2\""),
            vec![("snow.toml", graph_mapping_for("servicenow"))],
            vec![
                "DIR/bridge.toml:15:11: DIR/snow.toml is written for tickets = \"servicenow\", but this ticket system is kind = \"jira\"; use a mapping written for jira",
                "DIR/bridge.toml:33:11: ticket system `jira2` maps with DIR/mappings/sentinel-jira.toml, written for source = \"sentinel\", but source `defender` is kind = \"graph\"; pair it with a [[ticket_system]] whose mapping has source = \"graph\"",
            ],
        ),
        // 12. bad secrets, a bad name, conflict and since values
        (
            format!("{}\n{}\n{}", SOURCE.replace("{ env = \"S\" }", "{ env = \"S\", file = \"f\" }").replace("\"defender\"", "\"Defender\""), TICKETS.replace("{ env = \"T\" }", "{ vault = \"x\" }"), SYNC.replace("since = \"2026-11-01T00:00:00Z\"", "since = \"2026-11-01\"\nconflict = \"incident_wins\"")),
            vec![],
            vec![
                "DIR/bridge.toml:2:8: invalid name `Defender`; use lowercase letters, digits, `-` and `_`, starting with a letter or digit (names end up in Jira labels and correlation ids)",
                "DIR/bridge.toml:6:17: give client_secret one of `env`, `file` or `key_vault`, not several",
                "DIR/bridge.toml:13:13: unknown key `vault` in api_token; write api_token = { env = \"VARIABLE\" }, api_token = { file = \"/path/to/secret\" } or api_token = { key_vault = \"https://NAME.vault.azure.net/secrets/NAME\" }",
                "DIR/bridge.toml:18:10: there is no [[source]] named `defender`",
                "DIR/bridge.toml:21:9: since must be an RFC 3339 timestamp with a time zone, e.g. \"2026-11-01T00:00:00Z\"",
                "DIR/bridge.toml:22:12: unknown conflict policy `incident_wins`; write \"source_wins\", \"ticket_wins\" or \"newest_wins\"",
            ],
        ),
        // 13. no [[sync]] at all; missing keys reported at the table header
        (
            format!("{SOURCE}\n[[ticket_system]]\nname = \"jira\"\nkind = \"jira\"\n"),
            vec![],
            vec![
                "DIR/bridge.toml: add a [[sync]] table (source = \"...\", tickets = \"...\", schedule, since): without one the bridge has nothing to do",
                "DIR/bridge.toml:8:1: add base_url = \"https://...\" (the ticket system's address)",
                "DIR/bridge.toml:8:1: add email = \"bridge@example.com\" (the Jira account of the bridge)",
                "DIR/bridge.toml:8:1: add api_token = { env = \"...\" } (an Atlassian API token)",
                "DIR/bridge.toml:8:1: add project_key = \"SEC\" (the Jira project issues are created in)",
                "DIR/bridge.toml:8:1: add mapping = \"mappings/<kind>.toml\" (the field mapping for this ticket system; see mappings/README.md)",
            ],
        ),
        // 14. a TOML syntax error
        (
            format!("{SOURCE}tenant_id = \"x\"\n"),
            vec![],
            vec!["DIR/bridge.toml:7:1: duplicate key"],
        ),
        // 15. a single table where an array of tables is meant
        (
            format!("{SOURCE}\n{TICKETS}\n[sync]\nsource = \"defender\"\n"),
            vec![],
            vec!["DIR/bridge.toml:17:1: write [[sync]] with double brackets: a config can have several"],
        ),
        // 16. mapping problems come with the mapping file's own positions
        (
            format!("{SOURCE}\n{TICKETS}\n{SYNC}"),
            vec![("mappings/jira.toml", "version = 2\nsource = \"graph\"\ntickets = \"jira\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n".to_string())],
            vec!["DIR/mappings/jira.toml:1:11: unsupported mapping version 2; this bridge reads version = 1"],
        ),
    ];
    for (i, (text, files, expected)) in cases.iter().enumerate() {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
        let got = errors(text, &files);
        let expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
        assert_eq!(got, expected, "case {}:\n{text}", i + 1);
    }
}

#[test]
fn rate_limits_are_read_and_checked() {
    let dir = workspace();
    let text = format!(
        "{}rate_limit = \"1000/s\"\n\n{}rate_limit = \"600/min\"\nburst = 20\n\n{SYNC}",
        SOURCE, TICKETS
    );
    let config = parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let source = config.source("defender").unwrap();
    assert_eq!(
        source.rate_limit,
        Some(RateLimitConfig {
            requests: 1000,
            per: Duration::from_secs(1),
            burst: None
        })
    );
    assert_eq!(source.rate_limit.unwrap().burst_or_default(), 1000);
    let jira = config.ticket_system("jira").unwrap().rate_limit.unwrap();
    assert_eq!(jira.per_second(), 10.0);
    assert_eq!(jira.burst, Some(20));
    assert!(
        parse(
            &dir.path().join("bridge.toml"),
            &format!("{SOURCE}\n{TICKETS}\n{SYNC}")
        )
        .unwrap()
        .ticket_system("jira")
        .unwrap()
        .rate_limit
        .is_none(),
        "no rate_limit: the kind's default"
    );

    let bad = format!(
        "{}rate_limit = \"10 per second\"\n\n{}rate_limit = \"0/s\"\n\n{}rate_limit = \"5/day\"\nburst = 0\n\n{}burst = 5\n\n{SYNC}",
        SOURCE,
        TICKETS,
        TICKETS.replace("\"jira\"\nkind", "\"jira2\"\nkind"),
        TICKETS.replace("\"jira\"\nkind", "\"jira3\"\nkind"),
    );
    assert_eq!(
        errors(&bad, &[]),
        vec![
            "DIR/bridge.toml:7:14: rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `10 per second` has no `/`",
            "DIR/bridge.toml:17:14: rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\", with at least 1 request; remove it for the kind's default",
            "DIR/bridge.toml:28:9: burst must be a whole number of requests, at least 1, e.g. burst = 20",
            "DIR/bridge.toml:38:1: burst needs a rate_limit beside it, e.g. rate_limit = \"10/s\"",
        ]
    );
    assert_eq!(
        parse_rate("5/day").unwrap_err(),
        "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `day` is not s, min or h"
    );
    assert_eq!(parse_rate("3600/h"), Ok((3600, Duration::from_secs(3600))));
    assert_eq!(
        parse_rate("ten/s").unwrap_err(),
        "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `ten` is not a whole number of requests"
    );
}

#[test]
fn durations_and_urls() {
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
    assert!(parse_size("lots").is_err() && parse_size("99999999999999GiB").is_err());
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("5 s").is_err());
    assert_eq!(
        check_url("https://a.example/x/", true),
        Ok("https://a.example/x".into())
    );
    assert!(check_url("http://a.example", true).is_err());
    assert!(check_url("https:///x", false).is_err());
    assert!(check_url("ftp://a.example", false).is_err());
}

#[test]
fn load_names_an_unreadable_file() {
    let err = load(Path::new("/nonexistent/bridge.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/bridge.toml: cannot read the config file (No such file or directory (os error 2)); check the path or pass --config"
    );
}

#[test]
fn check_secrets_names_what_is_missing_and_never_a_value() {
    let dir = workspace();
    std::fs::write(dir.path().join("arm"), "s3cret-value\n").unwrap();
    let text = format!(
        "{}\n{}\n{SYNC}",
        SOURCE.replace("{ env = \"S\" }", "{ file = \"arm\" }"),
        TICKETS.replace(
            "{ env = \"T\" }",
            "{ env = \"ITSM_BRIDGE_TEST_SURELY_UNSET\" }"
        ),
    );
    let config = parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let err = check_secrets(&config).unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.diagnostics.len(), 1, "{shown}");
    assert!(
        shown.ends_with("bridge.toml: [[ticket_system]] `jira` api_token: environment variable ITSM_BRIDGE_TEST_SURELY_UNSET is not set; set it in the bridge's environment"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"));
}

#[test]
fn the_ledger_table_is_read_with_its_defaults() {
    let dir = workspace();
    let path = dir.path().join("bridge.toml");
    let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}");
    let config = parse(&path, &base).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.ledger.signing_key.is_none() && config.ledger.checkpoint.is_none());
    assert_eq!(
        config.ledger.checkpoint_dir,
        dir.path().join("checkpoints/")
    );

    let text = format!(
        "{base}\n[ledger]\nsigning_key = {{ file = \"keys/ledger.key\" }}\ncheckpoint = \"0 * * * *\"\ncheckpoint_dir = \"/var/lib/itsm-bridge/anchors\"\n"
    );
    let config = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.ledger.signing_key,
        Some(SecretRef::File(dir.path().join("keys/ledger.key")))
    );
    assert_eq!(config.ledger.checkpoint.unwrap().as_str(), "0 * * * *");
    assert_eq!(
        config.ledger.checkpoint_dir,
        PathBuf::from("/var/lib/itsm-bridge/anchors")
    );
}

/// Bad `[ledger]` input, each with the exact diagnostic (candidates for the
/// bad-input table of `tests/it/bad_input.rs`).
#[test]
fn bad_ledger_input_names_file_line_and_column() {
    let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}\n[ledger]\n");
    // Line 24 is the first key of [ledger].
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{base}signing_key = \"-----BEGIN PRIVATE KEY-----\"\n"),
            "DIR/bridge.toml:24:15: put secrets in an environment variable or a file: signing_key = { env = \"...\" }",
        ),
        (
            format!("{base}signing_key = {{ path = \"k\" }}\n"),
            "DIR/bridge.toml:24:15: unknown key `path` in signing_key; write signing_key = { env = \"VARIABLE\" }, signing_key = { file = \"/path/to/secret\" } or signing_key = { key_vault = \"https://NAME.vault.azure.net/secrets/NAME\" }",
        ),
        (
            format!("{base}checkpoint = \"0 * * * *\"\n"),
            "DIR/bridge.toml:24:1: a checkpoint schedule needs a key to sign with: add signing_key = { file = \"/path/to/ledger.key\" } to [ledger] (make one with `itsm-bridge ledger keygen --out FILE`)",
        ),
        (
            format!("{base}signing_key = {{ file = \"k\" }}\ncheckpoint = \"hourly\"\n"),
            "DIR/bridge.toml:25:14: ",
        ),
        (
            format!("{base}checkpoint_dir = \"\"\n"),
            "DIR/bridge.toml:24:18: checkpoint_dir is empty; give a folder, e.g. \"checkpoints/\"",
        ),
        (
            format!("{base}anchor = \"x\"\n"),
            "DIR/bridge.toml:24:1: unknown key `anchor`, expected one of `signing_key`, `checkpoint`, `checkpoint_dir`",
        ),
    ];
    for (text, expected) in cases {
        let got = errors(&text, &[]);
        assert_eq!(got.len(), 1, "{text}\n{got:?}");
        assert!(
            got[0].starts_with(expected),
            "{text}\ngot:  {}\nwant: {expected}",
            got[0]
        );
    }
    let bad_cron = errors(
        &format!("{base}signing_key = {{ file = \"k\" }}\ncheckpoint = \"hourly\"\n"),
        &[],
    );
    assert!(
        bad_cron[0].ends_with("(checkpoint is a cron schedule)"),
        "{bad_cron:?}"
    );
}

#[test]
fn a_ledger_key_that_is_not_a_key_is_refused_without_being_shown() {
    let dir = workspace();
    std::fs::write(dir.path().join("ledger.key"), "not-a-key-s3cret\n").unwrap();
    let text = format!(
        "{SOURCE}\n{TICKETS}\n{SYNC}\n[ledger]\nsigning_key = {{ file = \"ledger.key\" }}\n"
    );
    let config = parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let err = check_secrets(&config).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("[ledger] signing_key is not an Ed25519 private key in PKCS#8 PEM"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");

    std::fs::remove_file(dir.path().join("ledger.key")).unwrap();
    let shown = check_secrets(&config).unwrap_err().to_string();
    assert!(
        shown.contains("[ledger] signing_key: cannot read secret file"),
        "{shown}"
    );
}

#[test]
fn a_postgres_store_is_a_url_with_a_password_reference_and_a_lease() {
    let dir = workspace();
    let path = dir.path().join("bridge.toml");
    let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}");
    let config = parse(&path, &base).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.store.postgres.is_none(), "SQLite by default");

    let text = format!(
        "[store]\nurl = \"postgres://bridge@db.internal:5432/itsm\"\npassword = {{ env = \"BRIDGE_PG_PASSWORD\" }}\nlease = \"30s\"\n{base}"
    );
    let config = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let pg = config.store.postgres.expect("a PostgreSQL store");
    assert_eq!(pg.url, "postgres://bridge@db.internal:5432/itsm");
    assert_eq!(
        pg.password,
        Some(SecretRef::Env("BRIDGE_PG_PASSWORD".into()))
    );
    assert_eq!(pg.lease, Duration::from_secs(30));
    let text = format!("[store]\nurl = \"postgresql://bridge@db/itsm\"\n{base}");
    let pg = parse(&path, &text).unwrap().store.postgres.unwrap();
    assert_eq!((pg.password, pg.lease), (None, Duration::from_secs(15)));
    assert_eq!(pg.ca_bundle, None, "the system's CAs");
}

#[test]
fn a_postgres_store_checks_its_certificate_against_its_ca_bundle_else_the_http_one() {
    let dir = workspace();
    std::fs::write(dir.path().join("db-ca.pem"), FAKE_CA).unwrap();
    std::fs::write(dir.path().join("ca.pem"), FAKE_CA).unwrap();
    let path = dir.path().join("bridge.toml");
    let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}");
    let url = "url = \"postgres://bridge@db.internal/itsm?sslmode=verify-full\"";
    let http = "[http]\nca_bundle = \"ca.pem\"\n";

    let text = format!("[store]\n{url}\nca_bundle = \"db-ca.pem\"\n{http}{base}");
    let pg = parse(&path, &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .store
        .postgres
        .unwrap();
    assert_eq!(pg.ca_bundle, Some(dir.path().join("db-ca.pem")));

    let text = format!("[store]\n{url}\n{http}{base}");
    let pg = parse(&path, &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .store
        .postgres
        .unwrap();
    assert_eq!(pg.ca_bundle, Some(dir.path().join("ca.pem")));
}

#[test]
fn a_bad_postgres_store_is_named_where_it_is_written() {
    let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}");
    let cases: Vec<(&str, &str)> = vec![
        (
            "[store]\nurl = \"mysql://bridge@db/itsm\"\n",
            "DIR/bridge.toml:2:7: store url must be a PostgreSQL URL, e.g. \"postgres://bridge@db.internal:5432/itsm\"",
        ),
        (
            "[store]\nurl = \"postgres://db/itsm?sslmode=verify\"\n",
            "DIR/bridge.toml:2:7: store url: [store] url has sslmode=verify; use disable, prefer, require, verify-ca or verify-full",
        ),
        (
            "[store]\nurl = \"postgres://db/itsm?sslmode=require\"\nca_bundle = \"ca.pem\"\n",
            "DIR/bridge.toml:2:7: store ca_bundle is used only to check the server's certificate; add sslmode=verify-full",
        ),
        (
            "[store]\nurl = \"postgres://db/itsm?sslmode=verify-ca\"\nca_bundle = \"missing.pem\"\n",
            "DIR/bridge.toml:3:13: store ca_bundle DIR/missing.pem: cannot read it",
        ),
        (
            "[store]\nca_bundle = \"ca.pem\"\n",
            "DIR/bridge.toml:2:13: store ca_bundle is for a PostgreSQL store",
        ),
        (
            "[store]\nurl = \"postgres://db/itsm\"\nlease = \"500ms\"\n",
            "DIR/bridge.toml:3:9: store lease must be at least 1s",
        ),
        (
            "[store]\npassword = { env = \"P\" }\n",
            "DIR/bridge.toml:2:12: store password is for a PostgreSQL store",
        ),
    ];
    for (store, expected) in cases {
        let found = errors(&format!("{store}{base}"), &[]);
        assert!(
            found.iter().any(|d| d.starts_with(expected)),
            "{store}: expected {expected:?}, got {found:?}"
        );
    }
}

mod identity;
