//! Bad input gets exit code 2 and a message naming file, line and column, and
//! nothing is written. The table in `every_bad_input_exits_2_naming_where_and_writes_nothing`
//! starts from a config and mappings that pass `check`, makes one mistake in them,
//! and runs the real binary (`check` and `run --once`) on the result; `‸` in a case
//! marks where the diagnostic must point. Hostile remote input (a next link to
//! another host) and a permissive umask are tried end to end at the bottom.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Env, bridge_in, stderr};

/// Where a case's diagnostic points.
const MARK: char = '‸';

/// A secret value written inline in some cases: it must never be echoed back.
const CANARY: &str = "hunter2-canary";

const JIRA_MAPPING: &str = include_str!("../../mappings/jira.toml");
const SERVICENOW_MAPPING: &str = include_str!("../../mappings/servicenow.toml");
const GENERIC_MAPPING: &str = include_str!("../../mappings/generic.toml");

/// Every table and pair kind, every secret in a file: `check` accepts it.
const CONFIG: &str = r#"[store]
path = "bridge.db"

[server]
listen = "127.0.0.1:9464"

[http]
timeout = "30s"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = { file = "secrets/graph" }
authority_host = "https://login.microsoftonline.com"
base_url = "https://graph.microsoft.com"

[[source]]
name = "sentinel-prod"
kind = "sentinel"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = { file = "secrets/arm" }
subscription_id = "33333333-3333-3333-3333-333333333333"
resource_group = "soc-rg"
workspace_name = "soc-ws"

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = { file = "secrets/jira" }
project_key = "SEC"
mapping = "jira.toml"

[[ticket_system]]
name = "snow"
kind = "servicenow"
base_url = "https://acme.service-now.com"
username = "itsm.bridge"
password = { file = "secrets/snow" }
mapping = "servicenow.toml"

[[ticket_system]]
name = "helpdesk"
kind = "generic"
base_url = "https://helpdesk.acme.example"
token = { file = "secrets/helpdesk" }
mapping = "generic.toml"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/5 * * * *"
conflict = "newest_wins"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "sentinel-prod"
tickets = "snow"
schedule = "0 */5 * * * *"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "sentinel-prod"
tickets = "helpdesk"
schedule = "*/1 * * * *"
since = 2026-11-01T00:00:00Z
"#;

/// The secret files the config names, with their values.
const SECRETS: [(&str, &str); 5] = [
    ("secrets/graph", "graph-secret-value"),
    ("secrets/arm", "arm-secret-value"),
    ("secrets/jira", "jira-secret-value"),
    ("secrets/snow", "snow-secret-value"),
    ("secrets/helpdesk", "helpdesk-secret-value"),
];

/// The good inputs, by path relative to the case's directory.
fn good_files() -> BTreeMap<&'static str, String> {
    let mut files = BTreeMap::from([
        ("bridge.toml", CONFIG.to_string()),
        ("jira.toml", JIRA_MAPPING.to_string()),
        ("servicenow.toml", SERVICENOW_MAPPING.to_string()),
        ("generic.toml", GENERIC_MAPPING.to_string()),
    ]);
    for (path, secret) in SECRETS {
        files.insert(path, format!("{secret}\n"));
    }
    files
}

