//! Merged ("redirected") incidents: following the chain to the survivor (the
//! pure `merge_walk` says what to read next), making sure it has a ticket, and
//! carrying out the mapping's merge policy as the pure `merge_plan` decides it
//! (closing as a duplicate, the notes on both tickets, raising the survivor's
//! priority).

use super::apply::Applied;
use super::*;
use crate::merge_plan::{self, MergePlan, MergeTarget};
use crate::merge_walk::{Found, MergeWalk, Step, WalkEnd};

impl Cycle<'_> {
    /// A merged ("redirected") incident: follows the chain to the surviving incident
    /// (bounded; a loop or a dangling end is recorded, not followed), makes sure the
    /// survivor has a ticket, then applies the mapping's merge policy to the merged
    /// incident's ticket and marks its link merged, so it is no longer synced.
    pub(super) async fn merge(
        &mut self,
        source: IncidentSnapshot,
        target_id: Option<String>,
        links: &mut HashMap<String, Link>,
    ) -> Result<(), EngineError> {
        let Some(walk) = self.follow_chain(&source, target_id).await? else {
            return Ok(());
        };
        // The survivor needs a ticket, whichever order the bridge saw things in.
        let target_link = match &walk.survivor {
            Some(survivor) => self.survivor_ticket(survivor, links).await?,
            None => None,
        };
        let target = MergeTarget::new(walk, target_link);

        let source_link = match links.get(&source.id).cloned() {
            Some(l) => Some(l),
            None => self.store.link(&self.rt.pair, &source.id)?,
        };
        let Some(mut source_link) = source_link else {
            return self.note_merged_without_ticket(&source, &target);
        };
        if source_link.state == LinkState::Merged {
            return Ok(());
        }

        let plan = merge_plan::plan_merge(self.spec(), &source, &source_link, &target);
        let intent = self
            .begin(&Action::Merge {
                incident: Box::new(source.clone()),
                target_id: plan.merged_into.clone(),
            })
            .await?;
        let mut changes = plan.changes.clone();
        let failure = self
            .carry_out(
                &plan,
                &mut source_link,
                target.link.as_ref(),
                &mut changes,
                links,
            )
            .await?;
        let record = |cycle: &Self, ticket_key: &str| {
            cycle.record(
                "merge",
                Some(Direction::ToTicket),
                &source.id,
                Some(ticket_key),
            )
        };
        if let Some(error) = failure {
            self.report.failed += 1;
            let record = LedgerRecord {
                changes,
                outcome: Outcome::Failed,
                detail: Some(error.clone()),
                ..record(self, &source_link.ticket_key)
            };
            self.store.finish_intent(intent, None, &[record])?;
            let e = ConnectorError::new(ErrorKind::Transient, self.rt.pair.clone(), error);
            return self.note_failure(&source.id, Some(&source_link.ticket_key), "merge", &e);
        }
        source_link.state = LinkState::Merged;
        source_link.merged_into = plan.merged_into;
        source_link.saw_incident(source.version());
        source_link.updated = self.clock.now();
        let record = LedgerRecord {
            changes,
            outcome: Outcome::Ok,
            detail: Some(plan.detail),
            ..record(self, &source_link.ticket_key)
        };
        self.store
            .finish_intent(intent, Some(&source_link), &[record])?;
        self.report.merged += 1;
        links.insert(source_link.incident_id.clone(), source_link);
        Ok(())
    }

    /// Follows a merged incident's chain to the survivor, reading what the pure
    /// `MergeWalk` asks for. `None`: a read failed, and the incident was set
    /// aside as a dead letter.
    async fn follow_chain(
        &mut self,
        source: &IncidentSnapshot,
        target_id: Option<String>,
    ) -> Result<Option<WalkEnd>, EngineError> {
        // A listing may carry a merged incident whose target it could not look up:
        // read it once on its own, where a failure is this incident's alone and
        // sends it to the dead letters, before concluding the target is unknown.
        let target_id = match target_id {
            Some(id) => Some(id),
            None => match self.rt.source.get(&source.id).await {
                Ok(fresh) => fresh.redirect_to,
                Err(e) => {
                    self.report.failed += 1;
                    self.note_failure(&source.id, None, "merge", &e)?;
                    return Ok(None);
                }
            },
        };
        let mut walk = MergeWalk::new(&source.id, target_id);
        loop {
            let next = match walk.poll() {
                Step::Done(end) => return Ok(Some(*end)),
                Step::Read(next) => next,
            };
            match self.rt.source.get(&next).await {
                Ok(snapshot) => walk.handle(Found::Incident(Box::new(snapshot))),
                Err(e) if e.kind == ErrorKind::NotFound => walk.handle(Found::Nothing),
                Err(e) => {
                    self.report.failed += 1;
                    self.note_failure(&source.id, None, "merge", &e)?;
                    return Ok(None);
                }
            }
        }
    }

    /// The survivor's ticket: its link, or a ticket made (or adopted) for it now
    /// through the outbox.
    async fn survivor_ticket(
        &mut self,
        survivor: &IncidentSnapshot,
        links: &mut HashMap<String, Link>,
    ) -> Result<Option<Link>, EngineError> {
        let mut target_link = match links.get(&survivor.id).cloned() {
            Some(l) => Some(l),
            None => self.store.link(&self.rt.pair, &survivor.id)?,
        };
        if target_link.is_none()
            && let Some(new) = reconcile::plan_new_ticket(self.spec(), survivor)
        {
            let intent = self.begin(&Action::from(new.clone())).await?;
            target_link = self
                .create_ticket(
                    Some(intent),
                    *new.incident,
                    new.create,
                    new.baseline,
                    Prior::Search,
                )
                .await?;
        }
        if let Some(l) = &target_link {
            links.insert(l.incident_id.clone(), l.clone());
        }
        Ok(target_link)
    }

    /// Merged before it ever had a ticket: nothing to close, and it never gets
    /// one. Recorded once, and again only if what there is to say changed (the
    /// poll's overlap window shows it again).
    fn note_merged_without_ticket(
        &mut self,
        source: &IncidentSnapshot,
        target: &MergeTarget,
    ) -> Result<(), EngineError> {
        let record = LedgerRecord {
            outcome: if target.problem.is_some() {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            detail: Some(target.unlinked_detail()),
            ..self.record("merge", None, &source.id, None)
        };
        if self.last_ledger_detail(&source.id, "merge")? != record.detail {
            self.store.append_ledger(&[record])?;
        }
        Ok(())
    }

    /// Carries a merge plan out in its order: every close action, then (if they
    /// all succeeded) both notes, then (if nothing failed) the priority raise.
    /// Adds what was written to `changes`; says what failed, if anything did.
    async fn carry_out(
        &mut self,
        plan: &MergePlan,
        source_link: &mut Link,
        survivor_link: Option<&Link>,
        changes: &mut Vec<FieldChange>,
        links: &mut HashMap<String, Link>,
    ) -> Result<Option<String>, EngineError> {
        let mut failure = None;
        for action in &plan.close {
            match self
                .update(source_link.clone(), action.clone(), false)
                .await?
            {
                Applied::Done(link) => *source_link = link,
                Applied::Failed | Applied::Conflict(_) => {
                    failure = Some(merge_plan::CLOSE_FAILED.to_string())
                }
            }
        }
        if failure.is_some() {
            return Ok(failure);
        }
        for note in &plan.notes {
            match self.comment_once(&note.ticket_key, &note.text).await {
                Err(e) => failure = Some(e.to_string()),
                Ok(()) => changes.push(note.change.clone()),
            }
        }
        if failure.is_some() {
            return Ok(failure);
        }
        let (Some(raise), Some(survivor_link)) = (&plan.raise, survivor_link) else {
            return Ok(None);
        };
        // The raise is the merge policy's, the bridge's own doing.
        let authors = self.bridge_acts(&survivor_link.incident_id);
        let raised = self
            .update(survivor_link.clone(), raise.action.clone(), false)
            .await?;
        self.restore_authors(&survivor_link.incident_id, authors);
        Ok(match raised {
            Applied::Done(link) => {
                changes.extend(raise.changes.iter().cloned());
                links.insert(link.incident_id.clone(), link);
                None
            }
            Applied::Failed | Applied::Conflict(_) => Some(raise.failure.clone()),
        })
    }

    /// The detail of the newest ledger entry of this pair with this action for the
    /// incident (read through the ledger's incident index).
    pub(super) fn last_ledger_detail(
        &self,
        incident_id: &str,
        action: &str,
    ) -> Result<Option<String>, EngineError> {
        let filter = crate::ledger::LedgerFilter {
            pair: Some(self.rt.pair.clone()),
            incident_id: Some(incident_id.to_string()),
            ..Default::default()
        };
        let mut last = None;
        self.store.for_each_ledger_entry(&filter, &mut |e| {
            if e.record.action == action {
                last = e.record.detail;
            }
            Ok(())
        })?;
        Ok(last)
    }

    /// Adds a comment to a ticket unless the ticket already carries that exact text
    /// (a retried merge must not say it twice).
    pub(super) async fn comment_once(&self, key: &str, text: &str) -> Result<(), ConnectorError> {
        let ticket = self.rt.tickets.get(key).await?;
        if ticket.comments.iter().any(|c| c.text.trim() == text.trim()) {
            return Ok(());
        }
        self.rt.tickets.add_comment(key, text).await.map(|_| ())
    }
}
