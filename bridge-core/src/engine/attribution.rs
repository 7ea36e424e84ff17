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
    Read { by: ModifiedBy, at: Timestamp },
    /// The bridge's own write moved it (a template re-rendered after the
    /// bridge wrote the attribute it shows).
    Bridge,
}

/// Both sides' authors for one link, while an action on it is carried out.
#[derive(Debug, Clone, Default)]
pub(super) struct Authors {
    pub incident: Option<Authored>,
    pub ticket: Option<Authored>,
}

impl Cycle<'_> {
    /// Remembers who made the versions read of an incident and its ticket, for
    /// the ledger entries of the actions planned from them.
    pub(super) fn note_authors(
        &mut self,
        incident_id: &str,
        incident: Option<&IncidentSnapshot>,
        ticket: Option<&TicketSnapshot>,
    ) {
        let read = |by: &ModifiedBy, at: Timestamp| Authored::Read { by: by.clone(), at };
        self.authors.insert(
            incident_id.to_string(),
            Authors {
                incident: incident.map(|i| read(&i.modified_by, i.modified)),
                ticket: ticket.map(|t| read(&t.modified_by, t.modified)),
            },
        );
    }

    /// The actors of `changes` going `direction` on `incident_id`'s link: per
    /// change, the author of that field on the side it came from (the
    /// record's last author where the API keeps no per-field history, else
    /// `unknown`), grouped by author in the order of the changes.
    pub(super) fn actors(
        &self,
        direction: Direction,
        incident_id: &str,
        changes: &[FieldChange],
    ) -> Vec<Actor> {
        let authors = self.authors.get(incident_id);
        let (side, authored) = match direction {
            Direction::ToTicket => (
                ActorSide::Incident,
                authors.and_then(|a| a.incident.as_ref()),
            ),
            Direction::ToIncident => (ActorSide::Ticket, authors.and_then(|a| a.ticket.as_ref())),
        };
        let (by, at) = match authored {
            Some(Authored::Bridge) => return vec![Actor::bridge()],
            Some(Authored::Read { by, at }) => (Some(by), Some(*at)),
            None => (None, None),
        };
        let mut actors: Vec<Actor> = Vec::new();
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
        actors
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
