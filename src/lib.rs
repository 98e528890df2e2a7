//! pmirror-fs: mirror Proxmox/Debian apt repositories and file trees into a sha256
//! content-addressed pool with SQLite snapshots, and serve them through a read-only FUSE view.
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod apt;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod digest;
pub mod engine;
pub mod fetch;
pub mod filetree;
pub mod fuse;
pub mod lifecycle;
pub mod medium;
pub mod mirror;
pub mod pool;
pub mod status;
pub mod store;
pub mod sync;
pub mod tree;
pub mod web;
