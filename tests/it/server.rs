//! The `[server]` endpoints of the real daemon: `run` with `listen` on port 0
//! against the simulators, the address found in its log, then `/healthz`,
//! `/livez`, `/metrics` and the dashboard read over plain HTTP, and a clean stop
//! on SIGTERM. Also: a port already taken is a startup error naming it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{Env, stderr};

/// How long anything here may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The simulators' config with a `[server]` table added.
fn with_listen(env: &Env, listen: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains("\n[http]\n"), "{text}");
    let text = text.replacen(
        "\n[http]\n",
        &format!("\n[server]\nlisten = \"{listen}\"\n\n[http]\n"),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
}

/// The daemon, with its log lines (stderr) sent to a channel as they come.
struct Daemon {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(env: &Env) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(["run", "--config", env.config.to_str().unwrap()])
            .current_dir(env.dir.path())
            // The bound address is logged at info.
            .env("RUST_LOG", "warn,itsm_bridge=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the itsm-bridge binary runs");
        let (tx, log) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        // Reads to the end, so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// The address from `serving … listen=ADDRESS`.
    fn address(&mut self) -> SocketAddr {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.log.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if line.contains("serving") {
                if let Some(at) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                {
                    return at.parse().expect("the logged address parses");
                }
            }
        }
        panic!(
            "no address logged; the log so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// SIGTERM, then the exit code (killed if it does not stop in time).
    fn terminate(mut self) -> Option<i32> {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the daemon did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed assertion must not leave the daemon running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over a plain socket: the status code, the head and the body.
fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
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
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// The value of one sample line (`name{labels} value`) of a text exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a sample value is a number"))
}

/// Every secret the simulators' config points at.
fn secrets(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.dir.path().join("secrets"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn the_daemon_serves_health_metrics_and_the_dashboard_while_it_syncs() {
    let env = Env::start(6);
    with_listen(&env, "127.0.0.1:0");
    let mut daemon = Daemon::start(&env);
    let address = daemon.address();
    assert_ne!(address.port(), 0, "port 0 picks a free port");

    // The first cycle runs at start; poll until its creates are counted.
    let created = r#"itsm_bridge_writes_total{pair="defender->jira",kind="tickets_created"}"#;
    let deadline = Instant::now() + PATIENCE;
    let metrics = loop {
        let (code, head, body) = get(address, "/metrics");
        assert_eq!(code, 200, "{body}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        if sample(&body, created).is_some_and(|n| n > 0.0) {
            break body;
        }
        assert!(Instant::now() < deadline, "no ticket counted:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let tickets = env.sims.jira.issues().len() as f64;
    assert!(tickets > 0.0);
    assert_eq!(sample(&metrics, created), Some(tickets), "{metrics}");
    let runs = r#"itsm_bridge_runs_total{pair="defender->jira",kind="cycle"}"#;
    assert!(
        sample(&metrics, runs).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let active = r#"itsm_bridge_links{pair="defender->jira",state="active"}"#;
    assert_eq!(sample(&metrics, active), Some(tickets), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"itsm_bridge_dead_letters{pair="defender->jira"}"#
        ),
        Some(0.0)
    );
    assert!(sample(&metrics, "itsm_bridge_ledger_entries").is_some_and(|n| n >= tickets));
    assert!(metrics.contains("# TYPE itsm_bridge_writes_total counter\n"));

    let (code, head, body) = get(address, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let pairs = health["pairs"].as_array().unwrap();
    let names: Vec<&str> = pairs.iter().map(|p| p["pair"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "defender->jira",
            "sentinel->servicenow",
            "sentinel->helpdesk"
        ]
    );
    let jira = &pairs[0];
    assert_eq!(jira["ok"], true);
    assert!(jira["last_run"].is_string(), "{jira}");
    assert_eq!(jira["consecutive_failures"], 0);
    assert_eq!(jira["dead_letters"], 0);

    assert_eq!(get(address, "/livez").0, 200);

    let (code, head, page) = get(address, "/");
    assert_eq!(code, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains(">defender-&gt;jira</a></td>"), "{page}");
    assert!(
        page.contains("create_ticket"),
        "the newest ledger entries: {page}"
    );
    assert!(!page.contains("<script"));
    // The other pages: each a page of its own, none with a secret either.
    let mut pages = vec![page];
    for path in [
        "/links",
        "/links?state=open&q=1",
        "/ledger",
        "/dead-letters",
    ] {
        let (code, _, page) = get(address, path);
        assert_eq!(code, 200, "{path}: {page}");
        pages.push(page);
    }

    for secret in secrets(&env) {
        let named = pages.iter().map(|p| ("dashboard", p));
        for (what, text) in [("metrics", &metrics), ("health", &body)]
            .into_iter()
            .chain(named)
        {
            assert!(!text.contains(&secret), "a secret in the {what}");
        }
    }

    assert_eq!(daemon.terminate(), Some(0), "SIGTERM is a clean stop");
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "the server stopped with the daemon"
    );
}

#[test]
fn a_listen_address_in_use_is_a_startup_error_naming_it() {
    let env = Env::start(0);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    with_listen(&env, &address.to_string());
    let out = env.bridge(&["run", "--config", env.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("cannot listen on {address}")),
        "{text}"
    );
}
