//! The ServiceNow simulator's writes to `incident`: a request body applied to a
//! record, the choice lists and data policies a web service write meets, the
//! business rules every write runs, journal entries, and the analyst's edits.

use super::*;

impl SimState {
    /// Inserts (`index = None`) or updates an incident from a request body.
    /// Returns the record's index.
    pub(super) fn write_incident(
        &mut self,
        index: Option<usize>,
        body: &Map<String, Value>,
        caller: &str,
        mode: WriteMode,
    ) -> Result<usize, SnError> {
        let old = index.map(|i| self.rows("incident")[i].clone());
        let mut record = match &old {
            Some(r) => r.clone(),
            None => new_incident(),
        };
        let notes = self.apply_body(&mut record, body, mode)?;

        if old.is_none() && self.insert_as_new {
            record.insert("state".into(), "1".into());
        }
        let state = field(&record, "state");
        if mode.policies {
            self.check_policies(&record, &state)?;
        }

        let t = self
            .next_time(
                old.as_ref()
                    .and_then(|o| o.get("sys_updated_on"))
                    .map(String::as_str),
            )
            .format(TIME_FORMAT)
            .to_string();
        let caller_id = self.user_sys_id(caller);
        business_rules(&mut record, &state, &t, &caller_id);

        // An update that changes nothing is not a write.
        if let Some(old) = &old
            && notes.is_empty()
            && *old == record
        {
            return Ok(index.expect("an update has an index"));
        }
        record.insert("sys_updated_on".into(), t.clone());
        record.insert("sys_updated_by".into(), caller.to_string());
        match &old {
            Some(old) => {
                let count = old
                    .get("sys_mod_count")
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
                record.insert("sys_mod_count".into(), (count + 1).to_string());
            }
            None => {
                let number = format!("INC{:07}", self.next_number);
                self.next_number += 1;
                record.insert("number".into(), number);
                record.insert("sys_created_on".into(), t.clone());
                record.insert("sys_created_by".into(), caller.to_string());
                record.insert("opened_at".into(), t.clone());
                record.insert("opened_by".into(), caller_id);
                record.insert("sys_mod_count".into(), "0".into());
            }
        }
        let sys_id = record.get("sys_id").cloned().unwrap_or_default();
        self.add_notes(&sys_id, notes, &t, caller);
        let rows = self.rows_mut("incident");
        Ok(match index {
            Some(i) => {
                rows[i] = record;
                i
            }
            None => {
                rows.push(record);
                rows.len() - 1
            }
        })
    }

    /// The analyst API: applies what `edit` changed as a web service write would.
    pub(super) fn analyst_edit(
        &mut self,
        number: &str,
        author: &str,
        edit: impl FnOnce(&mut SimRecord),
        policies: bool,
    ) -> Result<(), String> {
        let i = self
            .incident_by_number(number)
            .ok_or_else(|| format!("no incident {number}"))?;
        let before = self.rows("incident")[i].clone();
        let mut after = before.clone();
        edit(&mut after);
        let body: Map<String, Value> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mode = WriteMode {
            input_display: false,
            policies,
        };
        self.write_incident(Some(i), &body, author, mode)
            .map(|_| ())
            .map_err(|e| e.summary())
    }

