//! `pmirror-fs gc`, `verify`, `snapshot list` and `snapshot diff`, and the warnings of
//! `snapshot publish`: running the lifecycle library functions and printing their results for
//! people (aligned columns, sizes in KiB/MiB/GiB) or scripts (`--json`).

use super::human::size;
use crate::catalog::{Catalog, SnapshotRow};
use crate::config::Config;
use crate::engine::unix_now;
use crate::lifecycle::diff::{Change, DiffBody, FileChange, IndexDiff, SnapshotDiff};
use crate::lifecycle::gc::GcPlan;
use crate::lifecycle::release;
use crate::lifecycle::verify::{self, VerifyReport};
use crate::pool::Pool;
use crate::store::{Settings, Store};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// `gc [--dry-run]`: plan under the store lock, print it, and (unless a dry run) perform it.
pub fn gc(config: &Config, dry_run: bool, json: bool) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut store = Store::open(Settings::of(config))?;
    let plan = store.gc_plan()?;
    let done = if dry_run { None } else { Some(store.gc(&plan)?) };
    let (files, bytes, rows) = done.map_or((plan.files(), plan.bytes(), plan.rows()), |d| (d.files, d.bytes, d.rows));
    let secs = started.elapsed().as_secs_f64();
    if json {
        let v = json!({
            "dry_run": dry_run, "objects": files, "bytes": bytes, "rows": rows,
            "kept_objects": plan.kept_objects, "kept_bytes": plan.kept_bytes, "missing": plan.missing,
            "foreign": plan.foreign.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "waiting_objects": plan.waiting.len(), "waiting_bytes": waiting_bytes(&plan), "due_ts": plan.due,
            "elapsed_secs": secs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if dry_run {
        print_plan(&plan);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    println!(
        "gc: {verb} {files} objects ({}) and {rows} catalog rows; kept {} objects ({}); {secs:.1}s",
        size(bytes),
        plan.kept_objects,
        size(plan.kept_bytes)
    );
    if let Some(due) = plan.due {
        println!(
            "gc: {} unreferenced objects ({}) wait until {} ([store] gc-delay: serving nodes may still show them); a \
             gc then deletes them",
            plan.waiting.len(),
            size(waiting_bytes(&plan)),
            crate::status::tunasync_time(Some(due)).0
        );
    }
    if plan.missing > 0 {
        println!("gc: {} referenced objects are missing from the pool (see `pmirror-fs verify`)", plan.missing);
    }
    for p in &plan.foreign {
        println!("gc: left alone (not a pool object): {}", p.display());
    }
    Ok(0)
}

fn waiting_bytes(plan: &GcPlan) -> u64 {
    plan.waiting.iter().filter_map(|d| d.file_bytes).sum()
}

fn print_plan(plan: &GcPlan) {
    for d in &plan.doomed {
        match d.file_bytes {
            Some(n) => println!("delete {} ({})", d.sha256, size(n)),
            None => println!("forget {} (catalog row only)", d.sha256),
        }
    }
}

/// `verify [ID…]`: exit 1 when any referenced object is damaged or missing.
pub fn verify(config: &Config, ids: &[String], json: bool) -> anyhow::Result<i32> {
    let catalog = Catalog::open(&config.store.dir)?;
    let pool = Pool::open(&config.store.dir, config.store.fsync)?;
    let fix = "`pmirror-fs sync --verify` downloads them again";
    print_verify(&verify::verify(&catalog, &pool, ids)?, json, fix)
}

/// `verify --store DIR`: a medium (or another store) re-hashed without writing to it.
pub fn verify_store(dir: &Path, ids: &[String], json: bool) -> anyhow::Result<i32> {
    let (catalog, pool, fix) = if crate::medium::is_medium(dir) {
        let m = crate::medium::Medium::open(dir)?;
        let fix = format!("`pmirror-fs medium sync {} --verify` writes them again", m.marker.id);
        (m.catalog, m.pool, fix)
    } else {
        (
            Catalog::open_untouched(dir)?,
            Pool::existing(dir),
            "`pmirror-fs sync --verify` downloads them again".to_owned(),
        )
    };
    print_verify(&verify::verify(&catalog, &pool, ids)?, json, &fix)
}

fn print_verify(report: &verify::VerifyReport, json: bool, fix: &str) -> anyhow::Result<i32> {
    if json {
        println!("{}", serde_json::to_string_pretty(&verify_json(report))?);
    } else {
        for f in &report.findings {
            println!("{} ({}): {}", f.object.sha256, size(f.object.size), f.damage);
            for u in &f.users {
                let mark = if u.published { " (published)" } else { "" };
                println!("  used by {} {}{mark}: {}", u.mirror_id, u.snapshot, u.path);
            }
        }
        println!(
            "verify: {} objects ({}) in {:.1}s, {}/s on {} threads; {} damaged or missing",
            report.objects,
            size(report.bytes),
            report.elapsed.as_secs_f64(),
            size(report.throughput() as u64),
            report.threads,
            report.findings.len()
        );
    }
    if report.findings.is_empty() {
        return Ok(0);
    }
    eprintln!("pmirror-fs: {} damaged or missing pool objects; {fix}", report.findings.len());
    Ok(1)
}

fn verify_json(r: &VerifyReport) -> serde_json::Value {
    let findings: Vec<_> = r
        .findings
        .iter()
        .map(|f| {
            let users: Vec<_> = f
                .users
                .iter()
                .map(|u| json!({"mirror": u.mirror_id, "snapshot": u.snapshot, "path": u.path, "published": u.published}))
                .collect();
            json!({"sha256": f.object.sha256.to_hex(), "size": f.object.size, "damage": f.damage.to_string(), "users": users})
        })
        .collect();
    json!({"objects": r.objects, "bytes": r.bytes, "elapsed_secs": r.elapsed.as_secs_f64(), "threads": r.threads,
           "damaged": findings})
}

/// `snapshot list [ID]`: name, state, published mark, files, packages, size, unique size; then a
/// line per pinned mirror.
pub fn list(config: &Config, id: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let catalog = Catalog::open(&config.store.dir)?;
    let rows = catalog.snapshots(id)?;
    let stats = catalog.snapshot_stats(id)?;
    let now = unix_now();
    let grace = config.sync.grace.as_secs() as i64;
    let stat = |s: &SnapshotRow| stats.get(&s.id).copied().unwrap_or_default();
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|s| {
                json!({"mirror": s.mirror_id, "name": s.name, "state": state(s, now, grace), "published": s.published,
                       "pinned": s.pinned, "files": s.files, "packages": stat(s).packages, "bytes": s.bytes,
                       "unique_bytes": stat(s).unique_bytes, "superseded_at": s.superseded_at})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut table = vec![["MIRROR", "SNAPSHOT", "STATE", "FILES", "PACKAGES", "SIZE", "UNIQUE"].map(String::from)];
    for s in &rows {
        let st = stat(s);
        table.push([
            s.mirror_id.clone(),
            s.name.clone(),
            state(s, now, grace).to_owned(),
            s.files.to_string(),
            st.packages.to_string(),
            size(s.bytes),
            size(st.unique_bytes),
        ]);
    }
    let marks = std::iter::once(" ").chain(rows.iter().map(|s| if s.published { "*" } else { " " }));
    for (mark, line) in marks.zip(aligned(&table)) {
        println!("{mark} {line}");
    }
    for s in rows.iter().filter(|s| s.pinned) {
        println!("{}: pinned to {}; newer snapshots are not published until `snapshot unpin`", s.mirror_id, s.name);
    }
    Ok(0)
}

/// published | grace (superseded less than `sync.grace` ago: by-hash and packages still served) | retained.
fn state(s: &SnapshotRow, now: i64, grace: i64) -> &'static str {
    match s.superseded_at {
        _ if s.published => "published",
        Some(t) if t + grace > now => "grace",
        _ => "retained",
    }
}

/// Rows as lines with every column padded to its widest cell (numbers right-aligned).
fn aligned<const N: usize>(table: &[[String; N]]) -> Vec<String> {
    let mut widths = [0; N];
    for row in table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let right = |i: usize| i >= 3;
    table
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(
                    |(i, c)| {
                        if right(i) {
                            format!("{c:>w$}", w = widths[i])
                        } else {
                            format!("{c:<w$}", w = widths[i])
                        }
                    },
                )
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

/// `snapshot diff ID A B [--json]`.
pub fn diff(config: &Config, id: &str, from: &str, to: &str, json: bool) -> anyhow::Result<i32> {
    let catalog = Catalog::open(&config.store.dir)?;
    let pool = Pool::open(&config.store.dir, config.store.fsync)?;
    let d = crate::lifecycle::diff::diff(&catalog, &pool, id, from, to)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", diff_text(&d));
    }
    Ok(0)
}

fn diff_text(d: &SnapshotDiff) -> String {
    let mut out = format!("{}: {} -> {}\n", d.mirror, d.from, d.to);
    match &d.body {
        DiffBody::Packages { indices } => {
            for index in indices {
                out += &index_text(index);
            }
            let count = |c: Change| indices.iter().flat_map(|i| &i.changes).filter(|p| p.change == c).count();
            out += &format!(
                "{} added, {} removed, {} upgraded, {} downgraded, {} changed\n",
                count(Change::Added),
                count(Change::Removed),
                count(Change::Upgraded),
                count(Change::Downgraded),
                count(Change::Changed)
            );
        }
        DiffBody::Files { files } => {
            for f in files {
                out += &file_text(f);
            }
            out += &format!("{} files differ\n", files.len());
        }
    }
    out
}

fn index_text(index: &IndexDiff) -> String {
    let mut out = format!("{}/{}:\n", index.component, index.architecture);
    for p in &index.changes {
        let versions = match p.change {
            Change::Added => p.new.join(", "),
            Change::Removed => p.old.join(", "),
            _ => format!("{} -> {}", p.old.join(", "), p.new.join(", ")),
        };
        let what = serde_json::to_value(p.change).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        out += &format!("  {what:<10} {} [{}] {versions}\n", p.name, p.architecture);
    }
    out
}

fn file_text(f: &FileChange) -> String {
    let sz = |v: &Option<crate::lifecycle::diff::FileVersion>| v.as_ref().map_or_else(String::new, |v| size(v.size));
    match (&f.old, &f.new) {
        (None, _) => format!("  added      {} ({})\n", f.path, sz(&f.new)),
        (_, None) => format!("  removed    {} ({})\n", f.path, sz(&f.old)),
        _ => format!("  changed    {} ({} -> {})\n", f.path, sz(&f.old), sz(&f.new)),
    }
}

/// Lines `snapshot publish` prints on stderr when publishing snapshot `snapshot` of `id` over
/// `current`. A failure to check is a warning itself: it never stops the publish.
pub fn publish_warnings(config: &Config, id: &str, snapshot: i64, current: Option<i64>) -> Vec<String> {
    let key = config.mirrors.iter().find(|m| m.id == id).map(|m| m.key_bytes.as_slice());
    let check = release::PublishCheck { snapshot, current, key, now: unix_now() };
    let run = || -> anyhow::Result<Vec<String>> {
        let catalog = Catalog::open(&config.store.dir)?;
        let pool = Pool::open(&config.store.dir, config.store.fsync)?;
        Ok(release::publish_warnings(&catalog, &pool, &check)?)
    };
    run().unwrap_or_else(|e| vec![format!("cannot check the snapshot's Release: {e}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let table = [["A", "LONG NAME", "X", "1"], ["bbb", "n", "Y", "1234"]].map(|r| r.map(String::from));
        assert_eq!(aligned(&table), ["A    LONG NAME  X     1", "bbb  n          Y  1234"]);
    }
}
