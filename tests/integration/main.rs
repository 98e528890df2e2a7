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
