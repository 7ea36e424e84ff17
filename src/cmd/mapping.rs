//! `itsm-bridge mapping render|impact`: the admin's dry runs of a mapping file.
//! `render`: a sample incident, as the Graph or Sentinel API returns it, goes through the
//! same pure code the engine uses (`plan_new_ticket`, `render_write_back`), so
//! templates and value maps can be tried without a tenant or a ticket system.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::config::{Config, SyncConfig};
use bridge_core::engine;
use bridge_core::ledger;
use bridge_core::mapping::{self, FieldRule, Flow, Mapping};
use bridge_core::model::{ConflictPolicy, IncidentSnapshot, TicketSnapshot};
use bridge_core::reconcile::{self, NewTicket, PairSpec};
use bridge_core::remap::{self, Edit, Impact};
use bridge_core::vocab::SourceKind;
use serde_json::{Value, json};

use crate::output::{Table, escape_controls};
use crate::{CmdResult, Failure};

/// What `mapping render` is told besides the two files.
#[derive(Debug)]
pub struct RenderOptions {
    /// The `[[source]]` name templates see as `{source}`.
    pub source: Option<String>,
    /// The ticket the write-back is rendered for.
    pub ticket_key: String,
    pub ticket_url: String,
    pub json: bool,
}

/// One sample incident rendered.
struct Rendered {
    incident: IncidentSnapshot,
    /// `None`: the mapping makes no ticket for the incident's status.
    ticket: Option<NewTicket>,
    tags: Vec<String>,
    comment: Option<String>,
}

pub fn render(mapping_path: &Path, sample_path: &Path, opts: &RenderOptions) -> CmdResult {
    let mapping = mapping::load(mapping_path).map_err(|e| Failure::Input(e.to_string()))?;
    let incidents = read_sample(sample_path, mapping.source_kind)?;
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| mapping.source_kind.as_str().to_string());
    let pair = PairSpec {
        pair: "render",
        source: &source,
        scope: "",
        mapping: &mapping,
        policy: ConflictPolicy::SourceWins,
    };
    let ticket = sample_ticket(opts);
    let rendered: Vec<Rendered> = incidents
        .into_iter()
        .map(|incident| {
            let (tags, comment) = reconcile::render_write_back(pair, &ticket, Some(&incident));
            Rendered {
                ticket: reconcile::plan_new_ticket(pair, &incident),
                incident,
                tags,
                comment,
            }
        })
        .collect();
    if opts.json {
        let items: Vec<Value> = rendered.iter().map(|r| as_json(&mapping, r)).collect();
        let out = if items.len() == 1 {
            items.into_iter().next().unwrap_or_default()
        } else {
            Value::Array(items)
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for (i, r) in rendered.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", as_text(&mapping, &ticket, r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ticket the write-back templates are rendered against.
fn sample_ticket(opts: &RenderOptions) -> TicketSnapshot {
    let now = chrono::Utc::now();
    TicketSnapshot {
        modified_by: Default::default(),
        key: opts.ticket_key.clone(),
        id: opts.ticket_key.clone(),
        url: opts.ticket_url.clone(),
        created: now,
        modified: now,
        version: None,
        attrs: Default::default(),
        labels: Vec::new(),
        correlation: None,
        comments: Vec::new(),
    }
}

/// The sample file: one incident as the API returns it, a listing page
/// (`{"value": [...]}`) or a JSON array of incidents. Every problem is bad
/// input naming the file (and the item, in a list).
fn read_sample(path: &Path, kind: SourceKind) -> Result<Vec<IncidentSnapshot>, Failure> {
    let at = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{at}: cannot read the sample incident ({e})")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Input(format!("{at}:{}:{}: not JSON: {e}", e.line(), e.column())))?;
    let (items, listed) = match value {
        Value::Array(items) => (items, true),
        Value::Object(mut page) if page.get("value").is_some_and(Value::is_array) => {
            match page.remove("value") {
                Some(Value::Array(items)) => (items, true),
                _ => (Vec::new(), true),
            }
        }
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(Failure::Input(format!("{at}: the list holds no incident")));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            convert(kind, item).map_err(|reason| {
                let which = if listed {
                    format!(" (item {})", i + 1)
                } else {
                    String::new()
                };
                Failure::Input(format!(
                    "{at}{which}: not a {} incident as its API returns one: {reason}",
                    source_name(kind)
                ))
            })
        })
        .collect()
}

fn convert(kind: SourceKind, item: Value) -> Result<IncidentSnapshot, String> {
    match kind {
        SourceKind::Graph => {
            connectors::graph::convert::snapshot_from_value(item).map_err(|e| e.to_string())
        }
        SourceKind::Sentinel => {
            connectors::sentinel::convert::snapshot_from_value(item).map_err(|e| e.to_string())
        }
    }
}

fn source_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Graph => "Microsoft Graph security",
        SourceKind::Sentinel => "Microsoft Sentinel",
    }
}

fn flow_words(rule: &FieldRule) -> &'static str {
    match rule.flow {
        Flow::ToTicket => "to the ticket",
        Flow::ToIncident => "to the incident",
        Flow::Both => "both ways",
    }
}

