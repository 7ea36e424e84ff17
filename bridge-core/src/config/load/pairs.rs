//! `[[sync]]`: a pair of a source and a ticket system, its mapping, schedules,
//! conflict policy and start time.

use super::*;

impl Checker<'_> {
    pub(super) fn sync(
        &mut self,
        span: Range<usize>,
        raw: &RawSync,
        sources: &BTreeMap<String, Named>,
        ticket_systems: &BTreeMap<String, Named>,
        pairs: &mut BTreeMap<(String, String), usize>,
    ) -> Option<SyncConfig> {
        let header = span.start;
        let mut ok = true;
        let source = self.sync_source(header, raw, sources);
        let tickets = self.sync_tickets(header, raw, ticket_systems);
        if let (Some(source), Some(tickets)) = (&source, &tickets) {
            ok &= self.pair_fits(header, source, tickets, pairs);
        }
        let schedule = self.schedule(header, raw);
        let sweep = self.sweep(raw);
        let conflict = self.conflict(raw);
        let since = self.since(header, raw);
        if !ok {
            return None;
        }
        Some(SyncConfig {
            source: source?.0,
            tickets: tickets?.0,
            schedule: schedule?,
            sweep: sweep?,
            conflict: conflict?,
            since: since?,
        })
    }

    /// `source`: the name of a `[[source]]`.
    fn sync_source<'n>(
        &mut self,
        header: usize,
        raw: &RawSync,
        sources: &'n BTreeMap<String, Named>,
    ) -> Option<(String, &'n Named)> {
        match &raw.source {
            None => {
                self.r.at(
                    header,
                    "add source = \"...\" to this [[sync]]: the name of a [[source]]",
                );
                None
            }
            Some(s) => match sources.get(s.get_ref()) {
                Some(named) => Some((s.get_ref().clone(), named)),
                None => {
                    self.r.at(
                        s.span().start,
                        unknown_reference("source", s.get_ref(), sources),
                    );
                    None
                }
            },
        }
    }

    /// `tickets`: the name of a `[[ticket_system]]`, and where it is written.
    fn sync_tickets<'n>(
        &mut self,
        header: usize,
        raw: &RawSync,
        ticket_systems: &'n BTreeMap<String, Named>,
    ) -> Option<(String, &'n Named, usize)> {
        match &raw.tickets {
            None => {
                self.r.at(
                    header,
                    "add tickets = \"...\" to this [[sync]]: the name of a [[ticket_system]]",
                );
                None
            }
            Some(t) => match ticket_systems.get(t.get_ref()) {
                Some(named) => Some((t.get_ref().clone(), named, t.span().start)),
                None => {
                    self.r.at(
                        t.span().start,
                        unknown_reference("ticket_system", t.get_ref(), ticket_systems),
                    );
                    None
                }
            },
        }
    }

    /// The ticket system's mapping reads this source's vocabulary, and the pair
    /// is synced by one `[[sync]]` only.
    fn pair_fits(
        &mut self,
        header: usize,
        (source_name, source): &(String, &Named),
        (tickets_name, tickets, at): &(String, &Named, usize),
        pairs: &mut BTreeMap<(String, String), usize>,
    ) -> bool {
        let mut ok = true;
        if let (Some(kind), Some((file, mapping_kind))) = (source.source_kind, &tickets.mapping) {
            if kind != *mapping_kind {
                self.r.at(
                    *at,
                    format!(
                        "ticket system `{tickets_name}` maps with {}, written for source = \"{}\", but source `{source_name}` is kind = \"{}\"; pair it with a [[ticket_system]] whose mapping has source = \"{}\"",
                        file.display(),
                        mapping_kind.as_str(),
                        kind.as_str(),
                        kind.as_str()
                    ),
                );
                ok = false;
            }
        }
        let pair = (source_name.clone(), tickets_name.clone());
        if let Some(first) = pairs.get(&pair) {
            self.r.at(
                header,
                format!("the pair {source_name} -> {tickets_name} is already synced by the [[sync]] on line {first}; keep one"),
            );
            ok = false;
        } else {
            pairs.insert(pair, self.line(header));
        }
        ok
    }

    /// `schedule`: a cron line that fires.
    fn schedule(&mut self, header: usize, raw: &RawSync) -> Option<Schedule> {
        match &raw.schedule {
            None => {
                self.r.at(
                    header,
                    "add schedule = \"*/5 * * * *\" (cron: minute hour day month weekday, or 6 fields with seconds first)",
                );
                None
            }
            Some(s) => match Schedule::parse(s.get_ref()).and_then(fires) {
                Ok(schedule) => Some(schedule),
                Err(problem) => {
                    self.r.at(s.span().start, problem);
                    None
                }
            },
        }
    }

    /// `sweep`: a cron line that fires, or "off"; hourly by default.
    fn sweep(&mut self, raw: &RawSync) -> Option<Option<Schedule>> {
        match &raw.sweep {
            None => Some(Some(
                Schedule::parse(DEFAULT_SWEEP).expect("the default sweep schedule parses"),
            )),
            Some(s) if s.get_ref().trim().eq_ignore_ascii_case("off") => Some(None),
            Some(s) => match Schedule::parse(s.get_ref()).and_then(fires) {
                Ok(schedule) => Some(Some(schedule)),
                Err(problem) => {
                    self.r.at(
                        s.span().start,
                        format!("{problem} (sweep is a cron schedule, or \"off\")"),
                    );
                    None
                }
            },
        }
    }

    /// `conflict`: the pair's conflict policy, newest_wins by default.
    fn conflict(&mut self, raw: &RawSync) -> Option<ConflictPolicy> {
        match &raw.conflict {
            None => Some(ConflictPolicy::NewestWins),
            Some(c) => {
                let policy = ConflictPolicy::parse(c.get_ref());
                if policy.is_none() {
                    self.r.at(
                        c.span().start,
                        format!(
                            "unknown conflict policy `{}`; write \"source_wins\", \"ticket_wins\" or \"newest_wins\"",
                            c.get_ref()
                        ),
                    );
                }
                policy
            }
        }
    }

    /// `since`: an RFC 3339 time, not in the future, the first run reaches back to.
    fn since(&mut self, header: usize, raw: &RawSync) -> Option<chrono::DateTime<chrono::Utc>> {
        match &raw.since {
            None => {
                self.r.at(
                    header,
                    "add since = \"2026-11-01T00:00:00Z\" (how far back the first run reaches)",
                );
                None
            }
            Some(s) => {
                let text = match s.get_ref() {
                    toml::Value::String(text) => Some(text.clone()),
                    toml::Value::Datetime(dt) => Some(dt.to_string()),
                    _ => None,
                };
                match text.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
                    Some(Ok(t)) if t > chrono::Utc::now() + SINCE_SKEW => {
                        self.r.at(
                            s.span().start,
                            format!(
                                "since {} is in the future; the first run would find nothing before then: give the earliest time to sync from, in the past",
                                t.to_rfc3339()
                            ),
                        );
                        None
                    }
                    Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
                    _ => {
                        self.r.at(
                            s.span().start,
                            "since must be an RFC 3339 timestamp with a time zone, e.g. \"2026-11-01T00:00:00Z\"",
                        );
                        None
                    }
                }
            }
        }
    }
}
