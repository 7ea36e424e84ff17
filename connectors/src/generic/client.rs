//! The generic REST client: [`GenericTickets`] implements the engine's
//! `TicketSystem` port for any ticket API the mapping file's `[api]` table
//! describes. Every URL comes from a template whose values are percent-encoded;
//! every value is read and written at a JSON pointer; next-page links are followed
//! as returned, and only on the configured host. A create is a plain POST, never
//! retried once it may have reached the server: a lost answer is settled by `find`
//! (the engine looks the correlation id up before creating again).

use std::sync::Arc;

use async_trait::async_trait;
use bridge_core::mapping::{
    Endpoint, ErrorShape, GenericApi, HttpMethod, More, NextPage, Placeholder, UpdateMode,
    UrlTemplate,
};
use bridge_core::model::{
    Comment, Correlation, Page, TicketCreate, TicketSnapshot, TicketUpdate, Timestamp,
};
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind, TicketSystem};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use super::convert::{self, empty_body, set_attr};
use crate::http::{Api, Auth, ErrorText, Request, Response, TokenProvider};

/// The system name in errors and logs when none is configured.
pub const SYSTEM: &str = "generic";

/// Pulls the message out of an error body: `{"error": "…"}`, `{"error": {"message":
/// "…"}}`, `{"message": "…"}`, `{"detail": "…"}` or `{"errors": ["…", …]}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Object(o) => o
                .get("message")
                .and_then(Value::as_str)
                .map(|s| s.trim().to_string()),
            _ => None,
        }
    };
    for name in ["error", "message", "detail"] {
        if let Some(message) = value.get(name).and_then(text) {
            return Some(message);
        }
    }
    let errors: Vec<String> = value
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(text)
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// A bearer token that is configured, not fetched (`token = { env = … }`): it is
/// never refreshed, so a 401 is an auth error straight away.
pub struct FixedToken(SecretString);

impl FixedToken {
    pub fn new(token: SecretString) -> FixedToken {
        FixedToken(token)
    }
}

impl std::fmt::Debug for FixedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedToken([redacted])")
    }
}

#[async_trait]
impl TokenProvider for FixedToken {
    async fn token(&self) -> ConnectorResult<SecretString> {
        Ok(self.0.clone())
    }

    async fn invalidate(&self) {}
}

/// `Auth::Bearer` with a fixed token.
pub fn bearer(token: SecretString) -> Auth {
    Auth::Bearer(Arc::new(FixedToken::new(token)))
}

/// Builds the [`Api`] for a generic ticket system: `system` names it in errors
/// (the `[[ticket_system]]` name), `auth` is HTTP Basic (`username` + `password`)
/// or [`bearer`] (`token`).
pub fn generic_api(
    system: impl Into<String>,
    base_url: &str,
    client: reqwest::Client,
    auth: Auth,
) -> Result<Api, String> {
    Api::new(system, base_url, client, auth, error_message)
}

/// A generic REST ticket system, as its `[api]` table describes it.
#[derive(Debug)]
pub struct GenericTickets {
    api: Api,
    spec: GenericApi,
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
    }
}

impl GenericTickets {
    /// `api` is built by [`generic_api`]; `spec` is the mapping's checked `[api]`.
    /// Error bodies are read where `error_message` and `error_details` say.
    pub fn new(api: Api, spec: GenericApi) -> GenericTickets {
        let api = if spec.errors == ErrorShape::default() {
            api
        } else {
            let shape = spec.errors.clone();
            api.with_error_text(ErrorText(Arc::new(move |body: &[u8]| {
                let value: Value = serde_json::from_slice(body).ok()?;
                shape.describe(&value)
            })))
        };
        GenericTickets { api, spec }
    }

    pub fn spec(&self) -> &GenericApi {
        &self.spec
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
        self.api.error(kind, message)
    }

    fn permanent(&self, message: impl Into<String>) -> ConnectorError {
        self.err(ErrorKind::Permanent, message)
    }

    fn invalid(&self, message: impl Into<String>) -> ConnectorError {
        self.err(ErrorKind::InvalidPayload, message)
    }

    /// The URL of a template with its values, percent-encoded.
    fn url(&self, template: &UrlTemplate, values: &[(Placeholder, &str)]) -> ConnectorResult<Url> {
        let path = template.render(values).map_err(|e| self.permanent(e))?;
        Ok(self.api.url(&path))
    }

    /// The URL of a ticket endpoint for a key (which is also the id when the file
    /// names no `key`, the only case where `{id}` may address a ticket).
    fn ticket_url(&self, template: &UrlTemplate, key: &str) -> ConnectorResult<Url> {
        self.url(template, &[(Placeholder::Key, key), (Placeholder::Id, key)])
    }

    fn snapshot(&self, ticket: &Value) -> ConnectorResult<TicketSnapshot> {
        convert::to_snapshot(&self.spec, self.api.base(), ticket).map_err(|e| self.invalid(e))
    }

    fn json(&self, response: &Response) -> ConnectorResult<Value> {
        response.json(self.api.system())
    }

