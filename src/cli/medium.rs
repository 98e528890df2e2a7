//! `pmirror-fs medium …`: offline media for air-gapped clusters — sync (write), status, diff on
//! the connected side; import and sources on the offline side (`mount --store` and `verify
//! --store` read a medium too).

use crate::config::{Config, MediumConfig};
use crate::medium::plan::MediumPlan;
use crate::medium::{self, import, sources, write, Medium};
use crate::status::size;
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum MediumCmd {
    /// Write the medium ID: exactly the snapshots its [[medium]] picks, incrementally and atomically
    Sync {
        /// The [[medium]]'s id
        id: String,
        /// Re-hash the objects already on the medium and write damaged ones again
        #[arg(long)]
        verify: bool,
        /// Write a new medium into a directory that is not a mount point
        #[arg(long)]
        init: bool,
        /// The pmirror-fs .deb to put on the medium [default: this version's in /var/cache/apt/archives]
        #[arg(long, value_name = "FILE")]
        deb: Option<PathBuf>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// What a medium holds: snapshots, size, when it was written (a [[medium]] id, or a path)
    Status {
        /// The [[medium]]'s id, or the directory a medium is mounted on
        medium: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
    /// What `medium sync ID` would add and remove (snapshots, files, bytes); writes nothing
    Diff {
        /// The [[medium]]'s id
        id: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
    /// Copy a medium's snapshots into the local store (verified) and publish them
    Import {
        /// The directory the medium is mounted on
        path: PathBuf,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print deb822 .sources for the hosts an offline mirror serves (one stanza per apt mirror)
    Sources {
        /// A medium, or a store that imported one
        path: PathBuf,
        /// Where the hosts reach the mirror: http://mirror.example, or file:///srv/pmirror-fs
        #[arg(long, value_name = "URL")]
        base_url: String,
        /// The directory Signed-By names (where the hosts keep the keys)
        #[arg(long, value_name = "DIR", default_value = "/etc/apt/keyrings")]
        key_dir: PathBuf,
        /// Write <DIR>/pmirror-fs-<mirror>.sources and its key instead of printing the stanzas
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

pub fn run(load: &dyn Fn() -> anyhow::Result<Config>, cmd: MediumCmd) -> anyhow::Result<i32> {
    match cmd {
        MediumCmd::Sync { id, verify, init, deb, json } => {
            let config = load()?;
            let medium = configured(&config, &id)?;
            let report = write::sync(&config, medium, &write::SyncOptions { verify, init, deb })?;
            print_sync(&report, json)?;
        }
        MediumCmd::Status { medium, json } => {
            // A path (the offline side has no [[medium]]), or a configured id, checked as sync checks it.
            let dir = match medium.contains('/') || Path::new(&medium).is_dir() {
                true => PathBuf::from(&medium),
                false => {
                    let config = load()?;
                    let configured = configured(&config, &medium)?;
                    write::check_configured(configured)?;
                    configured.path.clone()
                }
            };
            print_status(&Medium::open(&dir)?.status()?, json)?;
        }
        MediumCmd::Diff { id, json } => {
            let config = load()?;
            let plan = write::diff(&config, configured(&config, &id)?)?;
            print_diff(&id, &plan, json)?;
        }
        MediumCmd::Import { path, json } => print_import(&import::import(&load()?, &path)?, json)?,
        MediumCmd::Sources { path, base_url, key_dir, output } => {
            let files = sources::sources(&path, &base_url, &key_dir)?;
            if files.is_empty() {
                anyhow::bail!("{}: no apt mirror with a published snapshot", path.display());
            }
            match output {
                Some(out) => {
                    for p in sources::write(&out, &files)? {
                        println!("wrote {}", p.display());
                    }
                }
                None => print!("{}", files.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join("\n")),
            }
        }
    }
    Ok(0)
}

fn configured<'a>(config: &'a Config, id: &str) -> anyhow::Result<&'a MediumConfig> {
    config.media.iter().find(|m| m.id == id).ok_or_else(|| {
        let known: Vec<&str> = config.media.iter().map(|m| m.id.as_str()).collect();
        anyhow::anyhow!("{}: no [[medium]] with id {id:?} (configured: {})", config.path.display(), known.join(", "))
    })
}

fn pair((n, bytes): (u64, u64)) -> serde_json::Value {
    json!({ "files": n, "bytes": bytes })
}

fn print_sync(r: &write::SyncReport, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let snapshots: Vec<_> = r.snapshots.iter().map(|(s, p)| json!({ "snapshot": s, "published": p })).collect();
        let doc = json!({
            "medium": r.id, "path": r.path, "generation": r.generation, "snapshots": snapshots,
            "copied": pair(r.copied), "kept": pair(r.kept), "repaired": r.repaired, "removed": pair(r.removed),
            "written_bytes": r.written, "deb": r.deb, "elapsed_secs": r.elapsed.as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for (s, published) in &r.snapshots {
        println!("  {s}{}", if *published { " (published)" } else { "" });
    }
    println!(
        "medium {} at {}: generation {}; copied {} objects ({}), kept {} ({}), removed {} ({}){}; {} written in {:.1}s",
        r.id,
        r.path.display(),
        r.generation,
        r.copied.0,
        size(r.copied.1),
        r.kept.0,
        size(r.kept.1),
        r.removed.0,
        size(r.removed.1),
        if r.repaired > 0 { format!(", {} damaged ones written again", r.repaired) } else { String::new() },
        size(r.written),
        r.elapsed.as_secs_f64()
    );
    if r.deb.is_none() {
        println!("  note: no pmirror-fs .deb is on the medium (`--deb FILE` puts one there)");
    }
    Ok(())
}

fn print_status(s: &medium::MediumStatus, as_json: bool) -> anyhow::Result<()> {
    let synced = crate::status::tunasync_time(s.synced_at).0;
    if as_json {
        let snapshots: Vec<_> = s
            .snapshots
            .iter()
            .map(|r| json!({"mirror": r.mirror_id, "name": r.name, "published": r.published, "files": r.files, "bytes": r.bytes}))
            .collect();
        let doc = json!({
            "medium": s.marker.id, "path": s.dir, "created_at": s.marker.created_at, "synced_at": s.synced_at,
            "generation": s.generation, "snapshots": snapshots, "objects": s.objects, "bytes": s.bytes,
            "free_bytes": s.free, "keys": s.keys, "deb": s.deb,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("medium {} at {}: written {synced}, generation {}", s.marker.id, s.dir.display(), s.generation);
    for r in &s.snapshots {
        let mark = if r.published { " (published)" } else { "" };
        println!("  {}/{}{mark}: {} files, {}", r.mirror_id, r.name, r.files, size(r.bytes));
    }
    let free = s.free.map(|f| format!(", {} free", size(f))).unwrap_or_default();
    println!("  {} objects, {}{free}", s.objects, size(s.bytes));
    println!("  keys: {}", if s.keys.is_empty() { "none".to_owned() } else { s.keys.join(", ") });
    println!("  package: {}", s.deb.as_deref().unwrap_or("none"));
    Ok(())
}

fn print_diff(id: &str, p: &MediumPlan, as_json: bool) -> anyhow::Result<()> {
    let add = (p.add.len() as u64, p.add_bytes());
    let remove = (p.remove.len() as u64, p.remove_bytes());
    if as_json {
        let doc = json!({
            "medium": id, "snapshots_added": p.snapshots_added, "snapshots_removed": p.snapshots_removed,
            "add": pair(add), "remove": pair(remove),
            "total": pair((p.objects.len() as u64, p.total_bytes())),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for s in &p.snapshots_added {
        println!("+ {s}");
    }
    for s in &p.snapshots_removed {
        println!("- {s}");
    }
    println!(
        "medium {id}: would add {} files ({}), remove {} files ({}); it would hold {} files ({}){}",
        add.0,
        size(add.1),
        remove.0,
        size(remove.1),
        p.objects.len(),
        size(p.total_bytes()),
        if p.is_noop() { "; up to date" } else { "" }
    );
    Ok(())
}

fn print_import(r: &import::ImportReport, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let doc = json!({
            "medium": r.id, "added": r.added, "present": r.present, "copied": pair(r.copied),
            "already_in_pool": r.already, "published": r.published, "kept_newer": r.kept_newer, "held": r.held,
            "pruned": r.pruned, "generation": r.generation, "elapsed_secs": r.elapsed.as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for s in &r.added {
        println!("+ {s}");
    }
    for s in &r.published {
        println!("published {s}");
    }
    for s in &r.kept_newer {
        println!("kept {s} published (newer than the medium's)");
    }
    for m in &r.held {
        println!("{m} is pinned: its imported snapshot is recorded, not published (`snapshot unpin {m}`)");
    }
    for p in &r.pruned {
        println!("pruned snapshot {p}");
    }
    let generation = r.generation.map(|g| format!("; published generation {g}")).unwrap_or_default();
    println!(
        "imported medium {}: {} snapshots added, {} already here; {} objects copied ({}), {} already in the pool{generation}",
        r.id,
        r.added.len(),
        r.present.len(),
        r.copied.0,
        size(r.copied.1),
        r.already
    );
    Ok(())
}

/// The config `mount --store` and `verify --store` run with: the one at `path` when it loads,
/// with `[store] dir` replaced; else (an offline host that has none) an empty one.
pub fn config_for_store(path: &Path, store: &Path) -> anyhow::Result<Config> {
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(crate::config::ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let text = format!("[store]\ndir = {:?}\n", store.display().to_string());
            Config::parse(&text, path)?
        }
        Err(e) => return Err(e.into()),
    };
    let store = std::path::absolute(store)?;
    if !medium::is_medium(&store) && !store.join("catalog.db").is_file() {
        anyhow::bail!("{}: neither a medium nor a store (is the medium mounted?)", store.display());
    }
    config.store.dir = store;
    Ok(config)
}