fn as_text(mapping: &Mapping, ticket: &TicketSnapshot, r: &Rendered) -> String {
    let mut out = String::new();
    let title = r
        .incident
        .attrs
        .get("title")
        .map(String::as_str)
        .unwrap_or("");
    out.push_str(&format!(
        "incident {} ({}): {}\n",
        line(&r.incident.id),
        mapping.source_kind.as_str(),
        line(title)
    ));
    match &r.ticket {
        None => {
            let status = r.incident.attrs.get("status").map(String::as_str);
            out.push_str(&format!(
                "no ticket: the mapping's skip_create lists its status \"{}\"\n",
                line(status.unwrap_or(""))
            ));
        }
        Some(new) => {
            out.push_str(&format!(
                "the {} ticket the bridge would create:\n",
                mapping.ticket_kind.as_str()
            ));
            for rule in &mapping.fields {
                out.push_str(&field_text(rule, new));
            }
            if !new.create.labels.is_empty() {
                let labels: Vec<String> = new.create.labels.iter().map(|l| line(l)).collect();
                out.push_str(&format!("  labels: {}\n", labels.join(", ")));
            }
        }
    }
    out.push_str(&format!(
        "write-back to the incident, for ticket {} ({}):\n",
        line(&ticket.key),
        line(&ticket.url)
    ));
    if r.tags.is_empty() && r.comment.is_none() {
        out.push_str("  nothing (the mapping has no [write_back], or the incident has it all)\n");
    }
    for tag in &r.tags {
        out.push_str(&format!("  tag: {}\n", line(tag)));
    }
    if let Some(comment) = &r.comment {
        out.push_str("  comment:\n");
        out.push_str(&indented(comment));
    }
    out
}

/// One field rule's part of the new ticket: the attribute and its value, or
/// why the ticket gets none.
fn field_text(rule: &FieldRule, new: &NewTicket) -> String {
    let head = format!(
        "  {} (field \"{}\", {})",
        rule.ticket,
        rule.name,
        flow_words(rule)
    );
    if !rule.flow.to_ticket() {
        return format!("{head}: not set on create\n");
    }
    match new.create.attrs.get(&rule.ticket) {
        None => format!("{head}: empty\n"),
        Some(v) if v.contains('\n') => format!("{head}:\n{}", indented(v)),
        Some(v) => format!("{head}: {}\n", line(v)),
    }
}

/// A value on one line, control characters shown, never obeyed.
fn line(value: &str) -> String {
    escape_controls(value)
}

fn indented(text: &str) -> String {
    text.lines()
        .map(|l| match escape_controls(l) {
            l if l.trim().is_empty() => "\n".to_string(),
            l => format!("    {l}\n"),
        })
        .collect()
}

fn as_json(mapping: &Mapping, r: &Rendered) -> Value {
    let create = r.ticket.as_ref().map(|new| {
        json!({
            "attrs": new.create.attrs,
            "labels": new.create.labels,
        })
    });
    let fields: Vec<Value> = mapping
        .fields
        .iter()
        .map(|rule| {
            json!({
                "field": rule.name,
                "ticket_attr": rule.ticket,
                "flow": flow_words(rule),
                "value": r.ticket.as_ref().and_then(|n| n.create.attrs.get(&rule.ticket)),
            })
        })
        .collect();
    json!({
        "incident": r.incident.id,
        "source": mapping.source_kind.as_str(),
        "tickets": mapping.ticket_kind.as_str(),
        "create": create,
        "fields": fields,
        "write_back": { "tags": r.tags, "comment": r.comment },
    })
}

/// What `mapping impact` is told besides the files.
#[derive(Debug)]
pub struct ImpactOptions {
    pub pair: Option<String>,
    pub json: bool,
}

