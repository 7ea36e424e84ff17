//! The PostgreSQL store against a real PostgreSQL, named by
//! `ITSM_BRIDGE_TEST_PG` (`.ci/run` sets it). Each test makes a schema of its
//! own and drops it afterwards; without the variable, each says it was skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::*;
use crate::store::suite::{self, AsStore, at, link, record};

/// A schema of its own on the test database, dropped with it.
pub(crate) struct TestSchema {
    base: String,
    name: String,
}

impl TestSchema {
    pub(crate) fn new() -> Option<TestSchema> {
        let base = match std::env::var("ITSM_BRIDGE_TEST_PG") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("skipped: ITSM_BRIDGE_TEST_PG is not set");
                return None;
            }
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "itsm_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let schema = TestSchema { base, name };
        schema.admin(&format!("CREATE SCHEMA {}", schema.name));
        Some(schema)
    }

    /// Runs SQL on a connection of its own, in this schema.
    pub(crate) fn admin(&self, sql: &str) {
        let mut client =
            Client::connect(&self.base, NoTls).expect("connect to ITSM_BRIDGE_TEST_PG");
        client
            .batch_execute(&format!("SET search_path TO {}; {sql}", self.name))
            .unwrap_or_else(|e| panic!("{sql}: {}", postgres_message(&e)));
    }

    pub(crate) fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
    }

    pub(crate) fn connect(&self) -> PgConnect {
        PgConnect::new(&self.url(), None).unwrap()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.base, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A migrated store in a schema of its own.
struct TestStore {
    store: PgStore,
    _schema: TestSchema,
}

impl AsStore for TestStore {
    fn as_store(&self) -> &dyn Store {
        &self.store
    }
}

fn test_store() -> Option<TestStore> {
    let schema = TestSchema::new()?;
    let store = PgStore::open(&schema.connect()).unwrap();
    Some(TestStore {
        store,
        _schema: schema,
    })
}

/// The behaviour every store shares, on PostgreSQL.
mod shared_suite {
    crate::store::suite::store_suite!(super::test_store());
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PgStore>();
}

#[test]
fn a_password_in_the_url_is_refused_and_never_shown() {
    let e = PgConnect::new("postgres://bridge:hunter2@db.internal/itsm", None).unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let secret = SecretString::from("hunter2".to_owned());
    let connect = PgConnect::new("postgres://bridge@db.internal:5433/itsm", Some(&secret)).unwrap();
    assert_eq!(connect.shown(), "postgres://bridge@db.internal:5433/itsm");
    assert!(!format!("{connect:?}").contains("hunter2"));
}

#[test]
fn sslmode_is_read_as_libpq_reads_it() {
    for (url, mode) in [
        ("postgres://bridge@db.internal/itsm", SslMode::Prefer),
        (
            "postgres://bridge@db.internal/itsm?sslmode=disable",
            SslMode::Disable,
        ),
        (
            "postgres://bridge@db.internal/itsm?sslmode=require&connect_timeout=3",
            SslMode::Require,
        ),
        (
            "postgres://bridge@db.internal/itsm?connect_timeout=3&sslmode=verify-ca",
            SslMode::VerifyCa,
        ),
        (
            "host=db.internal user=bridge sslmode=verify-full dbname=itsm",
            SslMode::VerifyFull,
        ),
    ] {
        let connect = PgConnect::new(url, None).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(connect.ssl_mode(), mode, "{url}");
        assert!(
            connect.shown().starts_with("postgres://bridge@db.internal"),
            "{url}"
        );
        assert!(!connect.shown().contains("sslmode"), "{url}");
    }
    let connect = PgConnect::new(
        "postgres://bridge@db.internal/itsm?sslmode=require&connect_timeout=3",
        None,
    )
    .unwrap();
    assert_eq!(
        connect.config.get_connect_timeout(),
        Some(&Duration::from_secs(3))
    );
    let e = PgConnect::new("postgres://bridge@db.internal/itsm?sslmode=verify", None).unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("sslmode=verify;"), "{text}");
    assert!(
        text.contains("disable, prefer, require, verify-ca or verify-full"),
        "{text}"
    );
    let e = PgConnect::new("postgres://db.internal/itsm", None)
        .unwrap()
        .with_ca_bundle(b"not a certificate")
        .unwrap_err();
    assert!(e.to_string().contains("CA bundle"), "{e}");
}

