//! Checking the keys of `[api]` that describe a helpdesk's habits: where a record
//! sits in answers and requests, list envelopes and their end, value types, the
//! update mode, fixed fields, the `{since}` format and error details. Each problem
//! is reported where it is written.

use chrono::format::{Item, StrftimeItems};
use serde_json::Value;
use toml::Spanned;

use super::check::{ApiChecker, EndpointSpec, Endpoints, RawApi, RawEndpoint, RawValues, or_list};
use super::shape::{parse_text, parse_zone};
use super::*;
use crate::vocab::{self, TicketKind};

/// The checked habits that are not per endpoint.
pub(super) struct Shapes {
    pub(super) types: Vec<(String, ValueType)>,
    pub(super) update_mode: UpdateMode,
    pub(super) since_format: SinceFormat,
    pub(super) errors: ErrorShape,
}

/// The optional keys of an endpoint, as written.
fn endpoint_keys(raw: &RawEndpoint) -> [(&'static str, Option<usize>); 10] {
    let at = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.span().start);
    [
        ("record", at(&raw.record)),
        ("send", at(&raw.send)),
        ("items", at(&raw.items)),
        ("next", at(&raw.next)),
        ("more", at(&raw.more)),
        ("end", at(&raw.end)),
        ("mode", at(&raw.mode)),
        ("text", at(&raw.text)),
        ("author", at(&raw.author)),
        ("fields", raw.fields.as_ref().map(|f| f.span().start)),
    ]
}

