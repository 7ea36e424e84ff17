//! The pages as pure functions: what each shows, and that every text from the
//! status or the store is shown as text.

use std::time::Duration;

use bridge_core::engine::CycleReport;
use bridge_core::ledger::{LedgerEntry, LedgerRecord, Outcome};
use bridge_core::model::{Agreed, Baseline, FieldChange, Link, LinkState, Timestamp};
use bridge_core::store::{DeadLetter, LinkPage, LinkStateFilter, StoreCounts};
use chrono::TimeZone;

use super::*;
use crate::report::{RunKind, Status};

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">";

fn at(seconds: i64) -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn status() -> Status {
    Status::new(
        [
            ("defender->jira".to_owned(), false),
            ("sentinel->servicenow".to_owned(), true),
        ],
        at(0),
    )
}

fn counts() -> StoreCounts {
    StoreCounts {
        links: vec![
            ("defender->jira".to_owned(), LinkState::Active, 5),
            ("defender->jira".to_owned(), LinkState::Merged, 1),
        ],
        dead_letters: vec![("sentinel->servicenow".to_owned(), 3)],
        pending: vec![],
        ledger_entries: 42,
    }
}

fn entry(seq: i64, pair: &str, detail: Option<&str>, outcome: Outcome) -> LedgerEntry {
    LedgerEntry {
        seq,
        record: LedgerRecord {
            actors: Default::default(),
            time: at(seq),
            pair: pair.to_owned(),
            direction: None,
            action: "update_ticket".to_owned(),
            incident_id: format!("inc-{seq}"),
            ticket_key: Some(format!("SEC-{seq}")),
            changes: vec![FieldChange {
                field: "summary".to_owned(),
                old: Some("old title".to_owned()),
                new: Some(HOSTILE.to_owned()),
                conflict: None,
            }],
            outcome,
            detail: detail.map(str::to_owned),
        },
        prev_hash: String::new(),
        hash: String::new(),
    }
}

fn link(incident: &str, key: &str) -> Link {
    let mut baseline = Baseline::new();
    baseline.insert(
        "summary".to_owned(),
        Agreed {
            incident: Some(HOSTILE.to_owned()),
            ticket: Some(format!("[Defender] {HOSTILE}")),
            held: false,
        },
    );
    baseline.insert(
        "status".to_owned(),
        Agreed {
            incident: Some("active".to_owned()),
            ticket: Some("In Progress".to_owned()),
            held: true,
        },
    );
    Link {
        pair: "defender->jira".to_owned(),
        incident_id: incident.to_owned(),
        incident_display_id: incident.to_owned(),
        incident_url: format!("https://security.microsoft.com/incidents/{incident}"),
        ticket_key: key.to_owned(),
        ticket_id: "10001".to_owned(),
        ticket_url: format!("https://acme.atlassian.net/browse/{key}"),
        state: LinkState::Active,
        baseline,
        written_back: true,
        incident_modified: at(10),
        ticket_modified: at(20),
        incident_version: None,
        ticket_version: Some("3".to_owned()),
        created: at(0),
        updated: at(30),
        merged_into: None,
    }
}

fn letter() -> DeadLetter {
    DeadLetter {
        pair: "sentinel->servicenow".to_owned(),
        incident_id: "abc/def".to_owned(),
        ticket_key: None,
        action: "create_ticket".to_owned(),
        last_error: format!("servicenow: HTTP 403 {HOSTILE}"),
        attempts: 2,
        first_failed: at(1),
        last_failed: at(2),
        next_attempt: at(300),
    }
}

/// Nothing hostile got through as markup.
fn assert_inert(html: &str) {
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("onerror=\""), "{html}");
}