/// The test server's URL with `sslmode` set, and the CA bundle that signed its
/// certificate (`ITSM_BRIDGE_TEST_PG_CA`, by default Debian's snakeoil
/// certificate, which PostgreSQL serves on a stock Debian install and which
/// names `localhost` only).
fn tls_server(mode: &str) -> Option<(String, Vec<u8>)> {
    let base = match std::env::var("ITSM_BRIDGE_TEST_PG") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("skipped: ITSM_BRIDGE_TEST_PG is not set");
            return None;
        }
    };
    let ca = std::env::var("ITSM_BRIDGE_TEST_PG_CA")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".to_owned());
    let Ok(pem) = std::fs::read(&ca) else {
        eprintln!("skipped: the test server's CA {ca} cannot be read");
        return None;
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}sslmode={mode}"), pem))
}

fn session_is_encrypted(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn sslmode_require_encrypts_the_session_and_disable_does_not() {
    let Some((url, _)) = tls_server("require") else {
        return;
    };
    let mut client = PgConnect::new(&url, None).unwrap().connect().unwrap();
    assert!(session_is_encrypted(&mut client));
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let mut client = PgConnect::new(&plain, None).unwrap().connect().unwrap();
    assert!(!session_is_encrypted(&mut client));
    // As libpq does, the default takes TLS when the server offers it.
    let default = url
        .replace("&sslmode=require", "")
        .replace("?sslmode=require", "");
    let mut client = PgConnect::new(&default, None).unwrap().connect().unwrap();
    assert!(session_is_encrypted(&mut client));
}

#[test]
fn verify_ca_trusts_a_server_signed_by_the_configured_ca() {
    let Some((url, ca)) = tls_server("verify-ca") else {
        return;
    };
    let connect = PgConnect::new(&url, None)
        .unwrap()
        .with_ca_bundle(&ca)
        .unwrap();
    let mut client = connect.connect().unwrap();
    assert!(session_is_encrypted(&mut client));
    // A store opens over it like over any other connection.
    let schema = TestSchema::new().unwrap();
    let url = format!("{}&sslmode=verify-ca", schema.url());
    let connect = PgConnect::new(&url, None)
        .unwrap()
        .with_ca_bundle(&ca)
        .unwrap();
    let store = PgStore::open(&connect).unwrap();
    assert!(store.counts().unwrap().links.is_empty());
}

#[test]
fn verify_ca_refuses_a_server_signed_by_another_ca() {
    let Some((url, _)) = tls_server("verify-ca") else {
        return;
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Some other CA");
    let other = params.self_signed(&key).unwrap();
    let connect = PgConnect::new(&url, None)
        .unwrap()
        .with_ca_bundle(other.pem().as_bytes())
        .unwrap();
    let e = connect.connect().map(|_| ()).unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("ca_bundle"), "{text}");
}

#[test]
fn verify_full_checks_that_the_certificate_names_the_host() {
    let Some((url, ca)) = tls_server("verify-full") else {
        return;
    };
    if !url.contains("@127.0.0.1:") {
        eprintln!("skipped: the host-name check is written for a server on 127.0.0.1");
        return;
    }
    // The certificate names localhost, not the address.
    let connect = PgConnect::new(&url, None)
        .unwrap()
        .with_ca_bundle(&ca)
        .unwrap();
    let e = connect.connect().map(|_| ()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("not valid for name \"127.0.0.1\""), "{text}");
    assert!(text.contains("connect by a name it bears"), "{text}");
    // By the name it bears, the same server is trusted.
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    let connect = PgConnect::new(&by_name, None)
        .unwrap()
        .with_ca_bundle(&ca)
        .unwrap();
    let mut client = connect.connect().unwrap();
    assert!(session_is_encrypted(&mut client));
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let secret = SecretString::from("hunter2".to_owned());
    let connect = PgConnect::new(
        "postgres://bridge@127.0.0.1:1/itsm?connect_timeout=2",
        Some(&secret),
    )
    .unwrap();
    let e = PgStore::open(&connect).unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("postgres://bridge@127.0.0.1:1/itsm"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect();
    drop(PgStore::open(&connect).unwrap());
    // Reopening changes nothing.
    let store = PgStore::open(&connect).unwrap();
    store.append_ledger(&[record("p", "1", 0)]).unwrap();
    drop(store);
    let store = PgStore::open_read_only(&connect).unwrap();
    assert_eq!(store.verify_ledger().unwrap().entries, 1);
    drop(store);

    schema.admin("UPDATE itsm_bridge_schema SET version = 99");
    let e = PgStore::open(&connect).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("newer"), "{e}");
    assert!(PgStore::open_read_only(&connect).is_err());
}

#[test]
fn another_programs_schema_is_refused_and_left_as_it_is() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    schema.admin("CREATE TABLE customers (id int); INSERT INTO customers VALUES (1)");
    let e = PgStore::open(&schema.connect()).unwrap_err();
    assert!(matches!(e, StoreError::NotAStore(_)), "{e:?}");
    let e = PgStore::open_read_only(&schema.connect()).unwrap_err();
    assert!(matches!(e, StoreError::NotAStore(_)), "{e:?}");
    // Nothing was created beside the table.
    let mut client = Client::connect(&schema.url(), NoTls).unwrap();
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

#[test]
fn the_read_only_store_reads_and_the_database_refuses_its_writes() {
    let Some(db) = test_store() else {
        return;
    };
    db.store
        .save_link(&link("p", "1", "SEC-1"), &[record("p", "1", 0)])
        .unwrap();
    let reader = PgStore::open_read_only(&db._schema.connect()).unwrap();
    assert_eq!(reader.links(None).unwrap().len(), 1);
    assert!(reader.verify_ledger().unwrap().is_intact());
    let e = reader.append_ledger(&[record("p", "1", 1)]).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(db.store.verify_ledger().unwrap().entries, 1);
}

#[test]
fn the_ledger_refuses_update_delete_and_truncate() {
    let Some(db) = test_store() else {
        return;
    };
    db.store.append_ledger(&[record("p", "1", 0)]).unwrap();
    for sql in [
        "UPDATE ledger SET detail = 'x'",
        "DELETE FROM ledger",
        "TRUNCATE ledger",
    ] {
        let e = db.store.execute_for_tests(sql).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(db.store.verify_ledger().unwrap().entries, 1);
}

#[test]
fn dropped_or_disabled_append_only_triggers_are_refused_at_open() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    drop(PgStore::open(&schema.connect()).unwrap());
    schema.admin("ALTER TABLE ledger DISABLE TRIGGER ledger_no_change");
    let e = PgStore::open(&schema.connect()).unwrap_err();
    assert!(matches!(e, StoreError::Tampered(_)), "{e:?}");
    assert!(
        e.to_string().contains("ledger_no_change is disabled"),
        "{e}"
    );
    schema.admin(
        "ALTER TABLE ledger ENABLE TRIGGER ledger_no_change; DROP TRIGGER ledger_no_truncate ON ledger",
    );
    let e = PgStore::open(&schema.connect()).unwrap_err();
    assert!(
        e.to_string().contains("ledger_no_truncate is missing"),
        "{e}"
    );
    schema.admin(
        "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger \
         FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
    );
    PgStore::open(&schema.connect()).unwrap();
    schema.admin(
        "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql \
         AS $$ BEGIN RETURN NEW; END $$",
    );
    let e = PgStore::open(&schema.connect()).unwrap_err();
    assert!(e.to_string().contains("was changed"), "{e}");
}

#[test]
fn verify_finds_an_entry_changed_behind_the_bridges_back() {
    let Some(db) = test_store() else {
        return;
    };
    let records: Vec<_> = (0..5).map(|i| record("p", "1", i)).collect();
    db.store.append_ledger(&records).unwrap();
    db._schema.admin(
        "ALTER TABLE ledger DISABLE TRIGGER ledger_no_change; \
         UPDATE ledger SET outcome = 'failed' WHERE seq = 3; \
         ALTER TABLE ledger ENABLE TRIGGER ledger_no_change",
    );
    let report = db.store.verify_ledger().unwrap();
    assert_eq!(report.first_break.map(|(seq, _)| seq), Some(3));
}

#[test]
fn appends_from_several_replicas_make_one_chain() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect();
    let stores: Vec<Arc<PgStore>> = (0..3)
        .map(|_| Arc::new(PgStore::open(&connect).unwrap()))
        .collect();
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let pair = format!("pair-{n}");
                    store
                        .append_ledger(&[record(&pair, &i.to_string(), i), record(&pair, "x", i)])
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = stores[0].verify_ledger().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 240);
}

