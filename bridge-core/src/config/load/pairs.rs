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
        let source = match &raw.source {
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
        };
        let tickets = match &raw.tickets {
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
        };
        // The ticket system's mapping must read this source's vocabulary.
        if let (Some((source_name, source)), Some((tickets_name, tickets, at))) =
            (&source, &tickets)
        {
            if let (Some(kind), Some((file, mapping_kind))) = (source.source_kind, &tickets.mapping)
            {
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
        }
        let schedule = match &raw.schedule {
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
        };
        let sweep = match &raw.sweep {
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
        };
        let conflict = match &raw.conflict {
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
        };
        let since = match &raw.since {
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
        };
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
}
