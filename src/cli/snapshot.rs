//! `pmirror-fs snapshot …`: list, show, publish (instant rollback / roll-forward), remove.

use super::human::size;
use crate::catalog::{Catalog, Retention};
use crate::config::Config;
use crate::sync::unix_now;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List snapshots (of one mirror, or all)
    List {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the files of one snapshot
    Show { id: String, snapshot: String },
    /// Publish a snapshot (rollback or roll-forward), atomically
    Publish { id: String, snapshot: String },
    /// Remove a snapshot that is not published
    Remove { id: String, snapshot: String },
}

pub fn run(config: &Config, cmd: SnapshotCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCmd::List { id, json } => list(config, id.as_deref(), json),
        SnapshotCmd::Show { id, snapshot } => show(config, &id, &snapshot),
        SnapshotCmd::Publish { id, snapshot } => publish(config, &id, &snapshot),
        SnapshotCmd::Remove { id, snapshot } => {
            let _lock = crate::pool::StoreLock::acquire(&config.store.dir)?;
            Catalog::open(&config.store.dir)?.remove_snapshot(&id, &snapshot)?;
            println!("{id}: removed snapshot {snapshot}");
            Ok(0)
        }
    }
}

fn list(config: &Config, id: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let catalog = Catalog::open(&config.store.dir)?;
    let rows = catalog.snapshots(id)?;
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|s| {
                serde_json::json!({"mirror": s.mirror_id, "name": s.name, "published": s.published,
                                   "files": s.files, "bytes": s.bytes, "superseded_at": s.superseded_at})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for s in &rows {
        let mark = if s.published { "*" } else { " " };
        println!("{mark} {} {} {} files {}", s.mirror_id, s.name, s.files, size(s.bytes));
    }
    Ok(0)
}

fn show(config: &Config, id: &str, name: &str) -> anyhow::Result<i32> {
    let catalog = Catalog::open(&config.store.dir)?;
    let view = catalog.load_view(unix_now(), config.sync.grace.as_secs() as i64)?;
    let snap = view
        .snapshots
        .iter()
        .find(|s| s.mirror_id == id && s.name == name)
        .ok_or_else(|| anyhow::anyhow!("{id}: no snapshot named {name}"))?;
    for e in &snap.entries {
        let o = &view.objects[e.object as usize];
        println!("{} {:>10} {}", o.sha256, o.size, e.path);
    }
    Ok(0)
}

fn publish(config: &Config, id: &str, name: &str) -> anyhow::Result<i32> {
    let _lock = crate::pool::StoreLock::acquire(&config.store.dir)?;
    let mut catalog = Catalog::open(&config.store.dir)?;
    let snap = catalog.snapshot_id(id, name)?.ok_or_else(|| anyhow::anyhow!("{id}: no snapshot named {name}"))?;
    let retention = Retention { keep: config.sync.keep, grace_secs: config.sync.grace.as_secs() as i64 };
    let out = catalog.publish(&[snap], unix_now(), retention, crate::sync::view_check(config))?;
    println!("{id}: published {name} (generation {})", out.generation);
    Ok(0)
}
