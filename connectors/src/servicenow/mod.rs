//! ServiceNow (Table API, `incident` table) as a ticket system: the instance's JSON
//! and the pure conversion to the domain (`wire`), the client that implements the
//! engine's `TicketSystem` port (`client`), OAuth client credentials as an
//! alternative to Basic auth (`oauth`), and a strict simulator of the API (`sim`).
//!
//! On ServiceNow the bridge records the incident in `correlation_id`
//! (`itsm-bridge:<source>:<scope-tag>:<incident_id>`, see [`wire`]) and labels it
//! in `correlation_display` (`itsm-bridge: <source>`). A ticket's `key` is the
//! incident number (`INC0010042`), its `id` the `sys_id`.

pub mod client;
pub mod doctor;
pub mod oauth;
pub mod sim;
pub mod wire;

pub use client::{ServiceNowTickets, servicenow_api};
pub use oauth::{ClientCredentials, servicenow_oauth_api};
pub use sim::ServiceNowSim;
pub use wire::error_message;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bridge_core::mapping::{IncidentSide, parse};
    use bridge_core::vocab::{SourceKind, TicketKind};

    const MAPPING: &str = include_str!("../../../mappings/servicenow.toml");

    #[test]
    fn the_default_mapping_loads() {
        let mapping = match parse(Path::new("mappings/servicenow.toml"), MAPPING) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(mapping.source_kind, SourceKind::Sentinel);
        assert_eq!(mapping.ticket_kind, TicketKind::Servicenow);
        let rule = |name: &str| {
            mapping
                .fields
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        // Every Sentinel status goes somewhere, and every state comes back.
        let status = rule("status");
        for (incident, ticket) in [("New", "1"), ("Active", "2"), ("Closed", "6")] {
            assert_eq!(
                status.map_to_ticket(Some(incident)).as_deref(),
                Some(ticket)
            );
        }
        for (ticket, incident) in [
            ("1", "New"),
            ("2", "Active"),
            ("3", "Active"),
            ("6", "Closed"),
            ("7", "Closed"),
            ("8", "Closed"),
        ] {
            assert_eq!(
                status.map_to_incident(Some(ticket)).as_deref(),
                Some(incident)
            );
        }
        // Every classification, Undetermined included, gets a close code, and the
        // codes it gets come back as the same classification.
        let classification = rule("classification");
        let reason = rule("classification_reason");
        for c in bridge_core::vocab::SENTINEL_CLASSIFICATION {
            let code = classification
                .map_to_ticket(Some(c))
                .unwrap_or_else(|| panic!("{c} has no close code"));
            assert!(
                super::sim::CLOSE_CODES_UTAH.contains(&code.as_str()),
                "{code}"
            );
            if *c != "Undetermined" {
                assert_eq!(
                    classification.map_to_incident(Some(&code)).as_deref(),
                    Some(*c)
                );
            }
        }
        // The reason a close code gives pairs with the classification it gives,
        // as Sentinel requires, for every code of both releases and unknown ones.
        let pairs = |c: &str| -> &[&str] {
            match c {
                "TruePositive" => &["SuspiciousActivity"],
                "BenignPositive" => &["SuspiciousButExpected"],
                "FalsePositive" => &["IncorrectAlertLogic", "InaccurateData"],
                _ => &[],
            }
        };
        for code in super::sim::CLOSE_CODES_UTAH
            .iter()
            .chain(super::sim::CLOSE_CODES_LEGACY)
            .chain(&["Something custom"])
        {
            let c = classification.map_to_incident(Some(code)).unwrap();
            let r = reason.map_to_incident(Some(code)).unwrap();
            assert!(pairs(&c).contains(&r.as_str()), "{code}: {c} with {r}");
        }
        // Impact and urgency give the priorities the matrix promises.
        let impact = rule("impact");
        let urgency = rule("urgency");
        for (severity, want) in [
            ("High", "1"),
            ("Medium", "3"),
            ("Low", "4"),
            ("Informational", "5"),
        ] {
            let i = impact.map_to_ticket(Some(severity)).unwrap();
            let u = urgency.map_to_ticket(Some(severity)).unwrap();
            assert_eq!(super::sim::priority(&i, &u), want, "{severity}");
        }
        // close_notes is a template, so it always has text when a state needs it.
        assert!(matches!(
            rule("close_notes").incident,
            IncidentSide::Template(_)
        ));
        assert_eq!(mapping.write_back.tags.len(), 1);
        assert!(mapping.write_back.comment.is_some());
    }
}
#[cfg(test)]
mod fuzz;
