//! The pin table: one consistent generation for each HTTP connection, across a switch.
//!
//! apt reads a host's InRelease and then its indices over one keep-alive connection. A
//! repository without `Acquire-By-Hash` (Proxmox's) is asked for its indices by their canonical
//! paths, so a switch between those requests would hand the client an index its InRelease does
//! not describe ("File has unexpected size … Mirror sync in progress?"). The shipped nginx site
//! therefore opens index paths under `dists/` as `<mount>/.pin/<token>/<path>`, with a token per
//! connection (`$pid-$connection`, or the one a front proxy passes in `X-Pmirror-Pin`):
//!
//! ```text
//! .pin/                     lookups only; lists nothing (rsync, find and du never walk it)
//! .pin/<token>/             the root of the view current when the token was first looked up
//! .pin/<token>/<path>       that view's <path>: one generation, however many switches follow
//! ```
//!
//! A token is pinned at its first lookup and forgotten once it was not looked up for
//! `idle`, or `lifetime` after it was pinned, whichever comes first: a connection that lives long
//! (a reverse proxy's keep-alive pool) never holds an old view beyond that. The kernel keeps a
//! token's entry for [`TOKEN_TTL`] only, so a busy token is looked up (and kept) about once a
//! second; its subtree keeps the long TTLs. A forgotten token's next lookup pins it again, to the
//! view current then; inodes of its old slot answer ESTALE, which makes the kernel walk the path
//! again from the token.
//!
//! Memory: one entry per token (its bytes, slot, generation and two instants) plus one small
//! entry per slot; at most [`MAX_TOKENS`] tokens (when full, the least recently used eighth goes
//! at once, so a flood of new tokens costs one scan per [`EVICT_BATCH`] of them, not one each) and
//! [`MAX_VIEWS`] distinct views (the tokens of the oldest go first). Tokens forgotten that way
//! leave the kernel's cache at the next sweep, like expired ones; after a sweep that emptied most
//! of the table its maps give their memory back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::tree::inode::SLOT_BITS;
use crate::tree::source::ObjectMeta;
use crate::tree::View;

/// Name of the pin directory at the mount root (no mirror, tree or alias may claim it).
pub const PIN_DIR: &str = crate::config::validate::PIN_DIR;

/// How long the kernel keeps a token's entry: how often a busy token is seen (its idle clock
/// restarts) and how late after its expiry a cached entry may still lead into its old view.
pub(super) const TOKEN_TTL: Duration = Duration::from_secs(1);

/// The longest token accepted (a longer name is not found): `p-` and the 94 bytes the shipped
/// site accepts in X-Pmirror-Pin — room for a front proxy's FQDN, pid and connection number.
pub const MAX_TOKEN_LEN: usize = 96;

/// Tokens kept at most. A token costs ~270 bytes here and ~8 KB of kernel dentries and inodes
/// (measured: scripts/bench-pin.sh), so the bound is ~5 MB + ~130 MB of reclaimable kernel
/// cache. A full table forgets the tokens idle longest, which are closed connections (an apt
/// run's token is looked up every second while it runs): only more than this many connections
/// busy at once could lose a live pin, far beyond nginx's worker_connections (768 a worker).
pub const MAX_TOKENS: usize = 16_384;

/// Tokens forgotten at once when the table is full.
const EVICT_BATCH: usize = MAX_TOKENS / 8;

/// Distinct view tables pinned at most (views that differ only in status.json share theirs);
/// beyond this the tokens of the oldest view go. Each holds a mapped view image (page cache,
/// and the disk space of a superseded image until it is let go) or, for a view built from the
/// catalog, ~100 heap bytes an entry. 32 publishes within one pin lifetime is far beyond any
/// sync schedule.
pub const MAX_VIEWS: usize = 32;

/// Pinned views of any tables at most (each status.json refresh is a view of its own).
const MAX_VIEW_COUNT: usize = 8 * MAX_VIEWS;

/// How long a pin holds (the shipped defaults; `[mount]` in the config sets them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinBounds {
    /// Forgotten after this long without a lookup.
    pub idle: Duration,
    /// Forgotten this long after it was pinned, however busy.
    pub lifetime: Duration,
}

impl Default for PinBounds {
    fn default() -> Self {
        PinBounds { idle: Duration::from_secs(120), lifetime: Duration::from_secs(600) }
    }
}

/// Figures of the table, for logs, tests and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinStats {
    /// Tokens in the table now.
    pub tokens: usize,
    /// Views the tokens hold (one per generation).
    pub views: usize,
    /// Tokens pinned since the mount (re-pins included).
    pub pinned: u64,
    /// Tokens forgotten since the mount (expired or evicted).
    pub forgotten: u64,
}

