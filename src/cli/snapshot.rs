//! `pmirror-fs snapshot …`: list, show, diff, publish (instant rollback / roll-forward), remove.

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
    /// What changed from snapshot A to B: packages per component/architecture, or tree files
    Diff {
        id: String,
        a: String,
        b: String,
        #[arg(long)]
        json: bool,
    },
    /// Publish a snapshot (rollback or roll-forward), atomically
    Publish { id: String, snapshot: String },
    /// Remove a snapshot that is not published
    Remove { id: String, snapshot: String },
}

pub fn run(config: &Config, cmd: SnapshotCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCmd::List { id, json } => super::lifecycle::list(config, id.as_deref(), json),
        SnapshotCmd::Show { id, snapshot } => show(config, &id, &snapshot),
        SnapshotCmd::Diff { id, a, b, json } => super::lifecycle::diff(config, &id, &a, &b, json),
        SnapshotCmd::Publish { id, snapshot } => publish(config, &id, &snapshot),
        SnapshotCmd::Remove { id, snapshot } => {
            let _lock = crate::pool::StoreLock::acquire(&config.store.dir)?;
            let grace = config.sync.grace.as_secs() as i64;
            let mut images = crate::sync::ViewPublisher::new(config);
            let result = Catalog::open(&config.store.dir)?
                .remove_snapshot(&id, &snapshot, unix_now(), grace, |src| images.prepare(src));
            images.finish(result.is_ok());
            result?;
            println!("{id}: removed snapshot {snapshot}");
            Ok(0)
        }
    }
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
    let current = catalog.published(id)?.map(|s| s.id);
    let warnings = super::lifecycle::publish_warnings(config, id, snap, current);
    let mut images = crate::sync::ViewPublisher::new(config);
    let result = catalog.publish(&[snap], unix_now(), retention, |src| images.prepare(src));
    images.finish(result.is_ok());
    let out = result?;
    println!("{id}: published {name} (generation {})", out.generation);
    for w in warnings {
        eprintln!("pmirror-fs: warning: {id} {name}: {w}");
    }
    Ok(0)
}
