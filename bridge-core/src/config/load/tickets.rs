//! `[[ticket_system]]`: a ticket system (Jira, ServiceNow or a generic REST
//! one), its URL, credentials, project or table, rate limit and search lag.

use super::*;

impl Checker<'_> {
    pub(super) fn ticket_system(
        &mut self,
        span: Range<usize>,
        raw: &RawTicketSystem,
    ) -> Option<TicketSystemConfig> {
        let header = span.start;
        let mut ok = true;
        let name = self.name("ticket_system", header, raw.name.as_ref());
        let kind = self.ticket_kind(header, raw);
        let base_url = match &raw.base_url {
            None => {
                self.r.at(
                    header,
                    "add base_url = \"https://...\" (the ticket system's address)",
                );
                None
            }
            Some(b) => self.credential_url(b, "credentials"),
        };

        let before = self.r.diagnostics.len();
        let (auth, project_key, issue_type) = match kind {
            None => (None, None, None),
            Some(TicketKind::Jira) => self.jira_auth(header, raw),
            Some(TicketKind::Servicenow) => (self.servicenow_auth(header, raw), None, None),
            Some(TicketKind::Generic) => (self.generic_auth(header, raw), None, None),
        };
        ok &= self.r.diagnostics.len() == before;

        let mapping = self.ticket_mapping(header, raw, kind);
        let rate_limit = self.rate_limit(raw.rate_limit.as_ref(), raw.burst.as_ref());
        ok &= rate_limit.is_ok();
        let search_lag = self.search_lag(raw);
        ok &= search_lag.is_some();
        if !ok {
            return None;
        }
        Some(TicketSystemConfig {
            name: name?,
            kind: kind?,
            base_url: base_url?,
            auth: auth?,
            project_key,
            issue_type,
            mapping: mapping?,
            rate_limit: rate_limit.ok()?,
            search_lag: search_lag?,
        })
    }

    /// `rate_limit = "10/s"` and its optional `burst`. `Err` when either is bad
    /// (already reported).
    pub(super) fn rate_limit(
        &mut self,
        rate: Option<&Spanned<String>>,
        burst: Option<&Spanned<i64>>,
    ) -> Result<Option<RateLimitConfig>, ()> {
        let burst = match (burst, rate) {
            (None, _) => None,
            (Some(b), None) => {
                self.r.at(
                    self.key_at("burst", b.span().start),
                    "burst needs a rate_limit beside it, e.g. rate_limit = \"10/s\"",
                );
                return Err(());
            }
            (Some(b), Some(_)) => match u32::try_from(*b.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.r.at(
                        b.span().start,
                        "burst must be a whole number of requests, at least 1, e.g. burst = 20",
                    );
                    return Err(());
                }
            },
        };
        let Some(rate) = rate else {
            return Ok(None);
        };
        match parse_rate(rate.get_ref()) {
            Ok((requests, per)) => Ok(Some(RateLimitConfig {
                requests,
                per,
                burst,
            })),
            Err(problem) => {
                self.r.at(rate.span().start, problem);
                Err(())
            }
        }
    }

    pub(super) fn basic_auth(
        &mut self,
        header: usize,
        raw: &RawTicketSystem,
    ) -> Option<TicketAuth> {
        let username = self.required(
            header,
            "username",
            "\"...\" (the account the bridge signs in as)",
            raw.username.as_ref(),
        );
        let password = match &raw.password {
            None => {
                self.r.at(header, "add password = { env = \"...\" }");
                None
            }
            Some(p) => self.secret("password", p),
        };
        Some(TicketAuth::Basic {
            username: username?,
            password: password?,
        })
    }

    /// `kind`: jira, servicenow or generic.
    fn ticket_kind(&mut self, header: usize, raw: &RawTicketSystem) -> Option<TicketKind> {
        match &raw.kind {
            None => {
                self.r.at(
                    header,
                    "add kind = \"jira\", \"servicenow\" or \"generic\" to this [[ticket_system]]",
                );
                None
            }
            Some(k) => {
                let kind = TicketKind::parse(k.get_ref());
                if kind.is_none() {
                    self.r.at(
                        k.span().start,
                        format!(
                            "unknown ticket system kind `{}`; write \"jira\", \"servicenow\" or \"generic\"",
                            k.get_ref()
                        ),
                    );
                }
                kind
            }
        }
    }

    /// Jira's API token sign-in, project and issue type; the keys of the other
    /// kinds are refused.
    fn jira_auth(
        &mut self,
        header: usize,
        raw: &RawTicketSystem,
    ) -> (Option<TicketAuth>, Option<String>, Option<String>) {
        let keys = KeysGiven::of(raw);
        self.foreign_keys(&keys.basic, "kind = \"servicenow\" or \"generic\"");
        self.foreign_keys(&keys.token, "kind = \"generic\"");
        self.foreign_keys(&keys.oauth, "kind = \"servicenow\"");
        let email = self.required(
            header,
            "email",
            "\"bridge@example.com\" (the Jira account of the bridge)",
            raw.email.as_ref(),
        );
        let api_token = match &raw.api_token {
            None => {
                self.r.at(
                    header,
                    "add api_token = { env = \"...\" } (an Atlassian API token)",
                );
                None
            }
            Some(s) => self.secret("api_token", s),
        };
        let project_key = self.required(
            header,
            "project_key",
            "\"SEC\" (the Jira project issues are created in)",
            raw.project_key.as_ref(),
        );
        if let (Some(key), Some(v)) = (&project_key, &raw.project_key) {
            if !valid_project_key(key) {
                self.r.at(
                    v.span().start,
                    format!("`{key}` is not a Jira project key; project keys are an upper-case letter then upper-case letters, digits or `_`, e.g. \"SEC\""),
                );
            }
        }
        let issue_type = match &raw.issue_type {
            None => Some(DEFAULT_ISSUE_TYPE.to_string()),
            Some(v) => self.required(header, "issue_type", "\"Task\"", Some(v)),
        };
        let auth = match (email, api_token) {
            (Some(email), Some(api_token)) => Some(TicketAuth::JiraToken { email, api_token }),
            _ => None,
        };
        (auth, project_key, issue_type)
    }

    /// ServiceNow's Basic or OAuth client-credentials sign-in; the keys of the
    /// other kinds are refused.
    fn servicenow_auth(&mut self, header: usize, raw: &RawTicketSystem) -> Option<TicketAuth> {
        let keys = KeysGiven::of(raw);
        self.foreign_keys(&keys.jira, "kind = \"jira\"");
        self.foreign_keys(&keys.token, "kind = \"generic\"");
        match (&raw.client_id, &raw.client_secret) {
            (None, None) => self.basic_auth(header, raw),
            (client_id, client_secret) => {
                // OAuth client credentials (the instance's /oauth_token.do).
                self.foreign_keys(&keys.basic, "Basic sign-in (without client_id)");
                let client_id = self.required(
                    header,
                    "client_id",
                    "\"...\" (the OAuth application registry entry's client id)",
                    client_id.as_ref(),
                );
                let client_secret = match client_secret {
                    None => {
                        self.r.at(header, "add client_secret = { env = \"...\" }");
                        None
                    }
                    Some(s) => self.secret("client_secret", s),
                };
                Some(TicketAuth::OAuthClient {
                    client_id: client_id?,
                    client_secret: client_secret?,
                })
            }
        }
    }

    /// The generic system's Basic or bearer-token sign-in; the keys of the
    /// other kinds are refused.
    fn generic_auth(&mut self, header: usize, raw: &RawTicketSystem) -> Option<TicketAuth> {
        let keys = KeysGiven::of(raw);
        self.foreign_keys(&keys.jira, "kind = \"jira\"");
        self.foreign_keys(&keys.oauth, "kind = \"servicenow\"");
        match (&raw.token, &raw.username, &raw.password) {
            (Some(token), None, None) => self
                .secret("token", token)
                .map(|token| TicketAuth::Bearer { token }),
            (Some(token), _, _) => {
                self.r.at(
                    self.key_at("token", token.span().start),
                    "give either username + password or token, not both",
                );
                None
            }
            (None, None, None) => {
                self.r.at(
                    header,
                    "add username = \"...\" and password = { env = \"...\" }, or token = { env = \"...\" }",
                );
                None
            }
            (None, _, _) => self.basic_auth(header, raw),
        }
    }

    /// The mapping file, checked on its own; its kinds must fit this system.
    fn ticket_mapping(
        &mut self,
        header: usize,
        raw: &RawTicketSystem,
        kind: Option<TicketKind>,
    ) -> Option<mapping::Mapping> {
        match &raw.mapping {
            None => {
                self.r.at(
                    header,
                    "add mapping = \"mappings/<kind>.toml\" (the field mapping for this ticket system; see mappings/README.md)",
                );
                None
            }
            Some(m) if m.get_ref().trim().is_empty() => {
                self.r.at(
                    m.span().start,
                    "mapping is empty; give the path of a mapping file",
                );
                None
            }
            Some(m) => match mapping::load(&self.resolve(m.get_ref())) {
                Ok(mapping) => {
                    if kind.is_some_and(|k| k != mapping.ticket_kind) {
                        self.r.at(
                            m.span().start,
                            format!(
                                "{} is written for tickets = \"{}\", but this ticket system is kind = \"{}\"; use a mapping written for {}",
                                mapping.file.display(),
                                mapping.ticket_kind.as_str(),
                                kind.map_or("", TicketKind::as_str),
                                kind.map_or("", TicketKind::as_str),
                            ),
                        );
                        None
                    } else {
                        Some(mapping)
                    }
                }
                Err(e) => {
                    self.mapping_diagnostics.extend(e.diagnostics);
                    None
                }
            },
        }
    }

    /// `search_lag`: how long the ticket system's search may lag its writes.
    fn search_lag(&mut self, raw: &RawTicketSystem) -> Option<Duration> {
        match &raw.search_lag {
            None => Some(DEFAULT_SEARCH_LAG),
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) => Some(d),
                Err(problem) => {
                    self.r.at(t.span().start, format!("search_lag {problem}"));
                    None
                }
            },
        }
    }
}

/// Where each kind's sign-in keys were given, to refuse them on another kind.
struct KeysGiven {
    jira: [(&'static str, Option<usize>); 4],
    basic: [(&'static str, Option<usize>); 2],
    token: [(&'static str, Option<usize>); 1],
    oauth: [(&'static str, Option<usize>); 2],
}

impl KeysGiven {
    fn of(raw: &RawTicketSystem) -> KeysGiven {
        let at = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span().start);
        let secret_at = |v: &RawSecret| v.as_ref().map(|v| v.span().start);
        KeysGiven {
            jira: [
                ("email", at(&raw.email)),
                ("api_token", secret_at(&raw.api_token)),
                ("project_key", at(&raw.project_key)),
                ("issue_type", at(&raw.issue_type)),
            ],
            basic: [
                ("username", at(&raw.username)),
                ("password", secret_at(&raw.password)),
            ],
            token: [("token", secret_at(&raw.token))],
            oauth: [
                ("client_id", at(&raw.client_id)),
                ("client_secret", secret_at(&raw.client_secret)),
            ],
        }
    }
}