#[test]
fn the_overview_shows_pairs_counts_problems_and_the_newest_entries_first() {
    let mut s = status();
    let report = CycleReport {
        pair: "defender->jira".to_owned(),
        incidents_seen: 6,
        tickets_created: 6,
        write_backs: 6,
        ..CycleReport::default()
    };
    s.record(
        0,
        RunKind::Cycle,
        at(10),
        Duration::from_millis(1200),
        Ok(&report),
    );
    s.record(
        1,
        RunKind::Cycle,
        at(11),
        Duration::ZERO,
        Err(format!("polling failed: {HOSTILE}")),
    );
    let entries = [
        entry(1, "defender->jira", None, Outcome::Ok),
        entry(2, "defender->jira", Some(HOSTILE), Outcome::Failed),
        entry(3, "defender->jira", None, Outcome::Ok),
    ];
    let letters = [letter()];
    let counts = counts();
    let html = render_overview(&Overview {
        status: &s,
        store: Ok((&counts, &letters, &entries)),
        reload: None,
        now: at(60),
        backlogs: &[(
            "defender->jira".to_owned(),
            bridge_core::engine::progress::Backlog {
                planned: 250,
                done: 40,
                since: std::time::Instant::now(),
            },
        )],
    });
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<td class=\"n\">40 / 250</td>"),
        "the backlog: {html}"
    );
    assert!(html.contains(r#"<meta http-equiv="refresh" content="30">"#));
    assert!(html.contains("<td class=\"ok\">ok</td><td>cycle 2026-11-01 08:00:10 UTC</td><td class=\"n\">1.2 s</td><td>read 6 incident(s), 0 ticket(s); 6 ticket(s) created, 6 written back</td>"), "{html}");
    assert!(html.contains("failing (1 in a row)"));
    assert!(html.contains("failed: polling failed: &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        html.contains(r#"<a href="/links?pair=defender-%3Ejira">5</a>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="/links/sentinel-%3Eservicenow/abc%2Fdef">"#),
        "{html}"
    );
    assert!(html.contains("42 entries; the newest 3"));
    let newest = html.rfind("inc-3").unwrap();
    let oldest = html.rfind("inc-1").unwrap();
    assert!(newest < oldest, "newest first");
    assert_inert(&html);
    assert!(!html.contains("<script"), "no script of its own");
}

#[test]
fn the_overview_says_when_the_store_cannot_be_read() {
    let html = render_overview(&Overview {
        status: &status(),
        store: Err("database error: <locked>"),
        reload: None,
        now: at(60),
        backlogs: &[],
    });
    assert!(html.contains("The store could not be read: database error: &lt;locked&gt;"));
    assert!(
        html.contains("<td class=\"n\"><a href=\"/links?pair=defender-%3Ejira\">?</a></td>"),
        "{html}"
    );
}

#[test]
fn every_page_says_a_reload_failed_with_its_problems() {
    let failure = ReloadFailure {
        at: at(5),
        problems: vec![
            "mappings/jira.toml:12:5: unknown field `sevrity`".to_owned(),
            format!("bridge.toml:3:1: {HOSTILE}"),
        ],
        held: false,
    };
    let pages = [
        render_dead_letters(Ok(&[]), Some(&failure), at(6)),
        render_ledger(&LedgerForm::default(), &[], Ok(&[]), Some(&failure), at(6)),
    ];
    for html in pages {
        assert!(html.contains("<strong>reload failed</strong>"), "{html}");
        assert!(html.contains("<pre>mappings/jira.toml:12:5: unknown field `sevrity`</pre>"));
        assert_inert(&html);
    }
    let html = render_dead_letters(Ok(&[]), None, at(6));
    assert!(!html.contains("reload failed"));
}

#[test]
fn the_links_table_keeps_its_filters_links_to_portals_and_pages() {
    let form = LinksForm {
        pair: "defender->jira".to_owned(),
        state: "open".to_owned(),
        search: "SEC".to_owned(),
        page: 2,
    };
    let page = LinkPage {
        links: vec![link("41877", "SEC-42")],
        total: 120,
    };
    let pairs = [
        "defender->jira".to_owned(),
        "sentinel->servicenow".to_owned(),
    ];
    let html = render_links(&form, &pairs, Ok(&page), None, at(60));
    assert!(
        html.contains(r#"<form class="filters" method="get" action="/links">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<option value="defender-&gt;jira" selected>defender-&gt;jira</option>"#),
        "{html}"
    );
    assert!(html.contains(r#"<option value="open" selected>open</option>"#));
    assert!(
        html.contains(r#"<input type="search" name="q" value="SEC">"#),
        "{html}"
    );
    assert!(html.contains(
        r#"<a href="https://security.microsoft.com/incidents/41877" rel="noreferrer">41877</a>"#
    ));
    assert!(html.contains(
        r#"<a href="https://acme.atlassian.net/browse/SEC-42" rel="noreferrer">SEC-42</a>"#
    ));
    assert!(html.contains(r#"href="/links/defender-%3Ejira/41877""#));
    assert!(html.contains("Links 51–51 of 120."), "{html}");
    assert!(html.contains("page 2 of 3"));
    assert!(
        html.contains(r#"href="/links?pair=defender-%3Ejira&amp;state=open&amp;q=SEC&amp;page=1""#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/links?pair=defender-%3Ejira&amp;state=open&amp;q=SEC&amp;page=3""#)
    );

    let query = form.to_query().unwrap();
    assert_eq!(query.state, Some(LinkStateFilter::Open));
    assert_eq!((query.offset, query.limit), (50, 50));
    let bad = LinksForm {
        state: "<b>".to_owned(),
        ..form
    };
    let error = bad.to_query().unwrap_err();
    assert!(
        error.contains("choose open, closed, merged, failing or pending"),
        "{error}"
    );
    let html = render_links(&bad, &pairs, Err(&error), None, at(60));
    assert!(
        html.contains("unknown state &quot;&lt;b&gt;&quot;"),
        "{html}"
    );
}

#[test]
fn a_links_page_shows_both_sides_as_agreed_and_its_history_as_text() {
    let l = link("41877", "SEC-42");
    let mut analysts = entry(9, "defender->jira", None, Outcome::Ok);
    analysts.record.actors = vec![bridge_core::ledger::Actor {
        name: "<b>Ann</b>".to_owned(),
        side: bridge_core::ledger::ActorSide::Ticket,
        at: Some(at(8)),
        fields: vec!["summary".to_owned()],
    }];
    let history = [entry(7, "defender->jira", None, Outcome::Ok), analysts];
    let dead = DeadLetter {
        pair: "defender->jira".to_owned(),
        incident_id: "41877".to_owned(),
        ..letter()
    };
    let html = render_link(&LinkView {
        pair: "defender->jira",
        incident_id: "41877",
        link: Some(&l),
        dead_letter: Some(&dead),
        history: &history,
        reload: None,
        now: at(60),
    });
    assert!(html.contains("<td class=\"incident-value\">&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;</td>"), "{html}");
    assert!(html.contains("<td>status</td><td class=\"incident-value\">active</td><td class=\"ticket-value\">In Progress</td><td>held</td>"));
    assert!(html.contains("<td>3</td>"), "the ticket's version");
    assert!(html.contains("2 ledger entries, newest first."));
    // Who made it, as text, with the side and fields.
    assert!(html.contains("<th>actor</th>"), "{html}");
    assert!(
        html.contains(r#"<div class="actor">&lt;b&gt;Ann&lt;/b&gt; (ticket): summary</div>"#),
        "{html}"
    );
    assert!(html.rfind("inc-9").unwrap() < html.rfind("inc-7").unwrap());
    assert!(html.contains("create_ticket failed 2 time(s)"));
    assert_inert(&html);

    let html = render_link(&LinkView {
        link: None,
        dead_letter: None,
        history: &[],
        ..LinkView {
            pair: "a->b",
            incident_id: "<x>",
            link: None,
            dead_letter: None,
            history: &[],
            reload: None,
            now: at(0),
        }
    });
    assert!(html.contains("No link of pair a-&gt;b for incident &lt;x&gt;."));
}

#[test]
fn the_ledger_form_checks_what_it_is_given() {
    let form = |since: &str, limit: &str| LedgerForm {
        pair: "defender->jira".to_owned(),
        since: since.to_owned(),
        limit: limit.to_owned(),
        ..LedgerForm::default()
    };
    let filter = form("2026-11-01", "").to_filter().unwrap();
    assert_eq!(filter.since, Some(at(-8 * 3600)), "midnight UTC");
    assert_eq!(filter.limit, Some(100));
    assert_eq!(filter.pair.as_deref(), Some("defender->jira"));
    assert_eq!(
        form("2026-11-01T08:00:05Z", "7").to_filter().unwrap().since,
        Some(at(5))
    );
    assert!(
        form("yesterday", "")
            .to_filter()
            .unwrap_err()
            .contains("give a date")
    );
    assert!(
        form("", "0")
            .to_filter()
            .unwrap_err()
            .contains("from 1 to 5000")
    );
    assert!(form("", "x").to_filter().is_err());
    let narrow = LedgerForm {
        ticket: "SEC-4".to_owned(),
        action: "update_ticket".to_owned(),
        until: "2026-11-02".to_owned(),
        ..form("", "")
    };
    let filter = narrow.to_filter().unwrap();
    assert_eq!(filter.actor, None);
    let by_ann = LedgerForm {
        actor: "Ann Analyst".to_owned(),
        ..form("", "")
    };
    assert_eq!(
        by_ann.to_filter().unwrap().actor.as_deref(),
        Some("Ann Analyst")
    );
    assert!(render_ledger(&by_ann, &[], Ok(&[]), None, at(0)).contains(
        r#"<input type="text" name="actor" placeholder="itsm-bridge" value="Ann Analyst">"#
    ));
    assert_eq!(filter.ticket_key.as_deref(), Some("SEC-4"));
    assert_eq!(filter.action.as_deref(), Some("update_ticket"));
    assert_eq!(filter.until, Some(at(16 * 3600)));
    let until = LedgerForm {
        until: "soon".to_owned(),
        ..form("", "")
    };
    assert!(until.to_filter().unwrap_err().starts_with("until \"soon\""));
    let html = render_ledger(&narrow, &[], Ok(&[]), None, at(0));
    assert!(
        html.contains(r#"<input type="text" name="ticket" value="SEC-4">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<input type="text" name="action" list="actions" value="update_ticket">"#)
    );
}

#[test]
fn dead_letters_show_their_last_error_as_text() {
    let letters = [letter()];
    let html = render_dead_letters(Ok(&letters), None, at(60));
    assert!(html.contains("1 incident(s) set aside"));
    assert!(
        html.contains("servicenow: HTTP 403 &lt;script&gt;"),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/links/sentinel-%3Eservicenow/abc%2Fdef">abc/def</a>"#));
    assert_inert(&html);
    assert!(render_dead_letters(Ok(&[]), None, at(60)).contains("No incident is waiting"));
}

#[test]
fn paths_and_queries_are_percent_encoded() {
    assert_eq!(encode("defender->jira"), "defender-%3Ejira");
    assert_eq!(encode("a b/ü&?#"), "a%20b%2F%C3%BC%26%3F%23");
    assert_eq!(link_path("x->y", "1/2"), "/links/x-%3Ey/1%2F2");
    assert_eq!(query(&[("a", "1"), ("b", ""), ("c", "<")]), "?a=1&c=%3C");
    assert_eq!(query(&[("a", "")]), "");
}

#[test]
fn only_web_urls_become_portal_links() {
    assert_eq!(
        portal("SEC-1", "https://x.example/browse/SEC-1").into_string(),
        r#"<a href="https://x.example/browse/SEC-1" rel="noreferrer">SEC-1</a>"#
    );
    assert_eq!(
        portal("SEC-1", "javascript:alert(1)").into_string(),
        "SEC-1"
    );
    assert_eq!(portal("SEC-1", "").into_string(), "SEC-1");
}
