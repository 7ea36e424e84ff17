//! The bridge's own rate limits: the default per kind of remote system, sized from
//! what each vendor documents (API.md §2.6, §3.8, §4.6, §5.6), and the registry that
//! hands out one shared [`RateLimiter`] per remote *instance* — a Graph tenant, an
//! ARM subscription, a ticket system's host — so that every pair talking to it
//! draws from the same budget. A `rate_limit` in the config replaces the default.
//!
//! The vendors' numbers describe the vendors' services. A base URL on a loopback
//! address is a simulator or a test double on this machine, which those numbers do
//! not describe: without a `rate_limit` it is not paced (its limiter still shares
//! the pause after a 429).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bridge_core::config::{Config, RateLimitConfig, SourceConfig, TicketSystemConfig};
use bridge_core::vocab::{SourceKind, TicketKind};
use url::Url;

use crate::http::{BucketLimit, Limits, RateLimiter};

/// A kind of remote system, as far as rate limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    /// Microsoft Graph security incidents.
    Graph,
    /// Azure Resource Manager (Microsoft Sentinel).
    Arm,
    Jira,
    ServiceNow,
    Generic,
}

/// Graph: the Defender XDR incidents API documents 50 calls a minute and 1,500 an
/// hour per tenant (API.md §2.6; Graph's own incident limits are not published).
/// 1,500/h with a burst of 25 never sends more than 50 in a minute (25 + 25) and,
/// after the first hour, never more than 1,500 in an hour.
pub const GRAPH: BucketLimit = BucketLimit {
    burst: 25,
    per_second: 1500.0 / 3600.0,
};

/// ARM reads: ARM's own token bucket, 250 deep, 25 back a second (API.md §3.8).
pub const ARM_READS: BucketLimit = BucketLimit {
    burst: 250,
    per_second: 25.0,
};

/// ARM writes (deletes counted here too): 200 deep, 10 back a second.
pub const ARM_WRITES: BucketLimit = BucketLimit {
    burst: 200,
    per_second: 10.0,
};

/// Jira Cloud publishes no numbers for API-token traffic (API.md §4.6): a
/// conservative 10 a second with bursts of 20.
pub const JIRA: BucketLimit = BucketLimit {
    burst: 20,
    per_second: 10.0,
};

/// ServiceNow's limits are per-hour rules its admin sets, none by default (API.md
/// §5.6): 20 a second unless the config says otherwise.
pub const SERVICENOW: BucketLimit = BucketLimit {
    burst: 20,
    per_second: 20.0,
};

/// A generic REST system: 10 a second unless the config says otherwise.
pub const GENERIC: BucketLimit = BucketLimit {
    burst: 10,
    per_second: 10.0,
};

/// A loopback base URL without a `rate_limit`: more than any simulator answers,
/// so nobody waits for a token.
pub const LOOPBACK: BucketLimit = BucketLimit {
    burst: 100_000,
    per_second: 100_000.0,
};

impl System {
    pub fn of_source(kind: SourceKind) -> System {
        match kind {
            SourceKind::Graph => System::Graph,
            SourceKind::Sentinel => System::Arm,
        }
    }

    pub fn of_tickets(kind: TicketKind) -> System {
        match kind {
            TicketKind::Jira => System::Jira,
            TicketKind::Servicenow => System::ServiceNow,
            TicketKind::Generic => System::Generic,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            System::Graph => "graph",
            System::Arm => "arm",
            System::Jira => "jira",
            System::ServiceNow => "servicenow",
            System::Generic => "generic",
        }
    }

    /// The limits used when the config gives none.
    pub fn default_limits(self) -> Limits {
        match self {
            System::Graph => Limits::Shared(GRAPH),
            System::Arm => Limits::Split {
                reads: ARM_READS,
                writes: ARM_WRITES,
            },
            System::Jira => Limits::Shared(JIRA),
            System::ServiceNow => Limits::Shared(SERVICENOW),
            System::Generic => Limits::Shared(GENERIC),
        }
    }
}