/// One pinned token: its slot (the inode bits of its directories), the generation of its view,
/// when it was pinned and last looked up.
struct Token {
    slot: u32,
    generation: u64,
    first: Instant,
    last: Instant,
}

/// Everything behind the one lock.
#[derive(Default)]
struct Table {
    tokens: HashMap<Box<[u8]>, Token>,
    /// Slot → the generation of the view it shows.
    slots: HashMap<u32, u64>,
    /// Pinned views by generation, with how many tokens hold each.
    views: BTreeMap<u64, (Arc<View>, usize)>,
    last_slot: u32,
    pinned: u64,
    forgotten: u64,
    /// Tokens forgotten by a lookup (evicted), for the sweeper to drop from the kernel's cache:
    /// a FUSE request thread must not notify the kernel about the directory it is looking up in.
    evicted: Vec<Box<[u8]>>,
    /// Views no token holds any more, dropped after the lock is released (dropping the last
    /// reference unmaps an image or frees a built view: not while FUSE threads wait).
    released: Vec<Arc<View>>,
}

impl Table {
    /// The next free slot (never 0, the `.pin` directory's).
    fn next_slot(&mut self) -> u32 {
        loop {
            self.last_slot = (self.last_slot + 1) & ((1 << SLOT_BITS) - 1);
            if self.last_slot != 0 && !self.slots.contains_key(&self.last_slot) {
                return self.last_slot;
            }
        }
    }

    fn forget(&mut self, name: &[u8]) -> Option<Box<[u8]>> {
        let (name, token) = self.tokens.remove_entry(name)?;
        self.slots.remove(&token.slot);
        if let Some((_, count)) = self.views.get_mut(&token.generation) {
            *count -= 1;
            if *count == 0 {
                if let Some((view, _)) = self.views.remove(&token.generation) {
                    self.released.push(view);
                }
            }
        }
        self.forgotten += 1;
        Some(name)
    }

    /// More pinned views than [`MAX_VIEW_COUNT`], or more distinct tables than [`MAX_VIEWS`].
    fn over_view_bounds(&self) -> bool {
        if self.views.len() > MAX_VIEW_COUNT {
            return true;
        }
        let mut tables: Vec<usize> = self.views.values().map(|(v, _)| v.tables_id()).collect();
        tables.sort_unstable();
        tables.dedup();
        tables.len() > MAX_VIEWS
    }

    fn pin(&mut self, name: &[u8], view: &Arc<View>, now: Instant) -> u32 {
        let slot = self.next_slot();
        let generation = view.generation();
        self.views.entry(generation).or_insert_with(|| (Arc::clone(view), 0)).1 += 1;
        self.slots.insert(slot, generation);
        self.tokens.insert(name.into(), Token { slot, generation, first: now, last: now });
        self.pinned += 1;
        slot
    }
}

/// Forget `names`, queueing them for the sweeper to drop from the kernel's cache.
fn evict(table: &mut Table, names: impl Iterator<Item = Box<[u8]>>) {
    for name in names {
        if let Some(name) = table.forget(&name) {
            table.evicted.push(name);
        }
    }
}

/// Shared by the FUSE threads (lookups) and the mount's sweeper (expiry).
pub(super) struct Pins {
    bounds: PinBounds,
    table: Mutex<Table>,
}

/// Whether `name` may be a token: 1 to [`MAX_TOKEN_LEN`] bytes, and not `.` or `..`.
fn valid(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_TOKEN_LEN && name != b"." && name != b".."
}

impl Default for Pins {
    fn default() -> Self {
        Pins::new(PinBounds::default())
    }
}

