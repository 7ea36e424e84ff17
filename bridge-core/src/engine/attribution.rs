//! Who made the changes a ledger entry carries: the authors of the versions
//! this cycle read of both sides of a link (`ModifiedBy` on the snapshots the
//! connectors filled from the reads they already make), turned into the
//! entry's `Actor`s when the engine records it. A change that goes to the
//! ticket is the incident side's; one that goes to the incident is the ticket
//! side's; what the bridge does of its own accord is the bridge's.

use super::*;
use crate::ledger::{Actor, ActorSide, UNKNOWN_ACTOR};
use crate::model::ModifiedBy;

/// Who made one side's version, as read this cycle.
#[derive(Debug, Clone)]
pub(super) enum Authored {
    /// Read from the remote: its authors and that side's modification time.
    Read {
        by: ModifiedBy,
        at: Timestamp,
        /// How the version read compares with the one the link had synced
        /// from when the plan was made (`None`: no link yet).
        freshness: Option<Freshness>,
    },
    /// The bridge's own write moved it (a template re-rendered after the
    /// bridge wrote the attribute it shows).
    Bridge,
}

/// Both sides' authors for one link, while an action on it is carried out.
#[derive(Debug, Clone, Default)]
pub(super) struct Authors {
    pub incident: Option<Authored>,
    pub ticket: Option<Authored>,
    /// The link's baseline when the plan was made: what both sides had agreed.
    pub agreed: Option<crate::model::Baseline>,
}

impl Cycle<'_> {
    /// Remembers who made the versions read of an incident and its ticket, for
    /// the ledger entries of the actions planned from them.
    /// `link` is the incident's link as the plan was made from (none before
    /// its ticket exists): the engine moves it on as it applies the plan.
    pub(super) fn note_authors(
        &mut self,
        incident_id: &str,
        incident: Option<&IncidentSnapshot>,
        ticket: Option<&TicketSnapshot>,
        link: Option<&Link>,
    ) {
        self.authors.insert(
            incident_id.to_string(),
            Authors {
                incident: incident.map(|i| Authored::Read {
                    by: i.modified_by.clone(),
                    at: i.modified,
                    freshness: link.map(|l| i.version().freshness(&l.incident_seen())),
                }),
                ticket: ticket.map(|t| Authored::Read {
                    by: t.modified_by.clone(),
                    at: t.modified,
                    freshness: link.map(|l| t.version().freshness(&l.ticket_seen())),
                }),
                agreed: link.map(|l| l.baseline.clone()),
            },
        );
    }

    /// Makes the bridge the author of what is written next on `incident_id`'s
    /// link, both ways (a remap, a merge's priority raise, a template that
    /// follows the bridge's own write). Returns the authors it replaced, for
    /// [`Cycle::restore_authors`] once those writes are done.
    pub(super) fn bridge_acts(&mut self, incident_id: &str) -> Option<Authors> {
        self.authors.insert(
            incident_id.to_string(),
            Authors {
                incident: Some(Authored::Bridge),
                ticket: Some(Authored::Bridge),
                agreed: None,
            },
        )
    }

    /// Puts back the authors [`Cycle::bridge_acts`] replaced.
    pub(super) fn restore_authors(&mut self, incident_id: &str, authors: Option<Authors>) {
        match authors {
            Some(authors) => self.authors.insert(incident_id.to_string(), authors),
            None => self.authors.remove(incident_id),
        };
    }

    /// The actors of an update's changes on `link`: per change, who made it on
    /// the side it came from — the author of
    /// that field where the snapshot has one (Jira's changelog), else the
    /// record's last author, else `unknown` — when that side did change it.
    /// A change that side did not make is the bridge's: read at the very
    /// version the link had synced from when the plan was made, or at a tied
    /// time with that field's value as then agreed (a mapping edit, a template
    /// re-rendered, a drift repaired). `None`: not an update.
    pub(super) fn actors(&self, link: &Link, action: &Action) -> Option<Vec<Actor>> {
        let (direction, changes, baseline) = match action {
            Action::UpdateTicket {
                changes, baseline, ..
            } => (Direction::ToTicket, changes, baseline),
            Action::UpdateIncident {
                changes, baseline, ..
            } => (Direction::ToIncident, changes, baseline),
            _ => return None,
        };
        let authors = self.authors.get(&link.incident_id);
        let (side, authored) = match direction {
            Direction::ToTicket => (
                ActorSide::Incident,
                authors.and_then(|a| a.incident.as_ref()),
            ),
            Direction::ToIncident => (ActorSide::Ticket, authors.and_then(|a| a.ticket.as_ref())),
        };
        let (by, at, freshness) = match authored {
            Some(Authored::Bridge) => return Some(vec![Actor::bridge()]),
            Some(Authored::Read { by, at, freshness }) => (Some(by), Some(*at), *freshness),
            None => (None, None, None),
        };
        let agreed = authors.and_then(|a| a.agreed.as_ref());
        let mut actors: Vec<Actor> = Vec::new();
        let mut bridge = false;
        for change in changes {
            let rule = self
                .rt
                .mapping
                .fields
                .iter()
                .find(|r| r.name == change.field);
            let attr = match (side, rule) {
                (ActorSide::Ticket, Some(rule)) => Some(rule.ticket.as_str()),
                (_, Some(rule)) => rule.incident_attr(),
                (_, None) => Some(change.field.as_str()),
            };
            let side_value = |agreed: Option<&crate::model::Agreed>| {
                agreed.map(|a| match side {
                    ActorSide::Ticket => a.ticket.clone(),
                    _ => a.incident.clone(),
                })
            };
            let unchanged = match freshness {
                Some(Freshness::Same) => true,
                Some(Freshness::Tied) => {
                    attr.is_none()
                        || side_value(agreed.and_then(|b| b.get(&change.field)))
                            == side_value(baseline.get(&change.field))
                }
                _ => false,
            };
            if unchanged {
                bridge = true;
                continue;
            }
            let name = by
                .and_then(|by| match attr {
                    Some(attr) => by.of(attr),
                    None => by.last.as_deref(),
                })
                .unwrap_or(UNKNOWN_ACTOR);
            match actors.iter_mut().find(|a| a.name == name) {
                Some(actor) => actor.fields.push(change.field.clone()),
                None => actors.push(Actor {
                    name: name.to_string(),
                    side,
                    at,
                    fields: vec![change.field.clone()],
                }),
            }
        }
        if bridge {
            actors.push(Actor::bridge());
        }
        Some(actors)
    }

    /// The actor of a copied comment: its original's author on the side it
    /// was written, at its time.
    pub(super) fn comment_actor(direction: Direction, original: Option<&Comment>) -> Actor {
        Actor {
            name: original
                .and_then(|c| c.author.clone())
                .unwrap_or_else(|| UNKNOWN_ACTOR.to_string()),
            side: match direction {
                Direction::ToTicket => ActorSide::Incident,
                Direction::ToIncident => ActorSide::Ticket,
            },
            at: original.map(|c| c.created),
            fields: vec!["comment".to_string()],
        }
    }
}
