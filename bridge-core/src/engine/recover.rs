//! Recovery of the intents a previous process left behind: a create whose answer
//! was lost is looked up with `find_created` and adopted, or made once the ticket
//! system can tell; an interrupted update is re-planned from fresh reads.

use super::*;

impl Cycle<'_> {
    /// Re-runs the intents a previous process left behind.
    pub(super) async fn recover(&mut self) -> Result<(), EngineError> {
        if self.dry_run {
            return Ok(());
        }
        for (id, intent) in self.store.pending_intents()? {
            if intent.pair != self.rt.pair {
                continue;
            }
            let action: Option<Action> = serde_json::from_str(&intent.payload).ok();
            match action {
                Some(Action::CreateTicket {
                    incident,
                    create,
                    baseline,
                }) => {
                    // Whatever the incident did meanwhile is read afresh afterwards.
                    self.resolve_create(id, &intent, *incident, create, baseline)
                        .await?;
                }
                _ => {
                    // Updates are re-planned from fresh reads: the poll will see both
                    // sides as they are now and the baseline as it was.
                    let record = LedgerRecord { changes: Vec::new(), outcome: Outcome::Skipped, detail: Some("interrupted before its outcome was recorded; re-planned from fresh reads".into()), ..self.record(&intent.kind, None, &intent.incident_id, None) };
                    self.store.finish_intent(id, None, &[record])?;
                    // The watermark may have moved past it: read it afresh this cycle.
                    self.retry.insert(intent.incident_id);
                }
            }
        }
        Ok(())
    }

    /// A create whose outcome is unknown (a crash, a lost answer): adopts the
    /// ticket it made, or makes it, as soon as the ticket system can say which.
    /// A system that can only tell through a lagging search index holds it back
    /// until `adopt_after` has passed since the create began (the report says
    /// until when); a lookup that fails leaves it pending for the next cycle.
    pub(super) async fn resolve_create(
        &mut self,
        id: IntentId,
        intent: &Intent,
        incident: IncidentSnapshot,
        create: crate::model::TicketCreate,
        baseline: Baseline,
    ) -> Result<Option<Link>, EngineError> {
        let lookup = self
            .rt
            .tickets
            .find_created(&create.correlation, intent.known_ticket.as_deref())
            .await;
        let ready_at = intent.created + self.rt.adopt_after;
        let prior = match lookup {
            Ok(Lookup::Found(ticket)) => Prior::Found(ticket),
            Ok(Lookup::Absent) => Prior::Absent,
            Ok(Lookup::Unsure) if self.clock.now() >= ready_at => Prior::Search,
            Ok(Lookup::Unsure) => {
                self.held_back.insert(incident.id.clone());
                self.report.waiting.push(WaitingCreate {
                    incident_id: incident.id,
                    ready_at,
                });
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(incident = %incident.id, error = %e, "cannot tell yet whether a create whose answer was lost made a ticket");
                self.held_back.insert(incident.id.clone());
                self.report.failed += 1;
                self.report.unresolved.push(format!(
                    "incident {}: a create whose answer was lost is still unresolved ({e})",
                    incident.id
                ));
                return Ok(None);
            }
        };
        self.retry.insert(incident.id.clone());
        self.create_ticket(Some(id), incident, create, baseline, prior)
            .await
    }

    /// Resolves the creates whose answer was lost earlier in this cycle, so that
    /// one `run --once` finishes them: a system whose lookup reads its records
    /// answers now; one that only has a lagging search is reported as waiting.
    pub(super) async fn resolve_lost_creates(&mut self) -> Result<(), EngineError> {
        if self.lost_creates.is_empty() {
            return Ok(());
        }
        let lost = std::mem::take(&mut self.lost_creates);
        for (id, intent) in self.store.pending_intents()? {
            if !lost.contains(&id) {
                continue;
            }
            let Ok(Action::CreateTicket {
                incident,
                create,
                baseline,
            }) = serde_json::from_str::<Action>(&intent.payload)
            else {
                continue;
            };
            let link = self
                .resolve_create(id, &intent, *incident, create, baseline)
                .await?;
            let comments = self.rt.mapping.comments;
            if let Some(link) = link
                && (comments.to_ticket || comments.to_incident)
            {
                self.sync_comments(&link, false, None, None).await?;
            }
        }
        Ok(())
    }
}
