//! A daemon under test: `itsm-bridge run` on the simulators' config, its log
//! (stderr) read as it comes, its `[server]` address found in the log, plain
//! HTTP GETs to it, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Env;

/// How long anything here may take before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The simulators' config with a `[server]` table added.
pub fn with_listen(env: &Env, listen: &str) {
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
pub struct Daemon {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    pub fn start(env: &Env) -> Daemon {
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
    pub fn address(&mut self) -> SocketAddr {
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
    pub fn terminate(mut self) -> Option<i32> {
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
pub fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
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

impl Daemon {
    /// Waits for a log line containing `needle` (lines seen before this call
    /// included); the line.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.log.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "no log line with {needle:?}; the log so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// Forgets the log lines seen so far, so `wait_for_log` waits for new ones.
    pub fn forget_log(&mut self) {
        while let Ok(line) = self.log.try_recv() {
            self.seen.push(line);
        }
        self.seen.clear();
    }

    /// Sends a signal (`HUP`, `TERM`) to the daemon.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name}");
    }
}

/// Polls `probe` every 200 ms until it gives a value, up to [`PATIENCE`].
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
