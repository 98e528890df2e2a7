//! The integration test binary: one binary for every area (one link, one set of `support/`
//! fixtures), one module per area.

mod architecture;
mod cluster;
mod first_hour;
mod first_hour_docs;
mod first_hour_mount;
mod harness;
mod latency;
mod lifecycle;
mod medium;
mod medium_faults;
mod medium_pullout;
mod ops;
mod proxy;
mod rate_limit;
mod real_upstream;
mod resume;
mod shrink;
mod sources;
mod subscription;
mod support;
mod support_selftest;
mod switch_load;
mod sync;
mod tree_fixture;
mod trees;
mod upstream_quirks;
mod view;
mod web;

/// Every panic of a test is also written straight to the process's stderr, at once, with the
/// test's name. The test harness captures what a test prints and shows it only after the last
/// test has ended: in a long CI log the reason for a `FAILED` line would sit far from it, after
/// the output of every later test (and outside any excerpt of the log). Installed before `main`
/// (an `.init_array` entry, as a C constructor is), so no test has to ask for it; the default
/// hook still runs after it, so the harness's own report is unchanged.
#[used]
#[link_section = ".init_array"]
static PANICS_TO_STDERR: extern "C" fn() = {
    extern "C" fn install() {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            use std::io::Write;
            let thread = std::thread::current();
            let line = format!("PANIC in {}: {info}\n", thread.name().unwrap_or("an unnamed thread"));
            // Not eprint!: that goes to the harness's capture; a write to the handle does not.
            let _ = std::io::stderr().write_all(line.as_bytes());
            default(info);
        }));
    }
    install
};
