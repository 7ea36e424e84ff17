//! Situations a SOC and its service desk run into, end to end: the real binary
//! against the simulators. Each test is named after the situation and checks what
//! people would look at afterwards: the tickets and incidents on the remote
//! systems, the mapping table (`links --json`) and the sync ledger. Merges in
//! Defender (before and after the first sync, and chains of them), comments
//! crossing both ways, a comment write whose answer was lost, the same field
//! changed on both sides under each conflict policy, and reopening on either side
//! after the other closed.
//!
//! A test marked `#[ignore = "bug: …"]` describes what a user should see and
//! does not yet: it fails until the bug it names is fixed.
//!
//! Every test starts from empty simulators and seeds only the incidents its
//! situation needs, so it stays small and fast.

use std::process::Output;

use crate::common::{Env, assert_success, stderr, stdout};
use axum::http::Method;
use chrono::{DateTime, SubsecRound, Utc};
use connectors::graph::sim::{SeedIncident, SimComment};
use connectors::jira::adf::adf_to_text;
use connectors::sentinel::sim::SeedIncident as SentinelSeed;
use connectors::simkit::{Effect, FaultRule, Trigger};
use connectors::sims::RequestCounts;
use serde_json::Value;

const JIRA_PAIR: &str = "defender->jira";
const SNOW_PAIR: &str = "sentinel->servicenow";

// ---------------------------------------------------------------------------------
// The situation's cast

/// A new Defender incident in the queue: active, medium severity. Returns its id.
fn defender_incident(env: &Env, title: &str) -> String {
    env.sims
        .graph
        .seed_incident(SeedIncident::new(title).severity("medium"))
}

/// A new Sentinel incident: New, Medium. Returns its id.
fn sentinel_incident(env: &Env, title: &str) -> String {
    env.sims
        .sentinel
        .seed_incident(SentinelSeed::new(title).severity("Medium"))
}

/// The Jira issue the bridge linked to a Defender incident.
fn jira_key(env: &Env, incident_id: &str) -> String {
    env.ticket_in(Some(JIRA_PAIR), incident_id)
        .unwrap_or_else(|| panic!("incident {incident_id} has a Jira issue"))
}

/// The ServiceNow incident the bridge linked to a Sentinel incident.
fn snow_number(env: &Env, incident_id: &str) -> String {
    env.ticket_in(Some(SNOW_PAIR), incident_id)
        .unwrap_or_else(|| panic!("incident {incident_id} has a ServiceNow ticket"))
}

/// The `links --json` line of an incident in a pair.
fn link(env: &Env, pair: &str, incident_id: &str) -> Value {
    env.links()
        .into_iter()
        .find(|l| l["pair"] == pair && l["incident_id"] == incident_id)
        .unwrap_or_else(|| panic!("{pair} links incident {incident_id}"))
}

// ---------------------------------------------------------------------------------
// What people see on each side

/// The text of each comment on a Jira issue, oldest first.
fn jira_comments(env: &Env, key: &str) -> Vec<String> {
    env.sims
        .jira
        .issue(key)
        .unwrap_or_else(|| panic!("issue {key} exists"))
        .comments
        .iter()
        .map(|c| adf_to_text(&c.body))
        .collect()
}

/// The text of each comment on a Defender incident, oldest first.
fn defender_comments(env: &Env, id: &str) -> Vec<String> {
    env.sims
        .graph
        .incident(id)
        .unwrap_or_else(|| panic!("incident {id} exists"))
        .comments
        .into_iter()
        .map(|c| c.comment)
        .collect()
}

/// The text of each comment on a Sentinel incident, oldest first.
fn sentinel_comments(env: &Env, id: &str) -> Vec<String> {
    env.sims
        .sentinel
        .comments(id)
        .into_iter()
        .map(|c| c.message)
        .collect()
}

/// The work notes and comments in a ServiceNow incident's journal, oldest first.
fn snow_journal(env: &Env, number: &str) -> Vec<String> {
    env.sims
        .servicenow
        .journal(number)
        .into_iter()
        .map(|r| r["value"].clone())
        .collect()
}

/// How many of `comments` contain `text`.
fn mentions(comments: &[String], text: &str) -> usize {
    comments.iter().filter(|c| c.contains(text)).count()
}

/// Each comment written so far (its text, and whether it was written on the
/// incident) is on each side exactly once: where it was written (it did not
/// bounce back) and, as the bridge's marked copy, on the other side.
fn assert_crossed_once(on_incident: &[String], on_ticket: &[String], written: &[(&str, bool)]) {
    for (text, on_the_incident) in written {
        let (home, other) = match on_the_incident {
            true => (on_incident, on_ticket),
            false => (on_ticket, on_incident),
        };
        assert_eq!(
            mentions(home, text),
            1,
            "{text:?} did not bounce back: {home:#?}"
        );
        assert_eq!(
            mentions(other, text),
            1,
            "{text:?} crossed once: {other:#?}"
        );
        let copy = other.iter().find(|c| c.contains(text)).unwrap();
        assert!(copy.starts_with("[itsm-bridge]"), "{copy}");
    }
}

// ---------------------------------------------------------------------------------
// The bridge's own record

/// `run --once`, whatever its exit code.
fn run_once(env: &Env) -> Output {
    env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()])
}

/// Every ledger entry, oldest first, as `ledger export` prints them.
fn ledger(env: &Env) -> Vec<Value> {
    let out = env.bridge(&["ledger", "export", "--db", env.db_arg()]);
    assert_success(&out);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ledger export lines are JSON"))
        .collect()
}

