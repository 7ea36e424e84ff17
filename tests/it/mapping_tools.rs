//! The admin's mapping tools: `mapping render` shows what the bridge would make
//! of an incident, and what it shows is what the bridge then makes.

use std::path::Path;

use crate::common::{Env, assert_success, bridge_in, stderr, stdout};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

fn render_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["mapping", "render", "--json"];
    all.extend_from_slice(args);
    let out = bridge_in(dir, &all);
    assert_success(&out);
    serde_json::from_str(&stdout(&out)).expect("render --json prints JSON")
}

#[test]
fn render_shows_the_recorded_samples_tickets_and_write_back() {
    let dir = tempfile::tempdir().unwrap();
    let graph = render_json(
        dir.path(),
        &[
            "--mapping",
            &repo("mappings/jira.toml"),
            "--incident",
            &repo("mappings/samples/graph-incident.json"),
            "--ticket-key",
            "SOC-42",
            "--ticket-url",
            "https://contoso.atlassian.net/browse/SOC-42",
        ],
    );
    let attrs = &graph["create"]["attrs"];
    assert_eq!(
        attrs["summary"],
        "[Defender #41001] Suspicious sign-in followed by mailbox rule creation (101)"
    );
    assert_eq!(attrs["priority"], "High", "severity medium maps to High");
    assert_eq!(
        graph["create"]["labels"],
        serde_json::json!(["itsm-bridge", "soc"])
    );
    assert_eq!(
        graph["write_back"]["tags"],
        serde_json::json!(["ticket:SOC-42"])
    );
    let comment = graph["write_back"]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("[itsm-bridge] Jira issue SOC-42"),
        "{comment}"
    );
    assert!(comment.contains("https://contoso.atlassian.net/browse/SOC-42"));

    let sentinel = render_json(
        dir.path(),
        &[
            "--mapping",
            &repo("mappings/servicenow.toml"),
            "--incident",
            &repo("mappings/samples/sentinel-incident.json"),
        ],
    );
    let attrs = &sentinel["create"]["attrs"];
    assert_eq!(
        attrs["summary"],
        "[Sentinel #8801] Brute force attack against Azure Portal"
    );
    assert_eq!(attrs["impact"], "2");
    assert_eq!(attrs["urgency"], "2");
    assert_eq!(attrs["assignee"], "li.wei@contoso.example");
    let text = stdout(&bridge_in(
        dir.path(),
        &[
            "mapping",
            "render",
            "--mapping",
            &repo("mappings/servicenow.toml"),
            "--incident",
            &repo("mappings/samples/sentinel-incident.json"),
        ],
    ));
    assert!(
        text.contains("summary (field \"summary\", to the ticket): [Sentinel #8801]"),
        "{text}"
    );
    assert!(text.contains("tag: ticket:<ticket key>"), "{text}");
}