    /// The record an answer of `endpoint` holds (`record`).
    fn record_of(&self, endpoint: &Endpoint, answer: Value) -> ConnectorResult<Value> {
        if endpoint.record.is_root() {
            return Ok(answer);
        }
        match endpoint.record.get(&answer) {
            Some(record) if record.is_object() => Ok(record.clone()),
            _ => Err(self.invalid(format!(
                "the answer holds no object at {:?} (the endpoint's `record`)",
                endpoint.record.as_str()
            ))),
        }
    }

    /// The request body that carries `record` where `endpoint` sends it (`send`).
    fn wrap(&self, endpoint: &Endpoint, record: Value) -> ConnectorResult<Value> {
        if endpoint.send.is_root() {
            return Ok(record);
        }
        let mut body = empty_body();
        endpoint
            .send
            .set(&mut body, record)
            .map_err(|e| self.permanent(e))?;
        Ok(body)
    }

    /// Writes the endpoint's fixed fields (`fields`) into `record`.
    fn extra_fields(
        &self,
        endpoint: &Endpoint,
        record: &mut Value,
        attr: impl Fn(&str) -> Option<String>,
        correlation: &str,
    ) -> ConnectorResult<()> {
        for field in &endpoint.fields {
            let value = field.value.render(&attr, correlation);
            field.at.set(record, value).map_err(|e| self.permanent(e))?;
        }
        Ok(())
    }

    /// One page of a search or find: the ticket objects and the next page's URL.
    async fn list(
        &self,
        endpoint: &Endpoint,
        url: Url,
    ) -> ConnectorResult<(Vec<Value>, Option<String>)> {
        let response = self.api.send(Request::get(url.clone())).await?;
        let body = self.json(&response)?;
        let items_at = self.spec.items_of(endpoint);
        let items = match items_at.get(&body) {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) => Vec::new(),
            // A missing list is a wrong `items` pointer, not an empty page: polling
            // would otherwise see no ticket, ever, without a word.
            _ => {
                return Err(self.invalid(format!(
                    "the list response holds no list of tickets at {:?}",
                    items_at.as_str()
                )));
            }
        };
        let more = match &endpoint.more {
            None => true,
            Some(More::While(flag)) => flag.get(&body) == Some(&Value::Bool(true)),
            Some(More::Until(flag)) => flag.get(&body) != Some(&Value::Bool(true)),
        };
        let link = match self.spec.next_of(endpoint) {
            _ if !more => None,
            NextPage::None => None,
            NextPage::Pointer(pointer) => convert::text_at(pointer.get(&body), pointer.as_str())
                .map_err(|e| self.invalid(e))?,
            NextPage::LinkHeader => response
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(convert::link_header_next),
        };
        let next = match link {
            Some(link) => match convert::resolve_next(&url, &link).map_err(|e| self.invalid(e))? {
                // Checked now, so a bad link fails the page that carries it.
                Some(next) => Some(self.api.next_link(next.as_str())?.to_string()),
                None => None,
            },
            None => None,
        };
        Ok((items, next))
    }

    /// A page of the bridge's tickets (those carrying a correlation id it wrote);
    /// other tickets are skipped unread, so none of theirs can fail the page.
    fn page(&self, items: &[Value], next: Option<String>) -> ConnectorResult<Page<TicketSnapshot>> {
        let mut tickets = Vec::with_capacity(items.len());
        for item in items {
            let ours = convert::stored_correlation(&self.spec, item)
                .is_some_and(|v| convert::parse_correlation_value(&v).is_some());
            if ours {
                match self.snapshot(item) {
                    Ok(t) => tickets.push(t),
                    Err(e) => {
                        tracing::warn!(system = self.api.system(), error = %e, "skipping a ticket that does not convert")
                    }
                }
            }
        }
        Ok(Page {
            items: tickets,
            next,
        })
    }

    /// The ticket object as the API returns it, with the answer's `ETag`.
    async fn read_record(&self, key: &str) -> ConnectorResult<(Value, Option<String>)> {
        let url = self.ticket_url(&self.spec.get.path, key)?;
        let response = self.api.send(Request::get(url)).await?;
        let etag = response
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = self.json(&response)?;
        Ok((self.record_of(&self.spec.get, answer)?, etag))
    }

    async fn read_object(&self, key: &str) -> ConnectorResult<Value> {
        Ok(self.read_record(key).await?.0)
    }

    async fn read(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        let object = self.read_object(key).await?;
        self.snapshot(&object)
    }

    /// The status as the system spells it; refused when `[api]` lists the statuses
    /// and this is not one of them.
    fn check_status(&self, value: &str) -> ConnectorResult<String> {
        self.spec
            .canonical_status(value)
            .map(str::to_string)
            .ok_or_else(|| {
                self.permanent(format!(
                    "status {value:?} is not among the [api] statuses ({})",
                    self.spec.statuses.as_deref().unwrap_or_default().join(", ")
                ))
            })
    }

    fn check_attr(&self, attr: &str) -> ConnectorResult<()> {
        if self.spec.field(attr).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = self.spec.fields.iter().map(|(n, _)| n.as_str()).collect();
        Err(self.permanent(format!(
            "the ticket attribute {attr:?} has no place in [api.fields] (it has: {})",
            known.join(", ")
        )))
    }

    /// Writes the attributes into `body`, checked (and the status spelt as the
    /// system spells it) before anything is sent.
    fn write_attrs<'a>(
        &self,
        body: &mut Value,
        attrs: impl Iterator<Item = (&'a String, Option<&'a str>)>,
    ) -> ConnectorResult<()> {
        for (attr, value) in attrs {
            self.check_attr(attr)?;
            let value = match (attr.as_str(), value) {
                ("status", Some(v)) => Some(self.check_status(v)?),
                ("status", None) if self.spec.statuses.is_some() => {
                    return Err(self.permanent("the status cannot be cleared"));
                }
                (_, v) => v.map(str::to_string),
            };
            set_attr(&self.spec, body, attr, value.as_deref()).map_err(|e| self.permanent(e))?;
        }
        Ok(())
    }

    /// A body holding what `object` has at every place the bridge writes (the
    /// `[api.fields]`, the correlation id, the labels): a full update sends these
    /// back, never the read-only rest (ids, times, conversations).
    fn known_places(&self, object: &Value) -> ConnectorResult<Value> {
        let mut body = empty_body();
        let places = self
            .spec
            .fields
            .iter()
            .map(|(_, p)| p)
            .chain([&self.spec.correlation])
            .chain(self.spec.labels.as_ref());
        for pointer in places {
            if let Some(value) = pointer.get(object) {
                pointer
                    .set(&mut body, value.clone())
                    .map_err(|e| self.permanent(e))?;
            }
        }
        Ok(body)
    }

    fn set_labels(&self, body: &mut Value, labels: Vec<String>) -> ConnectorResult<()> {
        let Some(pointer) = &self.spec.labels else {
            return Err(self.permanent("labels cannot be written: [api] names no `labels` pointer"));
        };
        let json = Value::Array(labels.into_iter().map(Value::String).collect());
        pointer.set(body, json).map_err(|e| self.permanent(e))
    }

    /// The whole ticket a write answered with, if it did.
    fn answered_ticket(&self, endpoint: &Endpoint, response: &Response) -> Option<TicketSnapshot> {
        let answer: Value = serde_json::from_slice(&response.body).ok()?;
        let object = self.record_of(endpoint, answer).ok()?;
        self.snapshot(&object).ok()
    }

    /// The ticket a write answered with, or (an empty or partial answer) as read now.
    async fn settle(&self, key: &str, response: &Response) -> ConnectorResult<TicketSnapshot> {
        match self.answered_ticket(&self.spec.update, response) {
            Some(ticket) => Ok(ticket),
            None => self.read(key).await,
        }
    }

    /// The ticket a create made: the answer, or read back by the key (or id) the
    /// answer names, or from the `Location` header of a `201 Created` without a body.
    async fn created_ticket(&self, response: &Response) -> ConnectorResult<TicketSnapshot> {
        let create = &self.spec.create;
        if let Some(ticket) = self.answered_ticket(create, response) {
            return Ok(ticket);
        }
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let object = self.record_of(create, answer.clone()).unwrap_or(answer);
        let key_pointer = self.spec.key.as_ref().unwrap_or(&self.spec.id);
        if let Ok(Some(key)) = convert::text_at(key_pointer.get(&object), key_pointer.as_str()) {
            return self.read(&key).await;
        }
        let location = response
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.invalid(format!(
                    "the create response names no ticket (nothing at {}) and has no Location header",
                    key_pointer.as_str()
                ))
            })?;
        let url = convert::resolve_next(self.api.base(), location)
            .map_err(|e| self.invalid(e))?
            .ok_or_else(|| self.invalid("the create response's Location is empty"))?;
        let url = self.api.next_link(url.as_str())?;
        let answer: Value = self.api.get_json(url).await?;
        self.snapshot(&self.record_of(&self.spec.get, answer)?)
    }
}

