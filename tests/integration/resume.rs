//! Issue 15, resumed downloads: a transfer cut off part-way continues with `Range` from where it
//! stopped, guarded by `If-Range` on the part's Last-Modified, and the whole file's hash still
//! decides; a server that answers the ranged request with the whole file starts it over.

use crate::harness::{text, Env};
use crate::rate_limit::iso_env;
use crate::support::signing_key;
use crate::tree_fixture::trees;

const ISO: &str = "iso/proxmox-ve_8.2-1.iso";
const CUT: usize = 1_500_000;

fn synced_whole(env: &Env) {
    let out = env.run(&["sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = trees(0, signing_key());
    let got = env.published_files("iso");
    assert_eq!(got.get("proxmox-ve_8.2-1.iso").map(Vec::as_slice), want.bytes(ISO), "the ISO is whole");
}

#[test]
fn a_download_cut_off_part_way_resumes_where_it_stopped() {
    let env = iso_env("");
    env.server.truncate_next(ISO, CUT, 1);
    synced_whole(&env);
    let gets: Vec<_> = env.server.requests().into_iter().filter(|r| r.path == ISO && r.method == "GET").collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    // The second asks for the rest only: bytes fetched = the file's size.
    assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={CUT}-").as_str()), "{gets:?}");
    assert_eq!(gets[1].status, 206);
}

#[test]
fn a_server_without_ranges_starts_the_file_over() {
    let env = iso_env("");
    env.server.ignore_ranges();
    env.server.truncate_next(ISO, CUT, 1);
    synced_whole(&env);
    let gets: Vec<_> = env.server.requests().into_iter().filter(|r| r.path == ISO && r.method == "GET").collect();
    assert_eq!(gets.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200], "{gets:?}");
}
