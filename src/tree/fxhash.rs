//! A fast non-cryptographic hasher for the build's transient maps (names, directories). The
//! default SipHash was a fifth of build time on a million entries; collision resistance does
//! not matter here because every name comes from a signature-verified index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The multiplier of rustc's FxHash (a large odd constant with well-spread bits).
const SEED: u64 = 0x517c_c1b7_2722_0a95;

/// MurmurHash3 fmix64 constants.
const FMIX1: u64 = 0xff51_afd7_ed55_8ccd;
const FMIX2: u64 = 0xc4ce_b9fe_1a85_ec53;

pub(super) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ rest.len() as u64);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply only carries low bits upwards, and hashbrown picks buckets by the low bits:
    /// fold the high bits down (MurmurHash3's fmix64) or names differing late collide.
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(FMIX1);
        h ^= h >> 33;
        h = h.wrapping_mul(FMIX2);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_inputs_hash_differently() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let inputs = ["", "a", "a\0", "ab", "abcdefgh", "abcdefghi", "by-hash", "SHA256"];
        let hashes: std::collections::HashSet<u64> = inputs.iter().map(|s| build.hash_one(s)).collect();
        assert_eq!(hashes.len(), inputs.len());
        assert_eq!(build.hash_one((1u32, "x")), build.hash_one((1u32, "x")));
    }
}
