//! Carrying a plan out through the outbox: each remote write is committed as an
//! intent first, and its link baseline and ledger entry are committed together
//! after it succeeded. Creates (and adoptions), write-backs, updates with their
//! read-back, re-reads and re-plans on a concurrent change, dead letters.

use super::*;

impl Cycle<'_> {
    pub(super) async fn reconcile_and_apply(
        &mut self,
        incidents: &[IncidentSnapshot],
        tickets: &[TicketSnapshot],
        links: Vec<Link>,
    ) -> Result<(), EngineError> {
        let input = Input {
            incidents,
            tickets,
            links: &links,
        };
        let plan: Plan = if self.sweeping {
            reconcile::reconcile_all(self.spec(), input)
        } else {
            reconcile::reconcile(self.spec(), input)
        };
        if self.dry_run {
            self.report.planned.extend(plan.actions);
            return Ok(());
        }
        // Links whose incident or ticket moved: their comments may have too.
        let comments = self.rt.mapping.comments;
        let mut moved = BTreeSet::new();
        if comments.to_ticket || comments.to_incident {
            for link in &links {
                let incident_moved = incidents.iter().any(|i| {
                    i.id == link.incident_id
                        && i.version().freshness(&link.incident_seen()) == Freshness::Newer
                });
                let ticket_moved = tickets.iter().any(|t| {
                    t.key == link.ticket_key
                        && t.version().freshness(&link.ticket_seen()) == Freshness::Newer
                });
                let retried = self.retry.contains(&link.incident_id);
                if incident_moved || ticket_moved || retried || self.sweeping {
                    moved.insert(link.incident_id.clone());
                }
            }
        }
        let known: HashSet<String> = links.iter().map(|l| l.incident_id.clone()).collect();
        let mut links: HashMap<String, Link> = links
            .into_iter()
            .map(|l| (l.incident_id.clone(), l))
            .collect();
        let read: HashMap<&str, &IncidentSnapshot> =
            incidents.iter().map(|i| (i.id.as_str(), i)).collect();
        let listed_tickets: HashMap<&str, &TicketSnapshot> =
            tickets.iter().map(|t| (t.key.as_str(), t)).collect();
        // Incidents the plan updates: their comments are read after the write,
        // whose answer becomes the version the link has seen (a comment made
        // since the listing would otherwise be passed over).
        let updated: HashSet<String> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::UpdateIncident { .. } | Action::Merge { .. }))
            .map(|a| a.incident_id().to_string())
            .collect();
        // Likewise the tickets it updates: a comment made since the listing
        // would be passed over once the update's answer is the version held.
        let ticket_updated: HashSet<String> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::UpdateTicket { .. } | Action::Merge { .. }))
            .map(|a| a.incident_id().to_string())
            .collect();
        let creates = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateTicket { .. }))
            .count();
        progress::planned(&self.rt.pair, creates);
        // Who made what the plan carries, judged against the links as the plan
        // was made from them (applying a link's first action moves it on).
        let planned: BTreeSet<String> = plan
            .actions
            .iter()
            .map(|a| a.incident_id().to_string())
            .collect();
        for id in &planned {
            let link = links.get(id);
            let ticket = link.and_then(|l| listed_tickets.get(l.ticket_key.as_str()).copied());
            self.note_authors(id, read.get(id.as_str()).copied(), ticket, link);
        }
        for action in plan.actions {
            let create = matches!(action, Action::CreateTicket { .. });
            // Whatever the plan writes, comments are read afresh afterwards.
            let id = action.incident_id().to_string();
            self.fetched.remove(&id);
            if let Some(incident) = read.get(id.as_str()) {
                self.listed.insert(id.clone(), (*incident).clone());
            }
            self.apply(action, &mut links, true).await?;
            self.listed.remove(&id);
            if create {
                progress::done(&self.rt.pair);
            }
        }
        for id in &planned {
            self.authors.remove(id);
        }
        if comments.to_ticket || comments.to_incident {
            // New tickets take the incident's existing comments with them.
            let new: BTreeSet<String> = links
                .keys()
                .filter(|id| !known.contains(*id))
                .cloned()
                .collect();
            moved.extend(new.iter().cloned());
            for id in moved {
                if let Some(link) = links.get(&id).filter(|l| l.state == LinkState::Active) {
                    let link = link.clone();
                    let is_new = new.contains(&id);
                    // The incident's comments as this cycle listed them, where
                    // the listing had them all (a ticket made just now takes
                    // those with it), unless the plan wrote to the incident.
                    // An incident the plan updated: the comments the write's
                    // answer had (the version the link now holds), where that
                    // answer had them all.
                    let listed = match self.wrote.remove(&id) {
                        Some(written) => self.rt.source.listed_comments(&written),
                        None => read
                            .get(id.as_str())
                            .filter(|_| !updated.contains(&id))
                            .and_then(|i| self.rt.source.listed_comments(i)),
                    };
                    let listed_ticket = match self.wrote_ticket.remove(&id) {
                        Some(written) => Some(written),
                        None => listed_tickets
                            .get(link.ticket_key.as_str())
                            .filter(|_| !ticket_updated.contains(&id))
                            .and_then(|t| self.rt.tickets.listed_comments(t)),
                    };
                    self.sync_comments(&link, is_new, listed, listed_ticket)
                        .await?;
                }
            }
        }
        self.wrote.clear();
        self.wrote_ticket.clear();
        Ok(())
    }

    /// Carries out one action. A concurrent change on the remote side (a stale
    /// etag, a conflicting edit) makes the engine re-read both sides and re-plan
    /// the link once, when `replan` allows.
    pub(super) async fn apply(
        &mut self,
        action: Action,
        links: &mut HashMap<String, Link>,
        replan: bool,
    ) -> Result<(), EngineError> {
        match action {
            Action::Merge {
                incident,
                target_id,
            } => self.merge(*incident, target_id, links).await?,
            Action::CreateTicket {
                incident,
                create,
                baseline,
            } => {
                // A merge earlier in this plan may have made its ticket already.
                if links.contains_key(&incident.id) {
                    return Ok(());
                }
                let intent = self
                    .begin(&Action::CreateTicket {
                        incident: incident.clone(),
                        create: create.clone(),
                        baseline: baseline.clone(),
                    })
                    .await?;
                // A fresh create never searches first: no create was begun for
                // this incident before (its outcome would be an intent, which
                // `recover` looks up with `find_created` before anything else),
                // so there is no ticket of the bridge's to find.
                if let Some(link) = self
                    .create_ticket(Some(intent), *incident, create, baseline, Prior::Absent)
                    .await?
                {
                    links.insert(link.incident_id.clone(), link);
                }
            }
            action @ Action::WriteBack { .. } => {
                let Some(link) = links.get(action.incident_id()).cloned() else {
                    return Ok(());
                };
                if let Some(link) = self.write_back(link, action, None).await? {
                    links.insert(link.incident_id.clone(), link);
                }
            }
            action @ (Action::UpdateTicket { .. } | Action::UpdateIncident { .. }) => {
                let Some(link) = links.get(action.incident_id()).cloned() else {
                    return Ok(());
                };
                let to_incident = matches!(action, Action::UpdateIncident { .. });
                match self.update(link, action, replan).await? {
                    Applied::Done(link) => {
                        // What the bridge just wrote to the incident may change what
                        // the ticket shows (a template over a written attribute):
                        // that follows now, not when the incident next moves.
                        let link = match self.written_incident.take().filter(|_| to_incident) {
                            Some(incident) => {
                                let link = self.follow_incident_write(link, &incident).await?;
                                self.wrote.insert(incident.id.clone(), incident);
                                link
                            }
                            None => link,
                        };
                        links.insert(link.incident_id.clone(), link);
                    }
                    Applied::Failed => {}
                    Applied::Conflict(link) => Box::pin(self.replan(link, links)).await?,
                }
            }
            Action::RecordBaseline {
                incident_id,
                ticket_key,
                changes,
                baseline,
                incident_seen,
                ticket_seen,
                note,
            } => {
                let Some(mut link) = links.get(&incident_id).cloned() else {
                    return Ok(());
                };
                link.baseline.extend(baseline);
                let incident_seen =
                    self.unless_written(Direction::ToIncident, &link, &incident_seen);
                let ticket_seen = self.unless_written(Direction::ToTicket, &link, &ticket_seen);
                advance(&mut link, incident_seen, ticket_seen, self.clock.now());
                let records = if changes.is_empty() && note.is_empty() {
                    Vec::new()
                } else {
                    vec![LedgerRecord {
                        changes,
                        outcome: Outcome::Ok,
                        detail: (!note.is_empty()).then_some(note),
                        // Nothing was carried: no one's change to attribute.
                        actors: Vec::new(),
                        ..self.record("record_baseline", None, &incident_id, Some(&ticket_key))
                    }]
                };
                self.store.save_link(&link, &records)?;
                links.insert(incident_id, link);
            }
        }
        Ok(())
    }

    /// After a write to the incident: the ticket side of the incident as the
    /// source returned it (a template over an attribute the bridge just wrote),
    /// with the incident side of values held on the ticket moved along.
    async fn follow_incident_write(
        &mut self,
        mut link: Link,
        incident: &IncidentSnapshot,
    ) -> Result<Link, EngineError> {
        // A ticket value held on purpose (an analyst's own close notes) stays:
        // the bridge's write moved what its template shows, not an analyst.
        let mut rebased = false;
        for rule in &self.rt.mapping.fields {
            let render = rule.incident_value(incident, &self.rt.source_name);
            if let Some(agreed) = link.baseline.get_mut(&rule.name)
                && agreed.held
                && agreed.incident != render
            {
                agreed.incident = render;
                rebased = true;
            }
        }
        if rebased {
            self.store.save_link(&link, &[])?;
        }
        // What follows on the ticket is the bridge's own write's doing.
        let authors = self.bridge_acts(&link.incident_id);
        for follow in reconcile::plan_to_ticket(self.spec(), &link, incident) {
            if let Applied::Done(l) = self.update(link.clone(), follow, false).await? {
                link = l;
            }
        }
        self.restore_authors(&link.incident_id, authors);
        Ok(link)
    }

    /// Creates (or adopts) the ticket of a new incident, then writes back.
    /// `prior` says what is already known of a ticket made for it.
    pub(super) async fn create_ticket(
        &mut self,
        intent: Option<IntentId>,
        incident: IncidentSnapshot,
        create: crate::model::TicketCreate,
        baseline: Baseline,
        prior: Prior,
    ) -> Result<Option<Link>, EngineError> {
        let tickets = self.rt.tickets.clone();
        let found = match prior {
            Prior::Found(ticket) => Some(*ticket),
            Prior::Absent => None,
            Prior::Search => match tickets.find_by_correlation(&create.correlation).await {
                Ok(found) => found,
                Err(e) => return self.fail_create(intent, &incident, e).await,
            },
        };
        // Whether an adopted ticket was worked on before the bridge found it: then
        // its differences from what the create meant are someone's changes, to be
        // synced as such, not undone.
        let mut worked_on = false;
        let (ticket, adopted) = match found {
            Some(t) if t.modified > t.created => {
                worked_on = true;
                (t, true)
            }
            Some(t) => {
                // A ticket whose create answer was lost may not have been finished
                // (a Jira issue left in To Do before its transition), or was made
                // from an older look at the incident: bring it to what was meant
                // before recording the two sides as agreed.
                let mut finish = TicketUpdate::default();
                for (attr, wanted) in &create.attrs {
                    if t.attrs.get(attr) != Some(wanted) {
                        finish.set.insert(attr.clone(), Some(wanted.clone()));
                    }
                }
                if finish.is_empty() {
                    (t, true)
                } else {
                    match tickets.update(&t.key, &finish).await {
                        Ok(finished) => (finished, true),
                        Err(e) => return self.fail_create(intent, &incident, e).await,
                    }
                }
            }
            None => match tickets.create(&create).await {
                Ok(t) => (t, false),
                // The request may have reached the ticket system: whether the ticket
                // exists is unknown until its search index has caught up.
                Err(e) if e.kind == ErrorKind::Transient && intent.is_some() => {
                    let intent = intent.expect("checked above");
                    return self.create_outcome_unknown(intent, &incident, e);
                }
                Err(e) => return self.fail_create(intent, &incident, e).await,
            },
        };
        let link = self.new_link(&incident, &ticket, baseline, worked_on);
        self.record_linked(intent, &incident, &ticket, &create, &link, adopted)?;

        let write_back = reconcile::plan_write_back(self.spec(), &link, Some(&incident));
        match write_back {
            Some(action) => Ok(self
                .write_back(link.clone(), action, Some(&incident))
                .await?
                .or(Some(link))),
            None => Ok(Some(link)),
        }
    }

    /// Commits a linked ticket (finishing the create's intent, if it had one)
    /// with its `create_ticket` or `adopt_ticket` ledger entry.
    fn record_linked(
        &mut self,
        intent: Option<IntentId>,
        incident: &IncidentSnapshot,
        ticket: &TicketSnapshot,
        create: &crate::model::TicketCreate,
        link: &Link,
        adopted: bool,
    ) -> Result<(), StoreError> {
        let changes = create
            .attrs
            .iter()
            .map(|(k, v)| FieldChange {
                field: k.clone(),
                old: None,
                new: Some(v.clone()),
                conflict: None,
            })
            .collect();
        let (action, detail) = if adopted {
            (
                "adopt_ticket",
                Some(format!(
                    "found {} by its correlation id; not created again",
                    ticket.key
                )),
            )
        } else {
            ("create_ticket", None)
        };
        let actors = vec![crate::ledger::Actor {
            name: incident
                .modified_by
                .last
                .clone()
                .unwrap_or_else(|| crate::ledger::UNKNOWN_ACTOR.to_string()),
            side: crate::ledger::ActorSide::Incident,
            at: Some(incident.modified),
            fields: Vec::new(),
        }];
        let record = LedgerRecord {
            changes,
            outcome: Outcome::Ok,
            detail,
            actors,
            ..self.record(
                action,
                Some(Direction::ToTicket),
                &incident.id,
                Some(&ticket.key),
            )
        };
        match intent {
            Some(id) => self.store.finish_intent(id, Some(link), &[record])?,
            None => self.store.save_link(link, &[record])?,
        }
        if adopted {
            self.report.tickets_adopted += 1;
        } else {
            self.report.tickets_created += 1;
        }
        self.newest_ticket = Some(Some(ticket.key.clone()));
        tracing::info!(incident = %incident.id, ticket = %ticket.key, adopted, "ticket linked");
        Ok(())
    }

    /// The link of a ticket just made (or adopted) for `incident`. Unless someone
    /// worked on the ticket before the bridge found it, the baseline takes the
    /// ticket's side as the ticket holds it.
    fn new_link(
        &self,
        incident: &IncidentSnapshot,
        ticket: &TicketSnapshot,
        mut baseline: Baseline,
        worked_on: bool,
    ) -> Link {
        let now = self.clock.now();
        if !worked_on {
            for rule in &self.rt.mapping.fields {
                let entry = baseline.entry(rule.name.clone()).or_default();
                entry.ticket = ticket.attrs.get(&rule.ticket).cloned();
            }
        }
        Link {
            pair: self.rt.pair.clone(),
            incident_id: incident.id.clone(),
            incident_display_id: incident.display_id.clone(),
            incident_url: incident.web_url.clone(),
            ticket_key: ticket.key.clone(),
            ticket_id: ticket.id.clone(),
            ticket_url: ticket.url.clone(),
            state: LinkState::Active,
            baseline,
            written_back: false,
            incident_modified: incident.modified,
            incident_version: incident.etag.clone(),
            // A ticket worked on before adoption is read again as changed.
            ticket_modified: if worked_on {
                ticket.created
            } else {
                ticket.modified
            },
            ticket_version: if worked_on {
                None
            } else {
                ticket.version.clone()
            },
            created: now,
            updated: now,
            merged_into: None,
        }
    }

    /// Leaves the create's intent pending: the end of this cycle (or a later one,
    /// once the ticket system can tell) looks the ticket up and adopts it, or
    /// creates it then. Nothing after this incident's watermark is given up
    /// meanwhile.
    pub(super) fn create_outcome_unknown(
        &mut self,
        intent: IntentId,
        incident: &IncidentSnapshot,
        error: ConnectorError,
    ) -> Result<Option<Link>, EngineError> {
        tracing::warn!(incident = %incident.id, error = %error, "ticket create outcome unknown; will look for it before trying again");
        self.lost_creates.push(intent);
        self.held_back.insert(incident.id.clone());
        let record = LedgerRecord {
            outcome: Outcome::Failed,
            detail: Some(format!(
                "{error}; the ticket may exist: it will be looked up by correlation id before any new attempt"
            )),
            ..self.record(
                "create_ticket",
                Some(Direction::ToTicket),
                &incident.id,
                None,
            )
        };
        self.store.append_ledger(&[record])?;
        Ok(None)
    }

    pub(super) async fn fail_create(
        &mut self,
        intent: Option<IntentId>,
        incident: &IncidentSnapshot,
        error: ConnectorError,
    ) -> Result<Option<Link>, EngineError> {
        tracing::warn!(incident = %incident.id, error = %error, "ticket create failed");
        self.report.failed += 1;
        self.note_failure(&incident.id, None, "create_ticket", &error)?;
        let record = LedgerRecord {
            changes: Vec::new(),
            outcome: Outcome::Failed,
            detail: Some(error.to_string()),
            ..self.record(
                "create_ticket",
                Some(Direction::ToTicket),
                &incident.id,
                None,
            )
        };
        match intent {
            Some(id) => self.store.finish_intent(id, None, &[record])?,
            None => self.store.append_ledger(&[record])?,
        }
        Ok(None)
    }

    /// Adds the ticket's tags and comment to the incident. The comment is not added
    /// twice: the incident as returned by the tag update (or re-read) is checked first.
    pub(super) async fn write_back(
        &mut self,
        mut link: Link,
        action: Action,
        incident: Option<&IncidentSnapshot>,
    ) -> Result<Option<Link>, EngineError> {
        let Action::WriteBack {
            incident_id,
            ticket_key,
            tags,
            comment,
        } = &action
        else {
            return Ok(None);
        };
        let intent = self.begin(&action).await?;
        let listed = incident
            .or_else(|| self.listed.get(incident_id.as_str()))
            .cloned();
        let result = self
            .write_back_writes(incident_id, tags, comment.as_deref(), listed.as_ref())
            .await;
        let (outcome, written) = match result {
            Ok((changes, written)) => (Ok(changes), written),
            Err(e) => (Err(e), None),
        };
        let ok = outcome.is_ok();
        let record = match outcome {
            Ok(changes) => {
                // A later write to this incident in the same cycle starts from a
                // fresh read: the listed version is the bridge's own past now.
                self.listed.remove(incident_id.as_str());
                link.written_back = true;
                if let Some(own) = written {
                    link.saw_incident(own);
                }
                link.updated = self.clock.now();
                self.report.write_backs += 1;
                LedgerRecord {
                    changes,
                    outcome: Outcome::Ok,
                    detail: None,
                    ..self.record(
                        "write_back",
                        Some(Direction::ToIncident),
                        incident_id,
                        Some(ticket_key),
                    )
                }
            }
            Err(e) => {
                tracing::warn!(incident = %incident_id, error = %e, "write-back failed");
                self.report.failed += 1;
                self.note_failure(incident_id, Some(ticket_key), "write_back", &e)?;
                LedgerRecord {
                    changes: Vec::new(),
                    outcome: Outcome::Failed,
                    detail: Some(e.to_string()),
                    ..self.record(
                        "write_back",
                        Some(Direction::ToIncident),
                        incident_id,
                        Some(ticket_key),
                    )
                }
            }
        };
        self.store
            .finish_intent(intent, ok.then_some(&link), &[record])?;
        Ok(ok.then_some(link))
    }

    /// The write-back's remote writes, in the order that lets the bridge know the
    /// version they left the incident at. Where the incident embeds its comments
    /// (Graph), the comment goes first and the tags last, so that what the tag
    /// write returns is the incident after both: the version the bridge's own
    /// writes produced, recorded so that the next poll does not read it again as
    /// a change. Elsewhere (Sentinel) a comment moves the incident's etag, so the
    /// tag write goes first, with the etag the poll listed. Says what changed and
    /// that version, where the answers say it and nothing else came in between.
    async fn write_back_writes(
        &self,
        incident_id: &str,
        tags: &[String],
        comment: Option<&str>,
        listed: Option<&IncidentSnapshot>,
    ) -> Result<(Vec<FieldChange>, Option<Version>), ConnectorError> {
        let comment_first = self.rt.source.get_has_comments();
        let mut changes = Vec::new();
        let mut commented = false;
        let mut own: Option<Version> = None;
        for step in if comment_first { [0, 1] } else { [1, 0] } {
            if step == 0 {
                let Some(text) = comment else { continue };
                if let Some(change) = self
                    .write_back_comment(incident_id, text, listed, tags.is_empty(), &mut own)
                    .await?
                {
                    commented = true;
                    changes.push(change);
                }
            } else if !tags.is_empty() {
                let (change, after) = self
                    .write_back_tags(incident_id, tags, listed, commented)
                    .await?;
                own = after;
                changes.push(change);
            }
        }
        Ok((changes, own))
    }

    /// The write-back's comment, unless the incident already has it.
    async fn write_back_comment(
        &self,
        incident_id: &str,
        text: &str,
        listed: Option<&IncidentSnapshot>,
        no_tags: bool,
        own: &mut Option<Version>,
    ) -> Result<Option<FieldChange>, ConnectorError> {
        let source = &self.rt.source;
        let on_incident = match listed.and_then(|i| source.listed_comments(i)) {
            Some(comments) => comments,
            None => source.comments(incident_id).await?,
        };
        if on_incident.iter().any(|c| c.text == text) {
            return Ok(None);
        }
        let stamped = source.add_comment_stamped(incident_id, text).await?;
        // Sentinel: the comment moved the incident's time and etag after the tag
        // write; its answer gives the time, not the etag, so the version kept is
        // the time alone (the next listing of that version compares as tied, and
        // its fields are still compared with the baseline). Kept only after a tag
        // write the listing's etag let through, or with no tag write at all.
        if let Some(at) = stamped
            && listed.is_some()
            && (no_tags || own.is_some())
        {
            *own = Some(Version::new(at, None));
        }
        Ok(Some(FieldChange {
            field: "comment".into(),
            old: None,
            new: Some(text.to_string()),
            conflict: None,
        }))
    }

    /// The write-back's tags, from the listed incident where the poll had it.
    /// Says the change and, where only the bridge's own writes came in between,
    /// the version the write left the incident at.
    async fn write_back_tags(
        &self,
        incident_id: &str,
        tags: &[String],
        listed: Option<&IncidentSnapshot>,
        commented: bool,
    ) -> Result<(FieldChange, Option<Version>), ConnectorError> {
        let source = &self.rt.source;
        let update = IncidentUpdate {
            set: BTreeMap::new(),
            add_tags: tags.to_vec(),
        };
        // Changed since the listing (Sentinel's 409 on the listed etag): read it
        // again and write once more.
        let mut stale = false;
        let after = match listed {
            Some(i) => match source.update_listed(i, &update).await {
                Err(e) if e.kind == ErrorKind::Conflict => {
                    stale = true;
                    source.update(incident_id, &update).await?
                }
                after => after?,
            },
            None => source.update(incident_id, &update).await?,
        };
        // Only the bridge's own writes in between: nothing but the tags (and the
        // comment) differs from what the poll listed.
        let own = listed
            .filter(|i| {
                !stale
                    && after.attrs == i.attrs
                    && after.redirect_to == i.redirect_to
                    && after.comments.len() == i.comments.len() + usize::from(commented)
            })
            .map(|_| after.version());
        let change = FieldChange {
            field: "tags".into(),
            old: None,
            new: Some(tags.join(", ")),
            conflict: None,
        };
        Ok((change, own))
    }

    /// Updates one side and records the other side's new agreement.
    pub(super) async fn update(
        &mut self,
        mut link: Link,
        action: Action,
        replan: bool,
    ) -> Result<Applied, EngineError> {
        self.written_incident = None;
        let intent = self.begin(&action).await?;
        let actors = self.actors(&link, &action).unwrap_or_default();
        let Some((direction, changes, result)) = self.write_update(&mut link, &action).await else {
            return Ok(Applied::Failed);
        };
        let conflicts = changes.iter().filter(|c| c.conflict.is_some()).count();
        match result {
            Ok(detail) => {
                let record = LedgerRecord {
                    actors,
                    changes,
                    outcome: Outcome::Ok,
                    detail,
                    ..self.record(
                        action.kind(),
                        Some(direction),
                        &link.incident_id,
                        Some(&link.ticket_key),
                    )
                };
                self.store.finish_intent(intent, Some(&link), &[record])?;
                self.report.conflicts += conflicts;
                match direction {
                    Direction::ToTicket => self.report.tickets_updated += 1,
                    Direction::ToIncident => self.report.incidents_updated += 1,
                }
                Ok(Applied::Done(link))
            }
            Err(e) if e.kind == ErrorKind::Conflict && replan => {
                tracing::info!(incident = %link.incident_id, ticket = %link.ticket_key, error = %e, "concurrent change; re-reading both sides");
                let record = LedgerRecord {
                    actors,
                    changes,
                    outcome: Outcome::Skipped,
                    detail: Some(format!("{e}; re-read both sides and re-planned")),
                    ..self.record(
                        action.kind(),
                        Some(direction),
                        &link.incident_id,
                        Some(&link.ticket_key),
                    )
                };
                self.store.finish_intent(intent, None, &[record])?;
                Ok(Applied::Conflict(link))
            }
            Err(e) => {
                self.update_failed(intent, link, &action, direction, (changes, actors), e)
                    .await
            }
        }
    }

    /// Writes an update to its side. Says which way it went, the changes it
    /// carried, and on success what the remote read back that differs from what
    /// was asked; the link takes the new baseline and versions. `None`: not an
    /// update.
    async fn write_update(
        &mut self,
        link: &mut Link,
        action: &Action,
    ) -> Option<(
        Direction,
        Vec<FieldChange>,
        Result<Option<String>, ConnectorError>,
    )> {
        let now = self.clock.now();
        Some(match action {
            Action::UpdateTicket {
                ticket_key,
                update,
                changes,
                baseline,
                incident_seen,
                ..
            } => {
                let result = self.rt.tickets.update(ticket_key, update).await.map(|t| {
                    let mut baseline = baseline.clone();
                    let detail = read_back(
                        &self.rt.mapping,
                        &mut baseline,
                        &link.baseline,
                        |rule| update.set.contains_key(&rule.ticket),
                        |rule| t.attrs.get(&rule.ticket).cloned(),
                        |a| &mut a.ticket,
                    );
                    link.baseline.extend(baseline);
                    // The version the write produced is the bridge's own: what
                    // comes after it, even within the same second, is someone
                    // else's.
                    let incident_seen =
                        self.unless_written(Direction::ToIncident, link, incident_seen);
                    advance(link, incident_seen, Some(t.version()), now);
                    self.written_sides
                        .insert((Direction::ToTicket, link.incident_id.clone()));
                    if let Some(comments) = self.rt.tickets.written_comments(&t) {
                        self.wrote_ticket.insert(link.incident_id.clone(), comments);
                    }
                    detail
                });
                (Direction::ToTicket, changes.clone(), result)
            }
            Action::UpdateIncident {
                incident_id,
                update,
                changes,
                baseline,
                ticket_seen,
                ..
            } => {
                let result = match self.listed.get(incident_id) {
                    Some(listed) => self.rt.source.update_listed(listed, update).await,
                    None => self.rt.source.update(incident_id, update).await,
                };
                let result = result.map(|i| {
                    self.written_incident = Some(i.clone());
                    let mut baseline = baseline.clone();
                    let source = self.rt.source_name.as_str();
                    let detail = read_back(
                        &self.rt.mapping,
                        &mut baseline,
                        &link.baseline,
                        |rule| {
                            rule.incident_attr()
                                .is_some_and(|a| update.set.contains_key(a))
                        },
                        |rule| rule.incident_value(&i, source),
                        |a| &mut a.incident,
                    );
                    link.baseline.extend(baseline);
                    let ticket_seen = self.unless_written(Direction::ToTicket, link, ticket_seen);
                    advance(link, Some(i.version()), ticket_seen, now);
                    self.written_sides
                        .insert((Direction::ToIncident, link.incident_id.clone()));
                    detail
                });
                (Direction::ToIncident, changes.clone(), result)
            }
            _ => return None,
        })
    }

    /// An update that failed: the incident is set aside, what the ticket took
    /// of it is kept as the bridge's own, and the failure is recorded.
    async fn update_failed(
        &mut self,
        intent: IntentId,
        mut link: Link,
        action: &Action,
        direction: Direction,
        (changes, actors): (Vec<FieldChange>, Vec<crate::ledger::Actor>),
        e: ConnectorError,
    ) -> Result<Applied, EngineError> {
        tracing::warn!(incident = %link.incident_id, ticket = %link.ticket_key, error = %e, "{} failed", action.kind());
        self.report.failed += 1;
        let (incident_id, ticket_key) = (link.incident_id.clone(), link.ticket_key.clone());
        self.note_failure(&incident_id, Some(&ticket_key), action.kind(), &e)?;
        let partly = self.partly_applied(&mut link, action).await;
        let mut detail = e.to_string();
        if !partly.is_empty() {
            detail.push_str(&format!(
                "; partly applied, the ticket now holds {}",
                partly.join(", ")
            ));
        }
        let record = LedgerRecord {
            actors,
            changes,
            outcome: Outcome::Failed,
            detail: Some(detail),
            ..self.record(
                action.kind(),
                Some(direction),
                &link.incident_id,
                Some(&link.ticket_key),
            )
        };
        let saved = (!partly.is_empty()).then_some(&link);
        self.store.finish_intent(intent, saved, &[record])?;
        Ok(Applied::Failed)
    }

    /// A ticket update that failed may have got part of the way (a Jira status
    /// reached through several transitions, cut short): what the bridge itself
    /// wrote must not read as an analyst's change on the retry, or it could win a
    /// conflict against the incident it came from. Re-reads the ticket and takes
    /// the fields the update was writing that moved as the bridge's own, in the
    /// link's baseline. Returns what moved, for the ledger.
    pub(super) async fn partly_applied(&self, link: &mut Link, action: &Action) -> Vec<String> {
        let Action::UpdateTicket { update, .. } = action else {
            return Vec::new();
        };
        let Ok(ticket) = self.rt.tickets.get(&link.ticket_key).await else {
            return Vec::new();
        };
        let mut moved = Vec::new();
        for rule in &self.rt.mapping.fields {
            if !update.set.contains_key(&rule.ticket) {
                continue;
            }
            let now = ticket.attrs.get(&rule.ticket).cloned();
            if let Some(agreed) = link.baseline.get_mut(&rule.name)
                && agreed.ticket != now
            {
                moved.push(format!(
                    "{} = {}",
                    rule.ticket,
                    now.as_deref().unwrap_or("(empty)")
                ));
                agreed.ticket = now;
            }
        }
        moved
    }

    /// Re-reads an incident (and its ticket) and reconciles them.
    pub(super) async fn resync(&mut self, incident_id: &str) -> Result<(), EngineError> {
        let incident = match self.rt.source.get(incident_id).await {
            Ok(i) => i,
            Err(e) => {
                self.report.failed += 1;
                return self.note_failure(incident_id, None, "re-read", &e);
            }
        };
        let link = self.store.link(&self.rt.pair, incident_id)?;
        let mut tickets = Vec::new();
        if let Some(l) = &link {
            match self.rt.tickets.get(&l.ticket_key).await {
                Ok(t) => tickets.push(t),
                Err(e) => {
                    self.report.failed += 1;
                    return self.note_failure(incident_id, Some(&l.ticket_key), "re-read", &e);
                }
            }
        }
        if let Some(ticket) = tickets.first() {
            self.fetched
                .insert(incident_id.to_string(), (incident.clone(), ticket.clone()));
        }
        let links: Vec<Link> = link.into_iter().collect();
        self.reconcile_and_apply(std::slice::from_ref(&incident), &tickets, links)
            .await
    }

    /// Re-reads both sides of a link and carries out what a fresh plan says, once.
    pub(super) async fn replan(
        &mut self,
        link: Link,
        links: &mut HashMap<String, Link>,
    ) -> Result<(), EngineError> {
        let incident = self.rt.source.get(&link.incident_id).await;
        let ticket = self.rt.tickets.get(&link.ticket_key).await;
        let (incident, ticket) = match (incident, ticket) {
            (Ok(i), Ok(t)) => {
                // What was listed is stale now: a write starts from this read.
                self.listed.insert(i.id.clone(), i.clone());
                (i, t)
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(incident = %link.incident_id, error = %e, "re-read failed");
                self.report.failed += 1;
                self.note_failure(&link.incident_id, Some(&link.ticket_key), "re-read", &e)?;
                return Ok(());
            }
        };
        let plan = reconcile::reconcile(
            self.spec(),
            Input {
                incidents: std::slice::from_ref(&incident),
                tickets: std::slice::from_ref(&ticket),
                links: std::slice::from_ref(&link),
            },
        );
        self.note_authors(
            &link.incident_id,
            Some(&incident),
            Some(&ticket),
            Some(&link),
        );
        for action in plan.actions {
            self.apply(action, links, false).await?;
        }
        Ok(())
    }
}

