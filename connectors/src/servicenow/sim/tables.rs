//! The tables the ServiceNow simulator serves (`incident`, `sys_user`, `sys_user_group`,
//! `sys_choice`, `sys_journal_field`): their fields, which are references or choices,
//! the choice labels, and the baseline priority matrix.

use super::*;

pub(super) struct TableDef {
    pub(super) name: &'static str,
    pub(super) fields: &'static [&'static str],
    /// Reference fields and the table they point into.
    pub(super) references: &'static [(&'static str, &'static str)],
    /// The field a reference to this table displays.
    pub(super) display: &'static str,
}

impl TableDef {
    pub(super) fn has(&self, field: &str) -> bool {
        self.fields.contains(&field)
    }

    pub(super) fn reference(&self, field: &str) -> Option<&'static str> {
        self.references
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, t)| *t)
    }
}

pub(super) const INCIDENT_COLUMNS: &[&str] = &[
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "incident_state",
    "impact",
    "urgency",
    "priority",
    "severity",
    "hold_reason",
    "close_code",
    "close_notes",
    "work_notes",
    "comments",
    "correlation_id",
    "correlation_display",
    "assignment_group",
    "assigned_to",
    "caller_id",
    "opened_by",
    "resolved_by",
    "closed_by",
    "category",
    "subcategory",
    "contact_type",
    "active",
    "opened_at",
    "resolved_at",
    "closed_at",
    "sys_class_name",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
];

pub(super) const INCIDENT: TableDef = TableDef {
    name: "incident",
    fields: INCIDENT_COLUMNS,
    references: &[
        ("assigned_to", "sys_user"),
        ("assignment_group", "sys_user_group"),
        ("caller_id", "sys_user"),
        ("opened_by", "sys_user"),
        ("resolved_by", "sys_user"),
        ("closed_by", "sys_user"),
    ],
    display: "number",
};

pub(super) const JOURNAL: TableDef = TableDef {
    name: "sys_journal_field",
    fields: &[
        "sys_id",
        "name",
        "element",
        "element_id",
        "value",
        "sys_created_on",
        "sys_created_by",
    ],
    references: &[],
    display: "value",
};

pub(super) const CHOICE: TableDef = TableDef {
    name: "sys_choice",
    fields: &[
        "sys_id",
        "name",
        "element",
        "value",
        "label",
        "sequence",
        "inactive",
        "language",
        "sys_created_on",
        "sys_updated_on",
    ],
    references: &[],
    display: "label",
};

pub(super) const USER: TableDef = TableDef {
    name: "sys_user",
    fields: &[
        "sys_id",
        "user_name",
        "name",
        "email",
        "active",
        "time_zone",
        "sys_created_on",
        "sys_updated_on",
    ],
    references: &[],
    display: "name",
};

pub(super) const GROUP: TableDef = TableDef {
    name: "sys_user_group",
    fields: &[
        "sys_id",
        "name",
        "description",
        "active",
        "sys_created_on",
        "sys_updated_on",
    ],
    references: &[],
    display: "name",
};

pub(super) const TABLES: &[&TableDef] = &[&INCIDENT, &JOURNAL, &CHOICE, &USER, &GROUP];

pub(super) fn table_def(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// Fields a client cannot set on an incident (the instance computes them).
pub(super) const SYSTEM_SET: &[&str] = &[
    "sys_id",
    "number",
    "priority",
    "incident_state",
    "active",
    "opened_at",
    "opened_by",
    "resolved_at",
    "resolved_by",
    "closed_at",
    "closed_by",
    "sys_class_name",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
];

pub(super) const JOURNAL_ELEMENTS: &[&str] = &["work_notes", "comments"];
pub(super) const STATES: &[&str] = &["1", "2", "3", "6", "7", "8"];
pub(super) const HOLD_REASONS: &[&str] = &["1", "3", "4", "5"];

/// The labels of the incident's choice fields.
pub(super) fn choice_label(field: &str, value: &str) -> Option<&'static str> {
    let label = match (field, value) {
        ("state" | "incident_state", "1") => "New",
        ("state" | "incident_state", "2") => "In Progress",
        ("state" | "incident_state", "3") => "On Hold",
        ("state" | "incident_state", "6") => "Resolved",
        ("state" | "incident_state", "7") => "Closed",
        ("state" | "incident_state", "8") => "Canceled",
        ("impact" | "urgency", "1") => "1 - High",
        ("impact" | "urgency", "2") => "2 - Medium",
        ("impact" | "urgency", "3") => "3 - Low",
        ("priority", "1") => "1 - Critical",
        ("priority", "2") => "2 - High",
        ("priority", "3") => "3 - Moderate",
        ("priority", "4") => "4 - Low",
        ("priority", "5") => "5 - Planning",
        ("hold_reason", "1") => "Awaiting Caller",
        ("hold_reason", "3") => "Awaiting Problem",
        ("hold_reason", "4") => "Awaiting Vendor",
        ("hold_reason", "5") => "Awaiting Change",
        _ => return None,
    };
    Some(label)
}

/// The baseline priority matrix (impact × urgency → priority).
pub fn priority(impact: &str, urgency: &str) -> &'static str {
    let n = |s: &str| {
        s.parse::<u8>()
            .ok()
            .filter(|n| (1..=3).contains(n))
            .unwrap_or(3)
    };
    match n(impact) + n(urgency) {
        2 => "1",
        3 => "2",
        4 => "3",
        5 => "4",
        _ => "5",
    }
}

pub(super) fn field_label(field: &str) -> &str {
    match field {
        "close_code" => "Resolution code",
        "close_notes" => "Resolution notes",
        "hold_reason" => "On hold reason",
        "state" => "State",
        "impact" => "Impact",
        "urgency" => "Urgency",
        other => other,
    }
}

pub(super) fn field(record: &SimRecord, name: &str) -> String {
    record.get(name).cloned().unwrap_or_default()
}

pub(super) fn new_sys_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

pub(super) fn now_second() -> NaiveDateTime {
    let now = simkit::now();
    now.with_nanosecond(0).unwrap_or(now).naive_utc()
}
