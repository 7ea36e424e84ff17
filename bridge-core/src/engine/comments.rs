//! Carrying comments across: reads both sides, asks `comments::plan_copies`
//! which copies to make, writes them and records their fingerprints and ledger
//! entries. The decisions are the planner's; this file does the IO.

use super::*;

impl Cycle<'_> {
    /// Carries new comments across, each way the mapping allows, as
    /// `comments::plan_copies` says: each copy is written (or an earlier copy
    /// claimed), then the fingerprints and ledger entries of those made are
    /// recorded in one transaction; the first failed write ends the link's turn.
    /// A ticket made this cycle holds only what the bridge wrote: its comments are
    /// not read back (`new_ticket`).
    /// `listed`: the incident's comments as this cycle's poll already had them
    /// all (`IncidentSource::listed_comments`), so they are not read again;
    /// `listed_ticket` the same of the ticket (`TicketSystem::listed_comments`).
    pub(super) async fn sync_comments(
        &mut self,
        link: &Link,
        new_ticket: bool,
        listed: Option<Vec<Comment>>,
        listed_ticket: Option<Vec<Comment>>,
    ) -> Result<(), EngineError> {
        use crate::comments::{Claim, CopyRules, plan_copies, ticket_fingerprint};
        let (incident_id, key) = (link.incident_id.as_str(), link.ticket_key.as_str());
        let known = self.store.synced_comments(&self.rt.pair, incident_id)?;
        let (on_incident, on_ticket) = match self
            .read_comments(incident_id, key, new_ticket, listed, listed_ticket)
            .await
        {
            Ok(sides) => sides,
            Err(e) => {
                self.report.failed += 1;
                return self.note_failure(incident_id, Some(key), "sync_comments", &e);
            }
        };
        let rules = CopyRules {
            sync: self.rt.mapping.comments,
            source_name: source_system_name(self.rt.mapping.source_kind),
            ticket_name: ticket_system_name(self.rt.mapping.ticket_kind),
            ticket_limit: comment_limit(self.rt.mapping.ticket_kind),
        };
        let mut fingerprints = Vec::new();
        let mut records = Vec::new();
        let mut failure = None;
        for copy in plan_copies(&rules, &known, &on_incident, &on_ticket) {
            let copy_fingerprint = match (copy.direction, copy.claim) {
                (_, Some(Claim::TicketComment { fingerprint })) => Some(fingerprint),
                (_, Some(Claim::IncidentCopy)) => None,
                (Direction::ToTicket, None) => {
                    match self.rt.tickets.add_comment(key, &copy.text).await {
                        Ok(written) => Some(ticket_fingerprint(&written)),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                (Direction::ToIncident, None) => {
                    if let Err(e) = self.rt.source.add_comment(incident_id, &copy.text).await {
                        failure = Some(e);
                        break;
                    }
                    None
                }
            };
            fingerprints.push(copy.fingerprint.clone());
            fingerprints.extend(copy_fingerprint);
            let original = match copy.direction {
                Direction::ToTicket => on_incident
                    .iter()
                    .find(|c| crate::comments::incident_fingerprint(c) == copy.fingerprint),
                Direction::ToIncident => on_ticket
                    .iter()
                    .find(|c| ticket_fingerprint(c) == copy.fingerprint),
            };
            records.push(LedgerRecord {
                actors: vec![Self::comment_actor(copy.direction, original)],
                changes: vec![FieldChange {
                    field: "comment".into(),
                    old: None,
                    new: Some(copy.text),
                    conflict: None,
                }],
                ..self.record("copy_comment", Some(copy.direction), incident_id, Some(key))
            });
        }
        if !fingerprints.is_empty() {
            self.report.comments_copied += records.len();
            self.store.record_synced_comments(
                &self.rt.pair,
                incident_id,
                &fingerprints,
                &records,
            )?;
        }
        if let Some(e) = failure {
            self.report.failed += 1;
            return self.note_failure(incident_id, Some(key), "sync_comments", &e);
        }
        Ok(())
    }

    /// The comments on both sides of a link: as `get` just read them (a sweep, a
    /// retry) when their comments came with them, otherwise read now. A ticket
    /// made this cycle (`new_ticket`) holds none but the bridge's. `listed` and
    /// `listed_ticket`: what this cycle's listings had in full, if they did.
    pub(super) async fn read_comments(
        &mut self,
        incident_id: &str,
        key: &str,
        new_ticket: bool,
        listed: Option<Vec<Comment>>,
        listed_ticket: Option<Vec<Comment>>,
    ) -> Result<(Vec<Comment>, Vec<Comment>), ConnectorError> {
        let fetched = self.fetched.remove(incident_id);
        let (got_incident, got_ticket) = match fetched {
            Some((i, t)) => (
                self.rt.source.get_has_comments().then_some(i.comments),
                self.rt.tickets.get_has_comments().then_some(t.comments),
            ),
            None => (listed, listed_ticket),
        };
        let on_incident = match got_incident {
            Some(c) => c,
            None => self.rt.source.comments(incident_id).await?,
        };
        let on_ticket = match (new_ticket, got_ticket) {
            (true, _) => Vec::new(),
            (false, Some(c)) => c,
            (false, None) => self.rt.tickets.comments(key).await?,
        };
        Ok((on_incident, on_ticket))
    }
}

/// How people call the systems, in copied comments.
pub(super) fn source_system_name(kind: crate::vocab::SourceKind) -> &'static str {
    match kind {
        crate::vocab::SourceKind::Graph => "Microsoft Defender",
        crate::vocab::SourceKind::Sentinel => "Microsoft Sentinel",
    }
}

/// The longest comment a ticket system takes (Jira allows 32,767 characters; a
/// ServiceNow journal entry is kept well under its column size).
pub(super) fn comment_limit(kind: crate::vocab::TicketKind) -> usize {
    match kind {
        crate::vocab::TicketKind::Jira => 32_000,
        _ => 4_000,
    }
}