/// What `render` prints for an incident is what the bridge creates for it and
/// writes back to it.
#[test]
fn what_render_shows_is_what_the_bridge_creates() {
    let env = Env::start(3);
    let id = env.sims.graph.incidents()[1].id.clone();
    let sample = env.dir.path().join("sample.json");
    let json = env.sims.graph.incident_json(&id).unwrap();
    std::fs::write(&sample, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let mapping = env.dir.path().join("jira.toml");
    let rendered = render_json(
        env.dir.path(),
        &[
            "--mapping",
            mapping.to_str().unwrap(),
            "--incident",
            sample.to_str().unwrap(),
            "--source",
            "defender",
        ],
    );

    env.sync();
    let key = env.ticket_of(&id).expect("the incident got a ticket");
    let issue = env.sims.jira.issue(&key).unwrap();
    let attrs = &rendered["create"]["attrs"];
    assert_eq!(attrs["summary"], issue.summary.as_str());
    assert_eq!(attrs["priority"], issue.priority.as_str());
    assert_eq!(
        rendered["create"]["labels"],
        serde_json::json!(["itsm-bridge", "soc"])
    );
    for label in ["itsm-bridge", "soc"] {
        assert!(
            issue.labels.iter().any(|l| l == label),
            "{:?}",
            issue.labels
        );
    }

    // The write-back, rendered for the ticket the bridge made, is what the
    // incident now carries.
    let rendered = render_json(
        env.dir.path(),
        &[
            "--mapping",
            mapping.to_str().unwrap(),
            "--incident",
            sample.to_str().unwrap(),
            "--ticket-key",
            &key,
        ],
    );
    let tags = env.sims.graph.incident(&id).unwrap().custom_tags;
    for tag in rendered["write_back"]["tags"].as_array().unwrap() {
        assert!(
            tags.iter().any(|t| t == tag.as_str().unwrap()),
            "{tags:?} lacks {tag}"
        );
    }
}

#[test]
fn render_refuses_a_sample_that_is_not_the_mappings_source_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // A Graph incident for a Sentinel mapping.
    let out = bridge_in(
        dir.path(),
        &[
            "mapping",
            "render",
            "--mapping",
            &repo("mappings/servicenow.toml"),
            "--incident",
            &repo("mappings/samples/graph-incident.json"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("graph-incident.json"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not a Microsoft Sentinel incident"));

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\n  \"id\": \"1\",\n  oops\n}").unwrap();
    let out = bridge_in(
        dir.path(),
        &[
            "mapping",
            "render",
            "--mapping",
            &repo("mappings/jira.toml"),
            "--incident",
            broken.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.json:3:3"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let bad_mapping = dir.path().join("bad.toml");
    std::fs::write(
        &bad_mapping,
        "version = 1\nsource = \"graph\"\ntickets = \"nope\"\n",
    )
    .unwrap();
    let out = bridge_in(
        dir.path(),
        &[
            "mapping",
            "render",
            "--mapping",
            bad_mapping.to_str().unwrap(),
            "--incident",
            &repo("mappings/samples/graph-incident.json"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.toml:3"), "{}", stderr(&out));
}

/// `mapping impact` on a synced store: a value-map edit counts exactly the
/// tickets whose value it changes, from the store alone.
#[test]
fn impact_counts_the_tickets_a_value_map_edit_changes() {
    let env = Env::start(40);
    env.sync();
    let mapping = env.dir.path().join("jira.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let edited = env.dir.path().join("jira-edited.toml");
    let changed = text.replacen("high = \"Highest\"", "high = \"Critical\"", 1);
    assert!(changed != text, "the shipped mapping maps high to Highest");
    std::fs::write(&edited, changed).unwrap();
    let highest = env
        .sims
        .jira
        .issues()
        .iter()
        .filter(|i| i.priority == "Highest")
        .count();
    assert!(highest > 0);

    let requests_before = env.sims.request_counts();
    let out = env.bridge(&[
        "mapping",
        "impact",
        "--config",
        env.config.to_str().unwrap(),
        "--mapping",
        edited.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let jira = &report.as_array().unwrap()[0];
    assert_eq!(jira["pair"], "defender->jira");
    assert_eq!(
        jira["links"],
        env.links()
            .iter()
            .filter(|l| l["pair"] == "defender->jira")
            .count()
    );
    assert_eq!(jira["ticket_writes"], highest);
    assert_eq!(jira["incident_writes"], 0);
    assert_eq!(jira["per_field"]["priority"], highest);
    assert_eq!(jira["transitions"][0]["from"], "\"Highest\"");
    assert_eq!(jira["transitions"][0]["to"], "\"Critical\"");
    assert_eq!(jira["undecided"], 0);
    assert_eq!(env.sims.request_counts(), requests_before, "no remote call");

    let text = stdout(&env.bridge(&[
        "mapping",
        "impact",
        "--config",
        env.config.to_str().unwrap(),
        "--mapping",
        edited.to_str().unwrap(),
    ]));
    assert!(
        text.contains(&format!(
            "the edit rewrites {highest} tickets and 0 incidents"
        )),
        "{text}"
    );
}

#[test]
fn impact_refuses_a_mapping_no_pair_uses_with_exit_2() {
    let env = Env::start(0);
    let out = env.bridge(&[
        "mapping",
        "impact",
        "--config",
        env.config.to_str().unwrap(),
        "--mapping",
        &repo("mappings/jira.toml"),
        "--pair",
        "sentinel->servicenow",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pair sentinel->servicenow maps sentinel to servicenow"));
}

/// A template edit is decided from the incidents as the polls last read them:
/// every followed link whose summary the new template renders differently.
#[test]
fn impact_renders_an_edited_template_from_the_incidents_last_read() {
    let env = Env::start(30);
    env.sync();
    let mapping = env.dir.path().join("jira.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let edited = env.dir.path().join("jira-edited.toml");
    let changed = text.replacen(
        "\"[Defender #{incident.display_id}] {incident.title}\"",
        "\"SOC {incident.display_id}: {incident.title}\"",
        1,
    );
    assert!(changed != text, "the shipped summary template changed");
    std::fs::write(&edited, changed).unwrap();

    let out = env.bridge(&[
        "mapping",
        "impact",
        "--config",
        env.config.to_str().unwrap(),
        "--mapping",
        edited.to_str().unwrap(),
        "--pair",
        "defender->jira",
        "--json",
    ]);
    assert_success(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let jira = &report[0];
    assert_eq!(jira["undecided"], 0, "{jira}");
    let followed = jira["links"].as_u64().unwrap();
    assert!(followed > 0);
    assert_eq!(
        jira["per_field"]["summary"].as_u64(),
        Some(followed),
        "{jira}"
    );
    let sample = &jira["sample"][0];
    let change = &sample["changes"][0];
    let key = sample["ticket"].as_str().unwrap();
    assert_eq!(
        change["old"].as_str(),
        Some(env.sims.jira.issue(key).unwrap().summary.as_str())
    );
    assert!(
        change["new"].as_str().unwrap().starts_with("SOC "),
        "{change}"
    );
}
