//! `plan_copies` read as situations: what is recorded, what each side holds, and
//! the copies the engine is told to make. No IO.

use chrono::{TimeZone, Utc};

use super::*;

const RULES: CopyRules<'static> = CopyRules {
    sync: CommentSync {
        to_ticket: true,
        to_incident: true,
    },
    source_name: "Microsoft Defender",
    ticket_name: "Jira",
    ticket_limit: 32_000,
};

/// A comment written at 08:11 and `second` seconds.
fn said(id: Option<&str>, author: &str, second: u32, text: &str) -> Comment {
    Comment {
        id: id.map(str::to_string),
        author: Some(author.into()),
        created: Utc.with_ymd_and_hms(2026, 11, 22, 8, 11, second).unwrap(),
        text: text.into(),
    }
}

/// The copy the bridge writes of `comment`, as read back later.
fn copy_of(comment: &Comment, system: &str, limit: usize, id: &str) -> Comment {
    said(
        Some(id),
        "itsm-bridge",
        30,
        &render_copy(comment, system, limit),
    )
}

fn known(fingerprints: &[String]) -> HashSet<String> {
    fingerprints.iter().cloned().collect()
}

fn write(direction: Direction, text: String, fingerprint: String) -> CommentCopy {
    CommentCopy {
        direction,
        text,
        fingerprint,
        claim: None,
    }
}

#[test]
fn a_new_comment_each_way_is_copied_once_to_the_ticket_first() {
    let on_incident = vec![said(None, "Ana Ruiz", 0, "Blocked the sender.")];
    let on_ticket = vec![said(Some("10040"), "Bo Lind", 5, "Password reset done.")];
    let copies = plan_copies(&RULES, &HashSet::new(), &on_incident, &on_ticket);
    assert_eq!(
        copies,
        vec![
            write(
                Direction::ToTicket,
                "[itsm-bridge] Ana Ruiz wrote in Microsoft Defender at 2026-11-22 08:11 UTC:\nBlocked the sender.".into(),
                incident_fingerprint(&on_incident[0]),
            ),
            write(
                Direction::ToIncident,
                "[itsm-bridge] Bo Lind wrote in Jira at 2026-11-22 08:11 UTC:\nPassword reset done.".into(),
                "t:id:10040".into(),
            ),
        ]
    );

    // Once recorded, nothing is copied again.
    let recorded = known(&[incident_fingerprint(&on_incident[0]), "t:id:10040".into()]);
    assert_eq!(
        plan_copies(&RULES, &recorded, &on_incident, &on_ticket),
        vec![]
    );
}

#[test]
fn a_bridge_comment_is_never_copied_back() {
    let original = said(None, "Ana Ruiz", 0, "Blocked the sender.");
    let copy = copy_of(&original, "Microsoft Defender", 32_000, "10041");
    // The copy's record was lost: only its marker tells it apart.
    let copies = plan_copies(
        &RULES,
        &known(&[incident_fingerprint(&original)]),
        &[original],
        &[copy],
    );
    assert_eq!(copies, vec![]);

    let from_ticket = said(Some("10042"), "Bo Lind", 5, "Escalated.");
    let copy = said(
        None,
        "bridge",
        40,
        &render_copy(&from_ticket, "Jira", 4_000),
    );
    let copies = plan_copies(
        &RULES,
        &known(&["t:id:10042".into()]),
        &[copy],
        &[from_ticket],
    );
    assert_eq!(copies, vec![], "the copy on the incident stays there");
}

#[test]
fn a_retry_finds_its_earlier_copy_instead_of_writing_again() {
    // The last cycle wrote both copies, then lost the record of them.
    let on_incident_original = said(None, "Ana Ruiz", 0, "Blocked the sender.");
    let on_ticket_original = said(Some("10040"), "Bo Lind", 5, "Password reset done.");
    let on_ticket = vec![
        on_ticket_original.clone(),
        copy_of(&on_incident_original, "Microsoft Defender", 32_000, "10041"),
    ];
    let on_incident = vec![
        on_incident_original.clone(),
        said(
            None,
            "bridge",
            40,
            &render_copy(&on_ticket_original, "Jira", INCIDENT_LIMIT),
        ),
    ];
    let copies = plan_copies(&RULES, &HashSet::new(), &on_incident, &on_ticket);
    let claims: Vec<(Direction, Option<Claim>)> =
        copies.into_iter().map(|c| (c.direction, c.claim)).collect();
    assert_eq!(
        claims,
        vec![
            (
                Direction::ToTicket,
                Some(Claim::TicketComment {
                    fingerprint: "t:id:10041".into()
                })
            ),
            (Direction::ToIncident, Some(Claim::IncidentCopy)),
        ]
    );
}

#[test]
fn two_identical_comments_are_both_copied() {
    // Same author, same words, same minute: the copies read the same.
    let first = said(None, "Ana Ruiz", 0, "Still investigating.");
    let second = said(None, "Ana Ruiz", 20, "Still investigating.");
    let both = [first.clone(), second.clone()];
    let copies = plan_copies(&RULES, &HashSet::new(), &both, &[]);
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().all(|c| c.claim.is_none()), "{copies:?}");
    assert_ne!(copies[0].fingerprint, copies[1].fingerprint);

    // The first was copied and recorded: its copy is not taken for the second's.
    let first_copy = copy_of(&first, "Microsoft Defender", 32_000, "10050");
    let recorded = known(&[
        incident_fingerprint(&first),
        ticket_fingerprint(&first_copy),
    ]);
    let copies = plan_copies(&RULES, &recorded, &both, &[first_copy]);
    assert_eq!(
        copies,
        vec![write(
            Direction::ToTicket,
            render_copy(&second, "Microsoft Defender", 32_000),
            incident_fingerprint(&second),
        )]
    );

    // The same on the incident's side: one copy there, recorded for the first.
    let first = said(Some("10060"), "Bo Lind", 0, "Waiting on the user.");
    let second = said(Some("10061"), "Bo Lind", 20, "Waiting on the user.");
    let on_incident = [said(
        None,
        "bridge",
        40,
        &render_copy(&first, "Jira", INCIDENT_LIMIT),
    )];
    let copies = plan_copies(
        &RULES,
        &known(&["t:id:10060".into()]),
        &on_incident,
        &[first, second.clone()],
    );
    assert_eq!(
        copies,
        vec![write(
            Direction::ToIncident,
            render_copy(&second, "Jira", INCIDENT_LIMIT),
            "t:id:10061".into(),
        )]
    );
}

#[test]
fn each_way_is_copied_only_when_the_mapping_says() {
    let on_incident = vec![said(None, "Ana Ruiz", 0, "Blocked the sender.")];
    let on_ticket = vec![said(Some("10040"), "Bo Lind", 5, "Password reset done.")];
    let only_to_ticket = CopyRules {
        sync: CommentSync {
            to_ticket: true,
            to_incident: false,
        },
        ..RULES
    };
    let copies = plan_copies(&only_to_ticket, &HashSet::new(), &on_incident, &on_ticket);
    let directions: Vec<Direction> = copies.iter().map(|c| c.direction).collect();
    assert_eq!(directions, vec![Direction::ToTicket]);
    let off = CopyRules {
        sync: CommentSync::default(),
        ..RULES
    };
    assert_eq!(
        plan_copies(&off, &HashSet::new(), &on_incident, &on_ticket),
        vec![]
    );
}