#[async_trait]
impl TicketSystem for GenericTickets {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<TicketSnapshot>> {
        let since = self.spec.since_format.render(since);
        let url = self.url(&self.spec.search.path, &[(Placeholder::Since, &since)])?;
        let (items, next) = self.list(&self.spec.search, url).await?;
        self.page(&items, next)
    }

    async fn next_page(&self, next: &str) -> ConnectorResult<Page<TicketSnapshot>> {
        let url = self.api.next_link(next)?;
        let (items, next) = self.list(&self.spec.search, url).await?;
        self.page(&items, next)
    }

    async fn find_by_correlation(
        &self,
        correlation: &Correlation,
    ) -> ConnectorResult<Option<TicketSnapshot>> {
        let value = convert::correlation_value(correlation).map_err(|e| self.permanent(e))?;
        let mut url = self.url(&self.spec.find.path, &[(Placeholder::Correlation, &value)])?;
        let mut found = Vec::new();
        loop {
            let (items, next) = self.list(&self.spec.find, url).await?;
            // Trust, but verify: only a ticket holding exactly this value counts,
            // whatever the API's search matched on.
            for item in &items {
                if convert::stored_correlation(&self.spec, item).as_deref() == Some(value.as_str())
                {
                    found.push(self.snapshot(item)?);
                }
            }
            match next {
                Some(next) => url = self.api.next_link(&next)?,
                None => break,
            }
        }
        found.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
        if found.len() > 1 {
            tracing::warn!(
                system = self.api.system(),
                correlation = %value,
                tickets = ?found.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
                "several tickets carry one correlation id; adopting the oldest"
            );
        }
        Ok(found.into_iter().next())
    }