fn settings(pairs: &[&str], period_ms: u64) -> LeaseSettings {
    LeaseSettings {
        pairs: pairs.iter().map(|p| (*p).to_owned()).collect(),
        period: Duration::from_millis(period_ms),
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_replica_that_lost_its_lease_commits_nothing() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect();
    drop(PgStore::open(&connect).unwrap());
    let fence_a = Fence::new("replica-a".into());
    let keeper_a = LeaseKeeper::start(&connect, fence_a.clone(), settings(&["p"], 60_000)).unwrap();
    let token_a = fence_a.token("p").expect("the only replica takes the pair");
    let a = PgStore::open(&connect).unwrap().with_fence(fence_a.clone());
    let intent_id = a.begin_intent(&suite::intent("p", "1")).unwrap();
    a.set_watermark("p", Side::Incidents, at(1)).unwrap();

    // Replica A stalls past its lease (as if paused); B starts and takes over.
    schema.admin("UPDATE leases SET expires_at = now() - interval '1 second'");
    let fence_b = Fence::new("replica-b".into());
    let keeper_b = LeaseKeeper::start(&connect, fence_b.clone(), settings(&["p"], 60_000)).unwrap();
    let token_b = fence_b.token("p").expect("B takes the expired lease");
    assert!(token_b > token_a, "a new holder gets a larger token");
    let b = PgStore::open(&connect).unwrap().with_fence(fence_b.clone());

    // A wakes up: each of its commits is refused, and nothing of them is written.
    let refused = [
        a.finish_intent(
            intent_id,
            Some(&link("p", "1", "SEC-1")),
            &[record("p", "1", 2)],
        ),
        a.save_link(&link("p", "2", "SEC-2"), &[record("p", "2", 3)]),
        a.append_ledger(&[record("p", "3", 4)]),
        a.set_watermark("p", Side::Incidents, at(9)),
        a.begin_intent(&suite::intent("p", "4")).map(|_| ()),
    ];
    for result in refused {
        let e = result.unwrap_err();
        assert!(
            matches!(&e, StoreError::LostLease { pair } if pair == "p"),
            "{e:?}"
        );
        assert!(e.to_string().contains("lost the lease for pair p"), "{e}");
    }
    assert!(!fence_a.holds("p"), "A noticed it lost the lease");
    assert_eq!(
        b.pending_intents().unwrap().len(),
        1,
        "A's intent is still pending"
    );
    assert!(b.links(None).unwrap().is_empty());
    assert_eq!(b.verify_ledger().unwrap().entries, 0);
    assert_eq!(b.watermark("p", Side::Incidents).unwrap(), Some(at(1)));

    // B, the holder, commits.
    b.finish_intent(
        intent_id,
        Some(&link("p", "1", "SEC-1")),
        &[record("p", "1", 2)],
    )
    .unwrap();
    assert_eq!(b.leases().unwrap()[0].holder, "replica-b");
    drop((keeper_a, keeper_b));
}

#[test]
fn an_expired_lease_refuses_commits_even_before_anyone_takes_over() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect();
    drop(PgStore::open(&connect).unwrap());
    let fence = Fence::new("replica-a".into());
    let keeper = LeaseKeeper::start(&connect, fence.clone(), settings(&["p"], 60_000)).unwrap();
    let store = PgStore::open(&connect).unwrap().with_fence(fence.clone());
    store.append_ledger(&[record("p", "1", 0)]).unwrap();
    schema.admin("UPDATE leases SET expires_at = now() - interval '1 millisecond'");
    let e = store.append_ledger(&[record("p", "1", 1)]).unwrap_err();
    assert!(matches!(e, StoreError::LostLease { .. }), "{e:?}");
    // A pair this replica never held is refused without asking the database.
    let e = store.append_ledger(&[record("q", "1", 1)]).unwrap_err();
    assert!(matches!(e, StoreError::LostLease { .. }), "{e:?}");
    assert_eq!(store.verify_ledger().unwrap().entries, 1);
    drop(keeper);
}

