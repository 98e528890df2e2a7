//! The Prometheus textfile written after every sync (node_exporter's textfile collector reads
//! `*.prom` files from one directory): written to `<file>.<pid>` beside it, then renamed, so the
//! collector never reads half a file.
//!
//! Per mirror: whether the last run succeeded, its last success and last run times, the run's
//! duration, bytes and objects fetched, and the published snapshot's size; for the store: pool
//! objects and bytes. Mirrors a partial run (`sync ID`) did not touch keep their last run's
//! duration and fetch figures from the previous file.

use crate::catalog::MirrorRow;
use crate::sync::RunReport;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Objects and bytes in `<store>/pool`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub objects: u64,
    pub bytes: u64,
}

/// Walks `<store>/pool` (a missing pool is empty).
pub fn pool_stats(store: &Path) -> io::Result<PoolStats> {
    let mut stats = PoolStats::default();
    let mut dirs = vec![store.join("pool")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                stats.objects += 1;
                stats.bytes += meta.len();
            }
        }
    }
    Ok(stats)
}

/// (name, help) of every per-mirror family, in output order.
const MIRROR_FAMILIES: [(&str, &str); 9] = [
    ("pmirror_fs_sync_success", "1 if the mirror's last sync succeeded (or found upstream unchanged), else 0."),
    ("pmirror_fs_last_success_timestamp_seconds", "Unix time the mirror last synced successfully."),
    ("pmirror_fs_last_sync_timestamp_seconds", "Unix time the mirror's last sync ended."),
    ("pmirror_fs_last_sync_duration_seconds", "Duration of the mirror's last sync."),
    ("pmirror_fs_last_sync_fetched_bytes", "Bytes downloaded by the mirror's last sync."),
    ("pmirror_fs_last_sync_fetched_objects", "Objects downloaded by the mirror's last sync."),
    ("pmirror_fs_published_bytes", "Bytes of the mirror's published snapshot."),
    ("pmirror_fs_published_files", "Files in the mirror's published snapshot."),
    ("pmirror_fs_published_warnings", "Warnings of the run that recorded the mirror's published snapshot."),
];

/// Families whose value only a run knows (carried over from the previous file otherwise).
const RUN_FAMILIES: [&str; 3] = [
    "pmirror_fs_last_sync_duration_seconds",
    "pmirror_fs_last_sync_fetched_bytes",
    "pmirror_fs_last_sync_fetched_objects",
];

/// The values of one mirror, by family (absent: unknown, no sample written).
fn mirror_values(row: &MirrorRow, report: &RunReport, previous: &Previous) -> [Option<f64>; 9] {
    let ran = report.mirrors.iter().find(|m| m.id == row.id);
    let carried = |family: &str| previous.get(&(family.to_owned(), row.id.clone())).copied();
    let run = |i: usize, from_run: Option<f64>| if ran.is_some() { from_run } else { carried(RUN_FAMILIES[i]) };
    let duration = ran.map(|m| m.elapsed.as_secs_f64()).or_else(|| match (row.last_started, row.last_ended) {
        (Some(s), Some(e)) if e >= s => Some((e - s) as f64),
        _ => None,
    });
    [
        Some(if row.state == "success" { 1.0 } else { 0.0 }),
        row.last_success.map(|t| t as f64),
        row.last_ended.map(|t| t as f64),
        if ran.is_some() { duration } else { carried(RUN_FAMILIES[0]).or(duration) },
        run(1, ran.map(|m| m.fetched_bytes as f64)),
        run(2, ran.map(|m| m.fetched_files as f64)),
        row.published.as_ref().map(|s| s.bytes as f64),
        row.published.as_ref().map(|s| s.files as f64),
        row.published.as_ref().map(|s| s.warnings.len() as f64),
    ]
}