/// The limits of an instance at `base_url` without a `rate_limit`: the kind's
/// default, or none to speak of on a loopback address.
pub fn default_limits_at(system: System, base_url: &str) -> Limits {
    if is_loopback(base_url) {
        Limits::Shared(LOOPBACK)
    } else {
        system.default_limits()
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(base_url: &str) -> bool {
    match Url::parse(base_url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A configured `rate_limit` (and `burst`): one bucket for every call, ARM's
/// read/write split included.
pub fn configured(rate: &RateLimitConfig) -> Limits {
    Limits::Shared(configured_bucket(rate))
}

fn configured_bucket(rate: &RateLimitConfig) -> BucketLimit {
    BucketLimit {
        burst: rate.burst_or_default(),
        per_second: rate.per_second(),
    }
}

/// Which instance a source's calls count against: its tenant (Graph) or its
/// subscription (ARM).
pub fn source_instance(config: &SourceConfig) -> (System, String) {
    let system = System::of_source(config.kind);
    let key = match (&config.workspace, system) {
        (Some(w), System::Arm) => w.subscription_id.to_ascii_lowercase(),
        _ => config.tenant_id.to_ascii_lowercase(),
    };
    (system, key)
}

/// Which instance a ticket system's calls count against: its base URL's host and
/// port.
pub fn tickets_instance(config: &TicketSystemConfig) -> (System, String) {
    (System::of_tickets(config.kind), host_key(&config.base_url))
}

fn host_key(base_url: &str) -> String {
    match Url::parse(base_url) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{}:{port}", host.to_ascii_lowercase()),
            (Some(host), None) => host.to_ascii_lowercase(),
            (None, _) => base_url.to_string(),
        },
        Err(_) => base_url.to_string(),
    }
}

/// One [`RateLimiter`] per remote instance.
#[derive(Debug, Default)]
pub struct LimiterRegistry {
    limiters: Mutex<BTreeMap<(System, String), Arc<RateLimiter>>>,
}

impl LimiterRegistry {
    pub fn new() -> LimiterRegistry {
        LimiterRegistry::default()
    }

    /// A limiter for every instance the config names, each sized by its
    /// `rate_limit` or else its kind's default (none to speak of on loopback).
    /// When several tables name one instance with different `rate_limit`s, the
    /// strictest rate and the smallest burst win; a table without one does not
    /// loosen another's.
    pub fn from_config(config: &Config) -> LimiterRegistry {
        // Per instance: the strictest configured limit, and whether every table
        // naming it is on loopback.
        let mut instances: BTreeMap<(System, String), (Option<BucketLimit>, bool)> =
            BTreeMap::new();
        let tables = config
            .sources
            .iter()
            .map(|s| (source_instance(s), s.rate_limit, s.base_url.as_str()))
            .chain(
                config
                    .ticket_systems
                    .iter()
                    .map(|t| (tickets_instance(t), t.rate_limit, t.base_url.as_str())),
            );
        for (instance, rate, base_url) in tables {
            let limit = rate.as_ref().map(configured_bucket);
            let (strictest, loopback) = instances.entry(instance).or_insert((None, true));
            *strictest = match (*strictest, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            *loopback &= is_loopback(base_url);
        }
        let registry = LimiterRegistry::new();
        for ((system, instance), (limit, loopback)) in instances {
            let limits = match (limit, loopback) {
                (Some(limit), _) => Limits::Shared(limit),
                (None, true) => Limits::Shared(LOOPBACK),
                (None, false) => system.default_limits(),
            };
            registry.limiter(system, &instance, Some(limits));
        }
        registry
    }

    /// The limiter of `instance`, made the first time it is asked for (with
    /// `limits`, or the system's default); later calls share it whatever their
    /// `limits`.
    pub fn limiter(
        &self,
        system: System,
        instance: &str,
        limits: Option<Limits>,
    ) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().expect("limiter registry");
        limiters
            .entry((system, instance.to_string()))
            .or_insert_with(|| {
                Arc::new(RateLimiter::new(
                    format!("{} {instance}", system.as_str()),
                    limits.unwrap_or_else(|| system.default_limits()),
                ))
            })
            .clone()
    }

    /// The source's limiter (made from its own `rate_limit` or default if
    /// [`LimiterRegistry::from_config`] did not make it).
    pub fn for_source(&self, config: &SourceConfig) -> Arc<RateLimiter> {
        let (system, instance) = source_instance(config);
        let limits = match &config.rate_limit {
            Some(rate) => configured(rate),
            None => default_limits_at(system, &config.base_url),
        };
        self.limiter(system, &instance, Some(limits))
    }

    /// The ticket system's limiter (made from its own `rate_limit` or default if
    /// [`LimiterRegistry::from_config`] did not make it).
    pub fn for_tickets(&self, config: &TicketSystemConfig) -> Arc<RateLimiter> {
        let (system, instance) = tickets_instance(config);
        let limits = match &config.rate_limit {
            Some(rate) => configured(rate),
            None => default_limits_at(system, &config.base_url),
        };
        self.limiter(system, &instance, Some(limits))
    }

    /// Every limiter handed out, in (system, instance) order.
    pub fn limiters(&self) -> Vec<Arc<RateLimiter>> {
        self.limiters
            .lock()
            .expect("limiter registry")
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_follow_the_documented_limits() {
        // Graph: never more than 50 in any minute.
        let Limits::Shared(graph) = System::Graph.default_limits() else {
            panic!("graph has one bucket");
        };
        assert!(f64::from(graph.burst) + graph.per_second * 60.0 <= 50.0 + 1e-9);
        assert!((graph.per_second * 3600.0 - 1500.0).abs() < 1e-6);
        assert_eq!(
            System::Arm.default_limits(),
            Limits::Split {
                reads: BucketLimit {
                    burst: 250,
                    per_second: 25.0
                },
                writes: BucketLimit {
                    burst: 200,
                    per_second: 10.0
                },
            }
        );
        assert_eq!(System::Jira.default_limits().to_string(), "10/s (burst 20)");
        assert_eq!(
            System::Graph.default_limits().to_string(),
            "25/min (burst 25)"
        );
    }

    #[test]
    fn a_configured_rate_is_one_bucket_with_a_second_of_burst_by_default() {
        let per_minute = RateLimitConfig {
            requests: 600,
            per: Duration::from_secs(60),
            burst: None,
        };
        assert_eq!(
            configured(&per_minute),
            Limits::Shared(BucketLimit {
                burst: 10,
                per_second: 10.0
            })
        );
        let hourly = RateLimitConfig {
            requests: 360,
            per: Duration::from_secs(3600),
            burst: Some(5),
        };
        assert_eq!(
            configured(&hourly),
            Limits::Shared(BucketLimit {
                burst: 5,
                per_second: 0.1
            })
        );
        let slow = RateLimitConfig {
            burst: None,
            ..hourly
        };
        assert_eq!(slow.burst_or_default(), 1);
    }

    #[test]
    fn one_limiter_per_instance() {
        let registry = LimiterRegistry::new();
        let a = registry.limiter(System::Jira, "acme.atlassian.net:443", None);
        let b = registry.limiter(System::Jira, "acme.atlassian.net:443", None);
        let other_site = registry.limiter(System::Jira, "other.atlassian.net:443", None);
        let other_kind = registry.limiter(System::Generic, "acme.atlassian.net:443", None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other_site));
        assert!(!Arc::ptr_eq(&a, &other_kind));
        assert_eq!(registry.limiters().len(), 3);
        assert_eq!(a.name(), "jira acme.atlassian.net:443");
    }

    /// Two Graph sources on one tenant, two Jira systems on one site (one slower
    /// than the other), one Jira on another site; three pairs.
    const CONFIG: &str = r#"
[[source]]
name = "defender"
kind = "graph"
tenant_id = "6D1F9A4E-0000-0000-0000-000000000000"
client_id = "c1"
client_secret = { file = "secret" }

[[source]]
name = "defender-2"
kind = "graph"
tenant_id = "6d1f9a4e-0000-0000-0000-000000000000"
client_id = "c2"
client_secret = { file = "secret" }
rate_limit = "3600/h"

[[ticket_system]]
name = "jira-sec"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "b@acme.example"
api_token = { file = "secret" }
project_key = "SEC"
mapping = "jira.toml"
rate_limit = "8/s"
burst = 2

[[ticket_system]]
name = "jira-ops"
kind = "jira"
base_url = "https://acme.atlassian.net/"
email = "b@acme.example"
api_token = { file = "secret" }
project_key = "OPS"
mapping = "jira.toml"
rate_limit = "300/min"

[[ticket_system]]
name = "jira-other"
kind = "jira"
base_url = "https://other.atlassian.net"
email = "b@acme.example"
api_token = { file = "secret" }
project_key = "SEC"
mapping = "jira.toml"

[[sync]]
source = "defender"
tickets = "jira-sec"
schedule = "*/5 * * * *"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "defender-2"
tickets = "jira-ops"
schedule = "*/5 * * * *"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "defender"
tickets = "jira-other"
schedule = "*/5 * * * *"
since = "2026-11-01T00:00:00Z"
"#;

    #[test]
    fn pairs_on_one_instance_share_its_limiter_and_the_strictest_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jira.toml"), crate::sims::JIRA_MAPPING).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let config = bridge_core::config::parse(&dir.path().join("bridge.toml"), CONFIG)
            .unwrap_or_else(|e| panic!("{e}"));
        let registry = LimiterRegistry::from_config(&config);
        let pairs = crate::wiring::build_pairs_with(&config, &registry).unwrap();
        assert_eq!(pairs.len(), 3);
        let names: Vec<String> = registry
            .limiters()
            .iter()
            .map(|l| format!("{}: {}", l.name(), l.limits()))
            .collect();
        assert_eq!(
            names,
            vec![
                "graph 6d1f9a4e-0000-0000-0000-000000000000: 1/s (burst 1)",
                "jira acme.atlassian.net:443: 5/s (burst 2)",
                "jira other.atlassian.net:443: 10/s (burst 20)",
            ]
        );
        let sec = config.ticket_system("jira-sec").unwrap();
        let ops = config.ticket_system("jira-ops").unwrap();
        assert!(Arc::ptr_eq(
            &registry.for_tickets(sec),
            &registry.for_tickets(ops)
        ));
    }

    #[test]
    fn loopback_is_not_paced_unless_configured() {
        for url in [
            "http://127.0.0.1:8080",
            "https://localhost:8443/v1.0",
            "http://[::1]:80",
        ] {
            assert_eq!(
                default_limits_at(System::Graph, url),
                Limits::Shared(LOOPBACK),
                "{url}"
            );
        }
        assert_eq!(
            default_limits_at(System::Arm, "https://management.azure.com"),
            System::Arm.default_limits()
        );
        assert_eq!(
            default_limits_at(System::Jira, "https://127.0.0.1.example.com"),
            System::Jira.default_limits()
        );
        // A configured rate paces a simulator too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jira.toml"), crate::sims::JIRA_MAPPING).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let local = CONFIG
            .replace("https://acme.atlassian.net/", "http://127.0.0.1:8081")
            .replace("https://acme.atlassian.net", "http://127.0.0.1:8081")
            .replace("https://other.atlassian.net", "http://localhost:8082");
        let config = bridge_core::config::parse(&dir.path().join("bridge.toml"), &local)
            .unwrap_or_else(|e| panic!("{e}"));
        let registry = LimiterRegistry::from_config(&config);
        let limits: Vec<String> = registry
            .limiters()
            .iter()
            .map(|l| format!("{}: {}", l.name(), l.limits()))
            .collect();
        assert_eq!(
            limits,
            vec![
                "graph 6d1f9a4e-0000-0000-0000-000000000000: 1/s (burst 1)",
                "jira 127.0.0.1:8081: 5/s (burst 2)",
                "jira localhost:8082: 100000/s (burst 100000)",
            ]
        );
    }

    #[test]
    fn ticket_systems_are_told_apart_by_host_and_port() {
        assert_eq!(
            host_key("https://ACME.atlassian.net/jira"),
            "acme.atlassian.net:443"
        );
        assert_eq!(host_key("http://127.0.0.1:8081"), "127.0.0.1:8081");
    }
}
