//! Replicas on one PostgreSQL store, end to end: real `itsm-bridge run` daemons
//! share the simulators' three pairs through `[store] url`, and are killed
//! (SIGKILL) or paused (SIGSTOP) while they drive them. The other replica must
//! take the pairs over once the lease runs out, a paused one must commit
//! nothing once it wakes and notice it lost its lease, and at the end each
//! incident has exactly one ticket per pair (counted on the ticket systems by
//! correlation id), every change made meanwhile reached its ticket, every link
//! is written back and `ledger verify` passes.
//!
//! The PostgreSQL server is named by `ITSM_BRIDGE_TEST_PG` (`.ci/run` sets it);
//! without it these tests say they were skipped. Each test makes a schema of its
//! own and drops it afterwards. `ITSM_BRIDGE_HEAVY=1` runs the failover figures
//! of RELIABILITY.md: a 1,000-incident backfill and 12 failovers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::common::{Env, assert_success, stderr, stdout};

/// The lease the replicas run with: short, so takeovers are quick to watch.
const LEASE: &str = "2s";

/// A schema of its own on the test server, dropped with it.
struct Pg {
    base: String,
    schema: String,
}

impl Pg {
    fn new(test: &str) -> Option<Pg> {
        let base = match std::env::var("ITSM_BRIDGE_TEST_PG") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("{test}: skipped: ITSM_BRIDGE_TEST_PG is not set");
                return None;
            }
        };
        let schema = format!("itsm_it_{}_{}", std::process::id(), test);
        let mut client = Client::connect(&base, NoTls).expect("connect to ITSM_BRIDGE_TEST_PG");
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        Some(Pg { base, schema })
    }

    /// The store's URL, with this schema as its search path.
    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.schema)
    }

    fn client(&self) -> Client {
        Client::connect(&self.url(), NoTls).expect("connect to the test schema")
    }

    /// pair → (holder, token) of the leases running now.
    fn holders(&self) -> BTreeMap<String, (String, i64)> {
        let Ok(rows) = self.client().query(
            "SELECT pair, holder, token FROM leases WHERE expires_at > now()",
            &[],
        ) else {
            return BTreeMap::new();
        };
        rows.iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    }

    fn links_of(&self, pair: &str) -> i64 {
        self.client()
            .query_one("SELECT count(*) FROM links WHERE pair = $1", &[&pair])
            .map(|r| r.get(0))
            .unwrap_or(0)
    }
}

impl Pg {
    /// Whether every open incident is linked in each of its pairs.
    fn all_linked(&self, open: &Open) -> bool {
        let Ok(rows) = self
            .client()
            .query("SELECT pair, incident_id FROM links", &[])
        else {
            return false;
        };
        let linked: std::collections::HashSet<(String, String)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        open.expected()
            .all(|(pair, id)| linked.contains(&(pair.to_owned(), id.clone())))
    }
}

/// The incidents that must end up with a ticket in each of their pairs: those
/// not resolved or closed when the test began.
struct Open {
    defender: Vec<String>,
    sentinel: Vec<String>,
}

impl Open {
    fn of(env: &Env) -> Open {
        Open {
            defender: env
                .sims
                .graph
                .incidents()
                .into_iter()
                .filter(|i| i.status != "resolved")
                .map(|i| i.id)
                .collect(),
            sentinel: env
                .sims
                .sentinel
                .incidents()
                .into_iter()
                .filter(|i| i.status != "Closed")
                .map(|i| i.name)
                .collect(),
        }
    }