#[test]
fn replicas_share_the_pairs_and_take_over_when_one_leaves() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect();
    let reader = PgStore::open(&connect).unwrap();
    let pairs = ["a->x", "b->x", "c->x"];
    let fence_a = Fence::new("replica-a".into());
    let keeper_a = LeaseKeeper::start(&connect, fence_a.clone(), settings(&pairs, 900)).unwrap();
    assert_eq!(
        fence_a.held_pairs().len(),
        3,
        "alone, a replica drives every pair"
    );

    let fence_b = Fence::new("replica-b".into());
    let keeper_b = LeaseKeeper::start(&connect, fence_b.clone(), settings(&pairs, 900)).unwrap();
    wait_until("the pairs are shared", Duration::from_secs(10), || {
        fence_a.held_pairs().len() == 2 && fence_b.held_pairs().len() == 1
    });
    let leases = reader.leases().unwrap();
    assert_eq!(leases.len(), 3);
    for lease in &leases {
        let holder_fence = if lease.holder == "replica-a" {
            &fence_a
        } else {
            &fence_b
        };
        assert_eq!(
            holder_fence.token(&lease.pair),
            Some(lease.token),
            "{lease:?}"
        );
    }

    keeper_a.stop();
    wait_until("B takes every pair", Duration::from_secs(10), || {
        fence_b.held_pairs().len() == 3
    });
    assert!(
        reader
            .leases()
            .unwrap()
            .iter()
            .all(|l| l.holder == "replica-b")
    );
    keeper_b.stop();
    assert!(
        reader.leases().unwrap().is_empty(),
        "a clean stop gives its leases up"
    );
}

