//! One writer per store, end to end: two daemons started at once on one config
//! against the simulators. One syncs; the other is refused at once, naming the
//! holder; no incident gets two tickets. Read-only commands keep working beside
//! the daemon, and a SIGKILLed holder leaves nothing to clean up.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Env, assert_success, stderr, stdout};

/// How long anything here may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(90);

fn every_schedule_each_second(env: &Env) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("schedule =") {
                "schedule = \"* * * * * *\"".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&env.config, text + "\n").unwrap();
}

fn daemon(env: &Env) -> Child {
    Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the itsm-bridge binary runs")
}

/// Kills the daemons if a failed assertion leaves them running.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn refusal_names_the_holder(text: &str, holder_pid: u32) {
    assert!(
        text.contains("is already in use by another itsm-bridge (host "),
        "{text}"
    );
    assert!(
        text.contains(&format!(", pid {holder_pid}, since 20")),
        "{text}"
    );
    assert!(text.contains("stop that one first"), "{text}");
}

#[test]
fn two_daemons_started_at_once_on_one_store_make_no_duplicate_ticket() {
    let env = Env::start(60);
    every_schedule_each_second(&env);
    let open: Vec<String> = env
        .sims
        .graph
        .incidents()
        .into_iter()
        .filter(|i| i.status != "resolved")
        .map(|i| i.id)
        .collect();

    let mut reaper = Reaper(vec![daemon(&env), daemon(&env)]);

    // One of the two is refused at once; the other keeps running.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let exited = reaper
            .0
            .iter_mut()
            .position(|child| child.try_wait().unwrap().is_some());
        if let Some(index) = exited {
            break index;
        }
        assert!(Instant::now() < deadline, "neither daemon was refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    let loser = reaper.0.remove(refused);
    let out = loser.wait_with_output().unwrap();
    let holder = &mut reaper.0[0];
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    refusal_names_the_holder(&stderr(&out), holder.id());
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder keeps running"
    );

    // Read-only commands work beside the daemon while it syncs the backlog, from
    // the moment its store exists (it appears migrated, in one step).
    let deadline = Instant::now() + PATIENCE;
    while !env.db.exists() {
        assert!(Instant::now() < deadline, "the holder made no store");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let links = env.bridge(&["links", "--db", env.db_arg(), "--json"]);
        assert_success(&links);
        if env.sims.jira.issues().len() >= open.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the holder did not sync the backlog"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in [
        vec!["ledger", "verify", "--db", env.db_arg()],
        vec!["ledger", "list", "--db", env.db_arg(), "--limit", "5"],
        vec!["ledger", "export", "--db", env.db_arg(), "--format", "csv"],
    ] {
        assert_success(&env.bridge(&args));
    }

    // A third comes along as `run --once` and `run --sweep`: refused too.
    for mode in ["--once", "--sweep"] {
        let out = env.bridge(&["run", mode, "--config", env.config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", stderr(&out));
        refusal_names_the_holder(&stderr(&out), holder.id());
    }

    // The lock dies with its holder: after a SIGKILL the store is free at once.
    holder.kill().unwrap();
    holder.wait().unwrap();
    reaper.0.clear();
    let out = env.sync();
    assert!(stdout(&out).contains("defender->jira"), "{}", stdout(&out));

    // Exactly one issue per open incident, counted on the Jira simulator.
    let issues = env.sims.jira.issues();
    for id in &open {
        let label = format!("itsm-bridge:defender:{id}");
        let mine = issues.iter().filter(|i| i.labels.contains(&label)).count();
        assert_eq!(mine, 1, "incident {id} has {mine} issues");
    }
    assert_eq!(issues.len(), open.len(), "no issue without its incident");
}

#[cfg(unix)]
#[test]
fn a_store_readable_by_others_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start(2);
    env.sync();
    std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.sync();
    let log = stderr(&out);
    assert!(
        log.contains("the store can be read by other users; run chmod 600 on it"),
        "{log}"
    );
    assert!(log.contains("mode=644"), "{log}");
}