    /// (pair, incident id) of every link there must be.
    fn expected(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.defender
            .iter()
            .map(|id| ("defender->jira", id))
            .chain(self.sentinel.iter().map(|id| ("sentinel->servicenow", id)))
            .chain(self.sentinel.iter().map(|id| ("sentinel->helpdesk", id)))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.base, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// The simulators' config, pointed at the PostgreSQL store, every pair every second.
fn point_at(config: &Path, pg: &Pg) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("path =") && out.ends_with("[store]\n") {
            out.push_str(&format!("url = \"{}\"\nlease = \"{LEASE}\"\n", pg.url()));
        } else if line.trim_start().starts_with("schedule =") {
            out.push_str("schedule = \"* * * * * *\"\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        out.contains("url = "),
        "the config has a [store] path to replace"
    );
    std::fs::write(config, out).unwrap();
}

struct Replica {
    child: Child,
    log: PathBuf,
}

impl Drop for Replica {
    /// A test that fails leaves no daemon behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Replica {
    fn start(env: &Env, name: &str) -> Replica {
        let log = env.dir.path().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(["run", "--config", env.config.to_str().unwrap()])
            .current_dir(env.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the replica starts");
        Replica { child, log }
    }

    /// Whether `holder` (host:pid:random) is this replica.
    fn is(&self, holder: &str) -> bool {
        holder.split(':').nth(1) == Some(&self.child.id().to_string())
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIG{name} delivered");
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the clean stop that gives the leases up.
    fn stop(mut self) {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "a clean stop exits 0: {status:?}");
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                self.child.kill().ok();
                panic!("the replica did not stop within a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address its `[server]` serves on, from its log (`serving … listen=…`).
    fn address(&self) -> String {
        let mut found = None;
        wait_until("the server is up", Duration::from_secs(30), || {
            found = self
                .log_text()
                .lines()
                .find(|l| l.contains("serving"))
                .and_then(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("listen="))
                        .map(str::to_owned)
                });
            found.is_some()
        });
        found.unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A GET over a plain socket: the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

fn heavy() -> bool {
    std::env::var("ITSM_BRIDGE_HEAVY").is_ok_and(|v| v == "1")
}

/// Tickets per (system, incident id), counted on the ticket systems by the
/// correlation id each create carries.
fn tickets_on_the_systems(env: &Env) -> HashMap<(&'static str, String), usize> {
    let mut out: HashMap<(&'static str, String), usize> = HashMap::new();
    for issue in env.sims.jira.issues() {
        for label in &issue.labels {
            if let Some(id) = label.strip_prefix("itsm-bridge:defender:") {
                *out.entry(("jira", id.to_owned())).or_default() += 1;
            }
        }
    }
    for row in env.sims.servicenow.incidents() {
        if let Some(c) = row.get("correlation_id") {
            let id = c.rsplit(':').next().unwrap_or(c);
            *out.entry(("servicenow", id.to_owned())).or_default() += 1;
        }
    }
    for ticket in env.sims.generic.tickets() {
        if let Some(c) = &ticket.external_id {
            let id = c.rsplit(':').next().unwrap_or(c);
            *out.entry(("helpdesk", id.to_owned())).or_default() += 1;
        }
    }
    out
}

/// With no replica left running: one `run --once` has nothing left undone, and
/// then every open incident has exactly one ticket per pair (and no incident
/// more than one), every change reached its ticket, every link is written back
/// and the ledger verifies.
fn everything_synced_once(env: &Env, open: &Open, changed_titles: &BTreeMap<String, String>) {
    let config = env.config.to_str().unwrap();
    assert_success(&env.bridge(&["run", "--once", "--config", config]));

    let tickets = tickets_on_the_systems(env);
    let duplicated: Vec<String> = tickets
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((system, id), n)| format!("{system}:{id} x{n}"))
        .collect();
    assert!(duplicated.is_empty(), "duplicate tickets: {duplicated:?}");
    let system_of = |pair: &str| match pair {
        "defender->jira" => "jira",
        "sentinel->servicenow" => "servicenow",
        _ => "helpdesk",
    };
    let missing: Vec<String> = open
        .expected()
        .filter(|(pair, id)| !tickets.contains_key(&(system_of(pair), (*id).clone())))
        .map(|(pair, id)| format!("{pair} {id}"))
        .collect();
    assert!(
        missing.is_empty(),
        "open incidents without a ticket: {missing:?}"
    );

    let links = env.bridge(&["links", "--config", config, "--json"]);
    assert_success(&links);
    let links: Vec<serde_json::Value> = stdout(&links)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        links.iter().all(|l| l.get("ticket_key").is_some()),
        "no dead letter, nothing pending"
    );
    let unfinished: Vec<String> = open
        .expected()
        .filter(|(pair, id)| {
            !links.iter().any(|l| {
                l["pair"] == *pair && l["incident_id"] == id.as_str() && l["written_back"] == true
            })
        })
        .map(|(pair, id)| format!("{pair} {id}"))
        .collect();
    assert!(
        unfinished.is_empty(),
        "not linked and written back: {unfinished:?}"
    );

    // No lost update: each title changed while replicas came and went reached
    // its Jira issue.
    for (id, title) in changed_titles {
        let key = links
            .iter()
            .find(|l| l["pair"] == "defender->jira" && l["incident_id"] == id.as_str())
            .map(|l| l["ticket_key"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{id} is linked"));
        let issue = env.sims.jira.issue(&key).unwrap();
        assert!(
            issue.summary.ends_with(title.as_str()),
            "{id}'s title {title:?} did not reach {key}: {:?}",
            issue.summary
        );
    }

    let verify = env.bridge(&["ledger", "verify", "--config", config]);
    assert_success(&verify);
    assert!(
        stdout(&verify).contains("ledger intact"),
        "{}",
        stdout(&verify)
    );
}

/// Changes the titles of a few Defender incidents; remembers what they must read.
fn change_titles(env: &Env, open: &Open, round: usize, changed: &mut BTreeMap<String, String>) {
    for (n, id) in open.defender.iter().enumerate().take(40) {
        if n % 8 == round % 8 {
            let title = format!("Failover round {round} changed incident {id}");
            assert!(env.sims.graph.set_title(id, &title));
            changed.insert(id.clone(), title);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn two_replicas_share_three_pairs_and_take_over_from_a_killed_holder() {
    let Some(pg) = Pg::new("kill") else {
        return;
    };
    let (defender, sentinel, failovers) = if heavy() {
        (1000, 100, 12)
    } else {
        (200, 40, 2)
    };
    let env = Env::start_with(defender, sentinel);
    point_at(&env.config, &pg);
    let open = Open::of(&env);

    let mut replicas = vec![
        Replica::start(&env, "replica-0"),
        Replica::start(&env, "replica-1"),
    ];
    wait_until(
        "the two replicas share the three pairs",
        Duration::from_secs(30),
        || {
            let holders = pg.holders();
            holders.len() == 3
                && replicas
                    .iter()
                    .all(|r| holders.values().any(|(h, _)| r.is(h)))
        },
    );

    // The first kill lands during the backfill of the Defender pair.
    wait_until("the backfill is under way", Duration::from_secs(60), || {
        pg.links_of("defender->jira") >= 10
    });
    let mut changed = BTreeMap::new();
    let mut takeovers = Vec::new();
    let pairs = [
        "defender->jira",
        "sentinel->servicenow",
        "sentinel->helpdesk",
    ];
    for round in 0..failovers {
        let pair = pairs[round % pairs.len()];
        let (holder, token) = pg.holders().remove(pair).expect("the pair is held");
        let victim = replicas
            .iter()
            .position(|r| r.is(&holder))
            .expect("a running replica holds the pair");
        let backfilled = pg.links_of("defender->jira");
        replicas.remove(victim).sigkill();
        let took = wait_until(
            &format!("{pair} is taken over"),
            Duration::from_secs(60),
            || {
                pg.holders()
                    .get(pair)
                    .is_some_and(|(h, t)| *h != holder && *t > token)
            },
        );
        takeovers.push(took);
        eprintln!(
            "replicas: failover {round}: {pair} taken over {took:.2?} after SIGKILL of its holder \
             ({backfilled} of {defender} Defender incidents linked then)"
        );
        change_titles(&env, &open, round, &mut changed);
        // A new replica replaces the dead one; the pairs are shared again.
        replicas.push(Replica::start(&env, &format!("replica-{}", round + 2)));
        wait_until(
            "the pairs are shared again",
            Duration::from_secs(30),
            || {
                let holders = pg.holders();
                holders.len() == 3
                    && replicas
                        .iter()
                        .all(|r| holders.values().any(|(h, _)| r.is(h)))
            },
        );
    }

    wait_until(
        "every open incident is linked",
        Duration::from_secs(if heavy() { 600 } else { 120 }),
        || pg.all_linked(&open),
    );
    for replica in replicas {
        replica.stop();
    }
    assert!(pg.holders().is_empty(), "clean stops gave every lease up");
    everything_synced_once(&env, &open, &changed);

    takeovers.sort();
    eprintln!(
        "replicas: {} failovers with a {LEASE} lease: takeover p50 {:.2?}, max {:.2?}; 0 duplicate tickets, 0 lost updates",
        takeovers.len(),
        percentile(&takeovers, 0.5),
        takeovers.last().unwrap()
    );
}

#[test]
fn a_paused_holder_commits_nothing_once_its_lease_has_passed() {
    let Some(pg) = Pg::new("pause") else {
        return;
    };
    let env = Env::start_with(120, 30);
    point_at(&env.config, &pg);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "\n[http]\n",
        "\n[server]\nlisten = \"127.0.0.1:0\"\n\n[http]\n",
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    let open = Open::of(&env);

    let stale = Replica::start(&env, "stale");
    wait_until(
        "the first replica holds every pair",
        Duration::from_secs(30),
        || {
            let holders = pg.holders();
            holders.len() == 3 && holders.values().all(|(h, _)| stale.is(h))
        },
    );
    wait_until("the backfill is under way", Duration::from_secs(60), || {
        pg.links_of("defender->jira") >= 10
    });
    let before = pg.holders();

    stale.signal("STOP");
    let paused = Instant::now();
    let other = Replica::start(&env, "other");
    let took = wait_until(
        "the other replica holds every pair",
        Duration::from_secs(60),
        || {
            let holders = pg.holders();
            holders.len() == 3 && holders.values().all(|(h, _)| other.is(h))
        },
    );
    for (pair, (_, token)) in pg.holders() {
        assert!(
            token > before[&pair].1,
            "{pair}: a new holder, a larger token"
        );
    }
    eprintln!(
        "replicas: the paused holder's pairs were taken over {took:.2?} after SIGSTOP \
         ({:.2?} since the pause)",
        paused.elapsed()
    );
    // The survivor's /healthz and /metrics say it drives every pair.
    let address = other.address();
    let (_, health) = get(&address, "/healthz");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    for pair in health["pairs"].as_array().unwrap() {
        assert!(other.is(pair["held_by"].as_str().unwrap()), "{pair}");
    }
    assert_eq!(health["leases"].as_array().unwrap().len(), 3);
    let (_, metrics) = get(&address, "/metrics");
    let held: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("itsm_bridge_lease_held{") && l.ends_with(" 1"))
        .collect();
    assert_eq!(held.len(), 3, "{metrics}");
    assert!(
        held.iter()
            .all(|l| l.contains(&format!(":{}:", other.child.id()))),
        "{held:?}"
    );

    let mut changed = BTreeMap::new();
    change_titles(&env, &open, 0, &mut changed);
    std::thread::sleep(Duration::from_secs(2));

    stale.signal("CONT");
    wait_until(
        "the stale replica notices it lost its leases",
        Duration::from_secs(30),
        || stale.log_text().contains("lost the lease for pair"),
    );
    change_titles(&env, &open, 1, &mut changed);

    wait_until(
        "every open incident is linked",
        Duration::from_secs(120),
        || pg.all_linked(&open),
    );
    let log = stale.log_text();
    stale.stop();
    other.stop();
    everything_synced_once(&env, &open, &changed);
    assert!(
        !log.contains("panicked"),
        "the stale replica went on without panicking:\n{log}"
    );
}

#[test]
fn an_sqlite_store_moves_to_postgres_with_its_ledger_head() {
    let Some(pg) = Pg::new("migrate") else {
        return;
    };
    let env = Env::start(12);
    env.sync();
    // A store a daemon is using is refused.
    let daemon = Replica::start(&env, "sqlite-daemon");
    wait_until(
        "the daemon holds the store",
        Duration::from_secs(30),
        || daemon.log_text().contains("itsm-bridge running"),
    );
    let url = pg.url();
    let args = ["store", "migrate", "--from", env.db_arg(), "--to", &url];
    let refused = env.bridge(&args);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    daemon.sigkill();

    // The head as the daemon left it.
    let verify = env.bridge(&["ledger", "verify", "--db", env.db_arg()]);
    assert_success(&verify);
    let head = stdout(&verify)
        .split("head ")
        .nth(1)
        .map(|h| h.trim().to_owned())
        .expect("verify names the head");

    let moved = env.bridge(&args);
    assert_success(&moved);
    assert!(stdout(&moved).contains(&head), "{}", stdout(&moved));

    let pg_config = env.dir.path().join("pg.toml");
    std::fs::copy(&env.config, &pg_config).unwrap();
    point_at(&pg_config, &pg);
    let pg_config = pg_config.to_str().unwrap();
    let verify = env.bridge(&["ledger", "verify", "--config", pg_config]);
    assert_success(&verify);
    assert!(
        stdout(&verify).contains(&format!("head {head}")),
        "{}",
        stdout(&verify)
    );
    let links = |args: &[&str]| stdout(&env.bridge(args)).lines().count();
    assert_eq!(
        links(&["links", "--config", pg_config, "--json"]),
        links(&["links", "--db", env.db_arg(), "--json"])
    );

    // A store that holds rows already is refused, and left as it is.
    let again = env.bridge(&args);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    // The deployment goes on from there on PostgreSQL.
    assert_success(&env.bridge(&["run", "--once", "--config", pg_config]));
}

#[test]
fn a_store_over_tls_trusts_only_the_ca_it_is_given() {
    let Some(pg) = Pg::new("tls") else {
        return;
    };
    // The local test server serves Debian's snakeoil certificate, for localhost.
    let snakeoil = Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    if !pg.base.contains("@127.0.0.1:") || !snakeoil.is_file() {
        eprintln!("tls: skipped: written for the snakeoil certificate on 127.0.0.1");
        return;
    }
    let env = Env::start(1);
    let config = env.dir.path().join("pg-tls.toml");
    std::fs::copy(&env.config, &config).unwrap();
    point_at(&config, &pg);
    let text = std::fs::read_to_string(&config).unwrap();
    let plain_url = format!("url = \"{}\"", pg.url());
    let with_ca = |url: &str, ca: &Path| {
        let line = format!(
            "url = \"{}&sslmode=verify-full\"\nca_bundle = \"{}\"",
            url,
            ca.display()
        );
        std::fs::write(&config, text.replace(&plain_url, &line)).unwrap();
    };
    let run_once = ["run", "--once", "--config", config.to_str().unwrap()];

    // By the name on its certificate, with its CA, the store opens.
    with_ca(&pg.url().replace("@127.0.0.1:", "@localhost:"), snakeoil);
    assert_success(&env.bridge(&run_once));

    // The system's CAs did not sign it: refused, and the error says what to give.
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if system.is_file() {
        with_ca(&pg.url().replace("@127.0.0.1:", "@localhost:"), system);
        let refused = env.bridge(&run_once);
        assert_ne!(refused.status.code(), Some(0));
        assert!(
            stderr(&refused).contains("UnknownIssuer"),
            "{}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("[store] ca_bundle"),
            "{}",
            stderr(&refused)
        );
    }

    // By its address, which the certificate does not name: refused.
    with_ca(&pg.url(), snakeoil);
    let refused = env.bridge(&run_once);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("not valid for name \"127.0.0.1\""),
        "{}",
        stderr(&refused)
    );

    // A mode libpq does not know is refused where it is written.
    std::fs::write(
        &config,
        text.replace(
            &plain_url,
            &format!("url = \"{}&sslmode=verify\"", pg.url()),
        ),
    )
    .unwrap();
    let check = env.bridge(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("pg-tls.toml:") && stderr(&check).contains("sslmode=verify;"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn a_store_with_both_a_path_and_a_url_is_refused_where_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        "[store]\npath = \"bridge.db\"\nurl = \"postgres://bridge@db.internal/itsm\"\n",
    )
    .unwrap();
    let out =
        crate::common::bridge_in(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "bridge.toml:2:8: give the store a path (SQLite) or a url (PostgreSQL), not both"
        ),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        &config,
        "[store]\nurl = \"postgres://bridge:hunter2@db.internal/itsm\"\n",
    )
    .unwrap();
    let out =
        crate::common::bridge_in(dir.path(), &["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bridge.toml:2:7: store url: [store] url holds a password"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}