/// How an update ended.
pub(super) enum Applied {
    Done(Link),
    Failed,
    /// The remote side changed concurrently: nothing was written.
    Conflict(Link),
}

/// Replaces the written side of each baseline entry with what the remote system
/// holds after the write, and says where that differs from what was asked.
///
/// Rules the write did not ask about but whose attribute it wrote (two rules can
/// read one attribute: a ServiceNow close code gives both the classification and
/// its reason) get their written side refreshed too; otherwise the next poll
/// would take the bridge's own write for someone else's change and echo it.
pub(super) fn read_back(
    mapping: &Mapping,
    baseline: &mut Baseline,
    link_baseline: &Baseline,
    wrote: impl Fn(&crate::mapping::FieldRule) -> bool,
    observed: impl Fn(&crate::mapping::FieldRule) -> Option<String>,
    side: impl Fn(&mut crate::model::Agreed) -> &mut Option<String>,
) -> Option<String> {
    let mut kept = Vec::new();
    for rule in &mapping.fields {
        match baseline.get_mut(&rule.name) {
            Some(agreed) => {
                let now = observed(rule);
                let slot = side(agreed);
                if *slot != now {
                    kept.push(format!(
                        "{} stayed {} (asked {})",
                        rule.name,
                        crate::ledger::plain_value(now.as_deref()),
                        crate::ledger::plain_value(slot.as_deref())
                    ));
                    *slot = now;
                }
            }
            None if wrote(rule) => {
                let mut agreed = link_baseline.get(&rule.name).cloned().unwrap_or_default();
                *side(&mut agreed) = observed(rule);
                baseline.insert(rule.name.clone(), agreed);
            }
            None => {}
        }
    }
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Remembers the versions of both sides the bridge has now synced from (the
/// later of what the link knew and what was read or written).
impl Cycle<'_> {
    /// A version the poll saw of one side of `link`, unless the bridge wrote that
    /// side since in this cycle: then the write's answer is the later one.
    fn unless_written(
        &self,
        side: Direction,
        link: &Link,
        seen: &Option<Version>,
    ) -> Option<Version> {
        if self
            .written_sides
            .contains(&(side, link.incident_id.clone()))
        {
            None
        } else {
            seen.clone()
        }
    }
}

pub(super) fn advance(
    link: &mut Link,
    incident: Option<Version>,
    ticket: Option<Version>,
    now: Timestamp,
) {
    if let Some(v) = incident {
        link.saw_incident(v);
    }
    if let Some(v) = ticket {
        link.saw_ticket(v);
    }
    link.updated = now;
}