    async fn create(&self, ticket: &TicketCreate) -> ConnectorResult<TicketSnapshot> {
        let value =
            convert::correlation_value(&ticket.correlation).map_err(|e| self.permanent(e))?;
        let mut body = empty_body();
        self.write_attrs(
            &mut body,
            ticket.attrs.iter().map(|(k, v)| (k, Some(v.as_str()))),
        )?;
        if !ticket.labels.is_empty() {
            let mut labels: Vec<String> = Vec::new();
            for l in &ticket.labels {
                if !labels.contains(l) {
                    labels.push(l.clone());
                }
            }
            self.set_labels(&mut body, labels)?;
        }
        self.spec
            .correlation
            .set(&mut body, Value::String(value.clone()))
            .map_err(|e| self.permanent(e))?;
        let create = &self.spec.create;
        self.extra_fields(create, &mut body, |a| ticket.attrs.get(a).cloned(), &value)?;
        let body = self.wrap(create, body)?;
        let url = self.url(&self.spec.create.path, &[])?;
        // A POST: not retried once it may have reached the server.
        let request = Request::with_body(method(self.spec.create.method), url, body);
        let response = self.api.send(request).await?;
        let created = self
            .created_ticket(&response)
            .await
            .map_err(|e| ConnectorError {
                message: format!("the ticket was created, but {}", e.message),
                ..e
            })?;
        if created.correlation.is_none() {
            tracing::warn!(
                system = self.api.system(),
                ticket = %created.key,
                pointer = self.spec.correlation.as_str(),
                "the new ticket does not hold the correlation id where [api] says; the bridge could not find it again after a lost answer"
            );
        }
        tracing::debug!(system = self.api.system(), ticket = %created.key, correlation = %value, "created ticket");
        Ok(created)
    }

    async fn get(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        self.read(key).await
    }

    async fn update(&self, key: &str, update: &TicketUpdate) -> ConnectorResult<TicketSnapshot> {
        // Everything is checked before the first request.
        let mut changes = empty_body();
        let set = || update.set.iter().map(|(k, v)| (k, v.as_deref()));
        self.write_attrs(&mut changes, set())?;
        if !update.add_labels.is_empty() && self.spec.labels.is_none() {
            return Err(self.permanent("labels cannot be added: [api] names no `labels` pointer"));
        }
        if update.is_empty() {
            return self.read(key).await;
        }
        let full = self.spec.update_mode == UpdateMode::Full;
        let (current, etag) = if full || !update.add_labels.is_empty() {
            let (object, etag) = self.read_record(key).await?;
            (Some(object), etag)
        } else {
            (None, None)
        };
        let mut body = match (&current, full) {
            // Read, modify, write: every place the bridge knows, as read, changed.
            (Some(object), true) => {
                let mut whole = self.known_places(object)?;
                self.write_attrs(&mut whole, set())?;
                whole
            }
            _ => changes,
        };
        if let Some(object) = &current
            && !update.add_labels.is_empty()
        {
            let mut labels = self.snapshot(object)?.labels;
            for l in &update.add_labels {
                if !labels.contains(l) {
                    labels.push(l.clone());
                }
            }
            self.set_labels(&mut body, labels)?;
        }
        let endpoint = &self.spec.update;
        let attr = |a: &str| update.set.get(a).cloned().flatten();
        self.extra_fields(endpoint, &mut body, attr, "")?;
        let body = self.wrap(endpoint, body)?;
        let url = self.ticket_url(&endpoint.path, key)?;
        let mut request = Request::with_body(method(endpoint.method), url, body);
        if full && let Some(etag) = etag {
            // A concurrent edit fails the write (412): re-read and re-planned.
            request = request.header("if-match", etag);
        }
        let response = self.api.send(request).await?;
        self.settle(key, &response).await
    }

