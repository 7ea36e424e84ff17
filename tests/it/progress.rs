//! A first sync with a backlog shows its progress: the daemon, its stderr not a
//! terminal, logs a structured progress line every few seconds, and
//! `/metrics` gives the backlog per pair. The Defender source is paced at one
//! call a second, so the backlog lasts long enough to be seen.

use crate::common::Env;
use crate::daemon::{Daemon, get, with_listen};

/// The simulators' config with a `[server]` on port 0 and Defender paced at
/// one call a second.
fn paced_with_server(env: &Env) {
    with_listen(env, "127.0.0.1:0");
    let text = std::fs::read_to_string(&env.config).unwrap();
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
    let address = daemon.address();

    let progress = daemon.wait_for_log("first sync progress");
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

    let (_, _, metrics) = get(address, "/metrics");
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