/// The ledger entries of one incident with this action.
fn ledger_entries(env: &Env, incident_id: &str, action: &str) -> Vec<Value> {
    ledger(env)
        .into_iter()
        .filter(|e| e["incident_id"] == incident_id && e["action"] == action)
        .collect()
}

/// Every field change the ledger recorded as a conflict for an incident, with the
/// action that settled it (`update_ticket`, `update_incident`).
fn conflicts_recorded(env: &Env, incident_id: &str) -> Vec<(String, Value)> {
    ledger(env)
        .into_iter()
        .filter(|e| e["incident_id"] == incident_id)
        .flat_map(|e| {
            let action = e["action"].as_str().unwrap_or_default().to_string();
            e["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.get("conflict").is_some())
                .map(move |c| (action.clone(), c))
        })
        .collect()
}

/// The requests that changed something (anything but reads and Jira searches) the
/// ticket systems and incident sources answered since `from`.
fn writes_since(env: &Env, from: RequestCounts) -> Vec<String> {
    let sims = &env.sims;
    [
        ("graph", sims.graph.kit.requests(), from.graph),
        ("sentinel", sims.sentinel.kit.requests(), from.sentinel),
        ("jira", sims.jira.kit.requests(), from.jira),
        (
            "servicenow",
            sims.servicenow.kit.requests(),
            from.servicenow,
        ),
        ("helpdesk", sims.generic.kit.requests(), from.generic),
    ]
    .into_iter()
    .flat_map(|(system, log, from)| {
        log.into_iter()
            .skip(from)
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search/jql"))
            .map(move |r| format!("{system}: {} {}", r.method, r.path))
    })
    .collect()
}

/// Both sides are in step: another run writes nothing anywhere, says so for
/// every pair, and adds nothing to the ledger.
fn assert_nothing_left_to_write(env: &Env) {
    let requests = env.sims.request_counts();
    let entries = env.ledger_len();
    let out = env.sync();
    assert_eq!(
        writes_since(env, requests),
        Vec::<String>::new(),
        "a run with nothing new writes nothing"
    );
    let text = stdout(&out);
    assert!(
        text.lines().all(|l| l.ends_with("nothing to write")),
        "{text}"
    );
    let added: Vec<Value> = ledger(env).into_iter().skip(entries).collect();
    assert_eq!(added, Vec::<Value>::new(), "nothing new in the ledger");
}

/// Sets the `conflict` policy of the `[[sync]]` pair that syncs to `tickets`.
fn set_conflict_policy(env: &Env, tickets: &str, policy: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let wanted = format!("tickets = \"{tickets}\"");
    let mut blocks: Vec<String> = text.split("[[sync]]").map(str::to_string).collect();
    let mut pairs = blocks.iter_mut().filter(|b| b.contains(&wanted));
    let block = pairs
        .next()
        .expect("a [[sync]] pair syncs to these tickets");
    assert!(pairs.next().is_none(), "one pair syncs to {tickets}");
    let start = block.find("conflict = ").expect("the pair names a policy");
    let end = start + block[start..].find('\n').unwrap();
    block.replace_range(start..end, &format!("conflict = \"{policy}\""));
    std::fs::write(&env.config, blocks.join("[[sync]]")).unwrap();
}

/// Waits until the wall clock is past `t` (by more than the millisecond the
/// coarsest simulator keeps), so the next change is stamped strictly later.
fn wait_past(t: DateTime<Utc>) {
    while Utc::now() <= t + chrono::Duration::milliseconds(2) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A whole microsecond (the bridge's store keeps time to the microsecond) after
/// the incident's last change and after now.
fn whole_microsecond_after(env: &Env, id: &str) -> DateTime<Utc> {
    let last = env.sims.graph.incident(id).unwrap().updated.max(Utc::now());
    (last + chrono::Duration::milliseconds(1)).trunc_subsecs(6)
}

/// An analyst comment in Defender whose change Graph stamps on a whole
/// microsecond: what the bridge stores is then exactly what Graph says, so a
/// re-poll of the unchanged incident reads as unchanged.
fn defender_comment_on_a_whole_microsecond(env: &Env, id: &str, author: &str, text: &str) {
    let at = whole_microsecond_after(env, id);
    env.sims
        .graph
        .update_as_defender_at(id, at, |i| {
            i.comments.push(SimComment {
                comment: text.into(),
                author: author.into(),
                created: at,
            })
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------
// Merges in Defender

#[test]
fn merge_seen_before_the_targets_first_sync() {
    let env = Env::start(0);
    let a = defender_incident(&env, "Suspicious sign-in from an unfamiliar location");
    let b = defender_incident(
        &env,
        "Multi-stage incident involving Initial access on one user",
    );
    // Defender's correlation merges A into B before the bridge ever saw either.
    assert!(env.sims.graph.redirect(&a, &b));

    env.sync();

    let issues = env.sims.jira.issues();
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(issues.len(), 1, "one issue, for the survivor: {keys:?}");
    let b_key = jira_key(&env, &b);
    assert_eq!(issues[0].key, b_key);
    assert!(
        issues[0]
            .labels
            .contains(&format!("itsm-bridge:defender:{b}")),
        "{:?}",
        issues[0].labels
    );
    assert_eq!(env.ticket_in(Some(JIRA_PAIR), &a), None, "A gets no issue");
    let tags = env.sims.graph.incident(&b).unwrap().custom_tags;
    assert!(tags.contains(&format!("ticket:{b_key}")), "{tags:?}");
    assert!(
        env.sims.graph.incident(&a).unwrap().custom_tags.is_empty(),
        "nothing is written back to the merged incident"
    );

    let merges = ledger_entries(&env, &a, "merge");
    assert_eq!(merges.len(), 1, "{merges:#?}");
    assert_eq!(merges[0]["outcome"], "ok");
    let detail = merges[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("merged into incident {b}")) && detail.contains(&b_key),
        "{detail}"
    );
    assert_eq!(ledger_entries(&env, &b, "create_ticket").len(), 1);

    // A later run makes no issue for A either.
    env.sync();
    assert_eq!(env.sims.jira.issues().len(), 1);
    assert_eq!(env.ticket_in(Some(JIRA_PAIR), &a), None);
}

#[test]
fn a_merge_seen_before_the_first_sync_is_recorded_once() {
    let env = Env::start(0);
    let a = defender_incident(&env, "Inbox forwarding rule to an external domain");
    let b = defender_incident(&env, "Business email compromise of one user");
    assert!(env.sims.graph.redirect(&a, &b));
    env.sync();
    assert_eq!(ledger_entries(&env, &a, "merge").len(), 1);

    // Nothing happened since: the poll's overlap window shows A again, and the
    // auditor's record of the merge must not grow with every run.
    assert_nothing_left_to_write(&env);
    assert_eq!(
        ledger_entries(&env, &a, "merge").len(),
        1,
        "{:#?}",
        ledger_entries(&env, &a, "merge")
    );
}

#[test]
fn merge_after_first_sync() {
    let env = Env::start(0);
    let a = defender_incident(&env, "Phishing email delivered to 3 mailboxes");
    let b = defender_incident(&env, "Phishing campaign against the finance team");
    env.sync();
    let (a_key, b_key) = (jira_key(&env, &a), jira_key(&env, &b));
    let b_url = link(&env, JIRA_PAIR, &b)["ticket_url"]
        .as_str()
        .unwrap()
        .to_string();

    assert!(env.sims.graph.redirect(&a, &b));
    let out = env.sync();
    assert!(
        stdout(&out).contains("1 merged incident(s) handled"),
        "{}",
        stdout(&out)
    );

    // A's issue: closed, pointing at B's issue.
    let a_issue = env.sims.jira.issue(&a_key).unwrap();
    assert_eq!(a_issue.status_category, "done", "A's issue is closed");
    let on_a = jira_comments(&env, &a_key);
    let pointers: Vec<&String> = on_a
        .iter()
        .filter(|c| c.contains("merged into") && c.contains(&b_key))
        .collect();
    assert_eq!(pointers.len(), 1, "{on_a:#?}");
    assert!(pointers[0].contains(&b_url), "{}", pointers[0]);
    // B's issue: still open, noting what it absorbed.
    let b_issue = env.sims.jira.issue(&b_key).unwrap();
    assert_eq!(b_issue.status_category, "new", "B's issue stays open");
    let on_b = jira_comments(&env, &b_key);
    assert_eq!(
        on_b.iter()
            .filter(|c| c.contains("absorbed") && c.contains(&a_key))
            .count(),
        1,
        "{on_b:#?}"
    );
    // The mapping table and the ledger.
    let a_link = link(&env, JIRA_PAIR, &a);
    assert_eq!(a_link["state"], "merged");
    assert_eq!(a_link["merged_into"], b.as_str());
    assert_eq!(a_link["ticket_key"], a_key.as_str());
    assert_eq!(link(&env, JIRA_PAIR, &b)["state"], "active");
    let merges = ledger_entries(&env, &a, "merge");
    assert_eq!(merges.len(), 1, "{merges:#?}");
    assert_eq!(merges[0]["outcome"], "ok");
    assert_eq!(merges[0]["ticket_key"], a_key.as_str());
    let link_change = merges[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "link")
        .cloned()
        .unwrap();
    assert_eq!(link_change["new"], format!("merged into {b}").as_str());

    // Later edits to A in Defender no longer reach A's closed issue.
    let before = env.sims.jira.issue(&a_key).unwrap();
    let requests = env.sims.request_counts();
    env.sims
        .graph
        .set_title(&a, "Phishing email delivered to 3 mailboxes (re-analysed)");
    env.sims
        .graph
        .add_comment_as(&a, "Ana Ruiz", "Two more recipients found after the merge.");
    env.sync();
    assert_eq!(env.sims.jira.issue(&a_key).unwrap(), before);
    let to_a: Vec<String> = writes_since(&env, requests)
        .into_iter()
        .filter(|w| w.contains(&format!("/{a_key}")))
        .collect();
    assert_eq!(
        to_a,
        Vec::<String>::new(),
        "nothing is written to A's issue"
    );
    assert_eq!(link(&env, JIRA_PAIR, &a)["state"], "merged");
    assert_nothing_left_to_write(&env);
}

#[test]
fn merge_chain_is_followed_to_the_survivor() {
    let env = Env::start(0);
    let a = defender_incident(&env, "Password spray against 40 accounts from one IP");
    let b = defender_incident(&env, "Suspicious sign-ins after a password spray");
    let c = defender_incident(&env, "Account takeover campaign against the sales team");
    env.sync();
    let (a_key, b_key, c_key) = (jira_key(&env, &a), jira_key(&env, &b), jira_key(&env, &c));

    // Defender merges A into B, then B into C, between two runs.
    assert!(env.sims.graph.redirect(&a, &b));
    assert!(env.sims.graph.redirect(&b, &c));
    env.sync();

    for (merged, key) in [(&a, &a_key), (&b, &b_key)] {
        let issue = env.sims.jira.issue(key).unwrap();
        assert_eq!(issue.status_category, "done", "{key} is closed");
        let comments = jira_comments(&env, key);
        assert_eq!(
            comments
                .iter()
                .filter(|t| t.contains("merged into") && t.contains(&c_key))
                .count(),
            1,
            "{key} points at the survivor's issue {c_key}: {comments:#?}"
        );
        let l = link(&env, JIRA_PAIR, merged);
        assert_eq!(l["state"], "merged");
        assert_eq!(l["merged_into"], c.as_str(), "{merged} → {c}");
    }
    let on_c = jira_comments(&env, &c_key);
    for absorbed in [&a_key, &b_key] {
        assert_eq!(
            on_c.iter()
                .filter(|t| t.contains("absorbed") && t.contains(absorbed.as_str()))
                .count(),
            1,
            "{c_key} notes it absorbed {absorbed}: {on_c:#?}"
        );
    }
    assert_eq!(env.sims.jira.issue(&c_key).unwrap().status_category, "new");
    assert_eq!(env.sims.jira.issues().len(), 3, "no new issue");
    assert_nothing_left_to_write(&env);
}

#[test]
fn a_sentinel_merge_after_first_sync_closes_the_servicenow_ticket_and_points_it_at_the_survivor() {
    let env = Env::start(0);
    let seed = |title: &str, defender_id: &str| {
        env.sims.sentinel.seed_incident(
            SentinelSeed::new(title)
                .severity("Medium")
                .provider_incident_id(defender_id),
        )
    };
    let a = seed("Malicious Inbox Rule, affecting one user", "52101");
    let b = seed("Malicious Inbox Rule, affecting multiple users", "52102");
    env.sync();
    let (a_number, b_number) = (snow_number(&env, &a), snow_number(&env, &b));

    // Defender XDR merges A into B; Sentinel closes A as redirected.
    assert!(env.sims.sentinel.merge(&a, &b));
    env.sync();

    let closed = env.sims.servicenow.incident(&a_number).unwrap();
    assert_eq!(closed["state"], "6", "{closed:#?}");
    let on_a = snow_journal(&env, &a_number);
    assert_eq!(
        on_a.iter()
            .filter(|n| n.contains("merged into") && n.contains(&b_number))
            .count(),
        1,
        "{on_a:#?}"
    );
    let on_b = snow_journal(&env, &b_number);
    assert_eq!(
        on_b.iter()
            .filter(|n| n.contains("absorbed") && n.contains(&a_number))
            .count(),
        1,
        "{on_b:#?}"
    );
    assert_eq!(
        env.sims.servicenow.incident(&b_number).unwrap()["state"],
        "1"
    );
    let l = link(&env, SNOW_PAIR, &a);
    assert_eq!(l["state"], "merged");
    assert_eq!(l["merged_into"], b.as_str());
    assert_eq!(env.sims.servicenow.incidents().len(), 2, "no new ticket");
    assert_nothing_left_to_write(&env);
}

// ---------------------------------------------------------------------------------
// Comments

#[test]
fn comments_cross_each_way_without_echo_over_several_cycles() {
    let env = Env::start(0);
    let id = defender_incident(&env, "Suspicious PowerShell download cradle on WS-0142");
    env.sync();
    let key = jira_key(&env, &id);

    // (text, written in Defender?) for every comment so far.
    let mut written: Vec<(&str, bool)> = Vec::new();
    let check = |written: &[(&str, bool)]| {
        let (on_incident, on_issue) = (defender_comments(&env, &id), jira_comments(&env, &key));
        assert_crossed_once(&on_incident, &on_issue, written);
        // Nothing else but the comments, their copies and the write-back comment.
        assert_eq!(
            on_incident.len() + on_issue.len(),
            2 * written.len() + 1,
            "{on_incident:#?}\n{on_issue:#?}"
        );
    };

    // Cycle 1: the SOC analyst notes the containment in Defender.
    env.sims
        .graph
        .add_comment_as(&id, "Ana Ruiz", "Isolated WS-0142 from the network.");
    written.push(("Isolated WS-0142 from the network.", true));
    env.sync();
    check(&written);
    let copy = jira_comments(&env, &key)
        .into_iter()
        .find(|c| c.contains("Isolated WS-0142"))
        .unwrap();
    assert!(
        copy.contains("Ana Ruiz") && copy.contains("Microsoft Defender"),
        "{copy}"
    );

    // Cycle 2: the service desk answers in Jira.
    env.sims
        .jira
        .comment_as_analyst(
            &key,
            "li.wei@contoso.example",
            "User confirms they did not run the script.",
        )
        .unwrap();
    written.push(("User confirms they did not run the script.", false));
    env.sync();
    check(&written);
    let copy = defender_comments(&env, &id)
        .into_iter()
        .find(|c| c.contains("did not run the script"))
        .unwrap();
    assert!(copy.contains("Li Wei") && copy.contains("Jira"), "{copy}");

    // Cycle 3: both sides at once.
    env.sims.graph.add_comment_as(
        &id,
        "Sam Okafor",
        "Hash matches a known loader; submitted for analysis.",
    );
    env.sims
        .jira
        .comment_as_analyst(&key, "Li Wei", "Reimaging scheduled for tomorrow 09:00.")
        .unwrap();
    written.push(("Hash matches a known loader; submitted for analysis.", true));
    written.push(("Reimaging scheduled for tomorrow 09:00.", false));
    env.sync();
    check(&written);

    // Cycles 4 and 5: one side, then the other.
    env.sims
        .graph
        .add_comment_as(&id, "Ana Ruiz", "Waiting for the reimage.");
    env.sync();
    env.sims
        .jira
        .comment_as_analyst(&key, "Li Wei", "Reimage done, user back online.")
        .unwrap();
    written.push(("Waiting for the reimage.", true));
    written.push(("Reimage done, user back online.", false));
    env.sync();
    check(&written);
    let copied = ledger(&env)
        .into_iter()
        .filter(|e| e["action"] == "copy_comment" && e["incident_id"] == id.as_str())
        .count();
    assert_eq!(copied, written.len(), "one ledger entry per copy");

    // Cycles 6 and 7: nobody commented; nothing is written, nothing bounces.
    assert_nothing_left_to_write(&env);
    assert_nothing_left_to_write(&env);
    check(&written);
}

#[test]
fn comments_cross_each_way_between_sentinel_and_servicenow_without_echo() {
    let env = Env::start(0);
    let id = sentinel_incident(&env, "Mass secret retrieval from Azure Key Vault");
    env.sync();
    let number = snow_number(&env, &id);

    let check = |written: &[(&str, bool)]| {
        let on_ticket = snow_journal(&env, &number);
        assert_crossed_once(&sentinel_comments(&env, &id), &on_ticket, written);
    };
    let mut written: Vec<(&str, bool)> = Vec::new();
    env.sims.sentinel.add_comment_as(
        &id,
        "ana.ruiz@contoso.example",
        "Key Vault access policy reviewed; the app registration is ours.",
    );
    written.push((
        "Key Vault access policy reviewed; the app registration is ours.",
        true,
    ));
    env.sync();
    check(&written);

    env.sims
        .servicenow
        .add_work_note_as(
            &number,
            "li.wei",
            "Owner of the app registration contacted.",
        )
        .unwrap();
    written.push(("Owner of the app registration contacted.", false));
    env.sync();
    check(&written);

    env.sims
        .sentinel
        .add_comment_as(&id, "sam.okafor@contoso.example", "Secret rotated.");
    env.sims
        .servicenow
        .add_work_note_as(
            &number,
            "li.wei",
            "Change CHG0030012 raised for the rotation.",
        )
        .unwrap();
    written.push(("Secret rotated.", true));
    written.push(("Change CHG0030012 raised for the rotation.", false));
    env.sync();
    check(&written);
    env.sync();
    check(&written);
    assert_nothing_left_to_write(&env);
    check(&written);
}

#[test]
fn a_retried_comment_write_is_not_duplicated() {
    let env = Env::start(0);
    let id = defender_incident(&env, "Phishing email delivered to 12 mailboxes");
    env.sync();
    let key = jira_key(&env, &id);
    // Jira takes the comment, but the connection drops before its answer is read.
    let path = format!("/rest/api/3/issue/{key}/comment");
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        path.clone(),
        Effect::ResetMidBody,
    ));
    let text = "Blocked the sender domain at the mail gateway.";
    env.sims.graph.add_comment_as(&id, "Ana Ruiz", text);

    let out = run_once(&env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        mentions(&jira_comments(&env, &key), text),
        1,
        "Jira applied it"
    );

    // The retry (due after its delay) and another run after it.
    env.make_retry_due(JIRA_PAIR, &id);
    let out = env.sync();
    assert!(stdout(&out).contains("1 recovered"), "{}", stdout(&out));
    env.sync();

    assert_eq!(
        mentions(&jira_comments(&env, &key), text),
        1,
        "{:#?}",
        jira_comments(&env, &key)
    );
    assert_eq!(mentions(&defender_comments(&env, &id), text), 1, "no echo");
    let posts = env
        .sims
        .jira
        .kit
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .count();
    assert_eq!(posts, 1, "the comment was posted once, never again");
    assert_eq!(ledger_entries(&env, &id, "copy_comment").len(), 1);
    let links = env.links();
    assert!(
        links.iter().all(|l| l.get("dead_letter").is_none()),
        "{links:#?}"
    );
    assert_nothing_left_to_write(&env);
}

#[test]
fn a_retried_comment_write_to_the_incident_is_not_duplicated() {
    let env = Env::start(0);
    let id = defender_incident(&env, "Anomalous OAuth application consent grant");
    env.sync();
    let key = jira_key(&env, &id);
    let path = format!("/v1.0/security/incidents/{id}/comments");
    env.sims.graph.kit.inject(FaultRule::new(
        Some(Method::POST),
        path.clone(),
        Effect::ResetMidBody,
    ));
    let text = "Consent revoked by the app owner.";
    env.sims
        .jira
        .comment_as_analyst(&key, "Li Wei", text)
        .unwrap();

    let out = run_once(&env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        mentions(&defender_comments(&env, &id), text),
        1,
        "Graph applied it"
    );

    env.make_retry_due(JIRA_PAIR, &id);
    env.sync();
    env.sync();

    assert_eq!(
        mentions(&defender_comments(&env, &id), text),
        1,
        "{:#?}",
        defender_comments(&env, &id)
    );
    assert_eq!(mentions(&jira_comments(&env, &key), text), 1, "no echo");
    let posts = env
        .sims
        .graph
        .kit
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .count();
    assert_eq!(posts, 2, "the write-back comment, then the copy once");
    assert_eq!(ledger_entries(&env, &id, "copy_comment").len(), 1);
    assert_nothing_left_to_write(&env);
}

#[test]
fn a_comment_whose_copy_was_refused_is_copied_when_its_retry_is_due() {
    let env = Env::start(0);
    let id = defender_incident(&env, "Credential dumping with a known tool on DC-02");
    env.sync();
    let key = jira_key(&env, &id);
    // Jira refuses comments for a while (nothing is applied).
    let path = format!("/rest/api/3/issue/{key}/comment");
    env.sims.jira.kit.inject(
        FaultRule::new(Some(Method::POST), path.clone(), Effect::status(500))
            .when(Trigger::EveryNth(1)),
    );
    let text = "DC-02 isolated; krbtgt reset planned.";
    defender_comment_on_a_whole_microsecond(&env, &id, "Sam Okafor", text);
    let out = run_once(&env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(mentions(&jira_comments(&env, &key), text), 0);

    // Jira is back; the retry comes due.
    env.sims.jira.kit.clear_faults();
    env.make_retry_due(JIRA_PAIR, &id);
    let retry = env.sync();
    env.sync();
    assert_eq!(
        mentions(&jira_comments(&env, &key), text),
        1,
        "the comment reached the issue: {:#?}\nthe retry: {}",
        jira_comments(&env, &key),
        stdout(&retry)
    );
}

#[test]
fn an_incident_synced_once_is_not_read_again_by_the_next_quiet_run() {
    let env = Env::start(0);
    let id = defender_incident(&env, "Suspicious sign-in followed by mailbox rule creation");
    env.sync();
    let key = jira_key(&env, &id);
    // Defender raises the severity; Graph stamps its changes to the 100 ns.
    let at = whole_microsecond_after(&env, &id) + chrono::Duration::nanoseconds(300);
    env.sims
        .graph
        .update_as_defender_at(&id, at, |i| i.severity = "high".into())
        .unwrap();
    env.sync();
    assert_eq!(env.sims.jira.issue(&key).unwrap().priority, "Highest");

    // Nothing changed since: the poll's overlap window shows the incident again,
    // but it is not newer than what the link synced from, so it is left alone
    // (neither side re-read, its comments not fetched).
    let before = env.sims.request_counts();
    env.sync();
    let reads: Vec<String> = [
        (env.sims.graph.kit.requests(), before.graph),
        (env.sims.jira.kit.requests(), before.jira),
    ]
    .into_iter()
    .flat_map(|(log, from)| log.into_iter().skip(from))
    .filter(|r| r.path.ends_with(&format!("/{id}")) || r.path.contains(&format!("/{key}")))
    .map(|r| format!("{} {}", r.method, r.path))
    .collect();
    assert_eq!(reads, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------
// Conflicts: the same field changed on both sides between two runs

/// A Defender incident and its Jira issue in step (active, To Do), with the
/// defender->jira pair's policy set to `policy`. Returns (incident id, issue key).
fn in_step_under(env: &Env, policy: &str, title: &str) -> (String, String) {
    set_conflict_policy(env, "jira", policy);
    let id = defender_incident(env, title);
    env.sync();
    let key = jira_key(env, &id);
    assert_eq!(env.sims.jira.issue(&key).unwrap().status_category, "new");
    (id, key)
}

/// The SOC resolves the incident in Defender as a true positive.
fn soc_resolves(env: &Env, id: &str) {
    env.sims
        .graph
        .update_as_defender(id, |i| {
            i.status = "resolved".into();
            i.classification = Some("truePositive".into());
        })
        .unwrap();
}

/// The service desk starts work on the issue.
fn desk_starts_work(env: &Env, key: &str) {
    env.sims
        .jira
        .transition_as_analyst(key, "In Progress", None)
        .unwrap();
}

/// Which side's value a conflict kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Defender's `resolved`: the issue was moved to done.
    Defenders,
    /// Jira's In Progress: the incident was set to `inProgress`.
    Jiras,
}

/// The ledger recorded exactly one conflict for the incident: on `status`, with
/// both sides' values, the policy that settled it, and the write that carried
/// the kept value to the other side.
fn assert_status_conflict(env: &Env, id: &str, policy: &str, kept: Kept) {
    let conflicts = conflicts_recorded(env, id);
    assert_eq!(conflicts.len(), 1, "{conflicts:#?}");
    let (action, change) = &conflicts[0];
    assert_eq!(change["field"], "status", "{change:#}");
    let note = &change["conflict"];
    assert_eq!(
        (
            &note["incident_value"],
            &note["ticket_value"],
            &note["policy"]
        ),
        (
            &Value::from("resolved"),
            &Value::from("indeterminate"),
            &Value::from(policy)
        ),
        "{change:#}"
    );
    let (write, new) = match kept {
        Kept::Defenders => ("update_ticket", "done"),
        Kept::Jiras => ("update_incident", "inProgress"),
    };
    assert_eq!(
        (action.as_str(), &change["new"]),
        (write, &Value::from(new))
    );
}

#[test]
fn conflict_source_wins() {
    let env = Env::start(0);
    let (id, key) = in_step_under(
        &env,
        "source_wins",
        "Ransomware-linked activity on SRV-FS01",
    );
    soc_resolves(&env, &id);
    desk_starts_work(&env, &key);

    let out = env.sync();
    assert!(
        stdout(&out).contains("1 conflict(s) settled"),
        "{}",
        stdout(&out)
    );

    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "resolved", "Defender's change stands");
    let issue = env.sims.jira.issue(&key).unwrap();
    assert_eq!(issue.status_category, "done", "the issue follows Defender");
    assert_eq!(issue.resolution.as_deref(), Some("Done"));
    assert_status_conflict(&env, &id, "source_wins", Kept::Defenders);
    assert_nothing_left_to_write(&env);
}

#[test]
fn conflict_ticket_wins() {
    let env = Env::start(0);
    let (id, key) = in_step_under(
        &env,
        "ticket_wins",
        "Ransomware-linked activity on SRV-FS02",
    );
    soc_resolves(&env, &id);
    desk_starts_work(&env, &key);

    env.sync();

    let issue = env.sims.jira.issue(&key).unwrap();
    assert_eq!(
        issue.status_category, "indeterminate",
        "the desk's change stands"
    );
    assert_eq!(issue.resolution, None, "an open issue has no resolution");
    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "inProgress", "Defender follows the issue");
    assert_status_conflict(&env, &id, "ticket_wins", Kept::Jiras);
    assert_nothing_left_to_write(&env);
}

#[test]
fn conflict_newest_wins() {
    let env = Env::start(0);
    set_conflict_policy(&env, "jira", "newest_wins");
    let desk_last = defender_incident(&env, "Impossible travel activity involving one user");
    let soc_last = defender_incident(&env, "Suspicious mailbox rule creation");
    env.sync();
    let (desk_last_key, soc_last_key) = (jira_key(&env, &desk_last), jira_key(&env, &soc_last));

    // One incident: the SOC resolves first, the desk starts work after.
    soc_resolves(&env, &desk_last);
    wait_past(env.sims.graph.incident(&desk_last).unwrap().updated);
    desk_starts_work(&env, &desk_last_key);
    // The other: the desk starts work first, the SOC resolves after.
    desk_starts_work(&env, &soc_last_key);
    wait_past(env.sims.jira.issue(&soc_last_key).unwrap().updated);
    soc_resolves(&env, &soc_last);

    let out = env.sync();
    assert!(
        stdout(&out).contains("2 conflict(s) settled"),
        "{}",
        stdout(&out)
    );

    // The desk was last: its In Progress wins.
    assert_eq!(
        env.sims.jira.issue(&desk_last_key).unwrap().status_category,
        "indeterminate"
    );
    assert_eq!(
        env.sims.graph.incident(&desk_last).unwrap().status,
        "inProgress"
    );
    assert_status_conflict(&env, &desk_last, "newest_wins", Kept::Jiras);
    // The SOC was last: its resolution wins.
    assert_eq!(
        env.sims.graph.incident(&soc_last).unwrap().status,
        "resolved"
    );
    let issue = env.sims.jira.issue(&soc_last_key).unwrap();
    assert_eq!(issue.status_category, "done");
    assert_eq!(issue.resolution.as_deref(), Some("Done"));
    assert_status_conflict(&env, &soc_last, "newest_wins", Kept::Defenders);
    assert_nothing_left_to_write(&env);
}

#[test]
fn a_fields_own_conflict_policy_overrides_the_pairs() {
    let env = Env::start(0);
    // The service desk owns the workflow: `status` is ticket_wins whatever the pair says.
    let mapping = env.dir.path().join("jira.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let commented = "# conflict = \"ticket_wins\"\n";
    assert!(
        text.contains(commented),
        "the shipped mapping shows the override"
    );
    std::fs::write(
        &mapping,
        text.replace(commented, "conflict = \"ticket_wins\"\n"),
    )
    .unwrap();
    let (id, key) = in_step_under(
        &env,
        "source_wins",
        "Ransomware-linked activity on SRV-FS03",
    );
    soc_resolves(&env, &id);
    desk_starts_work(&env, &key);

    env.sync();

    assert_eq!(
        env.sims.jira.issue(&key).unwrap().status_category,
        "indeterminate"
    );
    assert_eq!(env.sims.graph.incident(&id).unwrap().status, "inProgress");
    assert_status_conflict(&env, &id, "ticket_wins", Kept::Jiras);
    assert_nothing_left_to_write(&env);
}

// ---------------------------------------------------------------------------------
// Reopening on one side after the other closed

mod defender_jira {
    use super::*;

    #[test]
    fn incident_reopened_after_its_ticket_closed_reopens_the_ticket() {
        let env = Env::start(0);
        let id = defender_incident(&env, "Suspicious scheduled task created on WS-0311");
        env.sync();
        let key = jira_key(&env, &id);

        // The service desk closes the issue; Defender follows.
        env.sims
            .jira
            .transition_as_analyst(&key, "Done", Some("Done"))
            .unwrap();
        env.sync();
        let incident = env.sims.graph.incident(&id).unwrap();
        assert_eq!(incident.status, "resolved");
        assert_eq!(incident.classification.as_deref(), Some("truePositive"));

        // New alerts: the SOC reopens the incident in Defender.
        assert!(env.sims.graph.set_status(&id, "active"));
        env.sync();

        let issue = env.sims.jira.issue(&key).unwrap();
        assert_eq!(issue.status_category, "new", "the issue is reopened");
        assert_eq!(issue.status, "To Do");
        assert_eq!(
            issue.resolution, None,
            "Jira counts a resolution as resolved"
        );
        assert_eq!(env.sims.graph.incident(&id).unwrap().status, "active");
        assert_nothing_left_to_write(&env);
    }

    #[test]
    fn incident_reopened_in_progress_after_its_ticket_closed_puts_the_ticket_in_progress() {
        let env = Env::start(0);
        let id = defender_incident(&env, "Suspicious scheduled task created on WS-0312");
        env.sync();
        let key = jira_key(&env, &id);
        env.sims
            .jira
            .transition_as_analyst(&key, "Done", Some("Done"))
            .unwrap();
        env.sync();
        assert_eq!(env.sims.graph.incident(&id).unwrap().status, "resolved");

        // The SOC reopens it and goes straight back to work on it. The workflow
        // has no transition from Done to In Progress: Reopen, then Start Progress.
        assert!(env.sims.graph.set_status(&id, "inProgress"));
        let out = run_once(&env);

        let issue = env.sims.jira.issue(&key).unwrap();
        assert_eq!(
            (issue.status.as_str(), issue.resolution.as_deref()),
            ("In Progress", None),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_success(&out);
        assert_nothing_left_to_write(&env);
    }

    #[test]
    fn a_reopen_cut_short_between_two_transitions_finishes_without_undoing_the_incident() {
        let env = Env::start(0);
        let id = defender_incident(&env, "Impossible travel sign-in for a finance user");
        env.sync();
        let key = jira_key(&env, &id);
        env.sims
            .jira
            .transition_as_analyst(&key, "Done", Some("Done"))
            .unwrap();
        env.sync();

        // Reopened to inProgress: Reopen goes through, Start Progress fails.
        assert!(env.sims.graph.set_status(&id, "inProgress"));
        env.sims.jira.kit.inject(
            FaultRule::new(
                Some(Method::POST),
                format!("/rest/api/3/issue/{key}/transitions"),
                Effect::status(500),
            )
            .when(Trigger::Nth(2)),
        );
        let out = run_once(&env);
        assert!(!out.status.success());
        assert_eq!(env.sims.jira.issue(&key).unwrap().status, "To Do");

        // The bridge's own half-way To Do is not an analyst's reopen: the retry
        // finishes the move, and the incident stays in progress.
        env.make_retry_due(JIRA_PAIR, &id);
        let out = run_once(&env);
        assert_success(&out);
        assert_eq!(env.sims.jira.issue(&key).unwrap().status, "In Progress");
        assert_eq!(env.sims.graph.incident(&id).unwrap().status, "inProgress");
        assert_nothing_left_to_write(&env);
    }

    #[test]
    fn ticket_reopened_after_the_incident_resolved_reactivates_the_incident() {
        let env = Env::start(0);
        let id = defender_incident(&env, "Unusual volume of file deletion on SharePoint");
        env.sync();
        let key = jira_key(&env, &id);

        // The SOC resolves it in Defender as a false positive; Jira follows.
        env.sims
            .graph
            .update_as_defender(&id, |i| {
                i.status = "resolved".into();
                i.classification = Some("falsePositive".into());
            })
            .unwrap();
        env.sync();
        let issue = env.sims.jira.issue(&key).unwrap();
        assert_eq!(issue.status_category, "done");
        assert_eq!(issue.resolution.as_deref(), Some("Won't Do"));

        // The site owner disagrees: the service desk reopens the issue.
        env.sims
            .jira
            .transition_as_analyst(&key, "To Do", None)
            .unwrap();
        env.sync();

        let incident = env.sims.graph.incident(&id).unwrap();
        assert_eq!(incident.status, "active", "the incident is active again");
        assert_eq!(
            incident.classification.as_deref(),
            Some("falsePositive"),
            "a reopen keeps the verdict"
        );
        assert_eq!(env.sims.jira.issue(&key).unwrap().status_category, "new");
        assert_nothing_left_to_write(&env);
    }
}

mod sentinel_servicenow {
    use super::*;

    #[test]
    fn incident_reopened_after_its_ticket_closed_reopens_the_ticket() {
        let env = Env::start(0);
        let id = sentinel_incident(&env, "Brute force attack against Azure Portal");
        env.sync();
        let number = snow_number(&env, &id);

        // The service desk resolves the ticket; Sentinel closes the incident.
        env.sims
            .servicenow
            .resolve_as_analyst(&number, "Solution provided", "Blocked the source range.")
            .unwrap();
        env.sync();
        let incident = env.sims.sentinel.incident(&id).unwrap();
        assert_eq!(incident.status, "Closed");
        assert_eq!(incident.classification.as_deref(), Some("TruePositive"));

        // The attack resumes: the SOC reopens the incident in Sentinel.
        assert!(env.sims.sentinel.set_status(&id, "Active"));
        env.sync();

        let record = env.sims.servicenow.incident(&number).unwrap();
        assert_eq!(record["state"], "2", "the ticket is in progress again");
        assert_eq!(record["active"], "true");
        assert_eq!(record["resolved_at"], "", "{record:#?}");
        assert_eq!(env.sims.sentinel.incident(&id).unwrap().status, "Active");
        assert_nothing_left_to_write(&env);
    }

    #[test]
    fn ticket_reopened_after_the_incident_resolved_reactivates_the_incident() {
        let env = Env::start(0);
        let id = sentinel_incident(&env, "Anomalous RDP login detected on VM-BUILD-07");
        env.sync();
        let number = snow_number(&env, &id);

        // The SOC closes the incident in Sentinel; ServiceNow resolves the ticket.
        assert!(
            env.sims
                .sentinel
                .close(&id, "TruePositive", Some("SuspiciousActivity"))
        );
        env.sync();
        assert_eq!(env.sims.servicenow.incident(&number).unwrap()["state"], "6");

        // The caller reports the problem is back: the desk reopens the ticket.
        env.sims
            .servicenow
            .update_as_analyst(&number, |r| {
                r.insert("state".into(), "2".into());
            })
            .unwrap();
        env.sync();

        let incident = env.sims.sentinel.incident(&id).unwrap();
        assert_eq!(incident.status, "Active", "the incident is active again");
        assert_eq!(env.sims.servicenow.incident(&number).unwrap()["state"], "2");
        assert_nothing_left_to_write(&env);
    }
}
