//! The `itsm-bridge` command line: argument parsing, wiring and exit codes. No sync
//! logic lives here; it loads the config, builds the connectors, opens the store
//! and hands them to `bridge-core`'s engine.
//!
//! Exit codes: 0 success, 1 a runtime failure, 2 bad input (config, mapping, arguments).

mod cmd;
mod dashboard;
mod logging;
mod output;
mod reload;
mod replicas;
mod report;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use bridge_core::config::LogFormat;
use clap::{Parser, Subcommand, ValueEnum};

/// Keeps Microsoft Defender XDR / Sentinel incidents and ITSM tickets in step.
#[derive(Debug, Parser)]
#[command(name = "itsm-bridge", version, about)]
struct Cli {
    /// Log lines as text, or one JSON object per line (default: the
    /// ITSM_BRIDGE_LOG_FORMAT variable, then `run`'s [log] format, then text).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole job on the built-in simulators: no setup, no network.
    Demo {
        /// Where the demo's database goes (its config and CA are written beside it).
        #[arg(long, default_value = "itsm-bridge-demo/demo.db")]
        db: PathBuf,
    },
    /// Run the bridge: every [[sync]] pair on its schedule, and each pair's
    /// drift-repair sweep on its own.
    Run {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
        /// Run each pair once and exit.
        #[arg(long)]
        once: bool,
        /// Plan and print, write nothing (implies --once).
        #[arg(long)]
        dry_run: bool,
        /// After each pair's cycle, sweep it now: re-read both sides of every
        /// open link and repair what drifted (implies --once).
        #[arg(long)]
        sweep: bool,
    },
    /// Validate the config and its mapping files; exit 2 on any problem.
    Check {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Try each source and ticket system with read-only requests and explain what
    /// fails (credentials, permissions, names); exit 1 if a check fails, 2 on a bad config.
    Doctor {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Show the mapping table: which incident is linked to which ticket.
    Links {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
    /// List, export or verify the sync ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerCommand,
    },
    /// Serve the simulators on loopback until interrupted (0 picks a free port).
    Sim {
        #[arg(long, default_value_t = 0)]
        graph: u16,
        #[arg(long, default_value_t = 0)]
        sentinel: u16,
        #[arg(long, default_value_t = 0)]
        servicenow: u16,
        #[arg(long, default_value_t = 0)]
        jira: u16,
        #[arg(long, default_value_t = 0)]
        generic: u16,
        /// The Entra ID token endpoint (TLS).
        #[arg(long, default_value_t = 0)]
        login: u16,
        /// Seed this many incidents in Defender and a third as many in Sentinel.
        #[arg(long, default_value_t = 60)]
        incidents: usize,
        /// Write a ready-to-run bridge.toml (and its CA, secrets and mappings) into this directory.
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
    /// GET one of a running bridge's endpoints (its /livez, say); exit 0 on a 2xx
    /// answer, 1 otherwise: a container healthcheck with no shell or curl.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/livez")]
        url: String,
    },
    /// Manage the store itself.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// Try a mapping file without a tenant: what it would make of a sample incident.
    Mapping {
        #[command(subcommand)]
        action: MappingCommand,
    },
    /// Print speed figures measured on the simulators (nothing is asserted).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy an SQLite store (links, baselines, watermarks, outbox, dead letters,
    /// synced comments, ledger) into an empty PostgreSQL store; the ledger
    /// verifies there with the same head. The password, if any, is read from
    /// PGPASSWORD; the CA bundle `sslmode=verify-ca`/`verify-full` trusts, if
    /// not the system's, from PGSSLROOTCERT.
    Migrate {
        /// The SQLite store (`[store] path`); refused while a daemon uses it.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL store: postgres://user@host:port/db (no password in it).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum MappingCommand {
    /// Print the ticket fields the bridge would create for a sample incident
    /// and what it would write back to it. The sample is an incident as the
    /// Graph or Sentinel API returns it (or a listing page of them), per the
    /// mapping's `source`.
    Render {
        /// The mapping TOML.
        #[arg(long)]
        mapping: PathBuf,
        /// The sample incident (JSON).
        #[arg(long)]
        incident: PathBuf,
        /// The `[[source]]` name templates see as {source} (default: the mapping's source kind).
        #[arg(long)]
        source: Option<String>,
        /// The ticket key the write-back is rendered for.
        #[arg(long, default_value = "<ticket key>")]
        ticket_key: String,
        /// The ticket URL the write-back is rendered for.
        #[arg(long, default_value = "<ticket url>")]
        ticket_url: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Against every existing link, from the stored baselines and with no
    /// remote call, what a new mapping would change: counts per field and per
    /// value transition, a sample of links, and the remote writes it causes.
    Impact {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
        /// The edited mapping TOML.
        #[arg(long)]
        mapping: PathBuf,
        /// Only this pair (`<source>-><ticket_system>`); default: every pair
        /// whose mapping is for the same source and ticket kinds.
        #[arg(long)]
        pair: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Let the running daemon apply a mapping edit it holds because it would
    /// rewrite more than [mapping] max_rewrites (the files as they are now).
    Accept {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// 429s and throughput against throttling simulators, with the bridge's own
    /// rate limiter off and on.
    Throttle {
        /// Incidents seeded per scenario.
        #[arg(long, default_value_t = 30)]
        incidents: usize,
        /// The simulated Jira site's burst limit, requests per second.
        #[arg(long, default_value_t = 10)]
        jira_limit: u32,
        /// Run one scenario only.
        #[arg(long, value_enum)]
        only: Option<cmd::bench::Scenario>,
    },
    /// API calls per incident, per pair and phase (first sync, echo, one-field
    /// updates, quiet), counted from the simulators' request logs.
    Calls {
        /// Defender incidents seeded; Sentinel gets three fifths as many.
        #[arg(long, default_value_t = 100)]
        incidents: usize,
        /// Also break down the quiet cycle's requests.
        #[arg(long)]
        detail: bool,
    },
    /// A backlog's first sync against a Graph simulator paced at a limit, timed
    /// against the bound its calls per incident set; then with a share of 429s.
    Backfill {
        #[arg(long, default_value_t = 100)]
        incidents: usize,
        /// The Graph limit, calls a minute (the simulator's and the bridge's pace).
        #[arg(long, default_value_t = 600)]
        per_minute: u32,
        /// The share of Graph calls refused with 429 in the second run (0: none).
        #[arg(long, default_value_t = 0.1)]
        refused: f64,
    },
    /// The daemon's resident memory with a store of N links (and at a quarter
    /// and half of N), with the growth per 10,000 links.
    Memory {
        #[arg(long, default_value_t = 100_000)]
        links: usize,
    },
    /// From an edit on Graph to its arrival on the Jira issue, with N open links
    /// and a steady rate of edits while the pair cycles every interval.
    Latency {
        #[arg(long, default_value_t = 1_000)]
        links: usize,
        /// Edits a second.
        #[arg(long, default_value_t = 10)]
        per_second: u32,
        /// How long edits are made, seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The pair's schedule interval, seconds.
        #[arg(long, default_value_t = 10)]
        interval: u64,
    },
    /// Time the pure reconcile over a large synthetic link table.
    Reconcile {
        #[arg(long, default_value_t = 100_000)]
        links: usize,
    },
    /// `ledger export`'s speed and peak memory on ledgers of a tenth of
    /// --rows and of --rows entries: streamed, the peak stays flat.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Bench on this PostgreSQL database (postgres://user@host:port/db), in
        /// schemas of its own that are dropped afterwards, instead of SQLite.
        #[arg(long, value_name = "URL")]
        pg: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
struct DbArgs {
    /// Read the database named by this config's [store] path.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read this database file.
    #[arg(long)]
    db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Print ledger entries, oldest first.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        filter: cmd::ledger::FilterArgs,
        /// Only the newest N entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write the entries with their hashes, for auditors, streamed: any length
    /// of ledger in constant memory.
    Export {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        filter: cmd::ledger::FilterArgs,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Re-compute the hash chain; exit 1 if any entry was altered, removed or reordered.
    /// With --checkpoint or --expect-head, also detect a ledger cut short or re-hashed.
    Verify {
        #[command(flatten)]
        db: DbArgs,
        /// A checkpoint file (`ledger checkpoint` writes them): the ledger must
        /// still hold the entries it signed, unchanged. May be given several times.
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// A head hash written down earlier (`ledger verify` prints it): some
        /// entry must still have it. May be given several times.
        #[arg(long, value_name = "HASH")]
        expect_head: Vec<String>,
        /// The public key (64 hex digits) or key id the checkpoints must be signed with.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
    },
    /// Sign the ledger's head now with [ledger] signing_key and write the
    /// checkpoint into [ledger] checkpoint_dir.
    Checkpoint {
        #[arg(long, default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Make a new Ed25519 signing key for checkpoints (PKCS#8 PEM, owner-only).
    Keygen {
        /// The key file to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
enum Failure {
    /// Bad input: exit 2.
    Input(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<bridge_core::store::StoreError> for Failure {
    /// A file that is not an itsm-bridge store is bad input (exit 2); anything
    /// else the store says is a runtime failure.
    fn from(e: bridge_core::store::StoreError) -> Self {
        match e {
            bridge_core::store::StoreError::NotAStore(message) => {
                Failure::Input(format!("error: {message}"))
            }
            bridge_core::store::StoreError::Config(message) => {
                Failure::Input(format!("error: {message}"))
            }
            e => Failure::Runtime(e.into()),
        }
    }
}

type CmdResult = Result<ExitCode, Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The demo and the benches tell their own story on stdout; their logs stay quiet
    // unless asked for.
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Bench { .. });
    match log_format(&cli) {
        Ok(format) => logging::init(format, quiet),
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    match result {
        Ok(code) => code,
        Err(Failure::Input(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes, joined by ": " as `{:#}` joins them, except that a
/// cause the error above it already quotes is not said again (`StoreError`
/// quotes its rusqlite or io error and keeps it as its `source` too).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        let said = cause.to_string();
        text.push_str(&said);
        if cause
            .source()
            .is_some_and(|source| said.contains(&source.to_string()))
        {
            break;
        }
    }
    text
}

async fn dispatch(command: Command) -> CmdResult {
    match command {
        Command::Demo { db } => cmd::demo::run(&db).await,
        Command::Run {
            config,
            once,
            dry_run,
            sweep,
        } => cmd::run::run(&config, once || dry_run || sweep, dry_run, sweep).await,
        Command::Check { config } => cmd::check::run(&config),
        Command::Health { url } => cmd::health::run(&url),
        Command::Doctor { config } => cmd::doctor::run(&config).await,
        Command::Store {
            action: StoreCommand::Migrate { from, to },
        } => cmd::store::migrate(&from, &to),
        Command::Mapping {
            action:
                MappingCommand::Render {
                    mapping,
                    incident,
                    source,
                    ticket_key,
                    ticket_url,
                    json,
                },
        } => cmd::mapping::render(
            &mapping,
            &incident,
            &cmd::mapping::RenderOptions {
                source,
                ticket_key,
                ticket_url,
                json,
            },
        ),
        Command::Mapping {
            action:
                MappingCommand::Impact {
                    config,
                    mapping,
                    pair,
                    json,
                },
        } => cmd::mapping::impact(
            &config,
            &mapping,
            &cmd::mapping::ImpactOptions { pair, json },
        ),
        Command::Mapping {
            action: MappingCommand::Accept { config },
        } => cmd::mapping::accept(&config),
        Command::Links { db, json } => cmd::links::run(&db.resolve()?, json),
        Command::Ledger { action } => match action {
            LedgerCommand::List { db, filter, limit } => {
                cmd::ledger::list(&db.resolve()?, filter.with_limit(limit))
            }
            LedgerCommand::Export { db, filter, format } => cmd::ledger::export(
                &db.resolve()?,
                &filter.with_limit(None),
                matches!(format, Format::Csv),
            ),
            LedgerCommand::Verify {
                db,
                checkpoint,
                expect_head,
                public_key,
            } => cmd::ledger::verify(
                &db.resolve()?,
                &checkpoint,
                &expect_head,
                public_key.as_deref(),
            ),
            LedgerCommand::Checkpoint { config } => cmd::ledger::checkpoint(&config),
            LedgerCommand::Keygen { out } => cmd::ledger::keygen(&out),
        },
        Command::Sim {
            graph,
            sentinel,
            servicenow,
            jira,
            generic,
            login,
            incidents,
            write_config,
        } => {
            let ports = cmd::sim::Ports {
                login,
                graph,
                sentinel,
                jira,
                servicenow,
                generic,
                ..Default::default()
            };
            cmd::sim::run(ports, incidents, write_config).await
        }
        Command::Bench { what } => match what {
            BenchCommand::Throttle {
                incidents,
                jira_limit,
                only,
            } => cmd::bench::throttle(incidents, jira_limit, only).await,
            BenchCommand::Reconcile { links } => cmd::bench::reconcile(links),
            BenchCommand::Export { rows, pg } => cmd::bench_export::run(rows, pg.as_deref()),
            BenchCommand::Memory { links } => cmd::bench::memory(links).await,
            BenchCommand::Latency {
                links,
                per_second,
                seconds,
                interval,
            } => cmd::bench::latency(links, per_second, seconds, interval).await,
            BenchCommand::Backfill {
                incidents,
                per_minute,
                refused,
            } => cmd::bench::backfill(incidents, per_minute, refused).await,
            BenchCommand::Calls { incidents, detail } => cmd::bench::calls(incidents, detail).await,
        },
    }
}

impl DbArgs {
    /// The store: the file `--db`, or the `[store]` of `--config` (default
    /// bridge.toml), a file or a PostgreSQL database.
    fn resolve(&self) -> Result<replicas::StoreAt, Failure> {
        if let Some(db) = &self.db {
            return Ok(replicas::StoreAt::Sqlite(db.clone()));
        }
        let config = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("bridge.toml"));
        let config = cmd::load_config(&config)?;
        replicas::StoreAt::of(&config)
    }
}

/// `--log-format`, else `ITSM_BRIDGE_LOG_FORMAT`, else for `run` its config's
/// `[log] format` (a config that does not load is left for `run` to report),
/// else text.
fn log_format(cli: &Cli) -> Result<LogFormat, String> {
    if let Some(format) = cli.log_format {
        return Ok(match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        });
    }
    if let Some(format) = logging::format_from_env()? {
        return Ok(format);
    }
    Ok(match &cli.command {
        Command::Run { config, .. } => bridge_core::config::load(config)
            .map(|config| config.log.format)
            .unwrap_or_default(),
        _ => LogFormat::Text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_said_once_though_it_keeps_its_cause() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::from(bridge_core::store::StoreError::Io(io))
            .context("cannot record the cycle");
        assert_eq!(
            error_text(&e),
            "cannot record the cycle: database file error: disk full"
        );
    }
}