/// One change to the good inputs.
enum Edit {
    /// In `file`, replace the one occurrence of the text with the replacement.
    Replace(&'static str, &'static str, &'static str),
    /// In `file`, cut everything from the text on and put the replacement there.
    CutFrom(&'static str, &'static str, &'static str),
    /// Write `file` with these contents.
    Write(&'static str, &'static str),
    /// Delete `file`.
    Remove(&'static str),
}

use Edit::{CutFrom, Remove, Replace, Write};

/// Where the diagnostic points.
enum At {
    /// At the `‸` in the edits.
    Mark,
    /// At a whole file: `file: message`, no line or column.
    File(&'static str),
}

struct Case {
    name: &'static str,
    edits: &'static [Edit],
    at: At,
    /// A fragment of the message (what is wrong, or what to do).
    says: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        // ---- bridge.toml: syntax and unknown keys at every level
        Case {
            name: "TOML syntax: an unterminated string",
            edits: &[Replace(
                "bridge.toml",
                "path = \"bridge.db\"",
                "path = \"bridge.db‸",
            )],
            at: At::Mark,
            says: "invalid basic string, expected `\"`",
        },
        Case {
            name: "TOML syntax: a table header without its bracket",
            edits: &[Replace("bridge.toml", "[http]", "[http‸")],
            at: At::Mark,
            says: "unclosed table, expected `]`",
        },
        Case {
            name: "unknown key in [store]",
            edits: &[Replace(
                "bridge.toml",
                "path = \"bridge.db\"\n",
                "path = \"bridge.db\"\n‸size = 3\n",
            )],
            at: At::Mark,
            says: "unknown key `size`",
        },
        Case {
            name: "unknown key in [server]",
            edits: &[Replace(
                "bridge.toml",
                "listen = \"127.0.0.1:9464\"\n",
                "listen = \"127.0.0.1:9464\"\n‸dashboard = true\n",
            )],
            at: At::Mark,
            says: "unknown key `dashboard`",
        },
        Case {
            name: "unknown key in [http]",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\n‸retries = 3\n",
            )],
            at: At::Mark,
            says: "unknown key `retries`",
        },
        Case {
            name: "unknown key in [[source]]",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://graph.microsoft.com\"\n",
                "base_url = \"https://graph.microsoft.com\"\n‸region = \"eu\"\n",
            )],
            at: At::Mark,
            says: "unknown key `region`",
        },
        Case {
            name: "unknown key in [[ticket_system]]",
            edits: &[Replace(
                "bridge.toml",
                "project_key = \"SEC\"\n",
                "project_key = \"SEC\"\n‸projectKey = \"SEC\"\n",
            )],
            at: At::Mark,
            says: "unknown key `projectKey`",
        },
        Case {
            name: "unknown key in [[sync]]",
            edits: &[Replace(
                "bridge.toml",
                "conflict = \"newest_wins\"\n",
                "conflict = \"newest_wins\"\n‸colour = \"blue\"\n",
            )],
            at: At::Mark,
            says: "unknown key `colour`",
        },
        Case {
            name: "unknown key in a secret reference",
            edits: &[Replace(
                "bridge.toml",
                "password = { file = \"secrets/snow\" }",
                "password = ‸{ path = \"secrets/snow\" }",
            )],
            at: At::Mark,
            says: "unknown key `path` in password",
        },
        // ---- bridge.toml: values
        Case {
            name: "bad source kind",
            edits: &[Replace(
                "bridge.toml",
                "kind = \"graph\"",
                "kind = ‸\"defender\"",
            )],
            at: At::Mark,
            says: "unknown source kind `defender`; write \"graph\" or \"sentinel\"",
        },
        Case {
            name: "bad ticket system kind",
            edits: &[Replace(
                "bridge.toml",
                "kind = \"servicenow\"",
                "kind = ‸\"snow\"",
            )],
            at: At::Mark,
            says: "unknown ticket system kind `snow`",
        },
        Case {
            name: "invalid name",
            edits: &[Replace(
                "bridge.toml",
                "name = \"defender\"",
                "name = ‸\"Defender XDR\"",
            )],
            at: At::Mark,
            says: "invalid name `Defender XDR`",
        },
        Case {
            name: "a secret written as a plain string",
            edits: &[Replace(
                "bridge.toml",
                "client_secret = { file = \"secrets/graph\" }",
                "client_secret = ‸\"hunter2-canary\"",
            )],
            at: At::Mark,
            says: "put secrets in an environment variable or a file",
        },
        Case {
            name: "an unknown auth choice",
            edits: &[Replace(
                "bridge.toml",
                "client_secret = { file = \"secrets/graph\" }",
                "auth = ‸\"certificate\"\nclient_secret = { file = \"secrets/graph\" }",
            )],
            at: At::Mark,
            says: "unknown auth `certificate`; write \"client_secret\", \"client_certificate\"",
        },
        Case {
            name: "a key of another auth choice",
            edits: &[Replace(
                "bridge.toml",
                "client_secret = { file = \"secrets/graph\" }",
                "auth = \"azure_cli\"\n‸client_secret = { file = \"secrets/graph\" }",
            )],
            at: At::Mark,
            says: "`client_secret` is not used with auth = \"azure_cli\"; remove it",
        },
        Case {
            name: "a certificate file that is neither PEM nor PKCS#12",
            edits: &[
                Replace(
                    "bridge.toml",
                    "client_secret = { file = \"secrets/graph\" }",
                    "auth = \"client_certificate\"\ncertificate = ‸\"app.pfx\"\ncertificate_password = { file = \"secrets/graph\" }",
                ),
                Write("app.pfx", "not PEM"),
            ],
            at: At::Mark,
            says: "app.pfx is neither PEM nor PKCS#12",
        },
        Case {
            name: "a Key Vault secret without an identity to fetch it",
            edits: &[Replace(
                "bridge.toml",
                "api_token = { file = \"secrets/jira\" }",
                "api_token = ‸{ key_vault = \"https://contoso-kv.vault.azure.net/secrets/jira-token\" }",
            )],
            at: At::Mark,
            says: "a Key Vault secret needs an identity to fetch it with: add [azure]",
        },
        Case {
            name: "a Key Vault reference that is not a vault's",
            edits: &[Replace(
                "bridge.toml",
                "api_token = { file = \"secrets/jira\" }",
                "api_token = ‸{ key_vault = \"https://contoso-kv.example.com/secrets/jira-token\" }",
            )],
            at: At::Mark,
            says: "is not a Key Vault host",
        },
        Case {
            name: "a base URL carrying a password",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://acme.atlassian.net\"",
                "base_url = ‸\"https://bridge:hunter2-canary@acme.atlassian.net\"",
            )],
            at: At::Mark,
            says: "must not carry a user name or password",
        },
        Case {
            name: "base_url not a URL",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://acme.atlassian.net\"",
                "base_url = ‸\"acme.atlassian.net\"",
            )],
            at: At::Mark,
            says: "base_url must be an http:// or https:// URL",
        },
        Case {
            name: "authority_host over plain http",
            edits: &[Replace(
                "bridge.toml",
                "authority_host = \"https://login.microsoftonline.com\"",
                "authority_host = ‸\"http://login.microsoftonline.com\"",
            )],
            at: At::Mark,
            says: "authority_host must be an https:// URL",
        },
        Case {
            name: "sentinel source without workspace_name",
            edits: &[
                Replace(
                    "bridge.toml",
                    "[[source]]\nname = \"sentinel-prod\"",
                    "‸[[source]]\nname = \"sentinel-prod\"",
                ),
                Replace("bridge.toml", "workspace_name = \"soc-ws\"\n", ""),
            ],
            at: At::Mark,
            says: "add workspace_name = ",
        },
        Case {
            name: "a sentinel key on a graph source",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://graph.microsoft.com\"\n",
                "base_url = \"https://graph.microsoft.com\"\n‸resource_group = \"soc-rg\"\n",
            )],
            at: At::Mark,
            says: "`resource_group` is only valid for kind = \"sentinel\"",
        },
        Case {
            name: "bad timeout",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"",
                "timeout = ‸\"30 seconds\"",
            )],
            at: At::Mark,
            says: "timeout `30 seconds` is not a duration",
        },
        Case {
            name: "bad listen address",
            edits: &[Replace(
                "bridge.toml",
                "listen = \"127.0.0.1:9464\"",
                "listen = ‸\"localhost\"",
            )],
            at: At::Mark,
            says: "listen `localhost` is not an address and port",
        },
        Case {
            name: "cron in words",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/5 * * * *\"",
                "schedule = ‸\"every minute\"",
            )],
            at: At::Mark,
            says: "cron line `every minute` has 2 fields",
        },
        Case {
            name: "search lag in words",
            edits: &[Replace(
                "bridge.toml",
                "mapping = \"jira.toml\"",
                "mapping = \"jira.toml\"\nsearch_lag = ‸\"half a minute\"",
            )],
            at: At::Mark,
            says: "search_lag `half a minute` is not a duration",
        },
        Case {
            name: "sweep schedule in words",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/5 * * * *\"",
                "schedule = \"*/5 * * * *\"\nsweep = ‸\"hourly\"",
            )],
            at: At::Mark,
            says: "(sweep is a cron schedule, or \"off\")",
        },
        Case {
            name: "cron with eight fields",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/5 * * * *\"",
                "schedule = ‸\"0 0 */5 * * * * *\"",
            )],
            at: At::Mark,
            says: "has 8 fields",
        },
        Case {
            name: "cron with a minute out of range",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"0 */5 * * * *\"",
                "schedule = ‸\"0 61 * * * *\"",
            )],
            at: At::Mark,
            says: "invalid cron line `0 61 * * * *`",
        },
        Case {
            name: "cron with an unknown weekday",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/1 * * * *\"",
                "schedule = ‸\"0 9 * * funday\"",
            )],
            at: At::Mark,
            says: "invalid cron line `0 9 * * funday`",
        },
        Case {
            name: "cron left empty",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/5 * * * *\"",
                "schedule = ‸\"\"",
            )],
            at: At::Mark,
            says: "has 0 fields",
        },
        Case {
            name: "bad conflict policy",
            edits: &[Replace(
                "bridge.toml",
                "conflict = \"newest_wins\"",
                "conflict = ‸\"source-wins\"",
            )],
            at: At::Mark,
            says: "unknown conflict policy `source-wins`",
        },
        Case {
            name: "since in words",
            edits: &[Replace(
                "bridge.toml",
                "tickets = \"snow\"\nschedule = \"0 */5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\"",
                "tickets = \"snow\"\nschedule = \"0 */5 * * * *\"\nsince = ‸\"yesterday\"",
            )],
            at: At::Mark,
            says: "since must be an RFC 3339 timestamp with a time zone",
        },
        Case {
            name: "since without a time zone",
            edits: &[Replace(
                "bridge.toml",
                "since = 2026-11-01T00:00:00Z",
                "since = ‸2026-11-01T00:00:00",
            )],
            at: At::Mark,
            says: "since must be an RFC 3339 timestamp with a time zone",
        },
        // ---- bridge.toml: references between tables
        Case {
            name: "sync names an unknown source",
            edits: &[Replace(
                "bridge.toml",
                "source = \"defender\"",
                "source = ‸\"defendr\"",
            )],
            at: At::Mark,
            says: "there is no [[source]] named `defendr`; the names are: defender, sentinel-prod",
        },
        Case {
            name: "sync names an unknown ticket system",
            edits: &[Replace(
                "bridge.toml",
                "tickets = \"snow\"",
                "tickets = ‸\"servicenow\"",
            )],
            at: At::Mark,
            says: "there is no [[ticket_system]] named `servicenow`",
        },
        Case {
            name: "two sources with one name",
            edits: &[Replace(
                "bridge.toml",
                "name = \"sentinel-prod\"",
                "name = ‸\"defender\"",
            )],
            at: At::Mark,
            says: "the [[source]] name `defender` is already used on line 10",
        },
        Case {
            name: "the same pair synced twice",
            edits: &[Replace(
                "bridge.toml",
                "[[sync]]\nsource = \"sentinel-prod\"\ntickets = \"helpdesk\"",
                "‸[[sync]]\nsource = \"sentinel-prod\"\ntickets = \"snow\"",
            )],
            at: At::Mark,
            says: "the pair sentinel-prod -> snow is already synced by the [[sync]] on line",
        },
        Case {
            name: "a pair whose mapping reads the other source's vocabulary",
            edits: &[Replace(
                "bridge.toml",
                "tickets = \"jira\"",
                "tickets = ‸\"snow\"",
            )],
            at: At::Mark,
            says: "written for source = \"sentinel\", but source `defender` is kind = \"graph\"",
        },
        Case {
            name: "no [[sync]] at all",
            edits: &[CutFrom(
                "bridge.toml",
                "[[sync]]\nsource = \"defender\"",
                "",
            )],
            at: At::File("bridge.toml"),
            says: "add a [[sync]] table",
        },
        Case {
            name: "the config file is missing",
            edits: &[Remove("bridge.toml")],
            at: At::File("bridge.toml"),
            says: "cannot read the config file",
        },
        // ---- secrets (read by `check` and `run` before anything else happens)
        Case {
            name: "secret env var not set",
            edits: &[Replace(
                "bridge.toml",
                "api_token = { file = \"secrets/jira\" }",
                "api_token = { env = \"ITSM_BRIDGE_TEST_UNSET_TOKEN\" }",
            )],
            at: At::File("bridge.toml"),
            says: "[[ticket_system]] `jira` api_token: environment variable ITSM_BRIDGE_TEST_UNSET_TOKEN is not set; set it",
        },
        Case {
            name: "secret file missing",
            edits: &[Remove("secrets/snow")],
            at: At::File("bridge.toml"),
            says: "[[ticket_system]] `snow` password: cannot read secret file",
        },
        Case {
            name: "secret file empty",
            edits: &[Write("secrets/helpdesk", " \n")],
            at: At::File("bridge.toml"),
            says: "secrets/helpdesk is empty; create the file or change the path",
        },
        // ---- mapping files
        Case {
            name: "mapping file missing",
            edits: &[Replace(
                "bridge.toml",
                "mapping = \"jira.toml\"",
                "mapping = \"jira-mapping.toml\"",
            )],
            at: At::File("jira-mapping.toml"),
            says: "cannot read the mapping file",
        },
        Case {
            name: "mapping written for another ticket kind",
            edits: &[Replace(
                "bridge.toml",
                "mapping = \"jira.toml\"",
                "mapping = ‸\"servicenow.toml\"",
            )],
            at: At::Mark,
            says: "is written for tickets = \"servicenow\", but this ticket system is kind = \"jira\"",
        },
        Case {
            name: "mapping TOML syntax error",
            edits: &[Replace("servicenow.toml", "[create]", "[create‸")],
            at: At::Mark,
            says: "unclosed table, expected `]`",
        },
        Case {
            name: "mapping version 2",
            edits: &[Replace("jira.toml", "version = 1", "version = ‸2")],
            at: At::Mark,
            says: "unsupported mapping version 2; this bridge reads version = 1",
        },
        Case {
            name: "unknown key in a mapping [[field]]",
            edits: &[Replace(
                "jira.toml",
                "name = \"assignee\"\n",
                "name = \"assignee\"\n‸direction = \"out\"\n",
            )],
            at: At::Mark,
            says: "unknown key `direction`",
        },
        Case {
            name: "mapping names an unknown attribute",
            edits: &[Replace(
                "jira.toml",
                "incident = \"severity\"",
                "incident = ‸\"sevrity\"",
            )],
            at: At::Mark,
            says: "unknown Graph attribute `sevrity`",
        },
        Case {
            name: "mapping writes a read-only attribute",
            edits: &[Replace(
                "jira.toml",
                "ticket = \"priority\"\nflow = \"to_ticket\"",
                "ticket = \"priority\"\nflow = ‸\"both\"",
            )],
            at: At::Mark,
            says: "the Graph attribute `severity` is read-only, so it cannot flow to the incident",
        },
        Case {
            name: "value map missing a closed-set value",
            edits: &[
                Replace("jira.toml", "awaitingAction = \"indeterminate\"\n", ""),
                Replace(
                    "jira.toml",
                    "[field.to_ticket]\nactive",
                    "‸[field.to_ticket]\nactive",
                ),
            ],
            at: At::Mark,
            says: "to_ticket does not cover the incident status values: awaitingAction",
        },
        Case {
            name: "mapping produces `redirected`",
            edits: &[Replace(
                "jira.toml",
                "new = \"active\"",
                "new = ‸\"redirected\"",
            )],
            at: At::Mark,
            says: "`redirected` cannot be written to the Graph status",
        },
        Case {
            name: "template with an unknown variable",
            edits: &[Replace(
                "jira.toml",
                "template = \"[Defender #{incident.display_id}] {incident.title}\"",
                "template = \"[Defender #{incident.display_id}] ‸{incident.sev}\"",
            )],
            at: At::Mark,
            says: "unknown variable `{incident.sev}`",
        },
        Case {
            name: "ServiceNow mapping that resolves without close_notes",
            edits: &[
                Replace(
                    "servicenow.toml",
                    "[[field]]\nname = \"close_notes\"\ntemplate = \"\"\"\nMicrosoft Sentinel classification: {incident.classification} {incident.classification_reason}\n{incident.classification_comment}\"\"\"\nticket = \"close_notes\"\n",
                    "",
                ),
                Replace(
                    "servicenow.toml",
                    "ticket = \"status\"",
                    "ticket = ‸\"status\"",
                ),
            ],
            at: At::Mark,
            says: "no field writes `close_notes` to the ticket",
        },
        Case {
            name: "generic mapping without [api]",
            edits: &[
                CutFrom("generic.toml", "[api]\n", ""),
                Replace(
                    "generic.toml",
                    "tickets = \"generic\"",
                    "tickets = ‸\"generic\"",
                ),
            ],
            at: At::Mark,
            says: "add an [api] table",
        },
        Case {
            name: "generic [api] pointer without its slash",
            edits: &[Replace("generic.toml", "id = \"/id\"", "id = \"‸id\"")],
            at: At::Mark,
            says: "a JSON pointer starts with `/` (RFC 6901)",
        },
        Case {
            name: "generic [api] URL template with an unknown placeholder",
            edits: &[Replace(
                "generic.toml",
                "get = { method = \"GET\", path = \"/api/tickets/{key}\" }",
                "get = { method = \"GET\", path = \"/api/tickets/‸{ticket}\" }",
            )],
            at: At::Mark,
            says: "unknown placeholder `{ticket}`",
        },
        // ---- issue 17: the [api] keys that describe real helpdesks
        Case {
            name: "generic [api] record pointer without its slash",
            edits: &[Replace(
                "generic.toml",
                "get = { method = \"GET\", path = \"/api/tickets/{key}\" }",
                "get = { method = \"GET\", path = \"/api/tickets/{key}\", record = \"‸ticket\" }",
            )],
            at: At::Mark,
            says: "a JSON pointer starts with `/` (RFC 6901)",
        },
        Case {
            name: "generic [api] list envelope on a single-record endpoint",
            edits: &[Replace(
                "generic.toml",
                "get = { method = \"GET\", path = \"/api/tickets/{key}\" }",
                "get = { method = \"GET\", path = \"/api/tickets/{key}\", items = ‸\"/tickets\" }",
            )],
            at: At::Mark,
            says: "`items` does not belong in `get`",
        },
        Case {
            name: "generic [api] list with both a more and an end flag",
            edits: &[Replace(
                "generic.toml",
                "search = { method = \"GET\", path = \"/api/tickets?updated_since={since}&limit=100\" }",
                "search = { method = \"GET\", path = \"/api/tickets?updated_since={since}&limit=100\", more = \"/has_more\", end = ‸\"/end\" }",
            )],
            at: At::Mark,
            says: "not both",
        },
        Case {
            name: "generic [api] unknown update mode",
            edits: &[Replace(
                "generic.toml",
                "update = { method = \"PATCH\", path = \"/api/tickets/{key}\" }",
                "update = { method = \"PATCH\", path = \"/api/tickets/{key}\", mode = ‸\"whole\" }",
            )],
            at: At::Mark,
            says: "is not an update mode",
        },
        Case {
            name: "generic [api.types] unknown value type",
            edits: &[Replace(
                "generic.toml",
                "[api.fields]\n",
                "[api.types]\npriority = ‸\"int\"\n\n[api.fields]\n",
            )],
            at: At::Mark,
            says: "is not a value type",
        },
        Case {
            name: "generic [api.types] integer priority fed words by its value map",
            edits: &[
                Replace(
                    "generic.toml",
                    "[api.fields]\n",
                    "[api.types]\npriority = \"integer\"\n\n[api.fields]\n",
                ),
                Replace("generic.toml", "High = \"high\"", "High = ‸\"high\""),
            ],
            at: At::Mark,
            says: "\"high\" is not an integer value",
        },
        Case {
            name: "generic [api] fixed create field holding a list",
            edits: &[Replace(
                "generic.toml",
                "create = { method = \"POST\", path = \"/api/tickets\" }",
                "create = { method = \"POST\", path = \"/api/tickets\", fields = { \"/source\" = ‸[2] } }",
            )],
            at: At::Mark,
            says: "a fixed field is a string, a number or a boolean",
        },
        Case {
            name: "generic [api] fixed create field with an unknown placeholder",
            edits: &[Replace(
                "generic.toml",
                "create = { method = \"POST\", path = \"/api/tickets\" }",
                "create = { method = \"POST\", path = \"/api/tickets\", fields = { \"/requester\" = \"soc ‸{team}\" } }",
            )],
            at: At::Mark,
            says: "unknown placeholder `{team}`",
        },
        Case {
            name: "generic [api] unknown since format",
            edits: &[Replace(
                "generic.toml",
                "items = \"/items\"",
                "items = \"/items\"\nsince_format = ‸\"epoch\"",
            )],
            at: At::Mark,
            says: "is not a time format",
        },
        Case {
            name: "generic [api] since zone without a pattern",
            edits: &[Replace(
                "generic.toml",
                "items = \"/items\"",
                "items = \"/items\"\nsince_zone = ‸\"+01:00\"",
            )],
            at: At::Mark,
            says: "`since_zone` goes with a strftime `since_format`",
        },
        Case {
            name: "generic [api] error details pointer without its slash",
            edits: &[Replace(
                "generic.toml",
                "items = \"/items\"",
                "items = \"/items\"\nerror_details = \"‸errors\"",
            )],
            at: At::Mark,
            says: "a JSON pointer starts with `/` (RFC 6901)",
        },
        // ---- issue 10: what `run` would refuse, and careless values
        Case {
            name: "plain http to Jira, which is sent credentials",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://acme.atlassian.net\"",
                "base_url = ‸\"http://acme.atlassian.net\"",
            )],
            at: At::Mark,
            says: "base_url `http://acme.atlassian.net` is plain http: the bridge would send its credentials unencrypted; use https://",
        },
        Case {
            name: "plain http to ServiceNow",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://acme.service-now.com\"",
                "base_url = ‸\"http://acme.service-now.com\"",
            )],
            at: At::Mark,
            says: "is plain http: the bridge would send its credentials unencrypted",
        },
        Case {
            name: "plain http to the generic system, on a port",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://helpdesk.acme.example\"",
                "base_url = ‸\"http://helpdesk.acme.example:8080\"",
            )],
            at: At::Mark,
            says: "is plain http: the bridge would send its credentials unencrypted",
        },
        Case {
            name: "plain http to Graph, which is sent bearer tokens",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://graph.microsoft.com\"",
                "base_url = ‸\"http://graph.microsoft.com\"",
            )],
            at: At::Mark,
            says: "is plain http: the bridge would send its bearer tokens unencrypted",
        },
        Case {
            name: "plain http to ARM on a private, not loopback, address",
            edits: &[Replace(
                "bridge.toml",
                "workspace_name = \"soc-ws\"\n",
                "workspace_name = \"soc-ws\"\nbase_url = ‸\"http://10.0.0.5:8080\"\n",
            )],
            at: At::Mark,
            says: "(plain http is accepted on loopback only, for the simulators)",
        },
        Case {
            name: "plain http to a name that only looks like loopback",
            edits: &[Replace(
                "bridge.toml",
                "base_url = \"https://acme.service-now.com\"",
                "base_url = ‸\"http://localhost.evil.example\"",
            )],
            at: At::Mark,
            says: "base_url `http://localhost.evil.example` is plain http",
        },
        Case {
            name: "ca_bundle missing",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nca_bundle = ‸\"certs/ca.pem\"\n",
            )],
            at: At::Mark,
            says: "certs/ca.pem: cannot read it (No such file or directory",
        },
        Case {
            name: "ca_bundle not PEM",
            edits: &[
                Replace(
                    "bridge.toml",
                    "timeout = \"30s\"\n",
                    "timeout = \"30s\"\nca_bundle = ‸\"ca.cer\"\n",
                ),
                Write("ca.cer", "MIIB binary DER, not PEM\n"),
            ],
            at: At::Mark,
            says: "ca.cer is not a PEM certificate bundle",
        },
        Case {
            name: "ca_bundle with a broken PEM body",
            edits: &[
                Replace(
                    "bridge.toml",
                    "timeout = \"30s\"\n",
                    "timeout = \"30s\"\nca_bundle = ‸\"ca.pem\"\n",
                ),
                Write(
                    "ca.pem",
                    "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
                ),
            ],
            at: At::Mark,
            says: "ca.pem is not a PEM certificate bundle",
        },
        Case {
            name: "ca_bundle with a certificate never ended",
            edits: &[
                Replace(
                    "bridge.toml",
                    "timeout = \"30s\"\n",
                    "timeout = \"30s\"\nca_bundle = ‸\"ca.pem\"\n",
                ),
                Write("ca.pem", "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n"),
            ],
            at: At::Mark,
            says: "is not a PEM certificate bundle",
        },
        Case {
            name: "ca_bundle empty",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nca_bundle = ‸\"\"\n",
            )],
            at: At::Mark,
            says: "ca_bundle is empty",
        },
        Case {
            name: "tenant_id not a GUID",
            edits: &[Replace(
                "bridge.toml",
                "kind = \"graph\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"",
                "kind = \"graph\"\ntenant_id = ‸\"my-tenant\"",
            )],
            at: At::Mark,
            says: "tenant_id `my-tenant` is not a tenant id; copy the Directory (tenant) ID",
        },
        Case {
            name: "tenant_id with a space",
            edits: &[Replace(
                "bridge.toml",
                "kind = \"sentinel\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"",
                "kind = \"sentinel\"\ntenant_id = ‸\"contoso tenant\"",
            )],
            at: At::Mark,
            says: "tenant_id `contoso tenant` is not a tenant id",
        },
        Case {
            name: "cron that never fires: February 30th",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/5 * * * *\"",
                "schedule = ‸\"0 0 30 2 *\"",
            )],
            at: At::Mark,
            says: "cron line `0 0 30 2 *` never fires",
        },
        Case {
            name: "cron with seconds that never fires: November 31st",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"0 */5 * * * *\"",
                "schedule = ‸\"0 0 0 31 11 *\"",
            )],
            at: At::Mark,
            says: "cron line `0 0 0 31 11 *` never fires",
        },
        Case {
            name: "sweep that never fires: April 31st",
            edits: &[Replace(
                "bridge.toml",
                "schedule = \"*/1 * * * *\"\n",
                "schedule = \"*/1 * * * *\"\nsweep = ‸\"0 3 31 4 *\"\n",
            )],
            at: At::Mark,
            says: "cron line `0 3 31 4 *` never fires",
        },
        Case {
            name: "since in the future",
            edits: &[Replace(
                "bridge.toml",
                "conflict = \"newest_wins\"\nsince = \"2026-11-01T00:00:00Z\"",
                "conflict = \"newest_wins\"\nsince = ‸\"2999-01-01T00:00:00Z\"",
            )],
            at: At::Mark,
            says: "since 2999-01-01T00:00:00+00:00 is in the future",
        },
        Case {
            name: "since in the future as a TOML date-time",
            edits: &[Replace(
                "bridge.toml",
                "since = 2026-11-01T00:00:00Z",
                "since = ‸2998-06-01T00:00:00Z",
            )],
            at: At::Mark,
            says: "is in the future; the first run would find nothing before then",
        },
        Case {
            name: "timeout of zero",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"",
                "timeout = ‸\"0s\"",
            )],
            at: At::Mark,
            says: "timeout must be more than zero",
        },
        Case {
            name: "absurd timeout",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"",
                "timeout = ‸\"2h\"",
            )],
            at: At::Mark,
            says: "timeout `2h` is longer than 10m",
        },
        Case {
            name: "subscription_id not a GUID",
            edits: &[Replace(
                "bridge.toml",
                "subscription_id = \"33333333-3333-3333-3333-333333333333\"",
                "subscription_id = ‸\"soc-subscription\"",
            )],
            at: At::Mark,
            says: "subscription_id `soc-subscription` is not a valid Azure name; a subscription id is a GUID",
        },
        Case {
            name: "resource_group with a space",
            edits: &[Replace(
                "bridge.toml",
                "resource_group = \"soc-rg\"",
                "resource_group = ‸\"soc rg\"",
            )],
            at: At::Mark,
            says: "resource_group `soc rg` is not a valid Azure name",
        },
        Case {
            name: "resource_group ending in a dot",
            edits: &[Replace(
                "bridge.toml",
                "resource_group = \"soc-rg\"",
                "resource_group = ‸\"soc-rg.\"",
            )],
            at: At::Mark,
            says: "not ending in `.`",
        },
        Case {
            name: "workspace_name too short",
            edits: &[Replace(
                "bridge.toml",
                "workspace_name = \"soc-ws\"",
                "workspace_name = ‸\"ws\"",
            )],
            at: At::Mark,
            says: "workspace_name `ws` is not a valid Azure name; a workspace name is 4-63",
        },
        Case {
            name: "workspace_name with an underscore",
            edits: &[Replace(
                "bridge.toml",
                "workspace_name = \"soc-ws\"",
                "workspace_name = ‸\"soc_ws\"",
            )],
            at: At::Mark,
            says: "workspace_name `soc_ws` is not a valid Azure name",
        },
        Case {
            name: "api_version not a date",
            edits: &[Replace(
                "bridge.toml",
                "workspace_name = \"soc-ws\"\n",
                "workspace_name = \"soc-ws\"\napi_version = ‸\"latest\"\n",
            )],
            at: At::Mark,
            says: "api_version `latest` is not an ARM api-version",
        },
        Case {
            name: "api_version without leading zeros",
            edits: &[Replace(
                "bridge.toml",
                "workspace_name = \"soc-ws\"\n",
                "workspace_name = \"soc-ws\"\napi_version = ‸\"2025-9-1\"\n",
            )],
            at: At::Mark,
            says: "api_version `2025-9-1` is not an ARM api-version",
        },
        Case {
            name: "store path a folder",
            edits: &[
                Replace("bridge.toml", "path = \"bridge.db\"", "path = ‸\"state\""),
                Write("state/keep", "a folder, not a database\n"),
            ],
            at: At::Mark,
            says: "is a folder; give the database file's name, e.g. \"state/itsm-bridge.db\"",
        },
        Case {
            name: "max_body not a size",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nmax_body = ‸\"sixteen megs\"\n",
            )],
            at: At::Mark,
            says: "max_body `sixteen megs` is not a size",
        },
        Case {
            name: "max_body with an unknown unit",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nmax_body = ‸\"16 TB\"\n",
            )],
            at: At::Mark,
            says: "max_body `16 TB` is not a size",
        },
        Case {
            name: "max_body too small",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nmax_body = ‸\"1KiB\"\n",
            )],
            at: At::Mark,
            says: "max_body `1KiB` is out of bounds",
        },
        Case {
            name: "max_body too large",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nmax_body = ‸\"8GiB\"\n",
            )],
            at: At::Mark,
            says: "max_body `8GiB` is out of bounds",
        },
        Case {
            name: "max_body of zero",
            edits: &[Replace(
                "bridge.toml",
                "timeout = \"30s\"\n",
                "timeout = \"30s\"\nmax_body = ‸\"0\"\n",
            )],
            at: At::Mark,
            says: "give between \"64KiB\" and \"1GiB\"",
        },
    ]
}

