//! The defaults of every `[store]`, `[sync]` and `[mount]` key, each with why.

use std::time::Duration;

/// FHS place for variable state data of a system service.
pub(super) const DEFAULT_STORE_DIR: &str = "/var/lib/pmirror-fs";
/// Enough parallel downloads to hide latency without hammering a public mirror.
pub(super) const DEFAULT_CONCURRENCY: usize = 8;
/// Plain-http downloads to one host grow to at most this many while latency-bound.
pub(super) const DEFAULT_MAX_CONCURRENCY: usize = 32;
/// Transient upstream errors rarely survive three more attempts; more only delays the failure.
pub(super) const DEFAULT_RETRIES: u32 = 3;
/// Three snapshots: the published one plus two to roll back to.
pub(super) const DEFAULT_KEEP: usize = 3;
/// 48h: a client whose last `apt update` was two days ago can still fetch what its index named.
pub(super) const DEFAULT_GRACE: Duration = Duration::from_secs(48 * 3600);
/// 50 %: an upstream that suddenly lists half of what it did is broken (a truncated index, a
/// half-synced mirror), not a release; a real suite shrinks that much only by hand.
pub(super) const DEFAULT_MAX_SHRINK: u8 = 50;
/// 30s below `slow-rate` before a transfer is abandoned: long enough to ride out a congested
/// moment's dip, short enough that a crawling source does not hold a run for hours.
pub(super) const DEFAULT_SLOW_TIME: Duration = Duration::from_secs(30);
/// 60s: a stalled connection is declared dead after a minute (large ISOs keep bytes flowing).
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// 120s without a lookup: far longer than any pause inside one `apt update`, short enough that
/// the tokens of closed connections go soon.
pub(super) const DEFAULT_PIN_IDLE: Duration = Duration::from_secs(120);
/// 10 minutes: a long-lived connection (a proxy's keep-alive pool) never sees an older view.
pub(super) const DEFAULT_PIN_LIFETIME: Duration = Duration::from_secs(600);
/// The shortest pin-idle and pin-lifetime: a busy token is looked up about once a second (the
/// kernel keeps its entry 1 s) and swept once a second, so a shorter idle bound forgets tokens
/// in use, and a shorter lifetime cuts apt runs short.
/// 15 minutes: longer than the default pin-lifetime (10 min), the longest a serving node keeps
/// serving a superseded view, with room for a node that polls late.
pub(super) const DEFAULT_GC_DELAY: Duration = Duration::from_secs(900);
/// What gc-delay must exceed pin-lifetime by: a serving node sees a publish within a second and
/// forgets a pinned view within 2 s of its lifetime.
pub(super) const GC_DELAY_MARGIN: Duration = Duration::from_secs(5);
/// 10 GiB of local disk per serving node: a few Proxmox suites' packages plus some ISOs.
pub(super) const DEFAULT_CACHE_SIZE: u64 = 10 << 30;
/// The smallest cache worth having (and the size of the largest index it must hold).
pub(super) const MIN_CACHE_SIZE: u64 = 1 << 20;
/// `[web] base-url` when the table leaves it out: the client snippets say where to put the real one.
pub(super) const DEFAULT_WEB_BASE_URL: &str = "http://mirror.example.org";
/// `[web] title` when the table leaves it out.
pub(super) const DEFAULT_WEB_TITLE: &str = "pmirror-fs mirror";
pub(super) const MIN_PIN_BOUND: Duration = Duration::from_secs(5);
pub(super) const MIN_PIN_BOUND_REASON: &str =
    "must be at least 5s (a busy connection's token is seen about once a second)";
