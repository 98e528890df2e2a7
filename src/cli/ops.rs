//! Operator commands around the engine: `config import` (proxmox-offline-mirror → TOML),
//! `config add` (Proxmox presets, or a guided setup on a terminal), `status [--json]`, the
//! Prometheus textfile after each sync, and `gen man|completions` from the clap definitions.
//!
//! ```text
//! ops.rs          argument types and one function per command
//! ops/status.rs   systemd timer's next elapse (systemctl), for status and the mount's status.json
//! ops/metrics.rs  node_exporter textfile: render, carry-over, atomic write
//! ops/guided.rs   the interactive dialogue of `config add`
//! ops/man.rs      man pages: clap's sections plus EXIT STATUS, FILES, EXAMPLES; pmirror-fs.toml(5)
//! ```

mod guided;
mod man;
mod man_text;
mod metrics;
mod status;

use super::human;
use crate::apt::signature::Keyring;
use crate::catalog::Catalog;
use crate::config::presets::{self, AddOptions, Added, KeySource, Preset};
use crate::config::{import, Config, ConfigError};
use crate::sync::RunReport;
use anyhow::{bail, Context as _};
use clap::{Args, CommandFactory as _, Subcommand};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

pub use status::next_schedule;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// proxmox-offline-mirror config (usually /etc/proxmox-offline-mirror.cfg)
    pub file: PathBuf,
    /// Write the TOML to FILE instead of stdout (refuses to replace an existing file)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// PRODUCT:SUITE[:CHANNEL], e.g. pve:bookworm:no-subscription, debian:bookworm,
    /// debian:bookworm-security (see --list); without it, a guided setup runs on a terminal
    #[arg(long)]
    pub preset: Option<String>,
    /// List the presets and exit
    #[arg(long, conflicts_with = "preset")]
    pub list: bool,
    /// Mirror id [default: PRODUCT_SUITE, e.g. pve_bookworm, debian_bookworm_updates]
    #[arg(long)]
    pub id: Option<String>,
    /// Upstream base URL instead of the preset's (another mirror with the same layout)
    #[arg(long)]
    pub url: Option<String>,
    /// Release key file [default: /etc/apt/trusted.gpg.d/proxmox-release-SUITE.gpg for Proxmox,
    /// /usr/share/keyrings/debian-archive-keyring.gpg for Debian]
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where the mirror appears in the view [default: the URL's path]
    #[arg(long)]
    pub view: Option<String>,
    /// Architecture to mirror (repeat for several) [default: amd64 and all]
    #[arg(long = "arch", value_name = "ARCH")]
    pub architectures: Vec<String>,
    /// Store directory when the config file does not exist yet [default: /var/lib/pmirror-fs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum GenCmd {
    /// Print the man page pmirror-fs(1), or write it and one page per subcommand into DIR
    Man {
        /// Write pmirror-fs.1, pmirror-fs-COMMAND.1 and pmirror-fs.toml.5 into DIR (created)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the completion script for SHELL
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// `config import FILE [-o OUT]`: the notes (what was not imported) go to stderr.
pub fn import(args: &ImportArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let source = args.file.display().to_string();
    let imported = import::import_pom(&text, &source).with_context(|| source.clone())?;
    for note in &imported.notes {
        eprintln!("pmirror-fs: note: {note}");
    }
    match &args.output {
        None => print!("{}", imported.toml),
        Some(out) => {
            if out.exists() {
                bail!("{} exists; not replacing it", out.display());
            }
            let mode = if imported.subscriptions > 0 { SECRET_MODE } else { PUBLIC_MODE };
            write_file(out, &imported.toml, mode)?;
            eprintln!("pmirror-fs: wrote {} mirrors to {}", imported.mirrors.len(), out.display());
        }
    }
    Ok(0)
}

/// `config check`: the config loads, every key file can be read and holds a keyring that sync's
/// parser accepts (before, a file holding no key passed and sync failed later with "cannot read
/// keyring"), and every `use-subscription` has its key. Each problem is one line on stderr naming
/// the entry, all of them, exit 1.
pub fn check(config: &Config) -> anyhow::Result<i32> {
    let mut bad = 0;
    for u in &config.unusable {
        eprintln!("pmirror-fs: {}", u.error);
        bad += 1;
    }
    let mirrors = config.mirrors.iter().map(|m| ("mirror", &m.id, &m.key, &m.key_bytes));
    let trees = config.trees.iter().filter_map(|t| Some(("tree", &t.id, t.key.as_ref()?, t.key_bytes.as_ref()?)));
    for (kind, id, key, bytes) in mirrors.chain(trees) {
        if let Err(e) = Keyring::from_bytes(bytes) {
            eprintln!("pmirror-fs: {}: {kind} {id:?}: key file {}: {e}", config.path.display(), key.display());
            bad += 1;
        }
    }
    if bad > 0 {
        return Ok(1);
    }
    println!(
        "{}: ok ({} mirrors, {} trees, {} aliases)",
        config.path.display(),
        config.mirrors.len(),
        config.trees.len(),
        config.aliases.len()
    );
    Ok(0)
}

/// `config add`: one preset from the flags, or the guided setup on a terminal.
pub fn add(path: &Path, args: &AddArgs) -> anyhow::Result<i32> {
    if args.list {
        for p in presets::all() {
            println!("{p}");
        }
        return Ok(0);
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (store, requests) = match &args.preset {
        Some(spec) => (args.store.as_ref().map(|s| s.display().to_string()), vec![(spec.parse()?, options(args))]),
        None if std::io::stdin().is_terminal() => {
            let mut dialogue = guided::Dialogue::new(std::io::stdin().lock(), std::io::stdout());
            match dialogue.run(existing.is_some())? {
                Some(answers) => (answers.store, answers.mirrors),
                None => {
                    println!("nothing written");
                    return Ok(1);
                }
            }
        }
        None => bail!("no --preset given, and stdin is not a terminal for the guided setup (see --list)"),
    };
    let unchanged = existing.clone();
    let mut text = existing.unwrap_or_else(|| new_config(store.as_deref()));
    // Printed once the file is written: output cut short (`| head`, SIGPIPE) then cannot stop
    // the write halfway through the command.
    let mut lines = Vec::new();
    for (preset, opts) in &requests {
        let (next, added) = presets::add(&text, preset, opts).with_context(|| preset.spec())?;
        text = next;
        lines.push(match added {
            Added::NewMirror { id } => format!("{}: added mirror {id}", preset.spec()),
            Added::Extended { id, components } => {
                let noun = if components.len() == 1 { "component" } else { "components" };
                format!("{}: added {noun} {} to mirror {id}", preset.spec(), components.join(" "))
            }
            Added::Present { id } => format!("{}: mirror {id} has it already", preset.spec()),
        });
    }
    // Every preset present already: the config is as asked, so rewriting it would only churn
    // the file (mtime, inode). Success, as for `apt install` of an installed package: a script
    // repeating `config add` gets what it wants.
    if unchanged.as_deref() == Some(text.as_str()) {
        for line in &lines {
            println!("{line}");
        }
        println!("{} unchanged; nothing written", path.display());
        return Ok(0);
    }
    check_and_write(path, &text, &requests, &lines)?;
    Ok(0)
}

fn options(args: &AddArgs) -> AddOptions {
    AddOptions {
        id: args.id.clone(),
        url: args.url.clone(),
        key: args.key.as_ref().map(|k| k.display().to_string()),
        view: args.view.clone(),
        architectures: args.architectures.clone(),
    }
}

fn new_config(store: Option<&str>) -> String {
    let dir = toml_edit::Value::from(store.unwrap_or("/var/lib/pmirror-fs")).to_string();
    format!(
        "# pmirror-fs configuration (created by `pmirror-fs config add`); see pmirror-fs(1).\n\n\
         [store]\ndir = {}\n",
        dir.trim()
    )
}

/// Writes the new config when it validates; a key file that does not exist yet only earns a
/// hint (the operator downloads it next), anything else leaves the file untouched.
/// A missing `[[subscription]]` for an enterprise preset is a hint too (on stderr).
fn check_and_write(path: &Path, text: &str, requests: &[(Preset, AddOptions)], lines: &[String]) -> anyhow::Result<()> {
    match Config::parse(text, path) {
        Ok(_) | Err(ConfigError::KeyFile { .. } | ConfigError::NoSubscription { .. }) => {}
        Err(e) => bail!("the new configuration would not load, nothing written: {e}"),
    }
    write_file(path, text, PUBLIC_MODE)?;
    for line in lines {
        println!("{line}");
    }
    println!("wrote {}", path.display());
    for (preset, _) in requests {
        if let Some(product) = presets::missing_subscription(text, preset) {
            eprintln!(
                "pmirror-fs: hint: {} needs a Proxmox subscription: add [[subscription]] with key = \"{product}…\" \
                 and server-id = \"…\" to {} (then chmod 600 it) before syncing",
                preset.spec(),
                path.display()
            );
        }
    }
    for (preset, opts) in requests {
        let key = opts.key.clone().unwrap_or_else(|| preset.key.clone());
        let key = Path::new(&key);
        let key = if key.is_relative() { path.parent().unwrap_or(Path::new(".")).join(key) } else { key.to_owned() };
        if key.exists() {
            continue;
        }
        match &preset.key_source {
            KeySource::Download(url) => {
                println!("key file {} is missing; fetch it and check its checksum:", key.display());
                println!("  wget {url} -O {}", key.display());
            }
            // The package installs its keyring where the preset expects it, not at another path.
            KeySource::Package(package) if key == Path::new(&preset.key) => {
                println!("key file {} is missing; install the package that ships it:", key.display());
                println!("  apt install {package}");
            }
            KeySource::Package(package) => {
                println!("key file {} is missing; copy the keyring package {package} installs there:", key.display());
                println!("  apt install {package} && cp {} {}", preset.key, key.display());
            }
        }
    }
    Ok(())
}

/// Mode of a config file that holds subscription keys.
const SECRET_MODE: u32 = 0o600;
/// Mode of a new config file without secrets (as the package ships it).
const PUBLIC_MODE: u32 = 0o644;

/// Writes `text` beside `path` and renames it into place (creating the directory). The file keeps
/// the mode of the one it replaces (an operator's `chmod 600` survives `config add`); a new one
/// gets `new_mode`. The temporary file is private until it has its final mode.
fn write_file(path: &Path, text: &str, new_mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(path).map_or(new_mode, |m| m.permissions().mode() & 0o7777);
    let mut tmp_name = path.file_name().context("the config path names no file")?.to_owned();
    tmp_name.push(format!(".{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(SECRET_MODE).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::debug!(file = %tmp.display(), error = %e, "no temporary config file to remove");
        }
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// `status [--json]`.
pub fn status(config: &Config, json: bool) -> anyhow::Result<i32> {
    // Before the first sync there is no catalog: every configured entry is `none`.
    let catalog =
        if config.store.dir.join("catalog.db").exists() { Some(Catalog::open(&config.store.dir)?) } else { None };
    let rows = crate::status::rows(config, catalog.as_ref())?;
    let next = status::next_schedule();
    if json {
        println!("{}", crate::status::json(&rows, next));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("{}: no mirrors or trees configured (see `pmirror-fs config add`)", config.path.display());
    }
    for r in &rows {
        println!("{}", human::status_line(r, next));
        for w in r.row.published.iter().flat_map(|s| &s.warnings) {
            println!("  warning: {w}");
        }
    }
    Ok(0)
}

/// After a sync: rewrite the Prometheus textfile when one is configured.
/// Failures are logged, never fatal: the sync itself is what the exit status reports.
pub fn after_sync(config: &Config, report: &RunReport) {
    let Some(path) = config.store.metrics_textfile.as_deref() else { return };
    if let Err(e) = write_metrics(config, path, report) {
        tracing::warn!(file = %path.display(), error = %super::one_line(&e), "cannot write the metrics textfile");
    }
}

fn write_metrics(config: &Config, path: &Path, report: &RunReport) -> anyhow::Result<()> {
    let catalog = Catalog::open(&config.store.dir)?;
    // A removed entry is no longer monitored: its old failure must not page anyone forever.
    let rows: Vec<_> = crate::status::rows(config, Some(&catalog))?
        .into_iter()
        .filter(|r| r.config != crate::status::InConfig::Removed)
        .map(|r| r.row)
        .collect();
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context("reading the previous textfile"),
    };
    let pool = metrics::pool_stats(&config.store.dir).context("measuring the pool")?;
    metrics::write_atomic(path, &metrics::render(&rows, report, &previous, pool))?;
    Ok(())
}

/// `gen man [--dir DIR]` and `gen completions SHELL`.
pub fn gen(cmd: &GenCmd) -> anyhow::Result<i32> {
    let mut cli = super::Cli::command();
    match cmd {
        GenCmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli, "pmirror-fs", &mut std::io::stdout())
        }
        GenCmd::Man { dir: None } => man::print_main(cli)?,
        GenCmd::Man { dir: Some(dir) } => man::write_pages(cli, dir)?,
    }
    Ok(0)
}