/// The inputs of a case, or why the case itself is wrong.
fn apply(edits: &[Edit]) -> Result<BTreeMap<&'static str, String>, String> {
    let mut files = good_files();
    for edit in edits {
        match edit {
            Replace(file, from, to) | CutFrom(file, from, to) => {
                let text = files.get_mut(file).ok_or(format!("no file {file}"))?;
                let found = text.matches(from).count();
                if found != 1 {
                    return Err(format!("{from:?} occurs {found} times in {file}"));
                }
                *text = match edit {
                    Replace(..) => text.replacen(from, to, 1),
                    _ => format!("{}{to}", &text[..text.find(from).unwrap()]),
                };
            }
            Write(file, text) => {
                files.insert(file, text.to_string());
            }
            Remove(file) => {
                files.remove(file).ok_or(format!("no file {file}"))?;
            }
        }
    }
    Ok(files)
}

/// Takes the mark out: the file it was in, and its 1-based line and column.
fn take_mark(files: &mut BTreeMap<&'static str, String>) -> Option<(&'static str, usize, usize)> {
    let (file, text) = files.iter_mut().find(|(_, t)| t.contains(MARK))?;
    let at = text.find(MARK).unwrap();
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    text.remove(at);
    assert!(!text.contains(MARK), "one mark per case");
    Some((*file, line, column))
}