impl Pins {
    /// An empty table forgetting tokens after `bounds`.
    pub fn new(bounds: PinBounds) -> Pins {
        Pins { bounds, table: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update is a few map operations that cannot panic half-way.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unlock, then drop the views the table let go of.
    fn unlock(mut table: MutexGuard<'_, Table>) {
        let released = std::mem::take(&mut table.released);
        drop(table);
        drop(released);
    }

    fn expired(&self, token: &Token, now: Instant) -> bool {
        now.duration_since(token.last) >= self.bounds.idle || now.duration_since(token.first) >= self.bounds.lifetime
    }

    /// The slot `name` is pinned to and its view, pinning it to `current` if it is new or
    /// expired (under one lock: a sweep cannot forget it in between). `None` for a name that
    /// cannot be a token.
    pub fn lookup(&self, name: &[u8], current: &Arc<View>, now: Instant) -> Option<(u32, Arc<View>)> {
        if !valid(name) {
            return None;
        }
        let mut table = self.lock();
        let kept = match table.tokens.get_mut(name) {
            Some(token) if !self.expired(token, now) => {
                token.last = now;
                Some((token.slot, token.generation))
            }
            _ => None,
        };
        if let Some((slot, view)) = kept.and_then(|(slot, g)| Some((slot, Arc::clone(&table.views.get(&g)?.0)))) {
            return Some((slot, view));
        }
        table.forget(name);
        if table.tokens.len() >= MAX_TOKENS {
            let mut by_age: Vec<(Instant, Box<[u8]>)> = table.tokens.iter().map(|(n, t)| (t.last, n.clone())).collect();
            by_age.select_nth_unstable_by_key(EVICT_BATCH - 1, |(last, _)| *last);
            by_age.truncate(EVICT_BATCH);
            evict(&mut table, by_age.into_iter().map(|(_, n)| n));
        }
        let new_view = !table.views.contains_key(&current.generation());
        let slot = table.pin(name, current, now);
        while new_view && table.views.len() > 1 && table.over_view_bounds() {
            let oldest = table.views.keys().next().copied();
            let names: Vec<Box<[u8]>> =
                table.tokens.iter().filter(|(_, t)| Some(t.generation) == oldest).map(|(n, _)| n.clone()).collect();
            evict(&mut table, names.into_iter());
        }
        Pins::unlock(table);
        Some((slot, Arc::clone(current)))
    }

    /// The view pin slot `slot` shows; `None` once it was forgotten.
    pub fn view(&self, slot: u32) -> Option<Arc<View>> {
        let table = self.lock();
        let generation = table.slots.get(&slot)?;
        table.views.get(generation).map(|(view, _)| Arc::clone(view))
    }

    /// A pinned view whose generation has these inode bits (generation-scoped files of a view
    /// the mount no longer keeps for its own root).
    pub fn view_by_bits(&self, bits: u32) -> Option<Arc<View>> {
        let table = self.lock();
        super::handle::view_by_bits(table.views.values().rev().map(|(view, _)| view), bits).map(Arc::clone)
    }

    /// An object only a pinned view still shows.
    pub fn object(&self, id: u64) -> Option<ObjectMeta> {
        let table = self.lock();
        super::handle::object_in(table.views.values().rev().map(|(view, _)| view), id).cloned()
    }

    /// Forget every expired token; returns their names and those of tokens evicted since the
    /// last sweep (for the kernel's cache).
    pub fn sweep(&self, now: Instant) -> Vec<Box<[u8]>> {
        let mut table = self.lock();
        let expired: Vec<Box<[u8]>> =
            table.tokens.iter().filter(|(_, t)| self.expired(t, now)).map(|(n, _)| n.clone()).collect();
        let mut gone: Vec<Box<[u8]>> = expired.iter().filter_map(|n| table.forget(n)).collect();
        gone.append(&mut table.evicted);
        if table.tokens.capacity() > 4 * table.tokens.len().max(64) {
            table.tokens.shrink_to_fit();
            table.slots.shrink_to_fit();
            table.evicted.shrink_to_fit();
        }
        Pins::unlock(table);
        gone
    }

    /// The table's figures now.
    pub fn stats(&self) -> PinStats {
        let table = self.lock();
        PinStats {
            tokens: table.tokens.len(),
            views: table.views.len(),
            pinned: table.pinned,
            forgotten: table.forgotten,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::source::ViewSource;

    /// The slot of a lookup's answer.
    fn slot_of(answer: Option<(u32, Arc<View>)>) -> Option<u32> {
        answer.map(|(slot, _)| slot)
    }

    fn bounds() -> PinBounds {
        PinBounds { idle: Duration::from_secs(10), lifetime: Duration::from_secs(60) }
    }

    #[test]
    fn a_token_keeps_its_view_across_switches_until_a_bound() {
        let pins = Pins::new(bounds());
        let t0 = Instant::now();
        let (g1, g2) = (Arc::new(View::empty(1)), Arc::new(View::empty(2)));
        let slot = slot_of(pins.lookup(b"7-1", &g1, t0)).unwrap();
        assert_eq!(pins.view(slot).unwrap().generation(), 1);
        // Busy every 9 s: the idle bound never hits, the view stays generation 1 …
        let mut t = t0;
        for _ in 0..6 {
            t += Duration::from_secs(9);
            assert_eq!(slot_of(pins.lookup(b"7-1", &g2, t)), Some(slot), "at {:?}", t - t0);
        }
        // … until the lifetime bound: then it is pinned again, to the view current then.
        let again = slot_of(pins.lookup(b"7-1", &g2, t0 + Duration::from_secs(60))).unwrap();
        assert_ne!(again, slot);
        assert!(pins.view(slot).is_none(), "the old slot is gone");
        assert_eq!(pins.view(again).unwrap().generation(), 2);
        // Idle for 10 s: forgotten by a sweep, and the old view with it.
        let swept = pins.sweep(t0 + Duration::from_secs(70));
        assert_eq!(swept, vec![Box::from(&b"7-1"[..])]);
        assert_eq!(pins.stats(), PinStats { tokens: 0, views: 0, pinned: 2, forgotten: 2 });
    }

    #[test]
    fn tokens_are_independent_and_share_views() {
        let pins = Pins::new(bounds());
        let now = Instant::now();
        let g1 = Arc::new(View::empty(1));
        let a = slot_of(pins.lookup(b"a", &g1, now)).unwrap();
        let g2 = Arc::new(View::empty(2));
        let b = slot_of(pins.lookup(b"b", &g2, now)).unwrap();
        let (c, view) = pins.lookup(b"c", &g2, now).unwrap();
        assert_eq!(view.generation(), 2, "a lookup answers the slot's view");
        assert!(a != b && b != c && a != 0);
        assert_eq!(pins.view(a).unwrap().generation(), 1);
        assert_eq!(pins.view(c).unwrap().generation(), 2);
        assert_eq!(pins.stats().views, 2);
        assert!(pins.view_by_bits(1).is_some() && pins.view_by_bits(3).is_none());
        for bad in [&b""[..], b".", b"..", &[b'x'; MAX_TOKEN_LEN + 1]] {
            assert!(pins.lookup(bad, &g1, now).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let pins = Pins::new(bounds());
        let t0 = Instant::now();
        for g in 0..(MAX_VIEWS as u64 + 3) {
            let view = Arc::new(View::empty(g + 1));
            pins.lookup(format!("t{g}").as_bytes(), &view, t0 + Duration::from_millis(g)).unwrap();
        }
        let stats = pins.stats();
        assert_eq!(stats.views, MAX_VIEWS, "the oldest views' tokens go first");
        assert_eq!(stats.tokens, MAX_VIEWS);
        assert_eq!(pins.sweep(t0).len(), 3, "evicted tokens leave the kernel's cache at the next sweep");
        let (_, view) = pins.lookup(b"t0", &Arc::new(View::empty(99)), t0).unwrap();
        assert_eq!(view.generation(), 99, "an evicted token pins anew, to the view current then");
    }

    /// A status.json refresh makes a view of its own that shares the tables: those count once.
    #[test]
    fn views_sharing_tables_count_once_against_the_bound() {
        let status = vec![("status.json".to_owned(), b"{}".to_vec())];
        let base = View::build(&ViewSource { generation: 1, inline_files: status, ..ViewSource::default() }).unwrap();
        let pins = Pins::new(bounds());
        let t0 = Instant::now();
        let refreshes = MAX_VIEWS as u64 + 8;
        for g in 1..=refreshes {
            let mut view = base.with_inline_file("status.json", g.to_string().into_bytes(), 0).unwrap();
            view.restamp(g);
            pins.lookup(format!("t{g}").as_bytes(), &Arc::new(view), t0).unwrap();
        }
        assert_eq!(pins.stats().views, refreshes as usize, "one table set, however many refreshes");
        assert_eq!(pins.stats().tokens, refreshes as usize);
    }

    #[test]
    fn a_full_table_drops_its_least_recently_used_eighth() {
        let pins = Pins::new(bounds());
        let t0 = Instant::now();
        let view = Arc::new(View::empty(1));
        for i in 0..MAX_TOKENS {
            pins.lookup(format!("t{i}").as_bytes(), &view, t0 + Duration::from_micros(i as u64)).unwrap();
        }
        // Token 0 was used last: it stays; the next-oldest eighth goes.
        pins.lookup(b"t0", &view, t0 + Duration::from_secs(1)).unwrap();
        pins.lookup(b"new", &view, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(pins.stats().tokens, MAX_TOKENS - EVICT_BATCH + 1);
        let gone = pins.sweep(t0 + Duration::from_secs(1));
        assert_eq!(gone.len(), EVICT_BATCH);
        assert!(gone.iter().all(|n| &n[..] != b"t0" && &n[..] != b"new"), "the recently used stay");
        let name = |i: usize| Box::from(format!("t{i}").as_bytes());
        assert!(gone.contains(&name(1)) && gone.contains(&name(EVICT_BATCH)) && !gone.contains(&name(EVICT_BATCH + 1)));
    }
}