    async fn add_comment(&self, key: &str, text: &str) -> ConnectorResult<Comment> {
        let mut body = empty_body();
        self.spec
            .comment_text
            .set(&mut body, Value::String(text.to_string()))
            .map_err(|e| self.permanent(e))?;
        let comment = &self.spec.comment;
        self.extra_fields(comment, &mut body, |_| None, "")?;
        let body = self.wrap(comment, body)?;
        let url = self.ticket_url(&comment.path, key)?;
        let request = Request::with_body(method(comment.method), url, body);
        let response = self.api.send(request).await?;
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let object = self.record_of(comment, answer).unwrap_or(Value::Null);
        convert::to_comment(&self.spec, &object, Some(text), chrono::Utc::now())
            .map_err(|e| self.invalid(e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::time::Duration;

    use bridge_core::model::Attrs;
    use chrono::{SubsecRound, Utc};
    use secrecy::SecretString;

    use super::*;
    use crate::generic::sim::GenericSim;
    use crate::http::{HttpSettings, RetryPolicy, build_client};
    use crate::simkit::{Fault, bind_loopback};

    const USER: &str = "bridge";
    const PASSWORD: &str = "helpdesk-password";
    const MAPPING: &str = include_str!("../../../mappings/generic.toml");

    fn spec_from(text: &str) -> GenericApi {
        bridge_core::mapping::parse(Path::new("generic.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
            .api
            .expect("a generic mapping has [api]")
    }

    /// The shipped mapping's [api] with `from` replaced by `to`.
    fn spec_with(from: &str, to: &str) -> GenericApi {
        assert!(MAPPING.contains(from), "{from}");
        spec_from(&MAPPING.replacen(from, to, 1))
    }

    async fn start() -> GenericSim {
        let sim = GenericSim::start(bind_loopback(0).await.unwrap()).await;
        sim.set_basic_auth(USER, PASSWORD);
        sim
    }

    fn client(sim: &GenericSim, spec: GenericApi, auth: Auth) -> GenericTickets {
        let http = build_client(&HttpSettings::default()).unwrap();
        let api = generic_api("helpdesk", &sim.base_url(), http, auth)
            .unwrap()
            .with_retry(RetryPolicy {
                base_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            });
        GenericTickets::new(api, spec)
    }

    fn basic(password: &str) -> Auth {
        Auth::Basic {
            username: USER.into(),
            password: SecretString::from(password),
        }
    }

    fn tickets(sim: &GenericSim) -> GenericTickets {
        client(sim, spec_from(MAPPING), basic(PASSWORD))
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn create_for(incident_id: &str, scope: &str, pairs: &[(&str, &str)]) -> TicketCreate {
        TicketCreate {
            correlation: Correlation::new("sentinel", incident_id).with_scope(scope),
            attrs: attrs(pairs),
            labels: vec!["itsm-bridge".into(), "sentinel".into()],
        }
    }

    fn set(pairs: &[(&str, Option<&str>)]) -> TicketUpdate {
        TicketUpdate {
            set: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            add_labels: Vec::new(),
        }
    }

    fn requests(sim: &GenericSim, method: &str) -> Vec<String> {
        sim.kit
            .requests()
            .into_iter()
            .filter(|r| r.method == method)
            .map(|r| match r.query {
                Some(q) => format!("{}?{q}", r.path),
                None => r.path,
            })
            .collect()
    }

    async fn all_pages(t: &GenericTickets, since: Timestamp) -> (Vec<String>, usize) {
        let mut page = t.changed_since(since).await.unwrap();
        let mut keys = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            keys.extend(page.items.iter().map(|t| t.key.clone()));
            let Some(next) = page.next else { break };
            page = t.next_page(&next).await.unwrap();
        }
        (keys, pages)
    }

    #[test]
    fn error_bodies_become_messages() {
        assert_eq!(
            error_message(br#"{"error": "ticket HD-9 not found"}"#).as_deref(),
            Some("ticket HD-9 not found")
        );
        assert_eq!(
            error_message(br#"{"error": {"message": "nope"}}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(error_message(br#"{"message": "m"}"#).as_deref(), Some("m"));
        assert_eq!(
            error_message(br#"{"errors": ["a", {"message": "b"}]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[tokio::test]
    async fn create_then_get_round_trips_through_the_pointers() {
        let sim = start().await;
        let t = tickets(&sim);
        let create = create_for(
            "6f0c2b8e",
            "sub/rg/ws",
            &[
                ("summary", "[Sentinel #8812] Suspicious sign-in"),
                (
                    "description",
                    "Severity: High\n\nhttps://portal.azure.com/#x",
                ),
                ("status", "In_Progress"),
                ("priority", "high"),
                ("assignee", "ana.ruiz@contoso.example"),
            ],
        );
        let created = t.create(&create).await.unwrap();
        assert_eq!((created.key.as_str(), created.id.as_str()), ("HD-1", "1"));
        assert_eq!(created.url, format!("{}/tickets/HD-1", sim.base_url()));
        assert_eq!(created.attrs, {
            let mut a = create.attrs.clone();
            a.insert("status".into(), "in_progress".into());
            a
        });
        assert_eq!(created.labels, ["itsm-bridge", "sentinel"]);
        let correlation = created.correlation.clone().unwrap();
        assert_eq!(correlation.source, "sentinel");
        assert_eq!(correlation.incident_id, "6f0c2b8e");
        assert_eq!(correlation.scope, convert::scope_tag("sub/rg/ws"));
        let stored = sim.ticket("HD-1").unwrap();
        assert_eq!(
            stored.external_id.as_deref(),
            Some(
                convert::correlation_value(&create.correlation)
                    .unwrap()
                    .as_str()
            )
        );
        assert_eq!(
            stored.status, "in_progress",
            "written as [api] statuses spell it"
        );

        assert_eq!(t.get("HD-1").await.unwrap(), created);
        assert_eq!(
            t.get("1").await.unwrap().key,
            "HD-1",
            "the sim takes the id too"
        );
        assert_eq!(requests(&sim, "POST"), ["/api/tickets"]);
    }

    #[tokio::test]
    async fn changed_since_pages_through_250_tickets_exactly_once() {
        let sim = start().await;
        let t = tickets(&sim);
        let since = Utc::now() - chrono::Duration::minutes(1);
        for n in 0..250 {
            t.create(&create_for(&n.to_string(), "ws", &[("summary", "s")]))
                .await
                .unwrap();
        }
        // Not the bridge's: listed by the API, left out by the client.
        sim.create_as_agent("walk-in");
        sim.kit.clear_log();
        let (keys, pages) = all_pages(&t, since).await;
        assert_eq!(pages, 3);
        assert_eq!(keys.len(), 250);
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 250);
        assert_eq!((keys[0].as_str(), keys[249].as_str()), ("HD-1", "HD-250"));
        let gets = requests(&sim, "GET");
        assert_eq!(gets.len(), 3);
        assert!(
            gets[0].starts_with("/api/tickets?updated_since="),
            "{gets:?}"
        );
        assert!(
            gets[1].contains("cursor=") && gets[2].contains("cursor="),
            "{gets:?}"
        );

        // The same through the Link header.
        let linked = client(
            &sim,
            spec_with("next = \"/next\"", "next = \"Link\""),
            basic(PASSWORD),
        );
        let (keys, pages) = all_pages(&linked, since).await;
        assert_eq!((keys.len(), pages), (250, 3));
    }

    #[tokio::test]
    async fn changed_since_filters_by_updated_since() {
        let sim = start().await;
        let t = tickets(&sim);
        for n in 1..=3 {
            t.create(&create_for(&n.to_string(), "ws", &[("summary", "s")]))
                .await
                .unwrap();
        }
        let base = (Utc::now() - chrono::Duration::hours(2)).trunc_subsecs(0);
        sim.backdate("HD-1", base - chrono::Duration::hours(1))
            .unwrap();
        sim.backdate("HD-2", base + chrono::Duration::seconds(30))
            .unwrap();
        // {since} is floored to the second, and the API's filter is inclusive.
        let since = base + chrono::Duration::milliseconds(30_700);
        let (keys, _) = all_pages(&t, since).await;
        assert_eq!(keys, ["HD-2", "HD-3"]);
        let (keys, _) = all_pages(&t, base - chrono::Duration::days(1)).await;
        assert_eq!(keys, ["HD-1", "HD-2", "HD-3"]);
        let (keys, pages) = all_pages(&t, Utc::now() + chrono::Duration::hours(1)).await;
        assert!(keys.is_empty());
        assert_eq!(pages, 1);
    }

    #[tokio::test]
    async fn find_by_correlation_adopts_only_an_exact_match() {
        let sim = start().await;
        let exact = tickets(&sim);
        // An API whose search is loose: a substring of key, summary or external id.
        let loose = client(
            &sim,
            spec_with("?external_id={correlation}", "?q={correlation}"),
            basic(PASSWORD),
        );
        let a = create_for("41877", "ws-a", &[("summary", "a")]);
        let longer = create_for("418770", "ws-a", &[("summary", "b")]);
        let other_ws = create_for("41877", "ws-b", &[("summary", "c")]);
        for c in [&a, &longer, &other_ws] {
            exact.create(c).await.unwrap();
        }
        for t in [&exact, &loose] {
            let found = t
                .find_by_correlation(&a.correlation)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.key, "HD-1");
            let found = t
                .find_by_correlation(&other_ws.correlation)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.key, "HD-3");
            let shorter = Correlation::new("sentinel", "4187").with_scope("ws-a");
            assert_eq!(t.find_by_correlation(&shorter).await.unwrap(), None);
            let nowhere = Correlation::new("sentinel", "41877").with_scope("ws-c");
            assert_eq!(t.find_by_correlation(&nowhere).await.unwrap(), None);
        }
        // The loose search did return the longer id: the client refused it.
        let q = format!("{}:{}:4187", "sentinel", convert::scope_tag("ws-a"));
        let listed = sim
            .tickets()
            .into_iter()
            .filter(|t| t.external_id.as_deref().is_some_and(|e| e.contains(&q)))
            .count();
        assert_eq!(listed, 2);
    }

    #[tokio::test]
    async fn hostile_values_stay_literal() {
        let sim = start().await;
        let t = tickets(&sim);
        t.create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.clear_log();
        for key in ["../HD-1", "HD-1?x=1", "HD-1/comments", "HD-1#x", "%48D-1"] {
            let err = t.get(key).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound, "{key}: {err}");
        }
        let paths: Vec<String> = requests(&sim, "GET");
        assert_eq!(
            paths,
            [
                "/api/tickets/..%2FHD-1",
                "/api/tickets/HD-1%3Fx%3D1",
                "/api/tickets/HD-1%2Fcomments",
                "/api/tickets/HD-1%23x",
                "/api/tickets/%2548D-1",
            ]
        );
        // A key that would be a dot segment is refused before anything is sent.
        sim.kit.clear_log();
        for key in ["..", ".", ""] {
            let err = t.get(key).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{key:?}");
        }
        assert_eq!(sim.kit.request_count(), 0);
        // An incident id cannot add a query parameter (the sim refuses a repeated one).
        let hostile = Correlation::new("sentinel", "1&external_id=x&limit=1000").with_scope("ws");
        assert_eq!(t.find_by_correlation(&hostile).await.unwrap(), None);
        // And round-trips literally through create and find.
        let created = t
            .create(&TicketCreate {
                correlation: hostile.clone(),
                attrs: attrs(&[("summary", "a/b?c#d&e=%20 \"quoted\"")]),
                labels: vec![],
            })
            .await
            .unwrap();
        assert_eq!(created.attrs["summary"], "a/b?c#d&e=%20 \"quoted\"");
        let found = t.find_by_correlation(&hostile).await.unwrap().unwrap();
        assert_eq!(found.key, created.key);
    }

    #[tokio::test]
    async fn update_patches_only_the_changes_and_full_mode_sends_the_whole_ticket() {
        let sim = start().await;
        let t = tickets(&sim);
        let created = t
            .create(&create_for(
                "1",
                "ws",
                &[("summary", "s"), ("description", "d"), ("priority", "high")],
            ))
            .await
            .unwrap();
        let update = TicketUpdate {
            set: [
                ("description".to_string(), None),
                ("status".to_string(), Some("RESOLVED".to_string())),
                ("resolution".to_string(), Some("false_positive".to_string())),
            ]
            .into(),
            add_labels: vec!["merged".into(), "sentinel".into()],
        };
        let after = t.update("HD-1", &update).await.unwrap();
        assert!(!after.attrs.contains_key("description"));
        assert_eq!(after.attrs["status"], "resolved");
        assert_eq!(after.attrs["resolution"], "false_positive");
        assert_eq!(after.attrs["priority"], "high", "untouched");
        assert_eq!(after.labels, ["itsm-bridge", "sentinel", "merged"]);
        assert!(after.modified > created.modified);
        assert_eq!(requests(&sim, "PATCH"), ["/api/tickets/HD-1"]);

        // An agent's edit in between survives a PUT of another field.
        sim.update_as_agent("HD-1", |t| {
            t.assignee = Some("li.wei@contoso.example".into())
        })
        .unwrap();
        let put = client(
            &sim,
            spec_with("method = \"PATCH\"", "method = \"PUT\", mode = \"full\""),
            basic(PASSWORD),
        );
        let after = put
            .update("HD-1", &set(&[("priority", Some("low"))]))
            .await
            .unwrap();
        assert_eq!(after.attrs["priority"], "low");
        assert_eq!(after.attrs["assignee"], "li.wei@contoso.example");
        assert_eq!(after.attrs["resolution"], "false_positive");
        // The whole ticket went back, the correlation id with it.
        assert_eq!(
            sim.ticket("HD-1").unwrap().external_id,
            Some(
                convert::correlation_value(&Correlation::new("sentinel", "1").with_scope("ws"))
                    .unwrap()
            )
        );
        assert_eq!(requests(&sim, "PUT"), ["/api/tickets/HD-1"]);
    }

    #[tokio::test]
    async fn refusals_are_permanent_and_checked_values_never_leave() {
        let sim = start().await;
        let t = tickets(&sim);
        t.create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.clear_log();
        // [api] lists the statuses: an unknown one, a cleared one and an attribute
        // without a pointer are refused before anything is sent.
        for update in [
            set(&[("status", Some("done"))]),
            set(&[("status", None)]),
            set(&[("impact", Some("1"))]),
        ] {
            let err = t.update("HD-1", &update).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{update:?}");
        }
        assert_eq!(sim.kit.request_count(), 0);

        // Without the list, the API's own 422 is a permanent error with its message.
        let unchecked = client(
            &sim,
            spec_with(
                "statuses = [\"open\", \"in_progress\", \"resolved\", \"closed\"]",
                "",
            ),
            basic(PASSWORD),
        );
        let err = unchecked
            .update("HD-1", &set(&[("status", Some("done"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("HTTP 422"), "{err}");
        assert!(err.message.contains("unknown status \"done\""), "{err}");
        let err = t
            .update("HD-1", &set(&[("priority", Some("urgent"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("unknown priority"), "{err}");
        assert_eq!(sim.ticket("HD-1").unwrap().status, "open");
    }

    #[tokio::test]
    async fn comments_are_added_and_read_back() {
        let sim = start().await;
        let t = tickets(&sim);
        let created = t
            .create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        let comment = t
            .add_comment(
                "HD-1",
                "Incident closed in Sentinel.\n\nClassification: TruePositive",
            )
            .await
            .unwrap();
        assert_eq!(comment.id.as_deref(), Some("1"));
        assert_eq!(comment.author.as_deref(), Some(USER));
        assert_eq!(
            comment.text,
            "Incident closed in Sentinel.\n\nClassification: TruePositive"
        );
        sim.comment_as_agent("HD-1", "Li Wei", "on it").unwrap();
        let got = t.get("HD-1").await.unwrap();
        assert_eq!(got.comments.len(), 2);
        assert_eq!(got.comments[0], comment);
        assert_eq!(got.comments[1].author.as_deref(), Some("Li Wei"));
        assert!(
            got.modified > created.modified,
            "comments move updated_at on"
        );
        assert_eq!(
            requests(&sim, "POST"),
            ["/api/tickets", "/api/tickets/HD-1/comments"]
        );
    }

    #[tokio::test]
    async fn refused_credentials_are_auth_errors() {
        let sim = start().await;
        let wrong = client(&sim, spec_from(MAPPING), basic("wrong-password"));
        let err = wrong.get("HD-1").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(err.message.contains("invalid credentials"), "{err}");
        assert!(!err.message.contains("wrong-password"));
        let err = wrong.changed_since(Utc::now()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);

        sim.set_bearer_token("helpdesk-token");
        let token = client(
            &sim,
            spec_from(MAPPING),
            bearer(SecretString::from("helpdesk-token")),
        );
        let created = token
            .create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        let comment = token.add_comment(&created.key, "hi").await.unwrap();
        assert_eq!(
            comment.author.as_deref(),
            Some(crate::generic::sim::BEARER_AUTHOR)
        );
        for auth in [bearer(SecretString::from("stale-token")), basic(PASSWORD)] {
            let err = client(&sim, spec_from(MAPPING), auth)
                .get("HD-1")
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Auth);
            assert!(!err.message.contains("token"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_wrong_items_pointer_is_an_error_not_an_empty_page() {
        let sim = start().await;
        let t = client(
            &sim,
            spec_with("items = \"/items\"", "items = \"/tickets\""),
            basic(PASSWORD),
        );
        let err = t.changed_since(Utc::now()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidPayload);
        assert!(err.message.contains("\"/tickets\""), "{err}");
    }

    #[tokio::test]
    async fn next_links_only_on_the_configured_host() {
        let sim = start().await;
        let t = tickets(&sim);
        for link in [
            "http://evil.example/api/tickets?cursor=x",
            "https://127.0.0.1/api/tickets",
            "not a url",
        ] {
            let err = t.next_page(link).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidPayload, "{link}");
        }
        assert_eq!(sim.kit.request_count(), 0);
    }

    #[tokio::test]
    async fn a_create_that_gets_a_500_is_not_retried() {
        let sim = start().await;
        let t = tickets(&sim);
        sim.kit.inject(Fault {
            method: Some(reqwest::Method::POST),
            path_contains: "/api/tickets".into(),
            times: 1,
            status: 500,
            retry_after: None,
            body: r#"{"error": "database unavailable"}"#.into(),
        });
        let err = t
            .create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.message.contains("database unavailable"), "{err}");
        assert_eq!(requests(&sim, "POST").len(), 1);
        assert!(sim.tickets().is_empty());
        // A GET is retried through the same fault.
        t.create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.inject(Fault {
            method: Some(reqwest::Method::GET),
            path_contains: "/api/tickets/HD-1".into(),
            times: 1,
            status: 503,
            retry_after: None,
            body: r#"{"error": "try again"}"#.into(),
        });
        assert_eq!(t.get("HD-1").await.unwrap().key, "HD-1");
    }

    #[tokio::test]
    async fn agents_resolve_and_the_bridge_reads_it() {
        let sim = start().await;
        let t = tickets(&sim);
        t.create(&create_for("1", "ws", &[("summary", "s")]))
            .await
            .unwrap();
        sim.resolve_as_agent("HD-1", "false_positive").unwrap();
        let got = t.get("HD-1").await.unwrap();
        assert_eq!(got.attrs["status"], "resolved");
        assert_eq!(got.attrs["resolution"], "false_positive");
        assert!(
            sim.update_as_agent("HD-1", |t| t.status = "done".into())
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_helpdesks_field_level_error_details_reach_the_message() {
        use crate::generic::FreshserviceSim;
        let sim = FreshserviceSim::start(bind_loopback(0).await.unwrap()).await;
        sim.set_api_key("fs-key");
        let spec = spec_from(include_str!("../../../mappings/freshservice.toml"));
        let http = build_client(&HttpSettings::default()).unwrap();
        let auth = Auth::Basic {
            username: "fs-key".into(),
            password: SecretString::from("X"),
        };
        let api = generic_api("freshservice", &sim.base_url(), http, auth).unwrap();
        let t = GenericTickets::new(api, spec);
        let created = t
            .create(&create_for(
                "1",
                "ws",
                &[
                    ("summary", "s"),
                    ("description", "d"),
                    ("status", "2"),
                    ("priority", "3"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(
            created.attrs["status"], "2",
            "integers read back as their text"
        );
        // A priority the mapping's maps would never send, to see the API's answer.
        let err = t
            .update(&created.key, &set(&[("priority", Some("9"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains(
                "Validation failed: priority: It should be one of these values: '1,2,3,4'"
            ),
            "{err}"
        );
        // A value that is not of the attribute's type never leaves.
        let writes = sim.writes().len();
        let err = t
            .update(&created.key, &set(&[("priority", Some("high"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
        assert_eq!(sim.writes().len(), writes);
    }

    #[tokio::test]
    async fn a_full_update_carries_if_match_and_a_concurrent_edit_fails_it() {
        use crate::simkit::{Effect, FaultRule};
        let sim = start().await;
        let t = tickets(&sim);
        t.create(&create_for(
            "1",
            "ws",
            &[("summary", "s"), ("priority", "high")],
        ))
        .await
        .unwrap();
        let full = client(
            &sim,
            spec_with("method = \"PATCH\"", "method = \"PUT\", mode = \"full\""),
            basic(PASSWORD),
        );
        full.update("HD-1", &set(&[("priority", Some("low"))]))
            .await
            .unwrap();
        // An agent takes the ticket between the bridge's read and its write.
        sim.kit.inject(
            FaultRule::new(
                Some(reqwest::Method::PUT),
                "/api/tickets/HD-1",
                Effect::Pass,
            )
            .hook(sim.agent_edit_hook("HD-1")),
        );
        let err = full
            .update("HD-1", &set(&[("priority", Some("medium"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
        let after = sim.ticket("HD-1").unwrap();
        assert_eq!(
            after.assignee.as_deref(),
            Some("li.wei@contoso.example"),
            "the agent's edit survives"
        );
        assert_eq!(
            after.priority.as_deref(),
            Some("low"),
            "the stale write was refused"
        );
    }
}
