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
    /// The message goes through [`remote_text`]: it often quotes a remote body, and
    /// it is kept (dead letters, the ledger) and shown (logs, console, `/healthz`).
    /// Every connector error is built here, so every path gets the cut and escape.
    pub fn new(kind: ErrorKind, system: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            system: system.into(),
            message: remote_text(&message.into()),
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

/// The most of a remote text the bridge keeps or shows: a few KiB say what went
/// wrong; a server that sends 50 MB of it must not fill logs, the store or `/healthz`.
pub const REMOTE_TEXT_MAX: usize = 4096;

/// Remote text made safe to keep and show: control characters (newlines, carriage
/// returns, tabs, ESC and the other C0/C1 controls, and the Unicode line and
/// paragraph separators) are written as escapes (`\n`, `\u{1b}`) so that they cannot
/// forge a log line or drive a terminal, and the text is cut to
/// [`REMOTE_TEXT_MAX`] bytes (on a character boundary) with a note of what was cut.
/// Clean text within the limit comes back unchanged.
pub fn remote_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(REMOTE_TEXT_MAX + 64));
    let mut cut_at = None;
    for (i, c) in text.char_indices() {
        let before = out.len();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
        if out.len() > REMOTE_TEXT_MAX {
            out.truncate(before);
            cut_at = Some(i);
            break;
        }
    }
    if let Some(i) = cut_at {
        out.push_str(&format!("… ({} more bytes cut)", text.len() - i));
    }
    out
}

/// `text` with every occurrence of `secret` replaced by `[redacted]`, including
/// the start of one that [`remote_text`] cut off at its limit (the text ends, before
/// the cut note, with the secret's first bytes): a cut must not leave half a secret.
pub fn redact_secret(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(secret, "[redacted]");
    if let Some(at) = out.rfind("… (")
        && out[at..].ends_with(" more bytes cut)")
    {
        let kept = &out[..at];
        let partial = (1..secret.len())
            .rev()
            .filter(|&n| secret.is_char_boundary(n))
            .find(|&n| kept.ends_with(&secret[..n]));
        if let Some(n) = partial {
            out.replace_range(at - n..at, "[redacted]");
        }
    }
    out
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
    /// Adds a comment and, where a comment moves the incident itself (Sentinel:
    /// its `lastModifiedTimeUtc` and etag move, and the comment's answer says
    /// when but not the new etag), the time the incident stands at after it: the
    /// engine keeps that as the bridge's own version, so that the next poll does
    /// not take the bridge's comment for someone else's change and read the
    /// incident's comments again. `None` where a comment's answer says nothing of
    /// the incident (by default).
    async fn add_comment_stamped(
        &self,
        id: &str,
        text: &str,
    ) -> ConnectorResult<Option<Timestamp>> {
        self.add_comment(id, text).await.map(|()| None)
    }
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
    /// Applies the update to the incident as `listed` showed it, read by this
    /// cycle's poll: a source whose write needs the record's current state (Graph
    /// replaces `customTags` as a whole, Sentinel's PUT replaces the incident and
    /// needs its etag) takes it from the listing instead of reading it again. A
    /// change made in between is the source's to refuse (Sentinel: 409 on the
    /// etag, returned as `Conflict`). By default, `update`.
    async fn update_listed(
        &self,
        listed: &IncidentSnapshot,
        update: &IncidentUpdate,
    ) -> ConnectorResult<IncidentSnapshot> {
        self.update(&listed.id, update).await
    }
    /// Every comment on `listed` when its listing already said (Graph embeds the
    /// comments; Sentinel counts them, so an incident listed with none needs no
    /// read). `None`: read them with `comments`.
    fn listed_comments(&self, listed: &IncidentSnapshot) -> Option<Vec<Comment>> {
        let _ = listed;
        None
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
    /// Every comment on `listed` when this cycle's listing already had them all
    /// (Jira's search embeds them, and says when it left some out). `None`:
    /// read them with `comments`.
    fn listed_comments(&self, listed: &TicketSnapshot) -> Option<Vec<Comment>> {
        let _ = listed;
        None
    }
    /// Every comment on `written`, the answer of this system's `update`, when
    /// that answer has them all (it read the ticket after the write). `None`:
    /// read them with `comments`.
    fn written_comments(&self, written: &TicketSnapshot) -> Option<Vec<Comment>> {
        let _ = written;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifty_megabyte_remote_message_is_cut_to_a_few_kib() {
        let huge = "x".repeat(50 * 1024 * 1024);
        let error = ConnectorError::new(ErrorKind::Transient, "jira", format!("HTTP 500: {huge}"));
        assert!(
            error.message.len() <= REMOTE_TEXT_MAX + 64,
            "{}",
            error.message.len()
        );
        assert!(error.message.starts_with("HTTP 500: xxx"));
        assert!(
            error
                .message
                .ends_with(&format!("… ({} more bytes cut)", huge.len() + 10 - 4096)),
            "{}",
            &error.message[4000..]
        );
        // A cut never splits a character.
        let wide = "é".repeat(REMOTE_TEXT_MAX);
        assert!(remote_text(&wide).starts_with("éé"));
    }

    #[test]
    fn a_secret_cut_in_half_by_the_limit_is_still_redacted() {
        let secret = "hunter2-canary-secret";
        let padding = "p".repeat(REMOTE_TEXT_MAX - 6);
        let error = ConnectorError::new(
            ErrorKind::Auth,
            "login",
            format!("{padding}{secret} and {secret} again"),
        );
        assert!(
            error.message.contains("hunter"),
            "the cut fell inside the secret"
        );
        let clean = redact_secret(&error.message, secret);
        assert!(!clean.contains("hunter"), "{}", &clean[clean.len() - 60..]);
        assert!(
            clean.ends_with("[redacted]… (47 more bytes cut)"),
            "{}",
            &clean[4000..]
        );
        assert_eq!(
            redact_secret(
                "said hunter2-canary-secret twice: hunter2-canary-secret",
                secret
            ),
            "said [redacted] twice: [redacted]"
        );
        assert_eq!(redact_secret("nothing here", secret), "nothing here");
    }

    #[test]
    fn control_characters_in_remote_text_are_escaped() {
        let forged =
            "bad\n2026-12-06T20:00:00Z  INFO ledger verified\r\x1b[2J\x1b]0;owned\x07\u{2028}\ttab";
        let error = ConnectorError::new(ErrorKind::Permanent, "graph", forged);
        assert_eq!(
            error.message,
            "bad\\n2026-12-06T20:00:00Z  INFO ledger verified\\r\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{2028}\\ttab"
        );
        assert!(!error.to_string().chars().any(char::is_control));
        assert_eq!(remote_text(&error.message), error.message, "idempotent");
        assert_eq!(remote_text("plain text, ünïcode"), "plain text, ünïcode");
    }
}