    /// Copies a request body's fields onto `record` (reference fields by display
    /// value when the mode says so); unknown and system-set fields are ignored.
    /// Returns the journal entries (`work_notes`, `comments`) the body adds.
    fn apply_body(
        &self,
        record: &mut SimRecord,
        body: &Map<String, Value>,
        mode: WriteMode,
    ) -> Result<Vec<(String, String)>, SnError> {
        let mut notes: Vec<(String, String)> = Vec::new();
        for (field, value) in body {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                Value::Object(o) => match o.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(SnError::bad(
                            "Exception while reading request",
                            format!("Invalid value for field {field}"),
                        ));
                    }
                },
                Value::Array(_) => {
                    return Err(SnError::bad(
                        "Exception while reading request",
                        format!("Invalid value for field {field}"),
                    ));
                }
            };
            if JOURNAL_ELEMENTS.contains(&field.as_str()) {
                if !text.trim().is_empty() {
                    notes.push((field.clone(), text));
                }
                continue;
            }
            // Unknown fields and the ones the instance sets itself are ignored.
            if !INCIDENT.has(field) || SYSTEM_SET.contains(&field.as_str()) {
                continue;
            }
            let text = match INCIDENT.reference(field).and_then(table_def) {
                Some(target) if mode.input_display && !text.is_empty() => self
                    .rows(target.name)
                    .iter()
                    .find(|r| r.get(target.display) == Some(&text))
                    .and_then(|r| r.get("sys_id").cloned())
                    .unwrap_or(text),
                _ => text,
            };
            record.insert(field.clone(), text);
        }
        Ok(notes)
    }

    /// The instance's choice lists and data policies, for a web service write.
    fn check_policies(&self, record: &SimRecord, state: &str) -> Result<(), SnError> {
        let get = |f: &str| field(record, f);
        for (field, allowed) in [
            ("state", STATES),
            ("impact", &["1", "2", "3"][..]),
            ("urgency", &["1", "2", "3"][..]),
        ] {
            let v = get(field);
            if !allowed.contains(&v.as_str()) {
                return Err(SnError::refused(format!(
                    "Invalid choice value '{v}' for {} ({field})",
                    field_label(field)
                )));
            }
        }
        let hold = get("hold_reason");
        if !hold.is_empty() && !HOLD_REASONS.contains(&hold.as_str()) {
            return Err(SnError::refused(format!(
                "Invalid choice value '{hold}' for On hold reason (hold_reason)"
            )));
        }
        let code = get("close_code");
        if !code.is_empty() && !self.close_codes().contains(&code) {
            return Err(SnError::refused(format!(
                "Invalid choice value '{code}' for Resolution code (close_code)"
            )));
        }
        let mandatory: &[&str] = match state {
            "3" => &["hold_reason"],
            "6" | "7" => &["close_code", "close_notes"],
            _ => &[],
        };
        let missing: Vec<&str> = mandatory
            .iter()
            .filter(|f| get(f).trim().is_empty())
            .map(|f| field_label(f))
            .collect();
        if !missing.is_empty() {
            return Err(SnError::refused(format!(
                "Data Policy Exception: The following fields are mandatory: {}",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Adds a write's journal entries to `sys_journal_field`.
    fn add_notes(&mut self, sys_id: &str, notes: Vec<(String, String)>, t: &str, caller: &str) {
        for (element, value) in notes {
            let row: SimRecord = [
                ("sys_id", new_sys_id()),
                ("name", "incident".to_string()),
                ("element", element),
                ("element_id", sys_id.to_string()),
                ("value", value),
                ("sys_created_on", t.to_string()),
                ("sys_created_by", caller.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            self.rows_mut("sys_journal_field").push(row);
        }
    }
}

/// A new incident as the instance fills it before the body is applied.
fn new_incident() -> SimRecord {
    let mut r: SimRecord = INCIDENT
        .fields
        .iter()
        .map(|f| (f.to_string(), String::new()))
        .collect();
    r.insert("sys_id".into(), new_sys_id());
    r.insert("state".into(), "1".into());
    r.insert("impact".into(), "3".into());
    r.insert("urgency".into(), "3".into());
    r.insert("severity".into(), "3".into());
    r.insert("sys_class_name".into(), "incident".into());
    r
}

/// The business rules every write runs: priority from impact and urgency, the
/// state's mirrors, and who resolved or closed when.
fn business_rules(record: &mut SimRecord, state: &str, t: &str, caller_id: &str) {
    let priority = priority(&field(record, "impact"), &field(record, "urgency"));
    record.insert("priority".into(), priority.into());
    record.insert("incident_state".into(), state.to_string());
    record.insert("active".into(), (!matches!(state, "7" | "8")).to_string());
    if state != "3" {
        record.insert("hold_reason".into(), String::new());
    }
    match state {
        "6" | "7" => {
            if field(record, "resolved_at").is_empty() {
                record.insert("resolved_at".into(), t.to_string());
                record.insert("resolved_by".into(), caller_id.to_string());
            }
            if state == "7" && field(record, "closed_at").is_empty() {
                record.insert("closed_at".into(), t.to_string());
                record.insert("closed_by".into(), caller_id.to_string());
            }
        }
        "8" => {}
        _ => {
            for f in ["resolved_at", "resolved_by", "closed_at", "closed_by"] {
                record.insert(f.into(), String::new());
            }
        }
    }
    for f in JOURNAL_ELEMENTS {
        record.insert(f.to_string(), String::new());
    }
}

/// Only `incident` takes writes here; other tables refuse as an ACL would.
pub(super) fn writable(def: &TableDef, operation: &str) -> Result<(), SnError> {
    if def.name == "incident" {
        Ok(())
    } else {
        Err(SnError::refused(format!(
            "ACL Exception {operation} Failed due to security constraints"
        )))
    }
}

/// A JSON object body; an array acts on its first record only (KB0534905).
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, SnError> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .contains("application/json")
    {
        return Err(SnError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            Some(format!(
                "Content-Type {content_type:?} is not supported; send application/json"
            )),
        ));
    }
    let invalid = || {
        SnError::bad(
            "Exception while reading request",
            "The payload is not valid JSON.",
        )
    };
    match serde_json::from_slice::<Value>(body).map_err(|_| invalid())? {
        Value::Object(map) => Ok(map),
        Value::Array(items) => match items.into_iter().next() {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}
