//! The composition root: clap types, one function per subcommand, and the only place that
//! prints to stdout. Library modules return values and log through `tracing`.

mod human;
mod lifecycle;
mod medium;
mod mount;
mod ops;
mod progress;
mod sdnotify;
mod snapshot;

use crate::config::{self, Config};
use crate::engine::Outcome;
use crate::sync::{self, SyncRequest};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_does_not_repeat_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io).context("key file /x: No such file or directory").context("sync");
        assert_eq!(super::one_line(&e), "sync: key file /x: No such file or directory");
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "pmirror-fs",
    version,
    about = "Mirror Proxmox/Debian apt repositories into verified, deduplicated snapshots served through FUSE"
)]
pub struct Cli {
    /// Configuration file [default: $PMIRROR_FS_CONFIG or /etc/pmirror-fs/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync all mirrors, or the named ones: verify upstream, fill the pool, publish snapshots
    Sync {
        /// Mirror ids (default: all)
        ids: Vec<String>,
        /// Re-hash reused pool objects and re-download damaged ones
        #[arg(long)]
        verify: bool,
        /// Print what would be fetched and reused; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the run report as JSON
        #[arg(long)]
        json: bool,
        /// Publish new snapshots even when they drop more than [sync] max-shrink of the published ones
        #[arg(long)]
        allow_shrink: bool,
    },
    /// Serve the catalog as a read-only FUSE tree at MOUNTPOINT
    Mount {
        /// Empty directory to mount the view on (the packaged units use /srv/pmirror-fs)
        mountpoint: PathBuf,
        /// Let every user (nginx's www-data workers) read the mount [default when run as root]
        #[arg(long, conflicts_with = "private")]
        allow_other: bool,
        /// Only the mounting user may read the mount (nginx's workers cannot)
        #[arg(long)]
        private: bool,
        /// Mount over a directory that holds files, hiding them until the unmount
        #[arg(long)]
        nonempty: bool,
        /// Stay in the foreground (systemd Type=notify/simple); default: detach once mounted
        #[arg(long)]
        foreground: bool,
        /// Serve this store or offline medium instead of [store] dir (a medium read-only: no
        /// lock, no migration, nothing written to it)
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// Inspect and manage snapshots
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// State of every mirror: last run, published snapshot, last error
    Status {
        /// Print the rows as JSON in tunasync's shape (docs/status.schema.json)
        #[arg(long)]
        json: bool,
    },
    /// Check or show the configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Generate the man pages or shell completions
    #[command(subcommand)]
    Gen(ops::GenCmd),
    /// Delete pool objects no retained snapshot references (and none inside the grace window)
    Gc {
        /// Print what would be deleted; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the counts (objects, bytes, catalog rows, kept, missing) as JSON
        #[arg(long)]
        json: bool,
    },
    /// Re-hash pool objects (of the named mirrors, or all); report damage by path; exit 1 on damage
    Verify {
        /// Mirror or tree ids whose objects to re-hash (default: all)
        ids: Vec<String>,
        /// Print the report (counts and every damaged object with its paths) as JSON
        #[arg(long)]
        json: bool,
        /// Re-hash this store or offline medium instead of [store] dir, writing nothing to it
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// Offline media for air-gapped clusters: write, inspect, import, apt sources
    #[command(subcommand)]
    Medium(medium::MediumCmd),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration, and parse every key file as the keyring sync reads
    Check,
    /// Print the configuration with defaults filled in
    Show,
    /// Convert a proxmox-offline-mirror config into pmirror-fs TOML
    Import(ops::ImportArgs),
    /// Add a Proxmox or Debian repository from a preset (or a guided setup on a terminal)
    Add(ops::AddArgs),
}

/// Parses arguments, runs the command, maps errors to a one-line message and exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Mount { .. }) {
        die_on_closed_stdout();
    }
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pmirror-fs: {}", one_line(&e));
            1
        }
    }
}

