//! Checking the `[[field]]`s and `[create]` of a generic mapping against its `[api]`.

use toml::Spanned;

use super::*;
use crate::diag::Reporter;
use crate::vocab::{self, SourceKind, TicketKind};

// ---------------------------------------------------------------------------------
// Checking the `[[field]]`s and `[create]` against `[api]`.

/// Checks that every ticket attribute the fields use has a place in `[api.fields]`,
/// that status values are among `statuses` when those are listed, and that labels
/// have a place when new tickets get some. `false` when it reported a problem.
pub(crate) fn check_uses(
    r: &mut Reporter<'_>,
    api: &GenericApi,
    source: Option<SourceKind>,
    uses: &[FieldUse<'_>],
    create_labels: &[Spanned<String>],
) -> bool {
    let before = r.diagnostics.len();
    let attrs = vocab::ticket_attrs(TicketKind::Generic);
    for u in uses {
        let Some(ticket) = u.ticket else { continue };
        let attr = ticket.get_ref().as_str();
        if vocab::find(attrs, attr).is_none() {
            continue; // reported by the field checks
        }
        if api.field(attr).is_none() {
            r.at(
                ticket.span().start,
                format!(
                    "the ticket attribute `{attr}` has no place in [api.fields]; add `{attr} = \"/{attr}\"` there"
                ),
            );
            continue;
        }
        if attr == "status"
            && let Some(statuses) = &api.statuses
        {
            check_status_use(r, statuses, source, u, ticket);
        }
        let ty = api.value_type(attr);
        if ty != ValueType::String {
            check_typed_use(r, ty, u, ticket);
        }
    }
    if api.labels.is_none()
        && let Some(first) = create_labels.first()
    {
        r.at(
            first.span().start,
            "new tickets get labels, but [api] has no `labels`; add `labels = \"/labels\"` (where a ticket object keeps its list of labels) or remove these",
        );
    }
    r.diagnostics.len() == before
}

fn check_status_use(
    r: &mut Reporter<'_>,
    statuses: &[String],
    source: Option<SourceKind>,
    u: &FieldUse<'_>,
    ticket: &Spanned<String>,
) {
    let listed = statuses.join(", ");
    let known = |v: &str| statuses.iter().any(|s| s.eq_ignore_ascii_case(v));
    let mut written: Vec<&Spanned<String>> = Vec::new();
    if let Some(map) = u.to_ticket {
        written.extend(map.get_ref().values());
    }
    written.extend(u.to_ticket_default);
    written.sort_by_key(|v| v.span().start);
    for v in written {
        if v.get_ref().is_empty() {
            r.at(
                v.span().start,
                format!("the ticket status cannot be left empty; map to one of the [api] statuses: {listed}"),
            );
        } else if !known(v.get_ref()) {
            r.at(
                v.span().start,
                format!(
                    "`{}` is not among the [api] statuses: {listed}",
                    v.get_ref()
                ),
            );
        }
    }
    if let Some(map) = u.to_incident {
        let mut keys: Vec<&Spanned<String>> = map.get_ref().keys().collect();
        keys.sort_by_key(|k| k.span().start);
        for k in keys {
            if !known(k.get_ref()) {
                r.at(
                    k.span().start,
                    format!(
                        "`{}` is not among the [api] statuses: {listed}",
                        k.get_ref()
                    ),
                );
            }
        }
    }

    // A value copied (or rendered) into the status must be one of them too.
    let flows_to_ticket = u
        .flow
        .is_none_or(|f| matches!(f.get_ref().as_str(), "both" | "to_ticket"));
    if !flows_to_ticket || u.to_ticket.is_some() || u.to_ticket_default.is_some() {
        return;
    }
    match (u.incident, u.template) {
        (None, Some(_)) => r.at(
            ticket.span().start,
            format!(
                "a template renders free text, but the ticket status takes only the [api] statuses: {listed}; map an incident attribute with a to_ticket map instead"
            ),
        ),
        (Some(incident), None) => {
            let values = source
                .and_then(|k| vocab::find(vocab::incident_attrs(k), incident.get_ref()))
                .map(|spec| spec.values);
            match values {
                // An unknown attribute is reported by the field checks.
                None => {}
                Some(Some(values)) if values.iter().all(|v| known(v)) => {}
                Some(_) => r.at(
                    ticket.span().start,
                    format!(
                        "add a to_ticket map: the incident {} values cannot all be copied to the ticket status, which takes only the [api] statuses: {listed}",
                        incident.get_ref()
                    ),
                ),
            }
        }
        _ => {}
    }
}

/// A typed attribute (`[api.types]`) takes only values of its type: every value a
/// map writes to it, every value it maps back, and no free text.
fn check_typed_use(
    r: &mut Reporter<'_>,
    ty: ValueType,
    u: &FieldUse<'_>,
    ticket: &Spanned<String>,
) {
    let attr = ticket.get_ref();
    let mut values: Vec<&Spanned<String>> = Vec::new();
    if let Some(map) = u.to_ticket {
        values.extend(map.get_ref().values());
    }
    values.extend(u.to_ticket_default);
    if let Some(map) = u.to_incident {
        values.extend(map.get_ref().keys());
    }
    values.sort_by_key(|v| v.span().start);
    for v in values {
        // An empty value clears the attribute (null), whatever its type.
        if v.get_ref().is_empty() {
            continue;
        }
        if let Err(e) = ty.to_json(v.get_ref()) {
            r.at(
                v.span().start,
                format!(
                    "{e}: [api.types] says `{attr}` is {} on the wire",
                    ty.name()
                ),
            );
        }
    }
    let flows_to_ticket = u
        .flow
        .is_none_or(|f| matches!(f.get_ref().as_str(), "both" | "to_ticket"));
    if flows_to_ticket && u.to_ticket.is_none() && u.to_ticket_default.is_none() {
        r.at(
            ticket.span().start,
            format!(
                "`{attr}` is {} on the wire ([api.types]); add a to_ticket map whose values are {} values",
                ty.name(),
                ty.name()
            ),
        );
    }
}
