//! [`ViewHandle`]: the shared pointer to the current [`View`] that the daemon swaps and the FUSE
//! threads read without locks (one atomic load per request). It also keeps the few views before
//! the current one, so a kernel that still holds a directory inode of an older generation can
//! finish its path walk; older generations answer ESTALE.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use crate::tree::inode::generation_bits;
use crate::tree::source::ObjectMeta;
use crate::tree::View;

/// Views kept reachable: the current one and three before it. A process that `cd`-ed into a
/// directory survives three switches; each kept view costs its `stats().bytes` of memory.
const KEPT_GENERATIONS: usize = 4;

/// The views in reach, newest first (never empty).
pub(crate) struct Generations {
    views: Vec<Arc<View>>,
}

impl Generations {
    pub(crate) fn current(&self) -> &Arc<View> {
        &self.views[0]
    }

    /// The kept view whose generation has these inode bits.
    pub(crate) fn by_bits(&self, bits: u32) -> Option<&Arc<View>> {
        view_by_bits(&self.views, bits)
    }

    /// An object by id, from the newest view that has it.
    pub(crate) fn object(&self, id: u64) -> Option<&ObjectMeta> {
        object_in(&self.views, id)
    }
}

/// The first of `views` whose generation has these inode bits (the kept views and the pinned
/// ones are both searched this way, newest first).
pub(super) fn view_by_bits<'a>(views: impl IntoIterator<Item = &'a Arc<View>>, bits: u32) -> Option<&'a Arc<View>> {
    views.into_iter().find(|v| generation_bits(v.generation()) == bits)
}

/// An object by id, from the first of `views` that has it.
pub(super) fn object_in<'a>(views: impl IntoIterator<Item = &'a Arc<View>>, id: u64) -> Option<&'a ObjectMeta> {
    views.into_iter().find_map(|v| v.object_by_id(id))
}

/// Cheap to clone; every clone sees the same current view.
#[derive(Clone)]
pub struct ViewHandle {
    views: Arc<ArcSwap<Generations>>,
    /// Serialises writers (the daemon's switches); readers never take it.
    writer: Arc<Mutex<()>>,
}

impl std::fmt::Debug for ViewHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generations: Vec<u64> = self.views.load().views.iter().map(|v| v.generation()).collect();
        f.debug_struct("ViewHandle").field("generations", &generations).finish()
    }
}

impl From<View> for ViewHandle {
    fn from(view: View) -> Self {
        ViewHandle::new(view)
    }
}

impl ViewHandle {
    pub fn new(view: View) -> Self {
        let generations = Generations { views: vec![Arc::new(view)] };
        ViewHandle { views: Arc::new(ArcSwap::from_pointee(generations)), writer: Arc::new(Mutex::new(())) }
    }

    /// The view new lookups see.
    pub fn current(&self) -> Arc<View> {
        Arc::clone(self.views.load().current())
    }

    /// Make `view` current in one atomic store and return the view it replaces. A view whose
    /// generation is not above the current one is re-stamped to current + 1 (logged), so two
    /// different trees never share directory inode numbers.
    pub fn store(&self, mut view: View) -> Arc<View> {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.views.load_full();
        let previous = Arc::clone(old.current());
        if view.generation() <= previous.generation() {
            let generation = previous.generation() + 1;
            tracing::warn!(
                given = view.generation(),
                used = generation,
                "view generation did not increase; re-stamped"
            );
            view.restamp(generation);
        }
        let mut views = Vec::with_capacity(KEPT_GENERATIONS);
        views.push(Arc::new(view));
        views.extend(old.views.iter().take(KEPT_GENERATIONS - 1).cloned());
        self.views.store(Arc::new(Generations { views }));
        previous
    }

    pub(crate) fn load(&self) -> Guard<Arc<Generations>> {
        self.views.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_recent_generations_and_restamps() {
        let handle = ViewHandle::new(View::empty(1));
        for generation in [2, 3, 4, 5] {
            let old = handle.store(View::empty(generation));
            assert_eq!(old.generation(), generation - 1);
        }
        let gens = handle.load();
        assert_eq!(gens.current().generation(), 5);
        assert!(gens.by_bits(2).is_some(), "four generations stay reachable");
        assert!(gens.by_bits(1).is_none(), "the fifth is dropped");
        drop(gens);
        handle.store(View::empty(5));
        assert_eq!(handle.current().generation(), 6, "a repeated generation is re-stamped");
    }
}
