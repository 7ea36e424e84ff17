//! The comment planner: which comments to copy across, in which order, and which
//! copy already on the other side stands for one instead of writing it again.
//! Pure: the fingerprints already recorded and the comments both sides hold now
//! go in, the copies to make come out; the engine reads, writes and records.

use std::collections::HashSet;

use super::{fingerprint, is_bridge_comment, render_copy};
use crate::mapping::CommentSync;
use crate::model::{Comment, Direction};

/// The longest copy written to an incident.
pub const INCIDENT_LIMIT: usize = 4_000;

/// How one pair carries comments across.
#[derive(Debug, Clone, Copy)]
pub struct CopyRules<'a> {
    /// Which ways comments go (the mapping's `[comments]`).
    pub sync: CommentSync,
    /// What people call the incident source, in the header of a copy on the ticket.
    pub source_name: &'a str,
    /// What people call the ticket system, in the header of a copy on the incident.
    pub ticket_name: &'a str,
    /// The longest comment the ticket system takes.
    pub ticket_limit: usize,
}

/// One comment to carry across.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentCopy {
    pub direction: Direction,
    /// The copy's text: marker, who wrote the original where and when, the body.
    pub text: String,
    /// The original's fingerprint, recorded once the copy is made.
    pub fingerprint: String,
    /// A copy already on the other side that stands for this one; `None`: write it.
    pub claim: Option<Claim>,
}

/// A copy already made, taken instead of writing a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A copy on the ticket from a retry whose record was lost; its fingerprint
    /// is recorded with the original's.
    TicketComment { fingerprint: String },
    /// The incident already holds more copies reading the same than ticket
    /// comments reading the same were recorded as copied. Copies on the
    /// incident are not recorded one by one, so they are counted instead.
    IncidentCopy,
}

/// The fingerprint recorded for a comment on the incident.
pub fn incident_fingerprint(comment: &Comment) -> String {
    format!("i:{}", fingerprint(comment))
}

/// The fingerprint recorded for a comment on the ticket (an original or a copy).
pub fn ticket_fingerprint(comment: &Comment) -> String {
    format!("t:{}", fingerprint(comment))
}

/// The copies to make for one link, to the ticket first (in the incident's
/// order), then to the incident (in the ticket's order).
///
/// A comment is copied once: one whose fingerprint is `known` is skipped, and so
/// is every comment the bridge wrote (the marker), so a copy is never copied
/// back. A copy already on the other side (a retry whose record was lost) is
/// claimed, unless it is the recorded copy of an earlier comment that read the
/// same (same author, text and minute): two such comments get two copies.
///
/// The plan is made up front: a copy the engine writes is not among the comments
/// read before it, so its fingerprint (known only once it is written) never
/// changes what a later copy decides.
pub fn plan_copies(
    rules: &CopyRules<'_>,
    known: &HashSet<String>,
    on_incident: &[Comment],
    on_ticket: &[Comment],
) -> Vec<CommentCopy> {
    let mut copies = Vec::new();
    // The fingerprints this plan records, as it goes.
    let mut recorded: Vec<String> = Vec::new();
    if rules.sync.to_ticket {
        for comment in on_incident {
            let fingerprint = incident_fingerprint(comment);
            if known.contains(&fingerprint) || is_bridge_comment(&comment.text) {
                continue;
            }
            let text = render_copy(comment, rules.source_name, rules.ticket_limit);
            let claim = on_ticket
                .iter()
                .filter(|c| c.text.trim() == text.trim())
                .map(ticket_fingerprint)
                .find(|fp| !known.contains(fp) && !recorded.contains(fp));
            recorded.push(fingerprint.clone());
            recorded.extend(claim.clone());
            copies.push(CommentCopy {
                direction: Direction::ToTicket,
                text,
                fingerprint,
                claim: claim.map(|fingerprint| Claim::TicketComment { fingerprint }),
            });
        }
    }
    if rules.sync.to_incident {
        for comment in on_ticket {
            let fingerprint = ticket_fingerprint(comment);
            if known.contains(&fingerprint)
                || recorded.contains(&fingerprint)
                || is_bridge_comment(&comment.text)
            {
                continue;
            }
            let text = render_copy(comment, rules.ticket_name, INCIDENT_LIMIT);
            let on_incident_already = on_incident
                .iter()
                .filter(|c| c.text.trim() == text.trim())
                .count();
            let copied_already = on_ticket
                .iter()
                .filter(|c| {
                    let fp = ticket_fingerprint(c);
                    (known.contains(&fp) || recorded.contains(&fp))
                        && render_copy(c, rules.ticket_name, INCIDENT_LIMIT).trim() == text.trim()
                })
                .count();
            recorded.push(fingerprint.clone());
            copies.push(CommentCopy {
                direction: Direction::ToIncident,
                text,
                fingerprint,
                claim: (on_incident_already > copied_already).then_some(Claim::IncidentCopy),
            });
        }
    }
    copies
}

#[cfg(test)]
mod tests;