/// `pmirror-fs snapshot show … | head`: once the reader has gone, the next write to stdout kills
/// the process with SIGPIPE, quietly, as it does `cat` and `grep` (the shell sees status 141).
/// Rust starts programs with SIGPIPE ignored, which turns that write into an error `println!`
/// panics on. Restoring the default here covers every command's output (and clap_complete's,
/// which panics on write errors too) without a check at each print.
///
/// Not for `mount`: the daemon keeps SIGPIPE ignored, so a write to a pipe or socket whose reader
/// has gone (the parent waiting for readiness, a client) is an error it handles, not its death.
/// Network writes need no exemption: std's sockets send with `MSG_NOSIGNAL`.
fn die_on_closed_stdout() {
    // SAFETY: called at startup before any other thread exists; SIG_DFL installs no handler, so
    // no Rust code runs in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `error: context: cause: cause` on one line (cron mails and journald lines stay readable).
/// A cause whose text its parent already shows (thiserror's `{source}` in the message) is not
/// repeated.
fn one_line(e: &anyhow::Error) -> String {
    crate::engine::one_line(e.as_ref())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // Default: warnings and errors only; the summary goes to stdout. RUST_LOG=info for detail.
    let filter = EnvFilter::try_from_env("PMIRROR_FS_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    crate::status::set_schedule(ops::next_schedule);
    let path = config::resolve_path(cli.config.as_deref());
    let load = || Config::load(&path).map_err(anyhow::Error::from);
    match cli.command {
        Command::Sync { ids, verify, dry_run, json, allow_shrink } => {
            cmd_sync(&load()?, SyncRequest { ids, verify, allow_shrink }, dry_run, json)
        }
        Command::Mount { mountpoint, allow_other, private, nonempty, foreground, store } => {
            let config = match store {
                Some(dir) => medium::config_for_store(&path, &dir)?,
                None => load()?,
            };
            mount::run(&config, &mountpoint, mount::Switches { allow_other, private, nonempty, foreground })
        }
        Command::Medium(cmd) => medium::run(&load, cmd),
        Command::Snapshot(cmd) => snapshot::run(&load()?, cmd),
        Command::Status { json } => ops::status(&load()?, json),
        Command::Gen(cmd) => ops::gen(&cmd),
        Command::Config(ConfigCmd::Import(args)) => ops::import(&args),
        Command::Config(ConfigCmd::Add(args)) => ops::add(&path, &args),
        Command::Gc { dry_run, json } => lifecycle::gc(&load()?, dry_run, json),
        Command::Verify { ids, json, store: None } => lifecycle::verify(&load()?, &ids, json),
        Command::Verify { ids, json, store: Some(dir) } => lifecycle::verify_store(&dir, &ids, json),
        Command::Config(ConfigCmd::Check) => ops::check(&load()?),
        Command::Config(ConfigCmd::Show) => {
            // The normalized rendering holds every entry: one that cannot run has nothing to show.
            let config = load()?;
            config.require_usable()?;
            print!("{}", config.to_toml());
            Ok(0)
        }
    }
}

/// `sync`: the run, or with `--dry-run` only the plans (the library's preview), printed.
fn cmd_sync(config: &Config, request: SyncRequest, dry_run: bool, json: bool) -> anyhow::Result<i32> {
    let tty = std::io::stderr().is_terminal() && !json;
    let progress = progress::for_terminal(tty);
    let report = if dry_run {
        sync::preview(config, &request, progress.as_ref()).context("sync --dry-run")?
    } else {
        let report = sync::run(config, &request, progress.as_ref()).context("sync")?;
        ops::after_sync(config, &report);
        report
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&human::report_json(&report))?);
    } else {
        for m in &report.mirrors {
            if let Outcome::Planned(plan) = &m.outcome {
                print!("{}", human::plan_lines(plan));
            }
            println!("{}", human::mirror_line(m));
            for w in &m.warnings {
                println!("  warning: {w}");
            }
            if let Some(why) = &m.held {
                println!("  held back: {why}");
            }
        }
        if let Some(g) = report.generation {
            println!("published generation {g}");
        }
        for p in &report.pruned {
            println!("pruned snapshot {p}");
        }
    }
    for m in report.mirrors.iter().filter(|m| m.failed()) {
        if let Outcome::Failed(e) = &m.outcome {
            eprintln!("pmirror-fs: {e}");
        }
    }
    for why in report.mirrors.iter().filter_map(|m| m.held.as_ref()) {
        eprintln!("pmirror-fs: {why}");
    }
    if let Some(e) = &report.publish_error {
        eprintln!("pmirror-fs: {e}");
    }
    Ok(if report.success() { 0 } else { 1 })
}
