//! The `[api]` checks, as an admin meets them.

use std::path::Path;

use serde_json::json;

use super::check::parse_template;
use super::*;
use crate::mapping::Flow;
use crate::mapping::parse;
use crate::vocab::{SourceKind, TicketKind};

const GENERIC: &str = include_str!("../../../../mappings/generic.toml");

/// A small valid Sentinel → generic mapping; tests edit its lines.
const BASE: &str = r#"version = 1
source = "sentinel"
tickets = "generic"

[[field]]
template = "{incident.title}"
ticket = "summary"

[api]
create = { path = "/t" }
get = { path = "/t/{key}" }
update = { path = "/t/{key}" }
search = { path = "/t?since={since}" }
find = { path = "/t?c={correlation}" }
comment = { path = "/t/{key}/c", text = "/body" }
items = "/items"
id = "/id"
key = "/key"
created = "/created"
updated = "/updated"
correlation = "/ext"

[api.fields]
summary = "/summary"
"#;

/// BASE with `from` replaced by `to` (which must be there).
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn errors(text: &str) -> Vec<String> {
    let err = parse(Path::new("m.toml"), text).expect_err("the mapping should be refused");
    err.diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect()
}

fn check(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected, "for mapping:\n{text}");
}

#[test]
fn shipped_generic_mapping_loads() {
    let m = parse(Path::new("mappings/generic.toml"), GENERIC).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.source_kind, SourceKind::Sentinel);
    assert_eq!(m.ticket_kind, TicketKind::Generic);
    let api = m.api.as_ref().expect("a generic mapping has [api]");
    assert_eq!(api.create.method, HttpMethod::Post);
    assert_eq!(api.update.method, HttpMethod::Patch);
    assert_eq!(api.get.path.as_str(), "/api/tickets/{key}");
    assert!(api.search.path.uses(Placeholder::Since));
    assert!(api.find.path.uses(Placeholder::Correlation));
    assert_eq!(api.comment_text.as_str(), "/body");
    assert_eq!(
        api.next,
        NextPage::Pointer(JsonPointer::parse("/next").unwrap())
    );
    assert_eq!(api.key.as_ref().map(JsonPointer::as_str), Some("/key"));
    assert_eq!(
        api.url,
        TicketUrl::Pointer(JsonPointer::parse("/web_url").unwrap())
    );
    assert_eq!(api.correlation.as_str(), "/external_id");
    let fields: Vec<&str> = api.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        fields,
        [
            "summary",
            "description",
            "status",
            "priority",
            "resolution",
            "assignee"
        ]
    );
    assert_eq!(api.canonical_status("In_Progress"), Some("in_progress"));
    assert_eq!(api.canonical_status("done"), None);

    let rule = |name: &str| m.fields.iter().find(|f| f.name == name).unwrap();
    assert_eq!(
        rule("status").map_to_ticket(Some("Active")).as_deref(),
        Some("in_progress")
    );
    assert_eq!(
        rule("status").map_to_incident(Some("closed")).as_deref(),
        Some("Closed")
    );
    // Every resolution gives a classification and the reason that goes with it.
    for (resolution, classification, reason) in [
        ("confirmed", "TruePositive", "SuspiciousActivity"),
        (
            "expected_activity",
            "BenignPositive",
            "SuspiciousButExpected",
        ),
        ("false_positive", "FalsePositive", "IncorrectAlertLogic"),
        ("inaccurate_data", "FalsePositive", "InaccurateData"),
        ("fixed", "TruePositive", "SuspiciousActivity"),
    ] {
        assert_eq!(
            rule("classification")
                .map_to_incident(Some(resolution))
                .as_deref(),
            Some(classification),
            "{resolution}"
        );
        assert_eq!(
            rule("classification_reason")
                .map_to_incident(Some(resolution))
                .as_deref(),
            Some(reason),
            "{resolution}"
        );
    }
    assert_eq!(
        rule("classification").map_to_ticket(Some("Undetermined")),
        None
    );
    assert_eq!(rule("classification_reason").flow, Flow::ToIncident);
    assert_eq!(m.skip_create_statuses, ["Closed"]);
    assert_eq!(m.labels.len(), 2);
}