impl ApiChecker<'_, '_, '_> {
    /// An endpoint's record pointers and list envelope; keys it cannot have are
    /// refused where they are written.
    pub(super) fn endpoint_shape(
        &mut self,
        spec: &EndpointSpec,
        raw: &RawEndpoint,
        mut e: Endpoint,
    ) -> Option<Endpoint> {
        let mut ok = true;
        for (key, at) in endpoint_keys(raw) {
            if let Some(at) = at
                && !spec.keys.contains(&key)
            {
                let takes: Vec<String> = spec.keys.iter().map(|k| format!("`{k}`")).collect();
                self.error(
                    at,
                    format!(
                        "`{key}` does not belong in `{}`; besides method and path it takes {}",
                        spec.name,
                        or_list(&takes)
                    ),
                );
                ok = false;
            }
        }
        let root_ok = |c: &mut Self, raw: &Option<Spanned<String>>, what: &str| match raw {
            None => Some(None),
            Some(p) => c.pointer(p, what, true).map(Some),
        };
        let record = root_ok(self, &raw.record, "record");
        let send = root_ok(self, &raw.send, "record in the request");
        let items = root_ok(self, &raw.items, "items");
        let next = match &raw.next {
            None => Some(None),
            Some(_) => self.next_page(raw.next.as_ref()).map(Some),
        };
        let more = match (&raw.more, &raw.end) {
            (Some(_), Some(end)) => {
                self.error(
                    end.span().start,
                    "give `more` (follow the link while it is true) or `end` (stop once it is true), not both",
                );
                None
            }
            (Some(m), None) => self
                .pointer(m, "more flag", false)
                .map(|p| Some(More::While(p))),
            (None, Some(end)) => self
                .pointer(end, "end flag", false)
                .map(|p| Some(More::Until(p))),
            (None, None) => Some(None),
        };
        if let Some(r) = record? {
            e.record = r;
        }
        if let Some(s) = send? {
            e.send = s;
        }
        e.items = items?;
        e.next = next?;
        e.more = more?;
        ok.then_some(e)
    }

    /// `[api.types]`, `update.mode`, `since_format` and `since_zone`,
    /// `error_message` and `error_details`.
    pub(super) fn shapes(
        &mut self,
        api: &RawApi,
        fields: &[(String, JsonPointer)],
        statuses: Option<&Vec<String>>,
    ) -> Option<Shapes> {
        let types = match &api.types {
            Some(t) => self.types(t, fields),
            None => Some(Vec::new()),
        };
        if let (Some(types), Some(_), Some(raw)) = (&types, statuses, &api.statuses) {
            self.typed_statuses(types, raw);
        }
        let update_mode = self.update_mode(api.update.as_ref());
        let since_format = self.since_format(api);
        let optional = |c: &mut Self, raw: &Option<Spanned<String>>, what| match raw {
            None => Some(None),
            Some(p) => c.pointer(p, what, false).map(Some),
        };
        let message = optional(self, &api.error_message, "error message");
        let details = optional(self, &api.error_details, "error details");
        Some(Shapes {
            types: types?,
            update_mode: update_mode?,
            since_format: since_format?,
            errors: ErrorShape {
                message: message?,
                details: details?,
            },
        })
    }

    fn types(
        &mut self,
        raw: &super::check::RawMap,
        fields: &[(String, JsonPointer)],
    ) -> Option<Vec<(String, ValueType)>> {
        let mut items: Vec<_> = raw.get_ref().iter().collect();
        items.sort_by_key(|(k, _)| k.span().start);
        let mut ok = true;
        let mut types = Vec::new();
        for (attr, ty) in items {
            if !fields.iter().any(|(name, _)| name == attr.get_ref()) {
                let known = vocab::find(vocab::ticket_attrs(TicketKind::Generic), attr.get_ref());
                let why = if known.is_some() {
                    format!(
                        "`{}` has no place in [api.fields]; add it there first",
                        attr.get_ref()
                    )
                } else {
                    format!(
                        "unknown generic attribute `{}` in [api.types]",
                        attr.get_ref()
                    )
                };
                self.error(attr.span().start, why);
                ok = false;
                continue;
            }
            match ValueType::ALL.iter().find(|t| t.name() == ty.get_ref()) {
                Some(t) if *t == ValueType::String => {}
                Some(t) => types.push((attr.get_ref().clone(), *t)),
                None => {
                    self.error(
                        ty.span().start,
                        format!(
                            "`{}` is not a value type; write \"string\", \"integer\", \"number\" or \"boolean\"",
                            ty.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(types)
    }

    /// Listed statuses must be values of the status's type.
    fn typed_statuses(
        &mut self,
        types: &[(String, ValueType)],
        raw: &Spanned<Vec<Spanned<String>>>,
    ) {
        let Some((_, ty)) = types.iter().find(|(name, _)| name == "status") else {
            return;
        };
        for s in raw.get_ref() {
            if let Err(e) = ty.to_json(s.get_ref()) {
                self.error(
                    s.span().start,
                    format!("{e}, and [api.types] says the status is one"),
                );
            }
        }
    }

    fn update_mode(&mut self, raw: Option<&Spanned<RawEndpoint>>) -> Option<UpdateMode> {
        let Some(mode) = raw.and_then(|u| u.get_ref().mode.as_ref()) else {
            return Some(UpdateMode::Partial);
        };
        match mode.get_ref().as_str() {
            "partial" => Some(UpdateMode::Partial),
            "full" => Some(UpdateMode::Full),
            other => {
                self.error(
                    mode.span().start,
                    format!(
                        "`{other}` is not an update mode; write \"partial\" (send only what changed) or \"full\" (read, change and send the whole ticket)"
                    ),
                );
                None
            }
        }
    }

    fn since_format(&mut self, api: &RawApi) -> Option<SinceFormat> {
        let format = match &api.since_format {
            None => SinceFormat::Rfc3339,
            Some(f) => match f.get_ref().as_str() {
                "rfc3339" => SinceFormat::Rfc3339,
                "unix" => SinceFormat::UnixSeconds,
                "unix_ms" => SinceFormat::UnixMillis,
                pattern if pattern.contains('%') => {
                    if !strftime_ok(pattern) {
                        self.error(
                            f.span().start,
                            "not a strftime pattern chrono knows (e.g. \"%Y-%m-%d %H:%M:%S\"); write %% for a literal %",
                        );
                        return None;
                    }
                    SinceFormat::Pattern {
                        pattern: pattern.to_string(),
                        zone: chrono::FixedOffset::east_opt(0)?,
                    }
                }
                other => {
                    self.error(
                        f.span().start,
                        format!(
                            "`{other}` is not a time format; write \"rfc3339\", \"unix\" (seconds), \"unix_ms\" or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""
                        ),
                    );
                    return None;
                }
            },
        };
        let Some(zone) = &api.since_zone else {
            return Some(format);
        };
        match (format, parse_zone(zone.get_ref())) {
            (SinceFormat::Pattern { pattern, .. }, Some(offset)) => Some(SinceFormat::Pattern {
                pattern,
                zone: offset,
            }),
            (SinceFormat::Pattern { .. }, None) => {
                self.error(
                    zone.span().start,
                    format!(
                        "`{}` is not a UTC offset; write \"UTC\" or one such as \"+01:00\" (the offset the API's local times are in)",
                        zone.get_ref()
                    ),
                );
                None
            }
            _ => {
                self.error(
                    zone.span().start,
                    "`since_zone` goes with a strftime `since_format`: RFC 3339 and Unix times carry their zone",
                );
                None
            }
        }
    }

    /// The `fields` of create, update and comment: pointers relative to the
    /// record, constants or texts with `{attribute}` placeholders.
    pub(super) fn extra_fields(
        &mut self,
        api: &RawApi,
        mut e: Endpoints,
        fields: &[(String, JsonPointer)],
    ) -> Option<Endpoints> {
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let mut ok = true;
        let targets = [
            (&api.create, &mut e.create, true),
            (&api.update, &mut e.update, true),
            (&api.comment, &mut e.comment, false),
        ];
        for (raw, endpoint, attrs) in targets {
            let Some(values) = raw.as_ref().and_then(|r| r.get_ref().fields.as_ref()) else {
                continue;
            };
            let known: &[&str] = if attrs { &names } else { &[] };
            match self.extra_values(values, known, fields) {
                Some(v) => endpoint.fields = v,
                None => ok = false,
            }
        }
        ok.then_some(e)
    }

    fn extra_values(
        &mut self,
        raw: &RawValues,
        known: &[&str],
        fields: &[(String, JsonPointer)],
    ) -> Option<Vec<ExtraField>> {
        let mut items: Vec<_> = raw.get_ref().iter().collect();
        items.sort_by_key(|(k, _)| k.span().start);
        let mut ok = true;
        let mut out = Vec::new();
        for (key, value) in items {
            let Some(at) = self.pointer(key, "place of a fixed field", false) else {
                ok = false;
                continue;
            };
            if let Some((name, _)) = fields.iter().find(|(_, p)| p.overlaps(&at)) {
                self.error(
                    key.span().start,
                    format!(
                        "{} is where [api.fields] writes `{name}`; a fixed field needs a place of its own",
                        at.as_str()
                    ),
                );
                ok = false;
                continue;
            }
            match self.extra_value(value, known) {
                Some(value) => out.push(ExtraField { at, value }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn extra_value(&mut self, value: &Spanned<toml::Value>, known: &[&str]) -> Option<ExtraValue> {
        let at = value.span().start;
        match value.get_ref() {
            toml::Value::String(text) => match parse_text(text, known) {
                Ok(parts) if parts.iter().all(|p| matches!(p, TextPart::Text(_))) => {
                    Some(ExtraValue::Constant(Value::String(text.clone())))
                }
                Ok(parts) => Some(ExtraValue::Template(parts)),
                Err(e) => {
                    let spanned = Spanned::new(value.span(), text.clone());
                    self.error_in(&spanned, e.offset, e.message);
                    None
                }
            },
            toml::Value::Integer(n) => Some(ExtraValue::Constant(Value::from(*n))),
            toml::Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(|n| ExtraValue::Constant(Value::Number(n)))
            }
            toml::Value::Boolean(b) => Some(ExtraValue::Constant(Value::Bool(*b))),
            _ => {
                self.error(
                    at,
                    "a fixed field is a string, a number or a boolean (put a list or an object's members at their own pointers)",
                );
                None
            }
        }
    }
}

/// Whether chrono can format with a strftime pattern.
fn strftime_ok(pattern: &str) -> bool {
    StrftimeItems::new(pattern).all(|item| !matches!(item, Item::Error))
}
