//! Merged ("redirected") incidents: following the chain to the survivor (the
//! pure `merge_walk` says what to read next), making sure it has a ticket, and
//! applying the mapping's merge policy (closing as a duplicate, the notes on
//! both tickets, raising the survivor's priority).

use super::apply::Applied;
use super::*;
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

        let policy = self.rt.mapping.merge;
        let merged_into = target.survivor.as_ref().map(|s| s.id.clone());
        let intent = self
            .begin(&Action::Merge {
                incident: Box::new(source.clone()),
                target_id: merged_into.clone(),
            })
            .await?;
        let mut changes = vec![FieldChange {
            field: "link".into(),
            old: Some("active".into()),
            new: Some(format!(
                "merged into {}",
                merged_into.as_deref().unwrap_or("?")
            )),
            conflict: None,
        }];
        let failure = self
            .apply_merge_policy(&source, &mut source_link, &target, &mut changes, links)
            .await?;
        if let Some(error) = failure {
            self.report.failed += 1;
            let record = LedgerRecord {
                changes,
                outcome: Outcome::Failed,
                detail: Some(error.clone()),
                ..self.record(
                    "merge",
                    Some(Direction::ToTicket),
                    &source.id,
                    Some(&source_link.ticket_key),
                )
            };
            self.store.finish_intent(intent, None, &[record])?;
            let e = ConnectorError::new(ErrorKind::Transient, self.rt.pair.clone(), error);
            return self.note_failure(&source.id, Some(&source_link.ticket_key), "merge", &e);
        }
        source_link.state = LinkState::Merged;
        source_link.merged_into = merged_into;
        source_link.saw_incident(source.version());
        source_link.updated = self.clock.now();
        let where_to = &target.where_to;
        let record = LedgerRecord {
            changes,
            outcome: Outcome::Ok,
            detail: Some(match &target.problem {
                Some(p) => format!("policy {}; {p}", policy.as_str()),
                None => format!("policy {}; merged into {where_to}", policy.as_str()),
            }),
            ..self.record(
                "merge",
                Some(Direction::ToTicket),
                &source.id,
                Some(&source_link.ticket_key),
            )
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
        let where_to = &target.where_to;
        let record = LedgerRecord {
            outcome: if target.problem.is_some() {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            detail: Some(match &target.problem {
                Some(p) => format!("merged before it had a ticket; {p}"),
                None => format!(
                    "merged into {where_to} before it had a ticket; no ticket is made for it"
                ),
            }),
            ..self.record("merge", None, &source.id, None)
        };
        if self.last_ledger_detail(&source.id, "merge")? != record.detail {
            self.store.append_ledger(&[record])?;
        }
        Ok(())
    }

    /// The mapping's merge policy on the merged incident's ticket: closed as a
    /// duplicate, a note on it and on the survivor's ticket, the survivor's
    /// priority raised. Says what failed, if anything did.
    async fn apply_merge_policy(
        &mut self,
        source: &IncidentSnapshot,
        source_link: &mut Link,
        target: &MergeTarget,
        changes: &mut Vec<FieldChange>,
        links: &mut HashMap<String, Link>,
    ) -> Result<Option<String>, EngineError> {
        let policy = self.rt.mapping.merge;
        let where_to = &target.where_to;
        let mut failure = None;
        if policy == MergePolicy::CloseAsDuplicate {
            for action in reconcile::plan_close(self.spec(), source_link, source) {
                match self.update(source_link.clone(), action, false).await? {
                    Applied::Done(link) => *source_link = link,
                    Applied::Failed | Applied::Conflict(_) => {
                        failure = Some("closing its ticket failed".to_string())
                    }
                }
            }
        }
        if policy != MergePolicy::KeepOpen && failure.is_none() {
            let label = &source.display_id;
            let to_source = format!(
                "[itsm-bridge] Incident {label} was merged into {where_to}. Work continues there; this ticket is no longer synced."
            );
            if let Err(e) = self.comment_once(&source_link.ticket_key, &to_source).await {
                failure = Some(e.to_string());
            } else {
                changes.push(FieldChange {
                    field: "comment".into(),
                    old: None,
                    new: Some(to_source),
                    conflict: None,
                });
            }
            if let Some(target) = &target.link {
                let to_target = format!(
                    "[itsm-bridge] This incident absorbed incident {label} (ticket {}: {}).",
                    source_link.ticket_key, source_link.ticket_url
                );
                match self.comment_once(&target.ticket_key, &to_target).await {
                    Err(e) => failure = Some(e.to_string()),
                    Ok(()) => changes.push(FieldChange {
                        field: "target_comment".into(),
                        old: None,
                        new: Some(to_target),
                        conflict: None,
                    }),
                }
            }
        }
        if self.rt.mapping.raise_priority
            && policy != MergePolicy::KeepOpen
            && failure.is_none()
            && let (Some(survivor), Some(target)) = (&target.survivor, &target.link)
        {
            match self
                .raise_priority(source, survivor, target.clone())
                .await?
            {
                Ok(Some((raised, link))) => {
                    changes.extend(raised);
                    links.insert(link.incident_id.clone(), link);
                }
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        Ok(failure)
    }

    /// `[merge] raise_priority`: when the merged incident was more severe than the
    /// survivor, the survivor's ticket takes the merged one's priority. The raised
    /// value is held (see `Agreed::held`): it stays until the survivor's own
    /// severity changes. `Err` says why the raise failed.
    pub(super) async fn raise_priority(
        &mut self,
        merged: &IncidentSnapshot,
        survivor: &IncidentSnapshot,
        target: Link,
    ) -> Result<Result<Option<(Vec<FieldChange>, Link)>, String>, EngineError> {
        let source = self.rt.source_name.as_str();
        let rank = |v: &Option<String>| v.as_deref().and_then(crate::vocab::severity_rank);
        let mut update = TicketUpdate::default();
        let mut changes = Vec::new();
        let mut baseline = Baseline::new();
        for rule in self
            .rt
            .mapping
            .fields
            .iter()
            .filter(|r| r.flow.to_ticket() && r.incident_attr() == Some("severity"))
        {
            let theirs = rule.incident_value(merged, source);
            let ours = rule.incident_value(survivor, source);
            if rank(&theirs) <= rank(&ours) {
                continue;
            }
            let Some(raised) = rule.map_to_ticket(theirs.as_deref()) else {
                continue;
            };
            let now = target
                .baseline
                .get(&rule.name)
                .and_then(|a| a.ticket.clone());
            if now.as_deref() == Some(raised.as_str()) {
                continue;
            }
            update.set.insert(rule.ticket.clone(), Some(raised.clone()));
            changes.push(FieldChange {
                field: rule.name.clone(),
                old: now,
                new: Some(raised.clone()),
                conflict: None,
            });
            baseline.insert(
                rule.name.clone(),
                Agreed {
                    incident: ours,
                    ticket: Some(raised),
                    held: true,
                },
            );
        }
        if update.is_empty() {
            return Ok(Ok(None));
        }
        let action = Action::UpdateTicket {
            incident_id: target.incident_id.clone(),
            ticket_key: target.ticket_key.clone(),
            update,
            changes: changes.clone(),
            baseline,
            incident_seen: None,
            ticket_seen: None,
        };
        let key = target.ticket_key.clone();
        Ok(match self.update(target, action, false).await? {
            Applied::Done(link) => {
                for c in &mut changes {
                    c.field = format!("target {} ({key})", c.field);
                }
                Ok(Some((changes, link)))
            }
            Applied::Failed | Applied::Conflict(_) => {
                Err(format!("raising the priority of {key} failed"))
            }
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

/// The survivor of a merge, its ticket, and how the notes name it.
struct MergeTarget {
    survivor: Option<IncidentSnapshot>,
    link: Option<Link>,
    problem: Option<String>,
    /// The survivor as the notes name it: its ticket, else its incident.
    where_to: String,
}

impl MergeTarget {
    fn new(walk: WalkEnd, link: Option<Link>) -> MergeTarget {
        let where_to = match (&walk.survivor, &link) {
            (_, Some(t)) => format!(
                "incident {} (ticket {}: {})",
                t.incident_display_id, t.ticket_key, t.ticket_url
            ),
            (Some(s), None) => format!("incident {} ({})", s.display_id, s.web_url),
            (None, None) => "another incident".to_string(),
        };
        MergeTarget {
            survivor: walk.survivor,
            link,
            problem: walk.problem,
            where_to,
        }
    }
}
