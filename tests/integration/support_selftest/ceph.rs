//! The Ceph harness (support/ceph.rs): a real single-node cluster, and nodes (mount namespaces,
//! each with its own ceph-fuse) that share one CephFS at one path, invisible to the host. Slow:
//! starting the cluster takes about 12 s. Skips loudly without root, /dev/fuse or the ceph
//! packages; under `CI` or `PMIRROR_REQUIRE_CEPH=1` that is a failure instead.

use crate::support::ceph::{start_or_skip, Node, CEPH_MOUNT};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A rename on one node must show on another within this (measured: a few milliseconds, with
/// the harness's `mds_early_reply = false`).
const VISIBLE_WITHIN: Duration = Duration::from_secs(1);
/// Generous: the first sight of a new directory, a freshly remounted client.
const SETTLE: Duration = Duration::from_secs(10);
/// `flock -n`'s exit status when the lock is taken (EWOULDBLOCK), told apart from other errors.
const CONFLICT: &str = "75";

/// How long until `node` reads `want` at `rel` (polled every millisecond through its own
/// ceph-fuse), or None after `within`.
fn visible_after(node: &Node, rel: &str, want: &[u8], within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let path = node.host_path(rel);
    while start.elapsed() < within {
        if std::fs::read(&path).is_ok_and(|got| got == want) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Write `content` next to `rel` and rename it into place, on `node`.
fn publish(node: &Node, rel: &str, content: &str) {
    let path = node.path(rel);
    node.sh(&format!("printf %s '{content}' > '{p}.tmp' && mv '{p}.tmp' '{p}'", p = path.display()));
}

#[test]
fn ceph_nodes_share_one_filesystem() {
    // Slow: a whole cluster, then two ceph-fuse mounts.
    let Some(ceph) = start_or_skip() else { return };
    eprintln!("ceph: cluster started in {:.1?}", ceph.startup());
    let started = Instant::now();
    let a = ceph.node("a");
    let mut b = ceph.node("b");
    eprintln!("ceph: two nodes mounted in {:.1?}", started.elapsed());

    renames_show_on_the_other_node(&a, &b);
    nothing_reaches_the_host();
    flock_excludes_across_nodes(&a, &b);
    eprintln!("ceph: RSS of the cluster and its two clients: {} MiB", ceph.rss_bytes() >> 20);
    a_killed_client_comes_back(&a, &mut b);
}

fn renames_show_on_the_other_node(a: &Node, b: &Node) {
    a.sh(&format!("mkdir -p '{}'", a.path("selftest").display()));
    publish(a, "selftest/current", "v1");
    assert!(visible_after(b, "selftest/current", b"v1", SETTLE).is_some(), "B never saw v1");
    // B has read (and caches) the old file; each rename on A replaces it.
    let mut latencies = Vec::new();
    for version in 2..=6 {
        let want = format!("v{version}");
        publish(a, "selftest/current", &want);
        let latency = visible_after(b, "selftest/current", want.as_bytes(), VISIBLE_WITHIN)
            .unwrap_or_else(|| panic!("B did not see {want} within {VISIBLE_WITHIN:?} of the rename on A"));
        latencies.push(latency);
    }
    eprintln!("ceph: a rename on A visible on B after {latencies:?}");
    // And a program run in B's namespace reads it at the same path.
    let out = b.sh(&format!("cat '{}'", b.path("selftest/current").display()));
    assert_eq!(out.stdout, b"v6");
}

fn nothing_reaches_the_host() {
    let here = Path::new(CEPH_MOUNT).join("selftest");
    assert!(!here.exists(), "{} is visible in the host namespace", here.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
    let leaked: Vec<&str> = mounts.lines().filter(|l| l.split(' ').nth(1) == Some(CEPH_MOUNT)).collect();
    assert!(leaked.is_empty(), "ceph-fuse mounted in the host namespace: {leaked:?}");
}

fn flock_excludes_across_nodes(a: &Node, b: &Node) {
    let lock = a.path("selftest/lock");
    a.sh(&format!("touch '{}'", lock.display()));
    // A holds the lock until its stdin closes.
    let mut holder = a
        .command("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo locked; read x || true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run flock on A");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout")).read_line(&mut line).expect("read flock's output");
    assert_eq!(line.trim(), "locked", "flock on A did not get the lock");

    let try_lock = format!("flock -n -E {CONFLICT} '{}' true && echo acquired || echo \"rc=$?\"", lock.display());
    let out = b.sh(&try_lock);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("rc={CONFLICT}"), "B took A's lock");

    drop(holder.stdin.take());
    assert!(holder.wait().expect("wait for flock").success());
    let released = Instant::now();
    while String::from_utf8_lossy(&b.sh(&try_lock).stdout).trim() != "acquired" {
        assert!(released.elapsed() < SETTLE, "B cannot take the lock A released");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("ceph: flock released on A, taken on B after {:.1?}", released.elapsed());
}

fn a_killed_client_comes_back(a: &Node, b: &mut Node) {
    b.kill_ceph_fuse();
    let dead = b.command("cat").arg(b.path("selftest/current")).output().expect("run cat on B");
    assert!(!dead.status.success(), "B's mount still answers after its ceph-fuse was killed");
    eprintln!("ceph: B with its client killed: {}", String::from_utf8_lossy(&dead.stderr).trim());

    // The writer goes on while B is down: B's session is gone, nobody waits for its caps.
    let writing = Instant::now();
    publish(a, "selftest/current", "v7");
    assert!(writing.elapsed() < Duration::from_secs(5), "A's rename waited {:?} for dead B", writing.elapsed());
    eprintln!("ceph: with B dead (session evicted), a rename on A took {:.1?}", writing.elapsed());

    let remounting = Instant::now();
    b.remount();
    eprintln!("ceph: B remounted in {:.1?}", remounting.elapsed());
    assert!(visible_after(b, "selftest/current", b"v7", SETTLE).is_some(), "remounted B does not see v7");
    // And B writes again, A sees it.
    publish(b, "selftest/from-b", "hello");
    assert!(visible_after(a, "selftest/from-b", b"hello", VISIBLE_WITHIN).is_some(), "A does not see B's file");
}