/// Label values escaped as the exposition format wants (`\\`, `\"`, `\n`).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The textfile: every family with HELP and TYPE, its samples contiguous.
pub fn render(rows: &[MirrorRow], report: &RunReport, previous: &str, pool: PoolStats) -> String {
    let previous = parse_previous(previous);
    let values: Vec<(&MirrorRow, [Option<f64>; 9])> =
        rows.iter().map(|r| (r, mirror_values(r, report, &previous))).collect();
    let mut out = String::new();
    for (i, (name, help)) in MIRROR_FAMILIES.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (row, vals) in &values {
            if let Some(v) = vals[i] {
                let _ = writeln!(out, "{name}{{mirror=\"{}\",kind=\"{}\"}} {v}", label(&row.id), label(&row.kind));
            }
        }
    }
    let store = [
        ("pmirror_fs_pool_objects", "Objects in the content-addressed pool.", pool.objects),
        ("pmirror_fs_pool_bytes", "Bytes in the content-addressed pool.", pool.bytes),
    ];
    for (name, help, v) in store {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    out
}

type Previous = HashMap<(String, String), f64>;

/// `(family, mirror) → value` of the run-only families in a file [`render`] wrote.
fn parse_previous(text: &str) -> Previous {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("{mirror=\"") else { continue };
        if !RUN_FAMILIES.contains(&name) {
            continue;
        }
        let Some((mirror, rest)) = rest.split_once('"') else { continue };
        let Some(value) = rest.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) else { continue };
        out.insert((name.to_owned(), mirror.to_owned()), value);
    }
    out
}

/// Writes `text` to `<path>.<pid>` and renames it over `path` (same directory, so atomic).
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("metrics-textfile names no file"))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(format!(".{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::warn!(file = %tmp.display(), error = %e, "cannot remove the temporary metrics file");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EntryReport, Outcome};
    use std::time::Duration;

    fn row(id: &str, state: &str, success: Option<i64>) -> MirrorRow {
        MirrorRow {
            id: id.into(),
            kind: "mirror".into(),
            view: "debian/x".into(),
            upstream: "http://h/debian/x/".into(),
            published: None,
            state: state.into(),
            last_started: Some(100),
            last_ended: Some(130),
            last_success: success,
            last_error: None,
        }
    }

    #[test]
    fn renders_run_values_and_carries_the_others_over() {
        let mut ran = EntryReport::new("a", Outcome::Unchanged, Duration::from_millis(2500));
        (ran.fetched_bytes, ran.fetched_files) = (4096, 3);
        let report = RunReport { mirrors: vec![ran], ..RunReport::default() };
        let previous = "pmirror_fs_last_sync_fetched_bytes{mirror=\"b\",kind=\"mirror\"} 77\n\
                        pmirror_fs_last_sync_fetched_bytes{mirror=\"a\",kind=\"mirror\"} 1\n";
        let rows = [row("a", "success", Some(130)), row("b", "failed", None)];
        let text = render(&rows, &report, previous, PoolStats { objects: 5, bytes: 10 });
        let cases = [
            "pmirror_fs_sync_success{mirror=\"a\",kind=\"mirror\"} 1\n",
            "pmirror_fs_sync_success{mirror=\"b\",kind=\"mirror\"} 0\n",
            "pmirror_fs_last_success_timestamp_seconds{mirror=\"a\",kind=\"mirror\"} 130\n",
            "pmirror_fs_last_sync_duration_seconds{mirror=\"a\",kind=\"mirror\"} 2.5\n",
            "pmirror_fs_last_sync_duration_seconds{mirror=\"b\",kind=\"mirror\"} 30\n",
            "pmirror_fs_last_sync_fetched_bytes{mirror=\"a\",kind=\"mirror\"} 4096\n",
            "pmirror_fs_last_sync_fetched_bytes{mirror=\"b\",kind=\"mirror\"} 77\n",
            "pmirror_fs_pool_bytes 10\n",
        ];
        for want in cases {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("last_success_timestamp_seconds{mirror=\"b\""), "unknown time written:\n{text}");
    }

    #[test]
    fn labels_are_escaped_and_files_replaced_atomically() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pmirror_fs.prom");
        write_atomic(&path, "one\n").expect("write");
        write_atomic(&path, "two\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two\n");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "temporary file left behind");
        assert!(write_atomic(&dir.path().join("missing/x.prom"), "x").is_err());
    }
}
