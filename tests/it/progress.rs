//! A first sync with a backlog shows its progress: the daemon, its stderr not a
//! terminal, logs a structured progress line every few seconds, and
//! `/metrics` gives the backlog per pair. The Defender source is paced at one
//! call a second, so the backlog lasts long enough to be seen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Env;

const PATIENCE: Duration = Duration::from_secs(60);

/// The simulators' config with a `[server]` on port 0 and Defender paced at
/// one call a second.
fn paced_with_server(env: &Env) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "\n[http]\n",
        "\n[server]\nlisten = \"127.0.0.1:0\"\n\n[http]\n",
        1,
    );
    let source = text
        .find("name = \"defender\"")
        .expect("the defender source");
    let line_end = source + text[source..].find('\n').unwrap() + 1;
    let text = format!(
        "{}rate_limit = \"60/min\"\nburst = 1\n{}",
        &text[..line_end],
        &text[line_end..]
    );
    std::fs::write(&env.config, text).unwrap();
}

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
            .env("RUST_LOG", "warn,itsm_bridge=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the itsm-bridge binary runs");
        let (tx, log) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
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

    /// The first log line that `matches`, waiting for it.
    fn line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.log.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
        panic!("no such line; the log so far:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(address: SocketAddr, path: &str) -> String {
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
    response
}

/// `name{pair="…"} value` in a metrics text.
fn gauge(metrics: &str, name: &str, pair: &str) -> Option<u64> {
    let prefix = format!("{name}{{pair=\"{pair}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_first_sync_backlog_is_logged_as_it_goes_and_shown_in_metrics() {
    let env = Env::start(40);
    paced_with_server(&env);
    let mut daemon = Daemon::start(&env);
    let serving = daemon.line(|l| l.contains("serving") && l.contains("listen="));
    let address: SocketAddr = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap()
        .parse()
        .unwrap();

    let progress = daemon.line(|l| l.contains("first sync progress"));
    for field in [
        "pair=defender->jira",
        "done=",
        "planned=",
        "left=",
        "eta_seconds=",
    ] {
        assert!(progress.contains(field), "{field} in {progress}");
    }
    let planned: u64 = progress
        .split_whitespace()
        .find_map(|w| w.strip_prefix("planned="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(planned >= 30, "the seed's open incidents: {progress}");

    let metrics = get(address, "/metrics");
    assert!(
        metrics.contains("# TYPE itsm_bridge_backlog gauge"),
        "{metrics}"
    );
    let left = gauge(&metrics, "itsm_bridge_backlog", "defender->jira")
        .unwrap_or_else(|| panic!("no backlog of defender->jira: {metrics}"));
    assert!(
        left > 0 && left <= planned,
        "{left} left of {planned}: {metrics}"
    );
    assert!(
        gauge(&metrics, "itsm_bridge_backlog", "sentinel->servicenow").is_some(),
        "every pair has its sample: {metrics}"
    );
}
