//! `[[source]]`: an incident source (Graph or Sentinel), its tenant, endpoints,
//! credentials and rate limit.

use super::*;

impl Checker<'_> {
    pub(super) fn source(&mut self, span: Range<usize>, raw: &RawSource) -> Option<SourceConfig> {
        let header = span.start;
        let mut ok = true;
        let name = self.name("source", header, raw.name.as_ref());
        let kind = self.source_kind(header, raw);
        let identity = self.identity_keys(header, &super::azure::IdentityKeys::of_source(raw));
        let authority_host = self.authority_host(raw.authority_host.as_ref());
        let (workspace, api_version, sentinel_ok) = self.sentinel_target(header, raw, kind);
        ok &= sentinel_ok;

        let base_url = match (&raw.base_url, kind) {
            (Some(b), _) => self.credential_url(b, "bearer tokens"),
            (None, Some(SourceKind::Graph)) => Some(DEFAULT_GRAPH_URL.to_string()),
            (None, Some(SourceKind::Sentinel)) => Some(DEFAULT_ARM_URL.to_string()),
            (None, None) => None,
        };
        let scope = match (&raw.scope, &base_url) {
            (Some(s), _) => self.required(header, "scope", "\"<resource>/.default\"", Some(s)),
            (None, Some(base)) => Some(format!("{base}/.default")),
            (None, None) => None,
        };
        let rate_limit = self.rate_limit(raw.rate_limit.as_ref(), raw.burst.as_ref());
        ok &= rate_limit.is_ok();

        if !ok {
            return None;
        }
        let (tenant_id, client_id, auth) = identity?;
        Some(SourceConfig {
            name: name?,
            kind: kind?,
            tenant_id,
            client_id,
            auth,
            authority_host: authority_host?,
            base_url: base_url?,
            scope: scope?,
            workspace,
            api_version,
            rate_limit: rate_limit.ok()?,
        })
    }

    /// `kind`: graph or sentinel.
    fn source_kind(&mut self, header: usize, raw: &RawSource) -> Option<SourceKind> {
        match &raw.kind {
            None => {
                self.r.at(
                    header,
                    "add kind = \"graph\" or kind = \"sentinel\" to this [[source]]",
                );
                None
            }
            Some(k) => {
                let kind = SourceKind::parse(k.get_ref());
                if kind.is_none() {
                    self.r.at(
                        k.span().start,
                        format!(
                            "unknown source kind `{}`; write \"graph\" or \"sentinel\"",
                            k.get_ref()
                        ),
                    );
                }
                kind
            }
        }
    }

    /// `authority_host`: https only, Entra ID's by default.
    pub(super) fn authority_host(&mut self, value: Option<&Spanned<String>>) -> Option<String> {
        match value {
            None => Some(DEFAULT_AUTHORITY_HOST.to_string()),
            Some(a) => match check_url(a.get_ref(), true) {
                Ok(url) => Some(url),
                Err(_) if a.get_ref().starts_with("http://") => {
                    self.r.at(
                        a.span().start,
                        "authority_host must be an https:// URL (azure_identity refuses http); to test against a local token service, serve it over TLS and trust its CA with [http] ca_bundle",
                    );
                    None
                }
                Err(problem) => {
                    self.r
                        .at(a.span().start, format!("authority_host {problem}"));
                    None
                }
            },
        }
    }

    /// The Sentinel workspace (`subscription_id`, `resource_group`,
    /// `workspace_name`) and `api_version` a sentinel source needs and a graph
    /// source must not have. The bool says whether they are right.
    fn sentinel_target(
        &mut self,
        header: usize,
        raw: &RawSource,
        kind: Option<SourceKind>,
    ) -> (Option<SentinelWorkspace>, Option<String>, bool) {
        let mut ok = true;
        let sentinel_keys = [
            ("subscription_id", raw.subscription_id.as_ref()),
            ("resource_group", raw.resource_group.as_ref()),
            ("workspace_name", raw.workspace_name.as_ref()),
            ("api_version", raw.api_version.as_ref()),
        ];
        let mut workspace = None;
        let mut api_version = None;
        match kind {
            Some(SourceKind::Graph) => {
                let given: Vec<_> = sentinel_keys
                    .iter()
                    .map(|(k, v)| (*k, v.map(|v| v.span().start)))
                    .collect();
                let before = self.r.diagnostics.len();
                self.foreign_keys(&given, "kind = \"sentinel\"");
                ok &= self.r.diagnostics.len() == before;
            }
            Some(SourceKind::Sentinel) => {
                let hints = [
                    "\"<Azure subscription id>\"",
                    "\"<resource group>\"",
                    "\"<Log Analytics workspace name>\"",
                ];
                let mut values = Vec::new();
                for ((key, value), hint) in sentinel_keys.iter().take(3).zip(hints) {
                    let v = match value {
                        None => {
                            self.r.at(header, format!("add {key} = {hint} (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)"));
                            None
                        }
                        Some(spanned) => {
                            self.required(header, key, hint, *value).filter(
                                |v| match check_arm_name(key, v) {
                                    Ok(()) => true,
                                    Err(problem) => {
                                        self.r.at(spanned.span().start, problem);
                                        false
                                    }
                                },
                            )
                        }
                    };
                    values.push(v);
                }
                if let [
                    Some(subscription_id),
                    Some(resource_group),
                    Some(workspace_name),
                ] = values.as_slice()
                {
                    workspace = Some(SentinelWorkspace {
                        subscription_id: subscription_id.clone(),
                        resource_group: resource_group.clone(),
                        workspace_name: workspace_name.clone(),
                    });
                } else {
                    ok = false;
                }
                if let Some(v) = &raw.api_version {
                    api_version = self
                        .required(header, "api_version", "\"2025-09-01\"", Some(v))
                        .filter(|version| {
                            let fine = is_api_version(version);
                            if !fine {
                                self.r.at(
                                    v.span().start,
                                    format!("api_version `{version}` is not an ARM api-version; write a date, optionally with -preview, e.g. \"2025-09-01\" (remove it for the default)"),
                                );
                            }
                            fine
                        });
                    ok &= api_version.is_some();
                }
            }
            None => {}
        }
        (workspace, api_version, ok)
    }
}