/// Every file under `dir` with its contents: what a run may not change.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// What is wrong with one run of a case, if anything.
fn judge(out: &Output, dir: &Path, prefix: &str, says: &str) -> Option<String> {
    let err = stderr(out);
    let wrong = if out.status.code() != Some(2) {
        format!("exit code {:?}, not 2", out.status.code())
    } else if !err
        .lines()
        .any(|l| l.starts_with(prefix) && l.contains(says))
    {
        format!("no line starting {prefix:?} says {says:?}")
    } else if let Some(l) = err
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with(dir.to_str().unwrap()))
    {
        format!("a line that is not a diagnostic: {l:?}")
    } else if err.contains(CANARY) || SECRETS.iter().any(|(_, v)| err.contains(v)) {
        "a secret was echoed".to_string()
    } else {
        return None;
    };
    Some(format!("{wrong}\n  stderr:\n{err}"))
}

/// Writes the inputs under `dir`, the secret files owner-only (as an admin
/// should: others get a warning).
fn write_inputs(dir: &Path, files: &BTreeMap<&'static str, String>) {
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        if file.starts_with("secrets/") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

#[test]
fn the_good_inputs_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), &good_files());
    let config = dir.path().join("bridge.toml");
    let out = bridge_in(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    crate::common::assert_success(&out);
    assert_eq!(stderr(&out), "", "no warning for good inputs");
    assert!(
        !dir.path().join("bridge.db").exists(),
        "check writes nothing"
    );
}

