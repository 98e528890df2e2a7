//! The integration test binary: one binary, one module per area (see STYLE.md).

mod support;
mod support_selftest;
mod harness;
mod sync;
