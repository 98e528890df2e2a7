//! Issue 14: a medium pulled out in the middle of a `medium sync` — exfat-fuse killed with
//! SIGKILL, so whatever it had not yet written to the device is lost, then the medium plugged in
//! again — still holds the previous complete state or the new one, and imports and serves it.

use crate::harness::Env;
use crate::medium::{configure, connected, held, json, ok, upstream};
use crate::medium_faults::{imports_and_serves, Lcg};
use std::collections::BTreeSet;
use std::time::Instant;

fn status(env: &Env) -> BTreeSet<String> {
    held(&json(env.run(&["medium", "status", "usb1", "--json"]), "medium status"))
}

#[test]
fn a_medium_pulled_out_mid_sync_holds_one_complete_state() {
    let (mut env, mut medium) = connected(128 * 1024 * 1024);
    let m = medium.path();
    ok(env.run(&["medium", "sync", "usb1"]), "first medium sync");
    let old = status(&env);
    let named = format!("snapshots = [{}]", old.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "));
    env.server.swap(upstream(1));
    env.sync_ok(&[]);
    let started = Instant::now();
    ok(env.run(&["medium", "sync", "usb1"]), "medium sync to generation 1");
    let mut shortest = started.elapsed();
    let new = status(&env);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = Lcg(seed);
    let (mut toward_old, mut landed, mut seen) = (true, 0, Vec::new());
    for i in 0..30 {
        if landed >= 6 {
            break;
        }
        configure(&mut env, "usb1", &m, if toward_old { &named } else { "" });
        let delay = shortest.mul_f64(rng.next());
        let mut child = env.cmd(&["medium", "sync", "usb1"]).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let inside = child.try_wait().unwrap().is_none();
        medium.pull_out();
        child.wait().unwrap();
        medium.remount();
        let state = imports_and_serves(&m, i);
        assert!(state == old || state == new, "pull-out {i}: the medium holds {state:?}");
        landed += usize::from(inside);
        let side = if state == old { "old" } else { "new" };
        seen.push(format!("{:.0}ms{}:{side}", delay.as_secs_f64() * 1e3, if inside { "" } else { "(done)" }));
        let started = Instant::now();
        ok(env.run(&["medium", "sync", "usb1"]), "medium sync after a pull-out");
        shortest = shortest.min(started.elapsed());
        toward_old = !toward_old;
    }
    println!("seed {seed}; pull-outs: {}", seen.join(" "));
    assert!(landed >= 6, "only {landed} pull-outs landed inside a sync");
}