/// `mapping impact`: against every link of the pairs the new mapping would
/// serve, from the stored baselines and with no remote call, what the edit
/// changes (`bridge_core::remap`), summed per field and value transition.
pub fn impact(config_path: &Path, new_path: &Path, opts: &ImpactOptions) -> CmdResult {
    let config = super::load_config(config_path)?;
    let new = mapping::load(new_path).map_err(|e| Failure::Input(e.to_string()))?;
    let pairs = pairs_for(&config, &new, opts.pair.as_deref(), new_path)?;
    let store = crate::replicas::StoreAt::of(&config)?.open_reader()?;
    let mut reports = Vec::new();
    for (sync, old) in pairs {
        let pair = sync.pair_name();
        let edit = Edit {
            source: &sync.source,
            old,
            new: &new,
        };
        let (impact, _) = engine::plan_edit(store.as_ref(), &pair, edit, chrono::Utc::now())?;
        reports.push((pair, impact));
    }
    if opts.json {
        let items: Vec<Value> = reports.iter().map(|(p, i)| impact_json(p, i)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    } else {
        for (pair, impact) in &reports {
            print!("{}", impact_text(pair, impact));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The pairs the new mapping would serve: `--pair`, or every pair whose
/// ticket system's mapping is for the same source and ticket kinds.
fn pairs_for<'c>(
    config: &'c Config,
    new: &Mapping,
    only: Option<&str>,
    new_path: &Path,
) -> Result<Vec<(&'c SyncConfig, &'c Mapping)>, Failure> {
    let mut pairs = Vec::new();
    for sync in &config.syncs {
        if only.is_some_and(|p| p != sync.pair_name()) {
            continue;
        }
        let Some(tickets) = config.ticket_system(&sync.tickets) else {
            continue;
        };
        let old = &tickets.mapping;
        if old.source_kind == new.source_kind && old.ticket_kind == new.ticket_kind {
            pairs.push((sync, old));
        } else if only.is_some() {
            return Err(Failure::Input(format!(
                "{}: a mapping from {} to {}, but pair {} maps {} to {}",
                new_path.display(),
                new.source_kind.as_str(),
                new.ticket_kind.as_str(),
                sync.pair_name(),
                old.source_kind.as_str(),
                old.ticket_kind.as_str()
            )));
        }
    }
    if pairs.is_empty() {
        let known: Vec<String> = config.syncs.iter().map(|s| s.pair_name()).collect();
        return Err(Failure::Input(match only {
            Some(p) => format!(
                "--pair {p}: no such pair (the config has: {})",
                known.join(", ")
            ),
            None => format!(
                "{}: no pair of the config maps {} incidents to {} tickets",
                new_path.display(),
                new.source_kind.as_str(),
                new.ticket_kind.as_str()
            ),
        }));
    }
    Ok(pairs)
}

fn impact_text(pair: &str, impact: &Impact) -> String {
    let mut out = format!(
        "pair {pair}: {} links followed ({} merged or closed for over {} days left alone); \
         the edit rewrites {} tickets and {} incidents ({} remote writes)\n",
        impact.links,
        impact.left_alone,
        remap::SETTLED_AFTER.num_days(),
        impact.ticket_writes,
        impact.incident_writes,
        impact.writes()
    );
    if !impact.per_field.is_empty() {
        let mut table = Table::new(&["field", "links"]);
        for (field, n) in &impact.per_field {
            table.row(vec![field.clone(), n.to_string()]);
        }
        out.push_str(&format!("\nper field:\n{table}"));
        let mut table = Table::new(&["field", "from", "to", "links"]);
        for ((field, from, to), n) in &impact.transitions {
            table.row(vec![field.clone(), from.clone(), to.clone(), n.to_string()]);
        }
        out.push_str(&format!("\nper value:\n{table}"));
        let mut table = Table::new(&["incident", "ticket", "changes"]);
        for (incident, ticket, changes) in &impact.sample {
            let said: Vec<String> = changes
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c.field,
                        ledger::plain_value(c.old.as_deref()),
                        ledger::plain_value(c.new.as_deref())
                    )
                })
                .collect();
            table.row(vec![incident.clone(), ticket.clone(), said.join("; ")]);
        }
        out.push_str(&format!("\nsample of the links rewritten:\n{table}"));
    }
    if impact.undecided > 0 {
        out.push_str(&format!(
            "\n{} links cannot be decided from the store: a template they render needs the \
             incident's values\n",
            impact.undecided
        ));
    }
    out.push('\n');
    out
}

fn impact_json(pair: &str, impact: &Impact) -> Value {
    let transitions: Vec<Value> = impact
        .transitions
        .iter()
        .map(|((field, from, to), n)| json!({"field": field, "from": from, "to": to, "links": n}))
        .collect();
    let sample: Vec<Value> = impact
        .sample
        .iter()
        .map(|(incident, ticket, changes)| {
            json!({"incident": incident, "ticket": ticket, "changes": changes})
        })
        .collect();
    json!({
        "pair": pair,
        "links": impact.links,
        "left_alone": impact.left_alone,
        "ticket_writes": impact.ticket_writes,
        "incident_writes": impact.incident_writes,
        "writes": impact.writes(),
        "per_field": impact.per_field,
        "transitions": transitions,
        "undecided": impact.undecided,
        "sample": sample,
    })
}

/// `mapping accept`: lets the running daemon apply a mapping edit held by
/// `[mapping] max_rewrites`. The files as they are now (config and mappings)
/// are checked, and their fingerprint is written to `<config>.accepted`, which
/// the daemon watches: an edit made after this one is not accepted by it.
pub fn accept(config_path: &Path) -> CmdResult {
    let config = super::load_config(config_path)?;
    let fingerprint = config.fingerprint().map_err(|e| {
        Failure::Input(format!(
            "{}: cannot read it again: {e}",
            config_path.display()
        ))
    })?;
    let target = crate::reload::accepted_file(&config.file);
    let text = format!(
        "{fingerprint}\naccepted at {} by `itsm-bridge mapping accept`\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    // Written beside and renamed over, so the daemon never reads half a file.
    let partial = target.with_extension("accepted.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            anyhow::anyhow!("cannot write {}: {e}", target.display())
        })?;
    println!(
        "accepted the edit of {} (fingerprint {}): the running daemon applies it at its next \
         reload, within seconds (it watches {})",
        config
            .files()
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        &fingerprint[..12],
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}
