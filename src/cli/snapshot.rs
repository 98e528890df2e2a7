//! `pmirror-fs snapshot …`: list, show, diff, publish (instant rollback / roll-forward; a
//! rollback pins the mirror), unpin, remove, forget (a mirror removed from the config).

use crate::catalog::{Catalog, PinChange};
use crate::config::Config;
use crate::engine::unix_now;
use crate::store::{Settings, Store};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List snapshots (of one mirror, or all)
    List {
        /// Mirror or tree id (default: all)
        id: Option<String>,
        /// Print the snapshots (mirror, name, state, published) as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show the files of one snapshot: sha256, size and path of each
    Show {
        /// Mirror or tree id
        id: String,
        /// Snapshot name, as `snapshot list` prints it (UTC time, 2024-05-01T10:00:00Z)
        snapshot: String,
    },
    /// What changed from snapshot A to B: packages per component/architecture, or tree files
    Diff {
        /// Mirror or tree id
        id: String,
        /// The older snapshot's name
        a: String,
        /// The newer snapshot's name
        b: String,
        /// Print the changes as JSON
        #[arg(long)]
        json: bool,
    },
    /// Publish a snapshot (rollback or roll-forward), atomically. A snapshot older than the
    /// mirror's newest pins the mirror to it: sync records new snapshots but does not publish them
    /// until `snapshot unpin` or a publish of the newest snapshot
    Publish {
        /// Mirror or tree id
        id: String,
        /// Name of the snapshot to publish
        snapshot: String,
    },
    /// Unpin a mirror: the next sync publishes upstream's newest snapshot again (the published
    /// snapshot stays until then)
    Unpin {
        /// Mirror id
        id: String,
    },
    /// Remove a snapshot that is not published
    Remove {
        /// Mirror or tree id
        id: String,
        /// Name of the snapshot to remove
        snapshot: String,
    },
    /// Forget a mirror or tree removed from the config: delete all its snapshots (the published
    /// one too) and its status; `gc` then frees the objects only it used
    Forget {
        /// Id of a mirror or tree no longer in the config
        id: String,
    },
}

impl SnapshotCmd {
    /// The mirror (or tree) id the command names, if any.
    fn id(&self) -> Option<&str> {
        match self {
            SnapshotCmd::List { id, .. } => id.as_deref(),
            SnapshotCmd::Show { id, .. }
            | SnapshotCmd::Diff { id, .. }
            | SnapshotCmd::Publish { id, .. }
            | SnapshotCmd::Unpin { id }
            | SnapshotCmd::Remove { id, .. }
            | SnapshotCmd::Forget { id } => Some(id),
        }
    }
}

pub fn run(config: &Config, cmd: SnapshotCmd) -> anyhow::Result<i32> {
    if let Some(id) = cmd.id() {
        known_id(config, id)?;
    }
    match cmd {
        SnapshotCmd::List { id, json } => super::lifecycle::list(config, id.as_deref(), json),
        SnapshotCmd::Show { id, snapshot } => show(config, &id, &snapshot),
        SnapshotCmd::Diff { id, a, b, json } => super::lifecycle::diff(config, &id, &a, &b, json),
        SnapshotCmd::Publish { id, snapshot } => publish(config, &id, &snapshot),
        SnapshotCmd::Unpin { id } => unpin(config, &id),
        SnapshotCmd::Remove { id, snapshot } => {
            Store::open(Settings::of(config))?.remove_snapshot(&id, &snapshot)?;
            println!("{id}: removed snapshot {snapshot}");
            Ok(0)
        }
        SnapshotCmd::Forget { id } => forget(config, &id),
    }
}

/// `snapshot forget ID`: only for an id the config no longer has (a configured one would come
/// back with the next sync, and forgetting it would unpublish what clients use).
fn forget(config: &Config, id: &str) -> anyhow::Result<i32> {
    if config.entry_ids().any(|known| known == id) {
        anyhow::bail!("{id} is still configured in {}; remove it from there first", config.path.display());
    }
    let (snapshots, generation) = Store::open(Settings::of(config))?.forget(id)?;
    let noun = if snapshots == 1 { "snapshot" } else { "snapshots" };
    println!(
        "{id}: forgot {snapshots} {noun} (generation {generation}); `pmirror-fs gc` frees the objects only they used"
    );
    Ok(0)
}

/// An id the snapshot commands accept: configured, or in the catalog (an entry removed from the
/// config keeps its snapshots, still served and managed). Anything else is a typo that must not
/// pass as "no snapshots" (an empty `snapshot list`, a `snapshot unpin` saying "not pinned").
fn known_id(config: &Config, id: &str) -> anyhow::Result<()> {
    if config.entry_ids().any(|known| known == id) {
        return Ok(());
    }
    // Before the first sync there is no catalog (and none is created here).
    if config.store.dir.join("catalog.db").exists()
        && Catalog::open_readonly(&config.store.dir)?.mirrors()?.iter().any(|m| m.id == id)
    {
        return Ok(());
    }
    anyhow::bail!("no mirror or tree with id {id:?} in {} or in the catalog", config.path.display())
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
    let mut store = Store::open(Settings::of(config))?;
    let catalog = store.catalog();
    let snap = catalog.snapshot_id(id, name)?.ok_or_else(|| anyhow::anyhow!("{id}: no snapshot named {name}"))?;
    let current = catalog.published(id)?.map(|s| s.id);
    let warnings = super::lifecycle::publish_warnings(config, id, snap, current);
    let out = store.publish_snapshot(snap)?;
    println!("{id}: published {name} (generation {})", out.generation);
    match out.pin {
        PinChange::Pinned => println!(
            "{id}: pinned to {name}: sync records newer snapshots but does not publish them; \
             undo with `pmirror-fs snapshot unpin {id}` or by publishing the newest snapshot"
        ),
        PinChange::Unpinned => println!("{id}: unpinned ({name} is its newest snapshot); sync publishes again"),
        PinChange::Unchanged => {}
    }
    for w in warnings {
        eprintln!("pmirror-fs: warning: {id} {name}: {w}");
    }
    Ok(0)
}

/// `snapshot unpin ID`: no publish — the view does not change until the next sync publishes.
/// It takes no store lock: a sync running meanwhile reads the pin inside its publish
/// transaction, so it either still holds its new snapshot back or already publishes it.
fn unpin(config: &Config, id: &str) -> anyhow::Result<i32> {
    let mut catalog = Catalog::open(&config.store.dir)?;
    match catalog.unpin(id)? {
        Some(pin) => {
            println!("{id}: unpinned; {} stays published until the next sync publishes upstream's newest", pin.snapshot)
        }
        None => println!("{id}: not pinned"),
    }
    Ok(0)
}
