//! Mapping TOML v1 (the admin's reference is `mappings/README.md`): the text is
//! deserialized into raw structs that refuse unknown keys and keep every value's
//! position, then checked against the vocabularies in [`crate::vocab`] — attribute
//! names, writability, closed value sets, value-map totality, template variables —
//! reporting every problem at once with file:line:column. `parse` is pure; `load`
//! reads the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::generic_api::{self, GenericApi};
use super::spans::string_position;
use super::{
    CommentSync, FieldRule, Flow, IncidentSide, Mapping, MergePolicy, Template, ValueMap, WriteBack,
};
use crate::diag::{InputError, Reporter, line_col};
use crate::model::ConflictPolicy;
use crate::vocab::{self, AttrSpec, SourceKind, TicketKind};

/// The only format version this loader reads.
const VERSION: i64 = 1;

/// Reads and checks a mapping file. An unreadable file is one whole-file diagnostic.
pub fn load(path: &Path) -> Result<Mapping, InputError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let mut r = Reporter::new(path, "");
            r.whole_file(format!(
                "cannot read the mapping file ({e}); check the path"
            ));
            Err(r.into_error())
        }
    }
}

/// Checks the text of a mapping file; `path` only names it in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Mapping, InputError> {
    let mut r = Reporter::new(path, text);
    let raw: RawMapping = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            report_toml_error(&mut r, &e);
            return Err(r.into_error());
        }
    };
    let mut checker = Checker {
        r,
        text,
        source: None,
        tickets: None,
    };
    let checked = checker.mapping(&raw);
    let Checker { mut r, .. } = checker;
    // File order reads best, whatever order the checks ran in.
    r.diagnostics.sort_by_key(|d| (d.line, d.column));
    match checked {
        Some(parts) if r.is_empty() => Ok(Mapping {
            file: path.to_path_buf(),
            source_kind: parts.source_kind,
            ticket_kind: parts.ticket_kind,
            fields: parts.fields,
            labels: parts.labels,
            skip_create_statuses: parts.skip_create_statuses,
            write_back: parts.write_back,
            merge: parts.merge,
            raise_priority: parts.raise_priority,
            close_with: parts.close_with,
            comments: parts.comments,
            api: parts.api,
        }),
        _ => {
            debug_assert!(!r.is_empty(), "a mapping check failed without a diagnostic");
            Err(r.into_error())
        }
    }
}

// ---------------------------------------------------------------------------------
// Raw shape: what serde reads. Everything optional, so that a missing key is a
// diagnostic of ours (with a hint) rather than serde's first-and-only error.

type RawValueMap = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    version: Option<Spanned<i64>>,
    source: Option<Spanned<String>>,
    tickets: Option<Spanned<String>>,
    create: Option<RawCreate>,
    #[serde(default)]
    field: Vec<Spanned<RawField>>,
    write_back: Option<RawWriteBack>,
    merge: Option<RawMerge>,
    comments: Option<RawComments>,
    api: Option<Spanned<generic_api::RawApi>>,
}

/// `[comments]`: which way comments are carried across.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComments {
    to_ticket: Option<bool>,
    to_incident: Option<bool>,
}

