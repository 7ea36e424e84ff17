//! The deployment files, tested without Docker: `docker-compose.yml` is parsed,
//! every file it mounts or builds from must exist (and the `Dockerfile`'s
//! sources must be in the build context), `check` passes on the config it
//! mounts, and each service's exact command and environment are run here:
//! the two replicas against the simulators and the local PostgreSQL
//! (`ITSM_BRIDGE_TEST_PG`, a schema of their own; skipped with a message
//! without it), the `demo` profile's simulators and bridge as they are.
//!
//! Running a service "here" means: each container gets a directory standing for
//! its root, where its mounts and Compose secrets are copied to their container
//! paths; an absolute path in its command or its config is taken inside that
//! root. For the replicas, the config's remote endpoints, ids, listen address
//! and database (which name the real services) are then pointed at the
//! simulators and the test's schema, and the simulators' CA is trusted; nothing
//! else in it changes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Env, assert_success, stderr, stdout};
use connectors::sims;
use yaml_rust2::{Yaml, YamlLoader};

mod systemd;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is YAML");
    assert_eq!(docs.len(), 1, "one document");
    docs.remove(0)
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let service = &compose["services"][name];
    assert!(!service.is_badvalue(), "no service {name}");
    service
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .map(|items| {
            items
                .iter()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A service's `volumes`: (source, container path); a named volume's source has no `/`.
fn mounts(service: &Yaml) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .into_iter()
        .map(|spec| {
            let mut parts = spec.split(':');
            let source = parts.next().unwrap().to_owned();
            let target = parts.next().expect("source:target").to_owned();
            (source, target)
        })
        .collect()
}

/// Its `environment`, as a map.
fn environment(service: &Yaml) -> Vec<(String, String)> {
    service["environment"]
        .as_hash()
        .map(|hash| {
            hash.iter()
                .map(|(k, v)| {
                    let value = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.as_i64().expect("a string or a number").to_string());
                    (k.as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `CMD` of the Dockerfile's `HEALTHCHECK`, as its JSON array.
fn dockerfile_healthcheck() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK");
    let array = &line[line.find("CMD").unwrap() + 3..];
    serde_json::from_str(array.trim()).expect("HEALTHCHECK CMD is an exec array")
}

#[test]
fn every_file_compose_mounts_or_builds_from_exists() {
    let compose = compose();
    let services = compose["services"].as_hash().unwrap();
    let mut bridges = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if let Some(context) = service["build"].as_str() {
            let context = repo().join(context);
            assert!(context.join("Dockerfile").is_file(), "{name}: Dockerfile");
        }
        for (source, target) in mounts(service) {
            if source.starts_with("./") || source.starts_with('/') {
                assert!(repo().join(&source).exists(), "{name}: {source} is mounted");
            } else {
                let volumes = &compose["volumes"][source.as_str()];
                assert!(!volumes.is_badvalue(), "{name}: volume {source} declared");
            }
            assert!(target.starts_with('/'), "{name}: {target}");
        }
        for secret in strings(&service["secrets"]) {
            let file = compose["secrets"][secret.as_str()]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: secret {secret} has no file"));
            assert!(repo().join(file).is_file(), "{name}: secret file {file}");
        }
        if service["image"].as_str() == Some("itsm-bridge:local") {
            bridges += 1;
            assert_eq!(service["read_only"].as_bool(), Some(true), "{name}");
            // Built, never pulled: no registry has this image.
            assert_eq!(service["build"].as_str(), Some("."), "{name}");
            assert_eq!(strings(&service["tmpfs"]), ["/tmp"], "{name}");
            assert_eq!(strings(&service["cap_drop"]), ["ALL"], "{name}");
            assert!(!service["command"].is_badvalue(), "{name}: a command");
        }
    }
    assert_eq!(
        bridges, 4,
        "two replicas, the simulators and the demo bridge"
    );
    for profile_less in ["postgres", "bridge-1", "bridge-2"] {
        assert!(service(&compose, profile_less)["profiles"].is_badvalue());
    }
    for demo in ["sims", "demo-bridge"] {
        assert_eq!(strings(&service(&compose, demo)["profiles"]), ["demo"]);
    }

    // What the Dockerfile copies from the build context is there and not ignored.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(repo().join(source).exists(), "COPY {source}");
            assert!(
                !ignored.lines().any(|l| l.trim_end_matches('/') == *source),
                "{source} is copied but .dockerignore leaves it out"
            );
        }
    }
    assert!(
        dockerfile.contains("\nUSER 65532:65532\n"),
        "a non-root user"
    );
    assert_eq!(
        dockerfile_healthcheck(),
        [
            "/usr/local/bin/itsm-bridge",
            "health",
            "--url",
            "http://127.0.0.1:9464/livez"
        ]
    );
}

/// A container's root: its mounts and secrets copied to their container paths.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn empty() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Copies a file of the repository to a container path.
    fn put(&self, from_repo: &str, inside: &str) {
        let inside = self.path(inside);
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(from_repo), inside).unwrap();
    }

    fn of(compose: &Yaml, service: &Yaml, volumes: &Path) -> Root {
        let root = Root::empty();
        for (source, target) in mounts(service) {
            let inside = root.path(&target);
            if source.starts_with("./") {
                std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
                std::fs::copy(repo().join(&source), &inside).unwrap();
            } else {
                // A named volume: one directory shared by the services that mount it.
                let shared = volumes.join(&source);
                std::fs::create_dir_all(&shared).unwrap();
                std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&shared, &inside).unwrap();
            }
        }
        for secret in strings(&service["secrets"]) {
            let file = compose["secrets"][secret.as_str()]["file"]
                .as_str()
                .unwrap();
            let inside = root.path(&format!("/run/secrets/{secret}"));
            std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
            std::fs::copy(repo().join(file), &inside).unwrap();
        }
        root
    }

    /// A container path, inside this root.
    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// The service's command, its absolute paths taken inside this root.
    fn command(&self, args: &[String]) -> Vec<String> {
        args.iter()
            .map(|arg| {
                if arg.starts_with('/') {
                    self.path(arg).display().to_string()
                } else {
                    arg.clone()
                }
            })
            .collect()
    }

    /// Absolute paths in a mounted config, taken inside this root.
    fn config_text(&self, text: &str) -> String {
        text.replace("\"/", &format!("\"{}/", self.dir.path().display()))
    }
}

