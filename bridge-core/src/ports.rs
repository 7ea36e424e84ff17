//! The traits the engine drives and the connectors implement: an incident source, a
//! ticket system, and the typed error both return. `bridge-core` defines them so
//! that it never depends on HTTP; `connectors` implements them.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    Comment, Correlation, IncidentSnapshot, IncidentUpdate, Page, TicketCreate, TicketSnapshot,
    TicketUpdate, Timestamp,
};

/// What went wrong talking to a remote system, in the terms the scheduler branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, timeouts, 5xx: worth retrying later.
    Transient,
    /// 429 (or 503 with `Retry-After`): wait at least this long.
    RateLimited(Option<Duration>),
    /// Credentials refused or a permission is missing (401/403).
    Auth,
    /// The record does not exist (or is not visible to us).
    NotFound,
    /// A concurrent change (Sentinel stale etag, Jira 409): re-read and re-plan.
    Conflict,
    /// The remote refused the request itself (400, 422, data policy): retrying as-is is useless.
    Permanent,
    /// The remote answered with something we cannot parse.
    InvalidPayload,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Transient | ErrorKind::RateLimited(_) | ErrorKind::Conflict
        )
    }
}

/// A connector failure. The message never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    pub kind: ErrorKind,
    /// The remote system (`graph`, `jira`, …) or the configured name.
    pub system: String,
    pub message: String,
    /// The HTTP status the remote answered with; `None` when it never answered
    /// (DNS, connection, TLS, timeout) or the failure is not an HTTP answer.
    pub status: Option<u16>,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, system: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            system: system.into(),
            message: message.into(),
            status: None,
        }
    }

    /// The same error, as the answer of an HTTP `status`.
    pub fn with_status(self, status: u16) -> Self {
        ConnectorError {
            status: Some(status),
            ..self
        }
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.system, self.message)
    }
}

impl std::error::Error for ConnectorError {}

pub type ConnectorResult<T> = Result<T, ConnectorError>;

/// A place incidents come from: Microsoft Graph security incidents or Sentinel.
#[async_trait]
pub trait IncidentSource: Send + Sync {
    /// The first page of incidents modified at or after `since`.
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<IncidentSnapshot>>;
    /// The page behind a next link returned by this source, requested exactly as given.
    async fn next_page(&self, next: &str) -> ConnectorResult<Page<IncidentSnapshot>>;
    async fn get(&self, id: &str) -> ConnectorResult<IncidentSnapshot>;
    /// Applies the update and returns the incident as it is afterwards.
    async fn update(&self, id: &str, update: &IncidentUpdate) -> ConnectorResult<IncidentSnapshot>;
    async fn add_comment(&self, id: &str, text: &str) -> ConnectorResult<()>;
    /// Every comment on the incident, oldest first. By default read from the
    /// incident itself (Graph embeds them); sources that keep comments apart
    /// (Sentinel) list them.
    async fn comments(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        Ok(self.get(id).await?.comments)
    }
    /// Whether `get` returns every comment (so `comments` is `get`'s): true unless
    /// the source overrides `comments`.
    fn get_has_comments(&self) -> bool {
        true
    }
}

/// What a look for the ticket of a create whose answer was lost found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Box<TicketSnapshot>),
    /// The system can say for certain that there is none: make it.
    Absent,
    /// Only a search index that lags its writes could tell: look again once it
    /// has caught up.
    Unsure,
}

/// A place tickets live: Jira, ServiceNow or a generic REST system.
#[async_trait]
pub trait TicketSystem: Send + Sync {
    /// The first page of the bridge's tickets modified at or after `since`.
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<TicketSnapshot>>;
    /// The page behind a next link returned by this system, requested exactly as given.
    async fn next_page(&self, next: &str) -> ConnectorResult<Page<TicketSnapshot>>;
    /// The ticket the bridge created for this incident, if any (used to adopt
    /// instead of duplicating after a crash or a lost response).
    async fn find_by_correlation(
        &self,
        correlation: &Correlation,
    ) -> ConnectorResult<Option<TicketSnapshot>>;
    /// Looks for the ticket a create whose answer was lost may have made, as
    /// consistently as the system allows. `known_ticket` is the newest ticket key
    /// the pair had linked when the create began: a ticket the create made came
    /// after it. By default this is [`TicketSystem::find_by_correlation`], for
    /// systems whose correlation lookup reads the records themselves (a
    /// ServiceNow table, a REST collection), where a miss is final.
    async fn find_created(
        &self,
        correlation: &Correlation,
        known_ticket: Option<&str>,
    ) -> ConnectorResult<Lookup> {
        let _ = known_ticket;
        Ok(match self.find_by_correlation(correlation).await? {
            Some(ticket) => Lookup::Found(Box::new(ticket)),
            None => Lookup::Absent,
        })
    }
    async fn create(&self, ticket: &TicketCreate) -> ConnectorResult<TicketSnapshot>;
    async fn get(&self, key: &str) -> ConnectorResult<TicketSnapshot>;
    /// Applies the update and returns the ticket as it is afterwards.
    async fn update(&self, key: &str, update: &TicketUpdate) -> ConnectorResult<TicketSnapshot>;
    async fn add_comment(&self, key: &str, text: &str) -> ConnectorResult<Comment>;
    /// Every comment on the ticket, oldest first (by default from `get`).
    async fn comments(&self, key: &str) -> ConnectorResult<Vec<Comment>> {
        Ok(self.get(key).await?.comments)
    }
    /// Whether `get` returns every comment (so `comments` is `get`'s): true unless
    /// the system overrides `comments`.
    fn get_has_comments(&self) -> bool {
        true
    }
}