/// `[merge]`: what happens to a ticket when its incident is merged into another.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerge {
    policy: Option<Spanned<String>>,
    raise_priority: Option<Spanned<bool>>,
    /// Ticket attributes set when closing a merged incident's ticket as a duplicate.
    close_with: Option<RawValueMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreate {
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    #[serde(default)]
    skip_statuses: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Option<Spanned<String>>,
    incident: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    ticket: Option<Spanned<String>>,
    flow: Option<Spanned<String>>,
    conflict: Option<Spanned<String>>,
    to_ticket: Option<RawValueMap>,
    to_ticket_default: Option<Spanned<String>>,
    to_incident: Option<RawValueMap>,
    to_incident_default: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriteBack {
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    comment: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------
// Checking.

struct Parts {
    source_kind: SourceKind,
    ticket_kind: TicketKind,
    fields: Vec<FieldRule>,
    labels: Vec<Template>,
    skip_create_statuses: Vec<String>,
    write_back: WriteBack,
    merge: MergePolicy,
    raise_priority: bool,
    close_with: Vec<(String, String)>,
    comments: CommentSync,
    api: Option<GenericApi>,
}

struct Checker<'a> {
    r: Reporter<'a>,
    text: &'a str,
    source: Option<SourceKind>,
    tickets: Option<TicketKind>,
}

/// One end of a value flow: an attribute and how to name it in messages.
struct End {
    spec: &'static AttrSpec,
    /// `Graph`, `Jira`, …
    system: &'static str,
    /// `incident` or `ticket`.
    role: &'static str,
}

/// The incident side of a field while it is being checked.
enum Side {
    Attr(&'static AttrSpec),
    Template(Template),
}

impl Checker<'_> {
    fn mapping(&mut self, raw: &RawMapping) -> Option<Parts> {
        self.version(raw);
        self.source = self.source_kind(raw);
        self.tickets = self.ticket_kind(raw);
        let (labels, skip_create_statuses) = match &raw.create {
            Some(create) => (
                self.labels(&create.labels),
                self.skip_statuses(&create.skip_statuses),
            ),
            None => (Some(Vec::new()), Some(Vec::new())),
        };
        let fields = self.fields(&raw.field);
        if let (Some(TicketKind::Servicenow), Some(fields)) = (self.tickets, &fields) {
            self.servicenow_resolve_path(&raw.field, fields);
        }
        let write_back = match &raw.write_back {
            Some(wb) => self.write_back(wb),
            None => Some(WriteBack::default()),
        };
        let api = self.api(raw);
        let merge = self.merge_policy(raw);
        let raise_priority = self.raise_priority(raw, fields.as_deref());
        let close_with = self.close_with(raw.merge.as_ref(), merge);

        Some(Parts {
            source_kind: self.source?,
            ticket_kind: self.tickets?,
            fields: fields?,
            labels: labels?,
            skip_create_statuses: skip_create_statuses?,
            write_back: write_back?,
            merge: merge?,
            raise_priority: raise_priority?,
            close_with: close_with?,
            comments: CommentSync {
                to_ticket: raw
                    .comments
                    .as_ref()
                    .and_then(|c| c.to_ticket)
                    .unwrap_or(false),
                to_incident: raw
                    .comments
                    .as_ref()
                    .and_then(|c| c.to_incident)
                    .unwrap_or(false),
            },
            api: api?,
        })
    }

    /// `version = 1`.
    fn version(&mut self, raw: &RawMapping) {
        match &raw.version {
            None => self.r.at(
                0,
                "add `version = 1` at the top: the mapping format version",
            ),
            Some(v) if *v.get_ref() != VERSION => self.r.at(
                v.span().start,
                format!(
                    "unsupported mapping version {}; this bridge reads version = 1",
                    v.get_ref()
                ),
            ),
            Some(_) => {}
        }
    }

    /// `source`: the incident vocabulary the mapping reads.
    fn source_kind(&mut self, raw: &RawMapping) -> Option<SourceKind> {
        match &raw.source {
            None => {
                self.r.at(0, "add `source = \"graph\"` or `source = \"sentinel\"`: the incident vocabulary this mapping reads");
                None
            }
            Some(s) => {
                let kind = SourceKind::parse(s.get_ref());
                if kind.is_none() {
                    self.r.at(
                        s.span().start,
                        format!(
                            "unknown source `{}`; write \"graph\" or \"sentinel\"",
                            s.get_ref()
                        ),
                    );
                }
                kind
            }
        }
    }

    /// `tickets`: the ticket vocabulary the mapping writes.
    fn ticket_kind(&mut self, raw: &RawMapping) -> Option<TicketKind> {
        match &raw.tickets {
            None => {
                self.r.at(0, "add `tickets = \"jira\"`, `\"servicenow\"` or `\"generic\"`: the ticket vocabulary this mapping writes");
                None
            }
            Some(s) => {
                let kind = TicketKind::parse(s.get_ref());
                if kind.is_none() {
                    self.r.at(
                        s.span().start,
                        format!(
                            "unknown tickets `{}`; write \"jira\", \"servicenow\" or \"generic\"",
                            s.get_ref()
                        ),
                    );
                }
                kind
            }
        }
    }

    /// `[merge] policy`, `close_as_duplicate` when not given.
    fn merge_policy(&mut self, raw: &RawMapping) -> Option<MergePolicy> {
        match raw.merge.as_ref().and_then(|m| m.policy.as_ref()) {
            None => Some(MergePolicy::default()),
            Some(p) => match p.get_ref().as_str() {
                "close_as_duplicate" => Some(MergePolicy::CloseAsDuplicate),
                "link_only" => Some(MergePolicy::LinkOnly),
                "keep_open" => Some(MergePolicy::KeepOpen),
                other => {
                    self.r.at(
                        p.span().start,
                        format!("unknown merge policy `{other}`; write \"close_as_duplicate\", \"link_only\" or \"keep_open\""),
                    );
                    None
                }
            },
        }
    }

    /// `[merge] raise_priority`, which needs a rule reading `severity` that
    /// flows to the ticket (`fields` is `None` when the rules are wrong).
    fn raise_priority(&mut self, raw: &RawMapping, fields: Option<&[FieldRule]>) -> Option<bool> {
        match raw.merge.as_ref().and_then(|m| m.raise_priority.as_ref()) {
            Some(r) if *r.get_ref() => {
                let reads_severity = fields.is_some_and(|fields| {
                    fields.iter().any(|f: &FieldRule| {
                        f.flow.to_ticket() && f.incident_attr() == Some("severity")
                    })
                });
                if fields.is_some() && !reads_severity {
                    self.r.at(
                        r.span().start,
                        "raise_priority needs a [[field]] with incident = \"severity\" that flows to the ticket; add one or remove raise_priority",
                    );
                    None
                } else {
                    Some(true)
                }
            }
            _ => Some(false),
        }
    }

    /// ServiceNow refuses to resolve or close an incident (state 6 or 7) without a
    /// resolution code and notes (a data policy): a mapping that can move a ticket
    /// there must write both, or every such sync would fail at run time.
    fn servicenow_resolve_path(&mut self, raw: &[Spanned<RawField>], fields: &[FieldRule]) {
        let resolving = |m: &Option<ValueMap>| {
            m.as_ref().is_some_and(|m| {
                m.entries
                    .iter()
                    .map(|(_, v)| v)
                    .chain(m.default.as_ref())
                    .any(|v| v == "6" || v == "7")
            })
        };
        let resolves = fields
            .iter()
            .any(|f| f.ticket == "status" && f.flow.to_ticket() && resolving(&f.to_ticket));
        if !resolves {
            return;
        }
        let writes = |attr: &str| {
            fields
                .iter()
                .any(|f| f.ticket == attr && f.flow.to_ticket())
        };
        let missing: Vec<&str> = ["close_code", "close_notes"]
            .into_iter()
            .filter(|a| !writes(a))
            .collect();
        if missing.is_empty() {
            return;
        }
        let at = raw
            .iter()
            .filter_map(|f| f.get_ref().ticket.as_ref())
            .find(|t| t.get_ref() == "status")
            .map_or(0, |t| t.span().start);
        self.r.at(
            at,
            format!(
                "this mapping resolves ServiceNow incidents (status 6/7), which the instance refuses without a resolution code and notes, but no field writes {} to the ticket; add a [[field]] with ticket = \"{}\" flowing to the ticket",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(" or "),
                missing[0]
            ),
        );
    }

    /// `[api]`: required for, and only for, `tickets = "generic"`; checked with the
    /// fields that use it. `None` when it is wrong.
    fn api(&mut self, raw: &RawMapping) -> Option<Option<GenericApi>> {
        let generic = self.tickets == Some(TicketKind::Generic);
        match (&raw.api, &raw.tickets) {
            (Some(api), Some(tickets)) if self.tickets.is_some() && !generic => {
                self.r.at(
                    api.span().start,
                    format!("[api] describes a generic ticket system's REST API, and this mapping is for tickets = \"{}\"; remove it", tickets.get_ref()),
                );
                None
            }
            (Some(api), _) => {
                let checked = generic_api::check(&mut self.r, self.text, api)?;
                let uses: Vec<generic_api::FieldUse<'_>> = raw
                    .field
                    .iter()
                    .map(|f| generic_api::FieldUse {
                        ticket: f.get_ref().ticket.as_ref(),
                        incident: f.get_ref().incident.as_ref(),
                        template: f.get_ref().template.as_ref(),
                        flow: f.get_ref().flow.as_ref(),
                        to_ticket: f.get_ref().to_ticket.as_ref(),
                        to_ticket_default: f.get_ref().to_ticket_default.as_ref(),
                        to_incident: f.get_ref().to_incident.as_ref(),
                    })
                    .collect();
                let labels = raw.create.as_ref().map_or(&[][..], |c| &c.labels[..]);
                generic_api::check_uses(&mut self.r, &checked, self.source, &uses, labels)
                    .then_some(Some(checked))
            }
            (None, Some(tickets)) if generic => {
                self.r.at(
                    tickets.span().start,
                    "add an [api] table: a generic ticket system is described by its endpoints and JSON pointers (see mappings/README.md)",
                );
                None
            }
            (None, _) => Some(None),
        }
    }

    fn source_system(&self) -> &'static str {
        self.source.map_or("incident", source_system_name)
    }

    fn ticket_system(&self) -> &'static str {
        self.tickets.map_or("ticket", ticket_system_name)
    }

    /// The incident attribute names templates may use (every kind's when the
    /// source kind is unknown, so one mistake does not hide the template checks).
    fn incident_attr_names(&self) -> Vec<&'static str> {
        let kinds: &[SourceKind] = match &self.source {
            Some(kind) => std::slice::from_ref(kind),
            None => &[SourceKind::Graph, SourceKind::Sentinel],
        };
        let mut names: Vec<&'static str> = Vec::new();
        for kind in kinds {
            for a in vocab::incident_attrs(*kind) {
                if !names.contains(&a.name) {
                    names.push(a.name);
                }
            }
        }
        names
    }

    fn template(&mut self, s: &Spanned<String>, allow_ticket: bool) -> Option<Template> {
        let names = self.incident_attr_names();
        match Template::parse(s.get_ref(), &names, allow_ticket) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = string_position(self.text, s.span(), s.get_ref(), e.offset);
                self.r.at(at, e.message);
                None
            }
        }
    }

    fn labels(&mut self, raw: &[Spanned<String>]) -> Option<Vec<Template>> {
        let mut ok = true;
        let mut labels = Vec::new();
        for label in raw {
            let text = label.get_ref();
            if text.trim().is_empty() {
                self.r.at(
                    label.span().start,
                    "a label cannot be empty; remove it or give it text",
                );
                ok = false;
                continue;
            }
            if self.tickets == Some(TicketKind::Jira) && text.chars().any(char::is_whitespace) {
                self.r.at(
                    label.span().start,
                    format!(
                        "Jira labels cannot contain spaces; write `{}`",
                        text.split_whitespace().collect::<Vec<_>>().join("-")
                    ),
                );
                ok = false;
                continue;
            }
            match self.template(label, false) {
                Some(t) => labels.push(t),
                None => ok = false,
            }
        }
        ok.then_some(labels)
    }

    fn skip_statuses(&mut self, raw: &[Spanned<String>]) -> Option<Vec<String>> {
        let status = self
            .source
            .and_then(|k| vocab::find(vocab::incident_attrs(k), "status"));
        let mut ok = true;
        let mut statuses = Vec::new();
        for s in raw {
            match status.and_then(|spec| spec.values) {
                Some(values) => match find_ci(values, s.get_ref()) {
                    Some(canonical) => statuses.push(canonical.to_string()),
                    None => {
                        self.r.at(
                            s.span().start,
                            format!(
                                "`{}` is not a {} status; known values: {}",
                                s.get_ref(),
                                self.source_system(),
                                values.join(", ")
                            ),
                        );
                        ok = false;
                    }
                },
                None => statuses.push(s.get_ref().clone()),
            }
        }
        ok.then_some(statuses)
    }

    fn write_back(&mut self, raw: &RawWriteBack) -> Option<WriteBack> {
        let mut ok = true;
        let mut tags = Vec::new();
        for tag in &raw.tags {
            if tag.get_ref().trim().is_empty() {
                self.r.at(
                    tag.span().start,
                    "a tag cannot be empty; remove it or give it text",
                );
                ok = false;
                continue;
            }
            match self.template(tag, true) {
                Some(t) => tags.push(t),
                None => ok = false,
            }
        }
        let comment = match &raw.comment {
            Some(c) if c.get_ref().trim().is_empty() => {
                self.r.at(
                    c.span().start,
                    "the write-back comment is empty; remove `comment` or give it text",
                );
                None
            }
            Some(c) => {
                let t = self.template(c, true);
                ok &= t.is_some();
                t
            }
            None => None,
        };
        ok.then_some(WriteBack { tags, comment })
    }

    fn fields(&mut self, raw: &[Spanned<RawField>]) -> Option<Vec<FieldRule>> {
        let mut ok = true;
        let mut fields = Vec::new();
        // Field name → line of its first use; attribute → (field, line) that writes it.
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut ticket_writers: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut incident_writers: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for spanned in raw {
            let header = spanned.span().start;
            let line = line_col(self.text, header).0;
            let f = spanned.get_ref();

            // The name defaults to the ticket attribute.
            let (name, name_at) = match (&f.name, &f.ticket) {
                (Some(n), _) => (n.get_ref().clone(), n.span().start),
                (None, Some(t)) => (t.get_ref().clone(), header),
                (None, None) => (String::new(), header),
            };
            if f.name.is_some() && !valid_field_name(&name) {
                self.r.at(
                    name_at,
                    format!(
                        "invalid field name `{name}`; use lowercase letters, digits, `-` and `_`"
                    ),
                );
                ok = false;
            } else if !name.is_empty() {
                if let Some(first) = names.get(&name) {
                    self.r.at(
                        name_at,
                        format!("field name `{name}` is already used on line {first}; give each [[field]] its own `name`"),
                    );
                    ok = false;
                } else {
                    names.insert(name.clone(), line);
                }
            }

            match self.field(header, name, f) {
                Some(rule) => {
                    if rule.flow.to_ticket() {
                        ok &= self.claim(
                            &mut ticket_writers,
                            "ticket",
                            &rule.ticket,
                            &rule.name,
                            line,
                            header,
                        );
                    }
                    if let (true, Some(attr)) = (rule.flow.to_incident(), rule.incident_attr()) {
                        ok &= self.claim(
                            &mut incident_writers,
                            "incident",
                            attr,
                            &rule.name,
                            line,
                            header,
                        );
                    }
                    fields.push(rule);
                }
                None => ok = false,
            }
        }
        if ok
            && self.tickets.is_some()
            && !fields
                .iter()
                .any(|f| f.ticket == "summary" && f.flow.to_ticket())
        {
            self.r.at(
                0,
                "add a [[field]] with `ticket = \"summary\"`: every new ticket needs a summary",
            );
            ok = false;
        }
        ok.then_some(fields)
    }

    /// Records that `field` writes `attr`; two fields writing one attribute would fight.
    fn claim(
        &mut self,
        writers: &mut BTreeMap<String, (String, usize)>,
        role: &str,
        attr: &str,
        field: &str,
        line: usize,
        at: usize,
    ) -> bool {
        if let Some((other, other_line)) = writers.get(attr) {
            self.r.at(
                at,
                format!("field `{field}` writes the {role} attribute `{attr}`, which field `{other}` (line {other_line}) already writes; map each attribute in one direction once"),
            );
            return false;
        }
        writers.insert(attr.to_string(), (field.to_string(), line));
        true
    }

    fn field(&mut self, header: usize, name: String, f: &RawField) -> Option<FieldRule> {
        let ticket = self.field_ticket(header, f);
        let side = self.field_side(header, f);
        let is_template = f.template.is_some() && f.incident.is_none();
        let flow = self.field_flow(f, is_template);
        let flow_at = f.flow.as_ref().map(|s| s.span().start);
        let mut ok = match flow {
            Some(flow) => self.maps_fit_the_flow(header, f, flow, is_template),
            None => false,
        };
        let conflict = self.field_conflict(f, flow, &mut ok);

        let (Some(ticket), Some(side), Some(flow)) = (ticket, side, flow) else {
            return None;
        };
        let ticket_end = End {
            spec: ticket,
            system: self.ticket_system(),
            role: "ticket",
        };
        ok &= self.writable_both_ways(header, f, flow_at, flow, &ticket_end, &side);
        let maps = self.field_value_maps(header, f, flow, &ticket_end, &side);
        let (Some((to_ticket, to_incident)), true) = (maps, ok) else {
            return None;
        };
        let incident = match side {
            Side::Attr(spec) => IncidentSide::Attr(spec.name.to_string()),
            Side::Template(t) => IncidentSide::Template(t),
        };
        Some(FieldRule {
            name,
            incident,
            ticket: ticket.name.to_string(),
            flow,
            to_ticket,
            to_incident,
            conflict,
        })
    }

    /// The field's ticket attribute, known to the ticket system.
    fn field_ticket(&mut self, header: usize, f: &RawField) -> Option<&'static AttrSpec> {
        match (&f.ticket, self.tickets) {
            (None, _) => {
                self.r.at(
                    header,
                    "add `ticket = \"<attribute>\"`: the ticket attribute this field maps to",
                );
                None
            }
            (Some(_), None) => None,
            (Some(t), Some(kind)) => {
                let attrs = vocab::ticket_attrs(kind);
                let spec = vocab::find(attrs, t.get_ref());
                if spec.is_none() {
                    self.r.at(
                        t.span().start,
                        format!(
                            "unknown {} attribute `{}`; known attributes: {}",
                            ticket_system_name(kind),
                            t.get_ref(),
                            attr_names(attrs)
                        ),
                    );
                }
                spec
            }
        }
    }

    /// The field's incident side: an attribute known to the source, or a template.
    fn field_side(&mut self, header: usize, f: &RawField) -> Option<Side> {
        match (&f.incident, &f.template) {
            (Some(_), Some(t)) => {
                self.r.at(
                    t.span().start,
                    "give either `incident` (an attribute) or `template` (text rendered from the incident), not both",
                );
                None
            }
            (None, None) => {
                self.r.at(
                    header,
                    "add `incident = \"<attribute>\"` (an incident attribute) or `template = \"...\"` (text rendered from the incident)",
                );
                None
            }
            (Some(i), None) => match self.source {
                None => None,
                Some(kind) => {
                    let attrs = vocab::incident_attrs(kind);
                    match vocab::find(attrs, i.get_ref()) {
                        Some(spec) => Some(Side::Attr(spec)),
                        None => {
                            self.r.at(
                                i.span().start,
                                format!(
                                    "unknown {} attribute `{}`; known attributes: {}",
                                    source_system_name(kind),
                                    i.get_ref(),
                                    attr_names(attrs)
                                ),
                            );
                            None
                        }
                    }
                }
            },
            (None, Some(t)) => self.template(t, false).map(Side::Template),
        }
    }

    /// The flow: templates go to the ticket, attributes both ways unless told.
    fn field_flow(&mut self, f: &RawField, is_template: bool) -> Option<Flow> {
        match &f.flow {
            None if is_template => Some(Flow::ToTicket),
            None => Some(Flow::Both),
            Some(s) => {
                let flow = match s.get_ref().as_str() {
                    "both" => Some(Flow::Both),
                    "to_ticket" => Some(Flow::ToTicket),
                    "to_incident" => Some(Flow::ToIncident),
                    _ => None,
                };
                if flow.is_none() {
                    self.r.at(
                        s.span().start,
                        format!(
                            "unknown flow `{}`; write \"both\", \"to_ticket\" or \"to_incident\"",
                            s.get_ref()
                        ),
                    );
                }
                flow
            }
        }
    }

    /// A template flows to the ticket only, and has no value map; a map or a
    /// default is given only for a direction the flow includes.
    fn maps_fit_the_flow(
        &mut self,
        header: usize,
        f: &RawField,
        flow: Flow,
        is_template: bool,
    ) -> bool {
        let mut ok = true;
        let flow_at = f.flow.as_ref().map(|s| s.span().start);
        if is_template && flow.to_incident() {
            self.r.at(
                flow_at.unwrap_or(header),
                "a template only flows to the ticket; set flow = \"to_ticket\" or remove `flow`",
            );
            ok = false;
        }
        // Maps and defaults for a direction the flow does not include.
        let directions = [
            (
                "to_ticket",
                flow.to_ticket(),
                f.to_ticket.as_ref().map(|m| m.span().start),
                f.to_ticket_default.as_ref().map(|d| d.span().start),
            ),
            (
                "to_incident",
                flow.to_incident(),
                f.to_incident.as_ref().map(|m| m.span().start),
                f.to_incident_default.as_ref().map(|d| d.span().start),
            ),
        ];
        for (dir, included, map_at, default_at) in directions {
            for (what, at) in [
                (dir.to_string(), map_at),
                (format!("{dir}_default"), default_at),
            ] {
                let Some(at) = at else { continue };
                if is_template {
                    let message = if dir == "to_ticket" {
                        format!(
                            "a template field has no value map: its text goes to the ticket as rendered; remove `{what}`"
                        )
                    } else {
                        format!("a template only flows to the ticket; remove `{what}`")
                    };
                    self.r.at(at, message);
                    ok = false;
                } else if !included {
                    self.r.at(
                        at,
                        format!(
                            "{what} is given but flow = \"{}\"; remove it or set flow = \"both\"",
                            flow_name(flow)
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// The per-field conflict policy, which only a two-way field has.
    fn field_conflict(
        &mut self,
        f: &RawField,
        flow: Option<Flow>,
        ok: &mut bool,
    ) -> Option<ConflictPolicy> {
        match &f.conflict {
            None => None,
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
                    *ok = false;
                } else if flow.is_some_and(|fl| fl != Flow::Both) {
                    self.r.at(
                        c.span().start,
                        "`conflict` only applies when flow = \"both\" (a one-way field never conflicts); remove it",
                    );
                    *ok = false;
                }
                policy
            }
        }
    }

    /// Each end the flow writes to is writable.
    fn writable_both_ways(
        &mut self,
        header: usize,
        f: &RawField,
        flow_at: Option<usize>,
        flow: Flow,
        ticket_end: &End,
        side: &Side,
    ) -> bool {
        let mut ok = true;
        let ticket = ticket_end.spec;
        let flow_note = if f.flow.is_none() {
            " (flow defaults to \"both\")"
        } else {
            ""
        };
        if flow.to_ticket() && !ticket.writable {
            self.r.at(
                flow_at.unwrap_or(header),
                format!(
                    "the {} attribute `{}` is read-only, so it cannot flow to the ticket; set flow = \"to_incident\"",
                    ticket_end.system, ticket.name
                ),
            );
            ok = false;
        }
        if let Side::Attr(spec) = side {
            if flow.to_incident() && !spec.writable {
                self.r.at(
                    flow_at.unwrap_or(header),
                    format!(
                        "the {} attribute `{}` is read-only, so it cannot flow to the incident; set flow = \"to_ticket\"{flow_note}",
                        self.source_system(),
                        spec.name
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    /// The value maps of each direction the flow writes: `None` when one is
    /// wrong; a direction whose values are copied as they are has `None` in it.
    fn field_value_maps(
        &mut self,
        header: usize,
        f: &RawField,
        flow: Flow,
        ticket_end: &End,
        side: &Side,
    ) -> Option<(Option<ValueMap>, Option<ValueMap>)> {
        let mut ok = true;
        let ticket = ticket_end.spec;
        let mut to_ticket = None;
        let mut to_incident = None;
        match side {
            Side::Template(_) => {
                if let Some(values) = ticket.values {
                    let at = f.template.as_ref().map_or(header, |t| t.span().start);
                    self.r.at(
                        at,
                        format!(
                            "a template renders free text, but the {} `{}` takes only: {}; map an incident attribute with a to_ticket map instead",
                            ticket_end.system,
                            ticket.name,
                            values.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
            Side::Attr(spec) => {
                let incident_end = End {
                    spec,
                    system: self.source_system(),
                    role: "incident",
                };
                if flow.to_ticket() && ticket.writable {
                    match self.value_map(
                        "to_ticket",
                        &incident_end,
                        ticket_end,
                        f.to_ticket.as_ref(),
                        f.to_ticket_default.as_ref(),
                        header,
                    ) {
                        Some(m) => to_ticket = m,
                        None => ok = false,
                    }
                }
                if flow.to_incident() && spec.writable {
                    match self.value_map(
                        "to_incident",
                        ticket_end,
                        &incident_end,
                        f.to_incident.as_ref(),
                        f.to_incident_default.as_ref(),
                        header,
                    ) {
                        Some(m) => to_incident = m,
                        None => ok = false,
                    }
                }
            }
        }
        ok.then_some((to_ticket, to_incident))
    }

    /// Checks the map (and default) for one direction, `from` → `to`. `None` when it
    /// is wrong; `Some(None)` when values are copied as they are.
    fn value_map(
        &mut self,
        dir: &str,
        from: &End,
        to: &End,
        map: Option<&RawValueMap>,
        default: Option<&Spanned<String>>,
        anchor: usize,
    ) -> Option<Option<ValueMap>> {
        let mut ok = true;
        let entries = self.map_entries(dir, from, to, map);
        ok &= entries.is_some();
        let default_value = match default {
            Some(d) => {
                let v = self.target_value(dir, to, d);
                ok &= v.is_some();
                v
            }
            None => None,
        };

        // Totality: every value that can arrive must have somewhere to go.
        if default.is_none() {
            ok &= self.every_value_has_somewhere_to_go(dir, from, to, map, anchor);
        }
        if !ok {
            return None;
        }
        if map.is_none() && default_value.is_none() {
            return Some(None);
        }
        Some(Some(ValueMap {
            entries: entries.unwrap_or_default(),
            default: default_value,
        }))
    }

    /// A map's entries: keys the `from` side has (case-insensitively, once each)
    /// and values the `to` side takes. `None` when one is wrong.
    fn map_entries(
        &mut self,
        dir: &str,
        from: &End,
        to: &End,
        map: Option<&RawValueMap>,
    ) -> Option<Vec<(String, String)>> {
        let mut ok = true;
        let mut entries: Vec<(String, String)> = Vec::new();
        if let Some(map) = map {
            let mut items: Vec<_> = map.get_ref().iter().collect();
            items.sort_by_key(|(k, _)| k.span().start);
            let mut seen: Vec<&str> = Vec::new();
            for (k, v) in items {
                let key = k.get_ref().as_str();
                let key = match from.spec.values {
                    Some(values) => match find_ci(values, key) {
                        Some(canonical) => canonical,
                        None => {
                            self.r.at(
                                k.span().start,
                                format!(
                                    "`{key}` is not a {} {}; known values: {}",
                                    from.system,
                                    from.spec.name,
                                    values.join(", ")
                                ),
                            );
                            ok = false;
                            continue;
                        }
                    },
                    None => key,
                };
                if seen.iter().any(|s| s.eq_ignore_ascii_case(key)) {
                    self.r.at(
                        k.span().start,
                        format!("`{}` is listed twice in {dir} (keys match case-insensitively); keep one", k.get_ref()),
                    );
                    ok = false;
                    continue;
                }
                seen.push(key);
                match self.target_value(dir, to, v) {
                    Some(value) => entries.push((key.to_string(), value)),
                    None => ok = false,
                }
            }
        }
        ok.then_some(entries)
    }

    /// Without a default, every value that can arrive in `from` is mapped, or
    /// copied into a `to` that takes it.
    fn every_value_has_somewhere_to_go(
        &mut self,
        dir: &str,
        from: &End,
        to: &End,
        map: Option<&RawValueMap>,
        anchor: usize,
    ) -> bool {
        let mut ok = true;
        match (from.spec.values, map) {
            (Some(values), Some(m)) => {
                let missing: Vec<&str> = values
                    .iter()
                    .copied()
                    .filter(|v| {
                        !m.get_ref()
                            .keys()
                            .any(|k| k.get_ref().eq_ignore_ascii_case(v))
                    })
                    .collect();
                if !missing.is_empty() {
                    self.r.at(
                        m.span().start,
                        format!(
                            "{dir} does not cover the {} {} values: {} (add them or set {dir}_default)",
                            from.role,
                            from.spec.name,
                            missing.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
            (Some(values), None) => {
                if let Some(targets) = to.spec.values {
                    let uncopyable: Vec<&str> = values
                        .iter()
                        .copied()
                        .filter(|v| {
                            find_ci(targets, v).is_none()
                                || contains_ci(to.spec.read_only_values, v)
                        })
                        .collect();
                    if !uncopyable.is_empty() {
                        self.r.at(
                            anchor,
                            format!(
                                "add a {dir} map: the {} {} values {} cannot be copied to the {} {}, which takes: {}",
                                from.role,
                                from.spec.name,
                                uncopyable.join(", "),
                                to.system,
                                to.spec.name,
                                writable_values(to.spec).join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
            }
            (None, map) => {
                if to.spec.values.is_some() {
                    let (at, what) = match map {
                        Some(m) => (m.span().start, format!("set {dir}_default")),
                        None => (anchor, format!("add a {dir} map and {dir}_default")),
                    };
                    self.r.at(
                        at,
                        format!(
                            "{what}: the {} {} is free text, and the {} {} takes only: {}",
                            from.role,
                            from.spec.name,
                            to.system,
                            to.spec.name,
                            writable_values(to.spec).join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// `[merge] close_with`: writable ticket attributes and values they take, for a
    /// policy that closes the merged incident's ticket.
    fn close_with(
        &mut self,
        merge: Option<&RawMerge>,
        policy: Option<MergePolicy>,
    ) -> Option<Vec<(String, String)>> {
        let Some(table) = merge.and_then(|m| m.close_with.as_ref()) else {
            return Some(Vec::new());
        };
        if policy.is_some_and(|p| p != MergePolicy::CloseAsDuplicate) {
            self.r.at(
                table.span().start,
                "close_with only applies with policy = \"close_as_duplicate\", which closes the merged incident's ticket",
            );
            return None;
        }
        let kind = self.tickets?;
        let attrs = vocab::ticket_attrs(kind);
        let mut out = Vec::new();
        let mut ok = true;
        for (attr, value) in table.get_ref() {
            let Some(spec) = vocab::find(attrs, attr.get_ref()) else {
                self.r.at(
                    attr.span().start,
                    format!(
                        "unknown {} attribute `{}`; known attributes: {}",
                        ticket_system_name(kind),
                        attr.get_ref(),
                        attr_names(attrs)
                    ),
                );
                ok = false;
                continue;
            };
            if !spec.writable {
                self.r.at(
                    attr.span().start,
                    format!(
                        "the {} attribute `{}` cannot be written",
                        ticket_system_name(kind),
                        spec.name
                    ),
                );
                ok = false;
                continue;
            }
            let end = End {
                spec,
                system: self.ticket_system(),
                role: "ticket",
            };
            match self.target_value("close_with", &end, value) {
                Some(v) => out.push((spec.name.to_string(), v)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A value a map produces: one the target attribute takes and may be given.
    fn target_value(&mut self, dir: &str, to: &End, v: &Spanned<String>) -> Option<String> {
        let value = v.get_ref();
        if value.is_empty() {
            // "" leaves the attribute empty; an enumerated one always has a value.
            if to.spec.values.is_some() {
                self.r.at(
                    v.span().start,
                    format!(
                        "a {dir} value cannot be empty for the {} attribute `{}`, which always has a value; give one of its values",
                        to.role, to.spec.name
                    ),
                );
                return None;
            }
            return Some(String::new());
        }
        let value = match to.spec.values {
            Some(values) => match find_ci(values, value) {
                Some(canonical) => canonical.to_string(),
                None => {
                    self.r.at(
                        v.span().start,
                        format!(
                            "`{value}` is not a {} {}; known values: {}",
                            to.system,
                            to.spec.name,
                            values.join(", ")
                        ),
                    );
                    return None;
                }
            },
            None => value.clone(),
        };
        if contains_ci(to.spec.read_only_values, &value) {
            self.r.at(
                v.span().start,
                format!(
                    "`{value}` cannot be written to the {} {} ({} sets it itself); map to one of: {}",
                    to.system,
                    to.spec.name,
                    to.system,
                    writable_values(to.spec).join(", ")
                ),
            );
            return None;
        }
        Some(value)
    }
}

// ---------------------------------------------------------------------------------
// Small helpers.

fn report_toml_error(r: &mut Reporter<'_>, e: &toml::de::Error) {
    let at = e.span().map_or(0, |s| s.start);
    // TOML calls them keys; serde calls them fields.
    let message = e
        .message()
        .trim()
        .replacen("unknown field", "unknown key", 1);
    r.at(at, message);
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Both => "both",
        Flow::ToTicket => "to_ticket",
        Flow::ToIncident => "to_incident",
    }
}

fn source_system_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Graph => "Graph",
        SourceKind::Sentinel => "Sentinel",
    }
}

fn ticket_system_name(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Jira => "Jira",
        TicketKind::Servicenow => "ServiceNow",
        TicketKind::Generic => "generic",
    }
}

fn attr_names(attrs: &[AttrSpec]) -> String {
    attrs.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

fn writable_values(spec: &AttrSpec) -> Vec<&'static str> {
    spec.values
        .unwrap_or(&[])
        .iter()
        .copied()
        .filter(|v| !contains_ci(spec.read_only_values, v))
        .collect()
}

fn find_ci(values: &[&'static str], value: &str) -> Option<&'static str> {
    values
        .iter()
        .copied()
        .find(|v| v.eq_ignore_ascii_case(value))
}

fn contains_ci(values: &[&str], value: &str) -> bool {
    values.iter().any(|v| v.eq_ignore_ascii_case(value))
}

fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const JIRA: &str = include_str!("../../../mappings/jira.toml");

    /// The diagnostics of a bad mapping, as `line:column: message` lines.
    fn errors(text: &str) -> Vec<String> {
        let err = parse(Path::new("m.toml"), text).expect_err("the mapping should be refused");
        err.diagnostics
            .iter()
            .map(|d| {
                assert_eq!(d.file, Path::new("m.toml"));
                format!("{}:{}: {}", d.line, d.column, d.message)
            })
            .collect()
    }

    fn check(text: &str, expected: &[&str]) {
        assert_eq!(errors(text), expected, "for mapping:\n{text}");
    }

    /// A small valid Graph → Jira mapping; tests append to it.
    const BASE: &str = "version = 1\nsource = \"graph\"\ntickets = \"jira\"\n\n[[field]]\nname = \"summary\"\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n";

    #[test]
    fn a_servicenow_mapping_that_resolves_needs_close_code_and_notes() {
        let shipped = include_str!("../../../mappings/servicenow.toml");
        parse(Path::new("servicenow.toml"), shipped).unwrap_or_else(|e| panic!("{e}"));
        let start = shipped.find("name = \"close_notes\"").unwrap();
        let field_start = shipped[..start].rfind("[[field]]").unwrap();
        let field_end = start + shipped[start..].find("[[field]]").unwrap();
        let without_notes = format!("{}{}", &shipped[..field_start], &shipped[field_end..]);
        let err = parse(Path::new("servicenow.toml"), &without_notes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no field writes `close_notes` to the ticket"),
            "{err}"
        );
        let status_line = without_notes[..without_notes.find("ticket = \"status\"").unwrap()]
            .matches('\n')
            .count()
            + 1;
        assert!(
            err.starts_with(&format!("servicenow.toml:{status_line}:")),
            "{err}"
        );
    }

    #[test]
    fn shipped_jira_mapping_loads() {
        let m = parse(Path::new("mappings/jira.toml"), JIRA).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.source_kind, SourceKind::Graph);
        assert_eq!(m.ticket_kind, TicketKind::Jira);
        let names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "summary",
                "description",
                "priority",
                "status",
                "classification",
                "assignee"
            ]
        );
        let status = m.fields.iter().find(|f| f.name == "status").unwrap();
        assert_eq!(status.flow, Flow::Both);
        assert_eq!(
            status.map_to_ticket(Some("inprogress")).as_deref(),
            Some("indeterminate")
        );
        assert_eq!(
            status.map_to_incident(Some("done")).as_deref(),
            Some("resolved")
        );
        let priority = m.fields.iter().find(|f| f.name == "priority").unwrap();
        assert_eq!(
            priority.map_to_ticket(Some("high")).as_deref(),
            Some("Highest")
        );
        let classification = m
            .fields
            .iter()
            .find(|f| f.name == "classification")
            .unwrap();
        assert_eq!(
            classification.map_to_incident(Some("won't do")).as_deref(),
            Some("falsePositive")
        );
        assert_eq!(
            classification
                .map_to_incident(Some("Cannot Reproduce"))
                .as_deref(),
            Some("unknown")
        );
        let description = m.fields.iter().find(|f| f.name == "description").unwrap();
        match &description.incident {
            IncidentSide::Template(t) => assert!(t.as_str().contains("{incident.url}")),
            IncidentSide::Attr(a) => panic!("description maps attribute {a}"),
        }
        assert_eq!(m.skip_create_statuses, ["resolved", "redirected"]);
        assert!(m.write_back.tags.iter().all(Template::uses_ticket));
        assert!(
            m.write_back
                .comment
                .as_ref()
                .is_some_and(Template::uses_ticket)
        );
    }

    #[test]
    fn minimal_mapping_defaults() {
        let m = parse(
            Path::new("m.toml"),
            &format!("{BASE}\n[[field]]\nincident = \"assigned_to\"\nticket = \"assignee\"\n"),
        )
        .unwrap();
        let assignee = &m.fields[1];
        assert_eq!(
            assignee.name, "assignee",
            "the name defaults to the ticket attribute"
        );
        assert_eq!(assignee.flow, Flow::Both);
        assert!(
            assignee.to_ticket.is_none() && assignee.to_incident.is_none(),
            "open values are copied"
        );
        assert_eq!(
            m.fields[0].flow,
            Flow::ToTicket,
            "templates flow to the ticket"
        );
        assert!(m.labels.is_empty() && m.skip_create_statuses.is_empty());
        assert!(m.write_back.tags.is_empty() && m.write_back.comment.is_none());
    }

    #[test]
    fn raise_priority_needs_a_severity_rule_to_raise() {
        check(
            &format!("{BASE}\n[merge]\nraise_priority = true\n"),
            &[
                "11:18: raise_priority needs a [[field]] with incident = \"severity\" that flows to the ticket; add one or remove raise_priority",
            ],
        );
        let m = parse(
            Path::new("m.toml"),
            &JIRA.replace(
                "policy = \"close_as_duplicate\"",
                "policy = \"close_as_duplicate\"\nraise_priority = true",
            ),
        )
        .unwrap();
        assert!(m.raise_priority);
        assert!(
            !parse(Path::new("m.toml"), JIRA).unwrap().raise_priority,
            "off by default"
        );
    }

    #[test]
    fn close_with_takes_writable_attributes_and_their_values() {
        let m = parse(Path::new("m.toml"), JIRA).unwrap();
        assert_eq!(
            m.close_with,
            vec![("resolution".to_string(), "Duplicate".to_string())]
        );
        check(
            &format!(
                "{BASE}\n[merge]\nclose_with = {{ resolutoin = \"Duplicate\", created = \"x\" }}\n"
            ),
            &[
                "11:16: unknown Jira attribute `resolutoin`; known attributes: summary, description, status, status_name, priority, resolution, assignee",
                "11:42: unknown Jira attribute `created`; known attributes: summary, description, status, status_name, priority, resolution, assignee",
            ],
        );
        check(
            &format!("{BASE}\n[merge]\nclose_with = {{ status = \"finished\" }}\n"),
            &["11:25: `finished` is not a Jira status; known values: new, indeterminate, done"],
        );
        check(
            &format!(
                "{BASE}\n[merge]\npolicy = \"link_only\"\nclose_with = {{ resolution = \"Duplicate\" }}\n"
            ),
            &[
                "12:14: close_with only applies with policy = \"close_as_duplicate\", which closes the merged incident's ticket",
            ],
        );
    }

    #[test]
    fn syntax_and_unknown_keys() {
        check(
            "version = 1\nsource = \"graph\"\ntickets = \"jira\"\nfeild = 1\n",
            &[
                "4:1: unknown key `feild`, expected one of `version`, `source`, `tickets`, `create`, `field`, `write_back`, `merge`, `comments`, `api`",
            ],
        );
        check(
            &format!("{BASE}flow = \"to_ticket\"\nmap = {{ a = \"b\" }}\n"),
            &[
                "10:1: unknown key `map`, expected one of `name`, `incident`, `template`, `ticket`, `flow`, `conflict`, `to_ticket`, `to_ticket_default`, `to_incident`, `to_incident_default`",
            ],
        );
        let e = errors("version = 1\nsource = \"graph\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("2:"), "{e:?}");
    }

    #[test]
    fn header_problems_are_reported_together() {
        check(
            "version = 2\nsource = \"defender\"\ntickets = \"jira\"\n",
            &[
                "1:1: add a [[field]] with `ticket = \"summary\"`: every new ticket needs a summary",
                "1:11: unsupported mapping version 2; this bridge reads version = 1",
                "2:10: unknown source `defender`; write \"graph\" or \"sentinel\"",
            ],
        );
        check(
            "[[field]]\ntemplate = \"x\"\nticket = \"summary\"\n",
            &[
                "1:1: add `version = 1` at the top: the mapping format version",
                "1:1: add `source = \"graph\"` or `source = \"sentinel\"`: the incident vocabulary this mapping reads",
                "1:1: add `tickets = \"jira\"`, `\"servicenow\"` or `\"generic\"`: the ticket vocabulary this mapping writes",
            ],
        );
    }

    #[test]
    fn unknown_attributes_list_the_known_ones() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"sevrity\"\nticket = \"priority\"\nflow = \"to_ticket\"\n\n[[field]]\nname = \"x\"\nincident = \"title\"\nticket = \"components\"\nflow = \"to_ticket\"\n"
            ),
            &[
                "11:12: unknown Graph attribute `sevrity`; known attributes: title, description, status, severity, classification, determination, assigned_to",
                "18:10: unknown Jira attribute `components`; known attributes: summary, description, status, status_name, priority, resolution, assignee",
            ],
        );
    }

    #[test]
    fn writes_to_read_only_attributes_are_refused() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"severity\"\nticket = \"priority\"\nto_ticket_default = \"Medium\"\n\n[[field]]\nincident = \"title\"\nticket = \"status_name\"\nflow = \"both\"\n"
            ),
            &[
                "10:1: the Graph attribute `severity` is read-only, so it cannot flow to the incident; set flow = \"to_ticket\" (flow defaults to \"both\")",
                "18:8: the Jira attribute `status_name` is read-only, so it cannot flow to the ticket; set flow = \"to_incident\"",
                "18:8: the Graph attribute `title` is read-only, so it cannot flow to the incident; set flow = \"to_ticket\"",
            ],
        );
    }

    const STATUS_TO_TICKET: &str = "active = \"new\", inProgress = \"indeterminate\", awaitingAction = \"indeterminate\", resolved = \"done\", redirected = \"done\", unknownFutureValue = \"new\"";

    #[test]
    fn value_maps_must_cover_closed_sets() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nflow = \"to_ticket\"\nto_ticket = {{ active = \"new\", inProgress = \"indeterminate\", resolved = \"done\", redirected = \"done\" }}\n"
            ),
            &[
                "14:13: to_ticket does not cover the incident status values: awaitingAction, unknownFutureValue (add them or set to_ticket_default)",
            ],
        );
        // The ticket's closed set must be covered on the way back too.
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nto_ticket = {{ {STATUS_TO_TICKET} }}\nto_incident = {{ new = \"active\", done = \"resolved\" }}\n"
            ),
            &[
                "14:15: to_incident does not cover the ticket status values: indeterminate (add them or set to_incident_default)",
            ],
        );
        // A default makes the map total.
        parse(
            Path::new("m.toml"),
            &format!("{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nto_ticket = {{ {STATUS_TO_TICKET} }}\nto_incident = {{ new = \"active\" }}\nto_incident_default = \"inProgress\"\n"),
        )
        .unwrap();
    }

    #[test]
    fn value_map_keys_and_values_must_be_known() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nflow = \"to_ticket\"\nto_ticket_default = \"new\"\n[field.to_ticket]\nactve = \"new\"\nresolved = \"closed\"\nResolved = \"done\"\n"
            ),
            &[
                "16:1: `actve` is not a Graph status; known values: active, resolved, inProgress, redirected, awaitingAction, unknownFutureValue",
                "17:12: `closed` is not a Jira status; known values: new, indeterminate, done",
                "18:1: `Resolved` is listed twice in to_ticket (keys match case-insensitively); keep one",
            ],
        );
    }

    #[test]
    fn graph_refuses_redirected_and_other_read_only_statuses() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nto_ticket = {{ {STATUS_TO_TICKET} }}\nto_incident = {{ new = \"active\", indeterminate = \"awaitingAction\", done = \"redirected\" }}\n"
            ),
            &[
                "14:49: `awaitingAction` cannot be written to the Graph status (Graph sets it itself); map to one of: active, resolved, inProgress",
                "14:74: `redirected` cannot be written to the Graph status (Graph sets it itself); map to one of: active, resolved, inProgress",
            ],
        );
    }

    #[test]
    fn copying_into_a_closed_set_needs_a_map() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"status\"\nticket = \"status\"\nflow = \"to_ticket\"\n\n[[field]]\nincident = \"title\"\nticket = \"resolution\"\nflow = \"to_ticket\"\n\n[[field]]\nname = \"classification\"\nincident = \"classification\"\nticket = \"resolution\"\nflow = \"to_incident\"\nto_incident = {{ Done = \"truePositive\" }}\n"
            ),
            &[
                "10:1: add a to_ticket map: the incident status values active, resolved, inProgress, redirected, awaitingAction, unknownFutureValue cannot be copied to the Jira status, which takes: new, indeterminate, done",
                "25:15: set to_incident_default: the ticket resolution is free text, and the Graph classification takes only: unknown, falsePositive, truePositive, informationalExpectedActivity, unknownFutureValue",
            ],
        );
    }

    #[test]
    fn maps_must_match_the_flow() {
        check(
            &format!(
                "{BASE}\n[[field]]\nincident = \"assigned_to\"\nticket = \"assignee\"\nflow = \"to_ticket\"\nconflict = \"ticket_wins\"\nto_incident = {{ a = \"b\" }}\n"
            ),
            &[
                "14:12: `conflict` only applies when flow = \"both\" (a one-way field never conflicts); remove it",
                "15:15: to_incident is given but flow = \"to_ticket\"; remove it or set flow = \"both\"",
            ],
        );
        check(
            &format!(
                "{BASE}\n[[field]]\nname = \"t2\"\ntemplate = \"{{incident.title}}\"\nticket = \"description\"\nflow = \"both\"\nto_ticket_default = \"x\"\n"
            ),
            &[
                "14:8: a template only flows to the ticket; set flow = \"to_ticket\" or remove `flow`",
                "15:21: a template field has no value map: its text goes to the ticket as rendered; remove `to_ticket_default`",
            ],
        );
        check(
            &format!(
                "{BASE}\n[[field]]\nname = \"x\"\nticket = \"description\"\n\n[[field]]\nname = \"y\"\nincident = \"title\"\ntemplate = \"{{incident.title}}\"\nticket = \"description\"\nflow = \"sideways\"\n"
            ),
            &[
                "10:1: add `incident = \"<attribute>\"` (an incident attribute) or `template = \"...\"` (text rendered from the incident)",
                "17:12: give either `incident` (an attribute) or `template` (text rendered from the incident), not both",
                "19:8: unknown flow `sideways`; write \"both\", \"to_ticket\" or \"to_incident\"",
            ],
        );
    }

    #[test]
    fn templates_are_checked_where_they_are_written() {
        check(
            &format!(
                "{BASE}\n[[field]]\ntemplate = \"Sev {{incident.sev}} at {{incident.url}}\"\nticket = \"description\"\n\n[create]\nlabels = [\"soc\", \"t-{{ticket.key}}\", \"two words\"]\n\n[write_back]\ntags = [\"ticket:{{ticket.kee}}\"]\ncomment = \"\"\"\nopened {{ticket.key}} {{oops}}\"\"\"\n"
            ),
            &[
                "11:17: unknown variable `{incident.sev}`; the incident offers: id, display_id, url, provider_url, link, source, created, modified, title, description, status, severity, classification, determination, assigned_to",
                "15:21: `{ticket.key}` is not available here: the ticket does not exist yet when this template is rendered",
                "15:36: Jira labels cannot contain spaces; write `two-words`",
                "18:17: unknown variable `{ticket.kee}`; the ticket offers: key, id, url",
                "20:21: unknown placeholder `{oops}`; write `{incident.<name>}` or `{ticket.<name>}`",
            ],
        );
    }

    #[test]
    fn names_and_written_attributes_are_unique() {
        check(
            &format!(
                "{BASE}\n[[field]]\nname = \"summary\"\ntemplate = \"{{incident.id}}\"\nticket = \"description\"\n\n[[field]]\nname = \"Other Name\"\nincident = \"assigned_to\"\nticket = \"assignee\"\n\n[[field]]\nname = \"other\"\ntemplate = \"{{incident.title}}\"\nticket = \"summary\"\n\n[create]\nskip_statuses = [\"closed\"]\n"
            ),
            &[
                "11:8: field name `summary` is already used on line 5; give each [[field]] its own `name`",
                "16:8: invalid field name `Other Name`; use lowercase letters, digits, `-` and `_`",
                "20:1: field `other` writes the ticket attribute `summary`, which field `summary` (line 5) already writes; map each attribute in one direction once",
                "26:18: `closed` is not a Graph status; known values: active, resolved, inProgress, redirected, awaitingAction, unknownFutureValue",
            ],
        );
    }

    #[test]
    fn load_names_an_unreadable_file() {
        let err = load(Path::new("/nonexistent/m.toml")).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1);
        assert_eq!(err.diagnostics[0].line, 0);
        assert!(
            err.to_string()
                .starts_with("/nonexistent/m.toml: cannot read the mapping file ("),
            "{err}"
        );
    }
}