/// Careless but not wrong: `check` passes and warns, naming what to do. A
/// dashboard on all interfaces has no authentication; a secret file others can
/// read is exposed.
#[cfg(unix)]
#[test]
fn a_public_listen_and_a_readable_secret_file_pass_check_with_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let files = apply(&[Replace(
        "bridge.toml",
        "listen = \"127.0.0.1:9464\"",
        "listen = \"0.0.0.0:9464\"",
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), &files);
    let exposed = dir.path().join("secrets/jira");
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("bridge.toml");
    let out = bridge_in(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    crate::common::assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("[server] listen 0.0.0.0:9464 is not a loopback address")
            && err.contains("no authentication"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "secret file {} is readable or writable by group or others (mode 644); restrict it with chmod 600",
            exposed.display()
        )),
        "{err}"
    );
    assert!(!SECRETS.iter().any(|(_, v)| err.contains(v)), "{err}");
}

#[test]
fn every_bad_input_exits_2_naming_where_and_writes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 80, "a table of at least 80 bad inputs");
    let mut failures = Vec::new();
    for case in &cases {
        let mut files = match apply(case.edits) {
            Ok(files) => files,
            Err(e) => {
                failures.push(format!("{}: the case is wrong: {e}", case.name));
                continue;
            }
        };
        let mark = take_mark(&mut files);
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), &files);
        let prefix = match (&case.at, mark) {
            (At::Mark, Some((file, line, column))) => {
                format!("{}:{line}:{column}: ", dir.path().join(file).display())
            }
            (At::File(file), None) => format!("{}: ", dir.path().join(file).display()),
            _ => {
                failures.push(format!("{}: a ‸ exactly when At::Mark", case.name));
                continue;
            }
        };
        let before = snapshot(dir.path());
        let config = dir.path().join("bridge.toml");
        let config = config.to_str().unwrap();
        for args in [
            &["check", "--config", config][..],
            &["run", "--once", "--config", config][..],
        ] {
            let out = bridge_in(dir.path(), args);
            if let Some(wrong) = judge(&out, dir.path(), &prefix, case.says) {
                failures.push(format!("{} ({}): {wrong}", case.name, args[0]));
            }
            if snapshot(dir.path()) != before {
                failures.push(format!("{} ({}): files were written", case.name, args[0]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let mut files = apply(&[
        Replace("bridge.toml", "timeout = \"30s\"", "timeout = \"soon\""),
        Replace(
            "bridge.toml",
            "schedule = \"*/5 * * * *\"",
            "schedule = \"hourly\"",
        ),
        Replace(
            "bridge.toml",
            "conflict = \"newest_wins\"",
            "conflict = \"mine\"",
        ),
        Replace("jira.toml", "version = 1", "version = 3"),
    ])
    .unwrap();
    assert!(take_mark(&mut files).is_none());
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in &files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let config = dir.path().join("bridge.toml");
    let out = bridge_in(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let name = |file: &str| dir.path().join(file).display().to_string();
    let expected = [
        (name("bridge.toml"), "timeout `soon`"),
        (name("bridge.toml"), "cron line `hourly`"),
        (name("bridge.toml"), "unknown conflict policy `mine`"),
        (name("jira.toml"), "unsupported mapping version 3"),
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, (file, says)) in lines.iter().zip(&expected) {
        assert!(line.starts_with(file) && line.contains(says), "{line}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge_in(
        dir.path(),
        &["ledger", "export", "--format", "xml", "--db", "x.db"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = bridge_in(dir.path(), &["links", "--db", "missing.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.db"));
    assert!(!dir.path().join("missing.db").exists());
}

/// A hostile list page from Graph whose `@odata.nextLink` points at another host
/// (here the Jira simulator, a different port on loopback): the bridge refuses it,
/// so neither the request nor the Graph token ever reaches that host.
#[test]
fn a_next_link_to_another_host_is_refused_end_to_end() {
    let env = Env::start(2);
    let foreign = format!(
        "{}/v1.0/security/incidents?$skiptoken=stolen",
        env.sims.jira.base_url()
    );
    env.sims.graph.kit.inject(connectors::simkit::Fault {
        method: Some(axum::http::Method::GET),
        path_contains: "/security/incidents".into(),
        times: 1,
        status: 200,
        retry_after: None,
        body: serde_json::json!({ "value": [], "@odata.nextLink": foreign }).to_string(),
    });
    let out = env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the pair fails: {err}");
    assert!(err.contains("refusing a next link"), "{err}");
    let leaked: Vec<_> = env
        .sims
        .jira
        .kit
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("security"))
        .collect();
    assert!(leaked.is_empty(), "the foreign host was asked: {leaked:?}");
}

/// The database is owner-only even when the bridge runs under `umask 000`.
#[cfg(unix)]
#[test]
fn the_database_is_created_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(1);
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 000 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_itsm-bridge"),
            "run",
            "--once",
            "--config",
            env.config.to_str().unwrap(),
        ])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let db = env.db.file_name().unwrap().to_str().unwrap().to_string();
    let mut checked = 0;
    for entry in std::fs::read_dir(env.db.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with(&db) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            checked += 1;
        }
    }
    assert!(checked >= 1, "the database exists");
}