#[test]
fn the_readme_shows_what_the_checker_says() {
    let readme = include_str!("../../../../mappings/README.md");
    let broken = GENERIC
        .replacen("/api/tickets/{key}\" }", "/api/tickets/{ticket}\" }", 1)
        .replacen("updated_since={since}", "updated_since=today", 1)
        .replacen("id = \"/id\"", "id = \"id\"", 1);
    let err = parse(Path::new("generic.toml"), &broken).unwrap_err();
    assert_eq!(err.diagnostics.len(), 3, "{err}");
    for line in err.to_string().lines() {
        assert!(
            readme.contains(line),
            "mappings/README.md should show: {line}"
        );
    }
}

#[test]
fn a_graph_mapping_with_a_minimal_api_loads() {
    let text = "version = 1\nsource = \"graph\"\ntickets = \"generic\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n[api]\ncreate = { path = \"/t\" }\nget = { path = \"/t/{id}\" }\nupdate = { path = \"/t/{id}\" }\nsearch = { path = \"/t?since={since}\" }\nfind = { path = \"/t?c={correlation}\" }\ncomment = { path = \"/t/{id}/c\", text = \"/body\" }\nitems = \"\"\nid = \"/id\"\ncreated = \"/created\"\nupdated = \"/updated\"\ncorrelation = \"/ext\"\n[api.fields]\nsummary = \"/summary\"\n";
    let m = parse(Path::new("m.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.source_kind, SourceKind::Graph);
    let api = m.api.unwrap();
    assert!(api.items.is_root() && api.key.is_none());
}

#[test]
fn the_smallest_api_takes_the_defaults() {
    let m = parse(Path::new("m.toml"), BASE).unwrap_or_else(|e| panic!("{e}"));
    let api = m.api.unwrap();
    assert_eq!(api.get.method, HttpMethod::Get);
    assert_eq!(api.update.method, HttpMethod::Patch);
    assert_eq!(api.comment.method, HttpMethod::Post);
    assert_eq!(api.next, NextPage::None);
    assert_eq!(api.url, TicketUrl::ApiUrl);
    assert_eq!(api.statuses, None);
    assert_eq!(api.labels, None);
    assert_eq!(api.canonical_status("anything"), Some("anything"));
}

#[test]
fn api_belongs_to_generic_mappings_only() {
    check(
        "version = 1\nsource = \"graph\"\ntickets = \"jira\"\n\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n\n[api]\nitems = \"/items\"\n",
        &[
            "9:1: [api] describes a generic ticket system's REST API, and this mapping is for tickets = \"jira\"; remove it",
        ],
    );
    let without_api = &BASE[..BASE.find("[api]").unwrap()];
    check(
        without_api,
        &[
            "3:11: add an [api] table: a generic ticket system is described by its endpoints and JSON pointers (see mappings/README.md)",
        ],
    );
}

#[test]
fn missing_keys_are_named_at_the_api_header() {
    let text = base_with("find = { path = \"/t?c={correlation}\" }\n", "")
        .replacen("id = \"/id\"\n", "", 1)
        .replacen(
            "comment = { path = \"/t/{key}/c\", text = \"/body\" }",
            "comment = { path = \"/t/{key}/c\" }",
            1,
        )
        .replacen("\n[api.fields]\nsummary = \"/summary\"\n", "", 1);
    check(
        &text,
        &[
            "9:1: add `find = { path = \"/tickets?external_id={correlation}\" }` to [api]: how to find the ticket of an incident by its correlation id",
            "9:1: add `id = \"/id\"` to [api]: where a ticket object holds its id",
            "9:1: add an [api.fields] table: where a ticket object holds each attribute, e.g. `summary = \"/summary\"`",
            "14:11: add `text = \"/body\"` to `comment`: where a comment object holds its text",
        ],
    );
    check(
        &base_with(
            "get = { path = \"/t/{key}\" }",
            "get = { method = \"GET\" }",
        ),
        &[
            "11:7: add `path = \"/tickets/{key}\"`: the URL of the get request, relative to the base_url",
        ],
    );
    check(
        &base_with("items = \"/items\"", "items = \"/items\"\npage = 2"),
        &[
            "17:1: unknown key `page`, expected one of `create`, `get`, `update`, `search`, `find`, `comment`, `items`, `next`, `id`, `key`, `url`, `url_template`, `created`, `updated`, `version`, `correlation`, `labels`, `comments`, `statuses`, `fields`, `types`, `since_format`, `since_zone`, `error_message`, `error_details`",
        ],
    );
}

#[test]
fn bad_pointers_are_reported_where_they_go_wrong() {
    check(
        &base_with("id = \"/id\"", "id = \"id\"")
            .replacen("updated = \"/updated\"", "updated = \"/meta/up~2dated\"", 1)
            .replacen("created = \"/created\"", "created = \"\"", 1),
        &[
            "17:7: a JSON pointer starts with `/` (RFC 6901); write \"/id\"",
            "19:11: \"\" points at the whole object, which cannot be the created; point at the value inside it",
            "20:20: `~` in a JSON pointer must be followed by 0 (for `~`) or 1 (for `/`)",
        ],
    );
    check(
        &base_with(
            "summary = \"/summary\"",
            "summary = \"/s\"\nprio = \"/p\"\nstatus = \"s\"",
        ),
        &[
            "25:1: unknown generic attribute `prio`; known attributes: summary, description, status, priority, resolution, assignee",
            "26:11: a JSON pointer starts with `/` (RFC 6901); write \"/s\"",
        ],
    );
    // The root is fine for the list of items: a bare JSON array.
    parse(
        Path::new("m.toml"),
        &base_with("items = \"/items\"", "items = \"\""),
    )
    .unwrap();
}

#[test]
fn placeholders_are_checked_in_every_path() {
    check(
        &base_with(
            "get = { path = \"/t/{key}\" }",
            "get = { path = \"/t/{ticket}\" }",
        )
        .replacen(
            "search = { path = \"/t?since={since}\" }",
            "search = { path = \"/t?from={key}\" }",
            1,
        )
        .replacen(
            "find = { path = \"/t?c={correlation}\" }",
            "find = { path = \"/t?c=x\" }",
            1,
        )
        .replacen(
            "update = { path = \"/t/{key}\" }",
            "update = { path = \"/t/{id}\" }",
            1,
        ),
        &[
            "11:20: unknown placeholder `{ticket}`; URL templates know `{id}`, `{key}`, `{since}` or `{correlation}`",
            "12:23: `{id}` is not available here: the bridge knows a ticket by its key (`key` is set in [api]), so write `{key}`; or remove `key` so that the id is the key",
            "13:28: `{key}` is not available in the search path; it offers `{since}`",
            "14:17: the find path needs `{correlation}`: the correlation id to look for",
        ],
    );
    // Without a `key`, the id is the key and `{id}` addresses a ticket.
    let text = base_with("key = \"/key\"\n", "").replacen(
        "get = { path = \"/t/{key}\" }",
        "get = { path = \"/t/{id}\" }",
        1,
    );
    let m = parse(Path::new("m.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.api.unwrap().get.path.uses(Placeholder::Id));
    check(
        &base_with(
            "create = { path = \"/t\" }",
            "create = { path = \"t/{key}\" }",
        )
        .replacen(
            "get = { path = \"/t/{key}\" }",
            "get = { path = \"//evil.example/{key}\" }",
            1,
        )
        .replacen(
            "comment = { path = \"/t/{key}/c\",",
            "comment = { path = \"/t/{key}/c d#x\",",
            1,
        )
        .replacen(
            "update = { path = \"/t/{key}\" }",
            "update = { path = \"/t/{key}%zz\" }",
            1,
        ),
        &[
            "10:20: write the path relative to the ticket system's base_url, starting with `/`",
            "11:17: a path cannot start with `//` (that would name another host); write a single `/`",
            "12:28: `%` must start a percent-encoded byte such as %20; write %25 for a literal `%`",
            "15:31: a URL cannot hold spaces or control characters; percent-encode them (a space is %20)",
        ],
    );
}

#[test]
fn methods_are_checked_per_endpoint() {
    check(
        &base_with(
            "create = { path = \"/t\" }",
            "create = { method = \"PUT\", path = \"/t\" }",
        )
        .replacen(
            "update = { path = \"/t/{key}\" }",
            "update = { method = \"fetch\", path = \"/t/{key}\" }",
            1,
        ),
        &[
            "10:21: `PUT` is not a method `create` can use; write \"POST\"",
            "12:21: `fetch` is not a method `update` can use; write \"PATCH\", \"PUT\" or \"POST\"",
        ],
    );
    let m = parse(
        Path::new("m.toml"),
        &base_with(
            "update = { path = \"/t/{key}\" }",
            "update = { method = \"put\", path = \"/t/{key}\" }",
        ),
    )
    .unwrap();
    assert_eq!(m.api.unwrap().update.method, HttpMethod::Put);
}

#[test]
fn status_values_must_be_among_the_listed_ones() {
    let fields = "\n[[field]]\nincident = \"status\"\nticket = \"status\"\nto_incident_default = \"Active\"\nto_ticket = { New = \"open\", Active = \"working\", Closed = \"done\" }\nto_incident = { open = \"New\", finished = \"Closed\" }\n";
    let text = base_with(
        "[api]\n",
        &format!("{fields}\n[api]\nstatuses = [\"open\", \"Done\", \"OPEN\"]\n"),
    )
    .replacen(
        "summary = \"/summary\"",
        "summary = \"/summary\"\nstatus = \"/status\"",
        1,
    );
    check(
        &text,
        &["18:29: `OPEN` is listed twice in statuses (values match case-insensitively); keep one"],
    );
    let text = text.replacen(", \"OPEN\"]", "]", 1);
    check(
        &text,
        &[
            "14:38: `working` is not among the [api] statuses: open, Done",
            "15:31: `finished` is not among the [api] statuses: open, Done",
        ],
    );
    // Copying a Sentinel status into a listed set needs a map.
    let copy = base_with("[api]\n", "\n[[field]]\nincident = \"status\"\nticket = \"status\"\nflow = \"to_ticket\"\n\n[api]\nstatuses = [\"open\"]\n")
        .replacen("summary = \"/summary\"", "summary = \"/summary\"\nstatus = \"/status\"", 1);
    check(
        &copy,
        &[
            "12:10: add a to_ticket map: the incident status values cannot all be copied to the ticket status, which takes only the [api] statuses: open",
        ],
    );
    // A set that holds every Sentinel status can take a copy.
    parse(
        Path::new("m.toml"),
        &copy.replacen("[\"open\"]", "[\"new\", \"active\", \"closed\"]", 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn fields_need_a_place_in_the_api() {
    check(
        &base_with(
            "[api]\n",
            "\n[[field]]\nincident = \"assigned_to\"\nticket = \"assignee\"\n\n[create]\nlabels = [\"soc\"]\n\n[api]\n",
        ),
        &[
            "12:10: the ticket attribute `assignee` has no place in [api.fields]; add `assignee = \"/assignee\"` there",
            "15:11: new tickets get labels, but [api] has no `labels`; add `labels = \"/labels\"` (where a ticket object keeps its list of labels) or remove these",
        ],
    );
    check(
        &base_with(
            "correlation = \"/ext\"",
            "correlation = \"/summary/x\"\nlabels = \"/ext\"",
        )
        .replacen(
            "summary = \"/summary\"",
            "summary = \"/summary\"\ndescription = \"/ext\"",
            1,
        ),
        &[
            "25:11: `summary` is written at /summary, where `correlation` (line 21) is written too; give each value its own place",
            "26:15: `description` is written at /ext, where `labels` (line 22) is written too; give each value its own place",
        ],
    );
    check(
        &base_with("summary = \"/summary\"", "summary = \"/ext/s\""),
        &[
            "24:11: `summary` is written at /ext/s, where `correlation` (line 21) is written too; give each value its own place",
        ],
    );
}

#[test]
fn url_templates_and_next_links() {
    let m = parse(
        Path::new("m.toml"),
        &base_with(
            "items = \"/items\"",
            "items = \"/items\"\nnext = \"Link\"\nurl_template = \"https://desk.example/t/{key}?id={id}\"",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let api = m.api.unwrap();
    assert_eq!(api.next, NextPage::LinkHeader);
    let TicketUrl::Template(t) = &api.url else {
        panic!("{:?}", api.url)
    };
    assert_eq!(
        t.render(&[(Placeholder::Key, "HD 1"), (Placeholder::Id, "7")])
            .unwrap(),
        "https://desk.example/t/HD%201?id=7"
    );
    check(
        &base_with(
            "items = \"/items\"",
            "items = \"/items\"\nurl = \"/web\"\nurl_template = \"desk.example/{since}\"",
        ),
        &["18:16: give either `url` (a JSON pointer) or `url_template`, not both"],
    );
    check(
        &base_with(
            "items = \"/items\"",
            "items = \"/items\"\nurl_template = \"https://d/{since}\"",
        ),
        &["17:27: `{since}` is not available in `url_template`; it offers `{key}` or `{id}`"],
    );
}

#[test]
fn rendering_keeps_hostile_values_literal() {
    let t = parse_template(
        "/api/tickets/{key}/c?q={correlation}&x=1",
        &[Placeholder::Key, Placeholder::Correlation],
        false,
    )
    .unwrap_or_else(|e| panic!("{}", e.message));
    let url = t
        .render(&[
            (Placeholder::Key, "../admin?x=1#f"),
            (Placeholder::Correlation, "a&limit=1000 /é%"),
        ])
        .unwrap();
    assert_eq!(
        url,
        "/api/tickets/..%2Fadmin%3Fx%3D1%23f/c?q=a%26limit%3D1000%20%2F%C3%A9%25&x=1"
    );
    for bad in ["", ".", ".."] {
        assert!(
            t.render(&[(Placeholder::Key, bad), (Placeholder::Correlation, "c")])
                .is_err(),
            "{bad:?}"
        );
    }
    // In the query, a dot is just a dot.
    assert!(
        t.render(&[(Placeholder::Key, "k"), (Placeholder::Correlation, "..")])
            .is_ok()
    );
    assert!(
        t.render(&[(Placeholder::Key, "k")]).is_err(),
        "a value is missing"
    );
    let braces = parse_template("/t/{{x}}/{key}", &[Placeholder::Key], false)
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        braces.render(&[(Placeholder::Key, "1")]).unwrap(),
        "/t/%7Bx%7D/1"
    );
}

#[test]
fn json_pointers_read_and_write() {
    let p = JsonPointer::parse("/fields/a~1b/c~0d").unwrap();
    let mut doc = json!({});
    p.set(&mut doc, json!("v")).unwrap();
    assert_eq!(doc, json!({"fields": {"a/b": {"c~d": "v"}}}));
    assert_eq!(p.get(&doc), Some(&json!("v")));
    let first = JsonPointer::parse("/list/0/name").unwrap();
    let mut doc = json!({"list": [{"name": "x"}], "n": 1});
    first.set(&mut doc, json!("y")).unwrap();
    assert_eq!(doc["list"][0]["name"], "y");
    assert!(
        JsonPointer::parse("/list/1/name")
            .unwrap()
            .set(&mut doc, json!(1))
            .is_err()
    );
    assert!(
        JsonPointer::parse("/n/x")
            .unwrap()
            .set(&mut doc, json!(1))
            .is_err()
    );
    let root = JsonPointer::parse("").unwrap();
    assert!(root.is_root());
    assert_eq!(root.get(&doc), Some(&doc));
    assert_eq!(JsonPointer::parse("/a~").unwrap_err().offset, 2);
    assert_eq!(JsonPointer::parse("a").unwrap_err().offset, 0);
}

const FRESHSERVICE: &str = include_str!("../../../../mappings/freshservice.toml");

#[test]
fn shipped_freshservice_mapping_describes_its_habits() {
    let m = parse(Path::new("mappings/freshservice.toml"), FRESHSERVICE)
        .unwrap_or_else(|e| panic!("{e}"));
    let api = m.api.as_ref().expect("a generic mapping has [api]");
    assert_eq!(api.get.record.as_str(), "/ticket");
    assert!(api.create.send.is_root(), "requests are flat");
    assert_eq!(api.comment.record.as_str(), "/conversation");
    assert_eq!(api.items_of(&api.search).as_str(), "/tickets");
    assert_eq!(api.next_of(&api.find), &NextPage::LinkHeader);
    assert_eq!(api.value_type("status"), ValueType::Integer);
    assert_eq!(api.value_type("summary"), ValueType::String);
    assert_eq!(api.update_mode, UpdateMode::Partial);
    assert_eq!(api.since_format, SinceFormat::Rfc3339);
    let fixed: Vec<(&str, &ExtraValue)> = api
        .create
        .fields
        .iter()
        .map(|f| (f.at.as_str(), &f.value))
        .collect();
    assert_eq!(
        fixed,
        [
            (
                "/email",
                &ExtraValue::Constant(json!("soc-bridge@contoso.example"))
            ),
            ("/source", &ExtraValue::Constant(json!(2))),
        ]
    );
    assert_eq!(
        api.errors
            .describe(&json!({"description": "Validation failed",
            "errors": [{"field": "status", "message": "It should be a/an Integer"}]})),
        Some("Validation failed: status: It should be a/an Integer".into())
    );
}

#[test]
fn the_new_keys_load_in_their_other_forms() {
    let text = base_with(
        "create = { path = \"/t\" }",
        "create = { path = \"/t\", send = \"/ticket\", fields = { \"/comment/body\" = \"{summary} for {correlation}\", \"/comment/public\" = false } }",
    )
    .replace(
        "search = { path = \"/t?since={since}\" }",
        "search = { path = \"/t?since={since}\", items = \"/tickets\", next = \"/after_url\", end = \"/end_of_stream\" }\nsince_format = \"unix\"",
    )
    .replace(
        "update = { path = \"/t/{key}\" }",
        "update = { method = \"PUT\", path = \"/t/{key}\", mode = \"full\" }",
    );
    let m = parse(Path::new("m.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let api = m.api.unwrap();
    assert_eq!(api.create.send.as_str(), "/ticket");
    assert!(matches!(
        api.create.fields[0].value,
        ExtraValue::Template(_)
    ));
    assert_eq!(
        api.search.more,
        Some(More::Until(JsonPointer::parse("/end_of_stream").unwrap()))
    );
    assert_eq!(api.since_format, SinceFormat::UnixSeconds);
    assert_eq!(api.update_mode, UpdateMode::Full);
}

#[test]
fn malformed_habits_are_reported_where_they_are_written() {
    let with = |from: &str, to: &str| base_with(from, to);
    let get = "get = { path = \"/t/{key}\" }";
    let search = "search = { path = \"/t?since={since}\" }";
    let create = "create = { path = \"/t\" }";
    let update = "update = { path = \"/t/{key}\" }";
    let fields = "[api.fields]\nsummary = \"/summary\"";
    let rows: Vec<(String, &str)> = vec![
        (
            with(get, "get = { path = \"/t/{key}\", record = \"ticket\" }"),
            "8:",
        ),
        (
            with(get, "get = { path = \"/t/{key}\", items = \"/x\" }"),
            "`items` does not belong in `get`",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\", more = \"/a\", end = \"/b\" }",
            ),
            "not both",
        ),
        (
            with(update, "update = { path = \"/t/{key}\", mode = \"whole\" }"),
            "not an update mode",
        ),
        (
            with(
                create,
                "create = { path = \"/t\", fields = { \"/x\" = [1] } }",
            ),
            "a fixed field is a string",
        ),
        (
            with(
                create,
                "create = { path = \"/t\", fields = { \"/x\" = \"{nope}\" } }",
            ),
            "unknown placeholder `{nope}`",
        ),
        (
            with(
                create,
                "create = { path = \"/t\", fields = { \"/summary\" = \"x\" } }",
            ),
            "a place of its own",
        ),
        (
            with(
                fields,
                "[api.types]\nsummary = \"int\"\n\n[api.fields]\nsummary = \"/summary\"",
            ),
            "not a value type",
        ),
        (
            with(
                fields,
                "[api.types]\nstatus = \"integer\"\n\n[api.fields]\nsummary = \"/summary\"",
            ),
            "has no place in [api.fields]",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\" }\nsince_format = \"epoch\"",
            ),
            "not a time format",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\" }\nsince_format = \"%Y-%Q\"",
            ),
            "not a strftime pattern",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\" }\nsince_format = \"%Y-%m-%d\"\nsince_zone = \"CET\"",
            ),
            "not a UTC offset",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\" }\nsince_zone = \"+01:00\"",
            ),
            "goes with a strftime",
        ),
        (
            with(
                search,
                "search = { path = \"/t?since={since}\" }\nerror_details = \"errors\"",
            ),
            "starts with `/`",
        ),
    ];
    for (text, expected) in rows {
        let errors = errors(&text);
        assert_eq!(errors.len(), 1, "{errors:?}\n{text}");
        assert!(
            errors[0].contains(expected),
            "{errors:?} should say {expected}"
        );
        let position = errors[0].split(": ").next().unwrap();
        assert!(
            position.split(':').all(|n| n.parse::<usize>().unwrap() > 0),
            "{errors:?}"
        );
    }
}

#[test]
fn typed_attributes_take_only_values_of_their_type() {
    let typed = base_with(
        "[api.fields]\nsummary = \"/summary\"",
        "statuses = [\"2\", \"open\"]\n\n[api.types]\nstatus = \"integer\"\n\n[api.fields]\nsummary = \"/summary\"\nstatus = \"/status\"",
    );
    let errs = errors(&typed);
    assert!(
        errs.iter()
            .any(|e| e.contains("\"open\" is not an integer value")),
        "{errs:?}"
    );
    let copied = base_with(
        "[api.fields]\nsummary = \"/summary\"",
        "[api.types]\npriority = \"integer\"\n\n[api.fields]\nsummary = \"/summary\"\npriority = \"/priority\"",
    )
    .replace(
        "[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n",
        "[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n\n[[field]]\nincident = \"severity\"\nticket = \"priority\"\nflow = \"to_ticket\"\n[field.to_ticket]\nHigh = \"3\"\nMedium = \"medium\"\nLow = \"1\"\nInformational = \"1\"\n",
    );
    let errs = errors(&copied);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("\"medium\" is not an integer value"),
        "{errs:?}"
    );
}

#[test]
fn the_readme_shows_what_the_checker_says_about_helpdesk_keys() {
    let readme = include_str!("../../../../mappings/README.md");
    let broken = FRESHSERVICE
        .replacen(
            "get = { path = \"/api/v2/tickets/{id}?include=conversations\", record = \"/ticket\" }",
            "get = { path = \"/api/v2/tickets/{id}?include=conversations\", items = \"/ticket\" }",
            1,
        )
        .replacen("statuses = [\"2\",", "statuses = [\"open\",", 1)
        .replacen(
            "update = { method = \"PUT\",",
            "update = { mode = \"whole\", method = \"PUT\",",
            1,
        );
    let err = parse(Path::new("freshservice.toml"), &broken).unwrap_err();
    assert_eq!(err.diagnostics.len(), 3, "{err}");
    let text = err.to_string();
    let missing: Vec<&str> = text.lines().filter(|line| !readme.contains(line)).collect();
    assert!(
        missing.is_empty(),
        "mappings/README.md should show:\n{}",
        missing.join("\n")
    );
}

#[test]
fn shipped_zendesk_mapping_wraps_both_ways_and_reads_unix_exports() {
    let text = include_str!("../../../../mappings/zendesk.toml");
    let m = parse(Path::new("mappings/zendesk.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let api = m.api.as_ref().expect("a generic mapping has [api]");
    assert_eq!(api.create.send.as_str(), "/ticket");
    assert_eq!(api.comment.send.as_str(), "/ticket/comment");
    assert_eq!(api.comment.method, HttpMethod::Put);
    assert_eq!(api.since_format, SinceFormat::UnixSeconds);
    assert_eq!(
        api.search.more,
        Some(More::Until(JsonPointer::parse("/end_of_stream").unwrap()))
    );
    assert!(matches!(
        api.create.fields[0].value,
        ExtraValue::Template(_)
    ));
    assert_eq!(
        api.errors.details.as_ref().map(JsonPointer::as_str),
        Some("/details")
    );
}