/// Runs a service's command with its environment (and nothing of the test's
/// RUST_LOG or log format), stdout and stderr into files.
fn start(root: &Root, service: &Yaml, cwd: &Path) -> (Running, PathBuf) {
    let args = root.command(&strings(&service["command"]));
    let log = root.path("/stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"));
    command
        .args(&args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("ITSM_BRIDGE_LOG_FORMAT")
        .envs(environment(service))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    (Running(command.spawn().expect("the service starts")), log)
}

/// A service's process, killed if a test fails before it stops it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn run_with_env(service: &Yaml, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ITSM_BRIDGE_LOG_FORMAT")
        .envs(environment(service))
        .output()
        .unwrap()
}

fn stop(mut running: Running) {
    let child = &mut running.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("the service did not stop within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn check_passes_on_the_config_compose_mounts() {
    let compose = compose();
    let volumes = tempfile::tempdir().unwrap();
    for name in ["bridge-1", "bridge-2"] {
        let service = service(&compose, name);
        let root = Root::of(&compose, service, volumes.path());
        let config = root.path("/etc/itsm-bridge/bridge.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, root.config_text(&text)).unwrap();
        let out = run_with_env(
            service,
            &root.command(&[
                "check".into(),
                "--config".into(),
                "/etc/itsm-bridge/bridge.toml".into(),
            ]),
        );
        assert_success(&out);
    }
}

/// A deployed config (at `config`, a container path), pointed at the
/// simulators: the endpoints, ids and email the shipped files name, the
/// simulators' CA, their secrets in `secrets` (a container directory), plus
/// `more` replacements; each replaced text must be there.
fn config_for_the_simulators(
    root: &Root,
    env: &Env,
    config: &str,
    secrets: &str,
    more: &[(String, String)],
) {
    let path = root.path(config);
    let mut text = root.config_text(&std::fs::read_to_string(&path).unwrap());
    let ca = env.dir.path().join("sim-ca.pem");
    let simulated = [
        (
            "https://login.microsoftonline.com\"".to_owned(),
            format!("{}\"", env.sims.login.authority_host()),
        ),
        (
            "base_url = \"https://graph.microsoft.com\"".into(),
            format!("base_url = \"{}\"", env.sims.graph.base_url()),
        ),
        (
            "https://acme.atlassian.net".into(),
            env.sims.jira.base_url(),
        ),
        (
            "00000000-0000-0000-0000-000000000000".into(),
            sims::TENANT_ID.into(),
        ),
        (
            "11111111-1111-1111-1111-111111111111".into(),
            sims::GRAPH_CLIENT_ID.into(),
        ),
        ("bridge@acme.example".into(), sims::JIRA_EMAIL.into()),
        (
            "[http]\n".into(),
            format!("[http]\nca_bundle = \"{}\"\n", ca.display()),
        ),
    ];
    for (real, simulated) in simulated.iter().chain(more) {
        assert!(text.contains(real.as_str()), "{config} has {real}");
        text = text.replace(real.as_str(), simulated);
    }
    std::fs::write(&path, text).unwrap();
    for (secret, value) in [
        ("graph-client-secret", sims::GRAPH_CLIENT_SECRET),
        ("jira-api-token", sims::JIRA_API_TOKEN),
    ] {
        let file = root.path(&format!("{secrets}/{secret}"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, value).unwrap();
    }
}

/// A schema of its own on `ITSM_BRIDGE_TEST_PG`, dropped with it.
struct Pg {
    base: String,
    schema: String,
}

impl Pg {
    fn new(test: &str) -> Option<Pg> {
        let Ok(base) = std::env::var("ITSM_BRIDGE_TEST_PG") else {
            eprintln!("{test}: skipped: ITSM_BRIDGE_TEST_PG is not set");
            return None;
        };
        let schema = format!("itsm_it_{}_{test}", std::process::id());
        let mut client = postgres::Client::connect(&base, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        Some(Pg { base, schema })
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.schema)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// The address a daemon serves on, from its JSON `serving` line.
fn served_at(log: &Path) -> String {
    let mut found = None;
    wait_until("the server is up", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text.lines().find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            line.get("listen")?.as_str().map(str::to_owned)
        });
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn the_replicas_run_as_composed_on_the_simulators_and_postgres() {
    let Some(pg) = Pg::new("deploy") else {
        return;
    };
    let env = Env::start(6);
    let compose = compose();
    let volumes = tempfile::tempdir().unwrap();
    let mut running = Vec::new();
    let mut roots = Vec::new();
    for name in ["bridge-1", "bridge-2"] {
        let service = service(&compose, name);
        let root = Root::of(&compose, service, volumes.path());
        let more = [
            (
                "postgres://itsm_bridge@postgres:5432/itsm_bridge".to_owned(),
                pg.url(),
            ),
            ("0.0.0.0:9464".into(), "127.0.0.1:0".into()),
        ];
        let config = "/etc/itsm-bridge/bridge.toml";
        config_for_the_simulators(&root, &env, config, "/run/secrets", &more);
        let (child, log) = start(&root, service, root.dir.path());
        running.push((child, log.clone()));
        // The image's own healthcheck, at the address this one serves on.
        let address = served_at(&log);
        let check: Vec<String> = dockerfile_healthcheck()
            .into_iter()
            .map(|arg| arg.replace("127.0.0.1:9464", &address))
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(&check[1..])
            .output()
            .unwrap();
        assert_success(&out);
        roots.push(root);
    }
    let config = roots[0].path("/etc/itsm-bridge/bridge.toml");
    let config = config.to_str().unwrap();
    wait_until(
        "every incident has its ticket",
        Duration::from_secs(90),
        || {
            let out = env.bridge(&["links", "--config", config, "--json"]);
            out.status.success() && stdout(&out).lines().count() == 6
        },
    );
    for (child, log) in running {
        stop(child);
        let text = std::fs::read_to_string(&log).unwrap();
        for line in text.lines() {
            let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(parsed.is_ok(), "not JSON: {line}");
        }
        for secret in [sims::GRAPH_CLIENT_SECRET, sims::JIRA_API_TOKEN] {
            assert!(!text.contains(secret), "a secret in the logs");
        }
    }
    let out = env.bridge(&["links", "--config", config, "--json"]);
    let tickets: std::collections::BTreeSet<String> = stdout(&out)
        .lines()
        .map(|line| {
            let link: serde_json::Value = serde_json::from_str(line).unwrap();
            link["ticket_key"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tickets.len(), 6, "one ticket per incident: {tickets:?}");
    let out = env.bridge(&["ledger", "verify", "--config", config]);
    assert_success(&out);
}

#[test]
fn the_demo_profile_runs_as_composed() {
    let compose = compose();
    let volumes = tempfile::tempdir().unwrap();
    let sims_service = service(&compose, "sims");
    let sims_root = Root::of(&compose, sims_service, volumes.path());
    let (sims_child, sims_log) = start(&sims_root, sims_service, sims_root.dir.path());

    // Its healthcheck, exactly, until it passes (as `depends_on` waits for it).
    let check = strings(&sims_service["healthcheck"]["test"]);
    assert_eq!(check[0], "CMD");
    assert_eq!(check[1], "/usr/local/bin/itsm-bridge");
    wait_until(
        "the simulators are healthy",
        Duration::from_secs(30),
        || run_with_env(sims_service, &check[2..]).status.success(),
    );

    let bridge = service(&compose, "demo-bridge");
    assert_eq!(bridge["network_mode"].as_str(), Some("service:sims"));
    let bridge_root = Root::of(&compose, bridge, volumes.path());
    let config = bridge_root.path("/var/lib/itsm-bridge/demo/bridge.toml");
    wait_until(
        "the simulators wrote a config",
        Duration::from_secs(30),
        || config.is_file(),
    );
    let (bridge_child, bridge_log) = start(&bridge_root, bridge, bridge_root.dir.path());
    let db = bridge_root.path("/var/lib/itsm-bridge/demo/bridge.db");
    wait_until("the demo links tickets", Duration::from_secs(90), || {
        let out = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(["links", "--json", "--db", db.to_str().unwrap()])
            .output()
            .unwrap();
        // 30 Defender incidents to Jira, Sentinel's 10 to ServiceNow and to the
        // helpdesk; the seeds merged or resolved before a first sync get no ticket.
        out.status.success() && stdout(&out).lines().count() == 27 + 9 + 9
    });
    stop(bridge_child);
    stop(sims_child);
    let logs = std::fs::read_to_string(&bridge_log).unwrap();
    assert!(
        logs.lines()
            .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok()),
        "JSON logs as the service's environment asks:\n{logs}"
    );
    let sims_said = std::fs::read_to_string(&sims_log).unwrap();
    assert!(!sims_said.contains("error"), "{sims_said}");
    let out = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["ledger", "verify", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