#[test]
fn an_sqlite_store_moves_to_postgres_with_its_ledger_intact() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    let sqlite = crate::store::SqliteStore::open(&path).unwrap();
    let mut merged = link("p", "2", "SEC-2");
    merged.state = crate::model::LinkState::Merged;
    merged.merged_into = Some("1".into());
    sqlite
        .save_link(&link("p", "1", "SEC-1"), &[record("p", "1", 0)])
        .unwrap();
    sqlite.save_link(&merged, &[record("p", "2", 1)]).unwrap();
    sqlite.set_watermark("p", Side::Incidents, at(5)).unwrap();
    sqlite.set_watermark("p", Side::Tickets, at(6)).unwrap();
    let done = sqlite.begin_intent(&suite::intent("p", "8")).unwrap();
    sqlite.finish_intent(done, None, &[]).unwrap();
    let pending = sqlite.begin_intent(&suite::intent("p", "9")).unwrap();
    sqlite
        .record_failure(&DeadLetter {
            pair: "p".into(),
            incident_id: "7".into(),
            ticket_key: None,
            action: "create_ticket".into(),
            last_error: "refused".into(),
            attempts: 1,
            first_failed: at(0),
            last_failed: at(0),
            next_attempt: at(60),
        })
        .unwrap();
    sqlite
        .record_synced_comments(
            "p",
            "1",
            &["i:a".into(), "t:b".into()],
            &[record("p", "1", 2)],
        )
        .unwrap();
    // Some entries name their actors (the hash covers them), some predate them.
    let records: Vec<_> = (3..50)
        .map(|i| crate::ledger::LedgerRecord {
            actors: match i % 2 {
                0 => vec![crate::ledger::Actor::bridge()],
                _ => Vec::new(),
            },
            ..record("p", "1", i)
        })
        .collect();
    sqlite.append_ledger(&records).unwrap();
    let original = sqlite.verify_ledger().unwrap();
    drop(sqlite);

    let target = PgStore::open(&schema.connect()).unwrap();
    let report = import_sqlite(&path, &target).unwrap();
    assert_eq!(
        (
            report.links,
            report.watermarks,
            report.outbox,
            report.dead_letters,
            report.synced_comments
        ),
        (2, 2, 1, 1, 2)
    );
    assert_eq!(report.ledger, original);

    let sqlite = crate::store::SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(target.links(None).unwrap(), sqlite.links(None).unwrap());
    assert_eq!(
        target.pending_intents().unwrap(),
        sqlite.pending_intents().unwrap()
    );
    assert_eq!(target.pending_intents().unwrap()[0].0, pending);
    assert_eq!(
        target.dead_letters(None, None).unwrap(),
        sqlite.dead_letters(None, None).unwrap()
    );
    assert_eq!(
        target.synced_comments("p", "1").unwrap(),
        sqlite.synced_comments("p", "1").unwrap()
    );
    assert_eq!(target.watermark("p", Side::Tickets).unwrap(), Some(at(6)));
    let by_bridge = crate::ledger::LedgerFilter {
        actor: Some(crate::ledger::BRIDGE_ACTOR.into()),
        ..Default::default()
    };
    assert_eq!(
        suite::entries(&target, &by_bridge),
        suite::entries(&sqlite, &by_bridge),
        "the actors came along"
    );
    assert_eq!(suite::entries(&target, &by_bridge).len(), 23);
    assert_eq!(
        target.verify_ledger().unwrap(),
        original,
        "same entries, same head"
    );
    // The outbox goes on after the ids SQLite gave, and the chain after its head.
    assert!(target.begin_intent(&suite::intent("p", "10")).unwrap() > pending);
    target.append_ledger(&[record("p", "1", 99)]).unwrap();
    assert!(target.verify_ledger().unwrap().is_intact());

    // A store that holds anything already is refused, and left as it is.
    let e = import_sqlite(&path, &target).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(
        target.verify_ledger().unwrap().entries,
        original.entries + 1
    );
}

#[test]
fn a_postgres_store_in_use_is_not_migrated_into() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    drop(crate::store::SqliteStore::open(&path).unwrap());
    let target = PgStore::open(&schema.connect()).unwrap();
    let keeper = LeaseKeeper::start(
        &schema.connect(),
        Fence::new("replica-a".into()),
        settings(&["p"], 60_000),
    )
    .unwrap();
    let e = import_sqlite(&path, &target).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    drop(keeper);
}

#[test]
fn a_replica_paused_inside_a_transaction_does_not_hold_the_others_up() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let connect = schema.connect().with_lease(Duration::from_millis(800));
    let store = PgStore::open(&connect).unwrap();
    store.append_ledger(&[record("p", "1", 0)]).unwrap();
    // A session of a replica (same options) that took the ledger's lock and
    // stopped answering, as a process SIGSTOPped mid-append would.
    let mut paused = connect.config.connect(NoTls).unwrap();
    paused
        .batch_execute("BEGIN; LOCK TABLE ledger IN EXCLUSIVE MODE")
        .unwrap();
    // Without the server ending the idle session, this would wait for ever.
    store.append_ledger(&[record("p", "1", 1)]).unwrap();
    assert_eq!(store.verify_ledger().unwrap().entries, 2);
    assert!(
        paused.batch_execute("COMMIT").is_err(),
        "the idle session was ended"
    );
}

/// A replica that was paused past its lease learns it from its own clock
/// before a remote write, even while its lease keeper has not yet run again.
#[test]
fn a_lease_past_its_time_by_this_processs_clock_refuses_remote_writes() {
    let fence = Fence::new("replica-a".into());
    assert!(!fence.may_write("p"), "not held");
    fence.set("p", 7);
    assert!(
        !fence.may_write("p"),
        "held, but never confirmed by a round"
    );
    let now = std::time::Instant::now();
    fence.lasts_until("p", now + std::time::Duration::from_secs(60));
    assert!(fence.may_write("p"));
    // The round that renewed it was long ago (the process was stopped).
    fence.lasts_until("p", now - std::time::Duration::from_millis(1));
    assert!(fence.holds("p"), "the keeper has not looked yet");
    assert!(!fence.may_write("p"), "but the lease has surely run out");
    assert!(fence.lose("p"));
    assert!(!fence.may_write("p"));
}
