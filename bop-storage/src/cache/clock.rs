//! One shard of the page cache: a hash map from key to slot, and a ring of
//! slots swept by a CLOCK hand. See `mod.rs` for the invariants.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::CacheKey;

/// Hashes a `CacheKey` by the 64-bit hash the cache computed already.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only write_u64 is used");
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map key: the cache key with its hash, so the map never rehashes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hashed(CacheKey, u64);

impl std::hash::Hash for Hashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.1);
    }
}

#[derive(Debug, Default)]
struct Slot {
    key: Option<CacheKey>,
    page: Vec<u8>,
    referenced: bool,
}

/// Counters of one shard, kept under its lock (no shared atomics on the
/// read path).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ShardCounters {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    pub removals: u64,
    pub scan_skips: u64,
}

#[derive(Debug, Default)]
pub(super) struct Shard {
    map: HashMap<Hashed, usize, BuildHasherDefault<PreHashed>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
    pub(super) counters: ShardCounters,
}

impl Shard {
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get(&mut self, key: &CacheKey, hash: u64, out: &mut [u8]) -> bool {
        let Some(&i) = self.map.get(&Hashed(*key, hash)) else {
            self.counters.misses += 1;
            return false;
        };
        let slot = &mut self.slots[i];
        if slot.page.len() != out.len() {
            // Same location, other page size: cannot happen for one page
            // store; treat as a miss rather than return a partial page.
            self.counters.misses += 1;
            return false;
        }
        slot.referenced = true;
        out.copy_from_slice(&slot.page);
        self.counters.hits += 1;
        true
    }

    /// Inserts `page` under `key`, evicting to stay within `cap` bytes.
    /// Returns how many entries were evicted, or `None` if `key` was
    /// cached already.
    pub(super) fn insert(
        &mut self,
        key: CacheKey,
        hash: u64,
        page: &[u8],
        cap: usize,
        spare: Option<Vec<u8>>,
    ) -> Option<usize> {
        let k = Hashed(key, hash);
        if self.map.contains_key(&k) {
            return None;
        }
        let mut evicted = 0;
        let mut reuse: Option<(usize, Vec<u8>)> = None;
        while self.bytes + page.len() > cap {
            let (i, buf) = self.evict_one();
            evicted += 1;
            // Keep one evicted buffer to reuse; free the others' memory.
            match &reuse {
                Some((_, b)) if b.len() == page.len() => self.free.push(i),
                Some((j, _)) => {
                    self.free.push(*j);
                    reuse = Some((i, buf));
                }
                None => reuse = Some((i, buf)),
            }
        }
        // A buffer to fill: an evicted entry's, else the caller's spare.
        let (i, mut buf) = match reuse {
            Some(r) => r,
            None => match self.free.pop() {
                Some(i) => (i, spare.unwrap_or_default()),
                None => {
                    self.slots.push(Slot::default());
                    (self.slots.len() - 1, spare.unwrap_or_default())
                }
            },
        };
        if buf.len() == page.len() {
            buf.copy_from_slice(page);
        } else {
            buf = page.to_vec();
        }
        self.bytes += buf.len();
        self.slots[i] = Slot {
            key: Some(key),
            page: buf,
            referenced: false,
        };
        self.map.insert(k, i);
        debug_assert!(self.bytes <= cap, "invariant 2");
        self.counters.inserts += 1;
        self.counters.evictions += evicted as u64;
        Some(evicted)
    }

    /// Removes the entry under `key`, if any, and returns its page buffer
    /// (for the caller to reuse).
    pub(super) fn remove(&mut self, key: &CacheKey, hash: u64) -> Option<Vec<u8>> {
        let i = self.map.remove(&Hashed(*key, hash))?;
        let slot = &mut self.slots[i];
        let page = std::mem::take(&mut slot.page);
        slot.key = None;
        slot.referenced = false;
        self.bytes -= page.len();
        // Invariants 1 and 3: no map entry, no memory, listed as free.
        self.free.push(i);
        self.counters.removals += 1;
        Some(page)
    }

    /// Evicts down to `cap` bytes; returns how many entries went.
    pub(super) fn trim(&mut self, cap: usize) -> usize {
        let mut evicted = 0;
        while self.bytes > cap {
            let (i, _) = self.evict_one();
            self.free.push(i);
            evicted += 1;
        }
        self.counters.evictions += evicted as u64;
        evicted
    }

    /// Advances the hand to the first live slot whose reference bit is
    /// clear (clearing set bits on the way), evicts it, and returns its
    /// index and page buffer. The caller makes the slot live again or
    /// lists it in `free` (invariant 3). Needs at least one live slot.
    fn evict_one(&mut self) -> (usize, Vec<u8>) {
        debug_assert!(!self.map.is_empty(), "evict from an empty shard");
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let slot = &mut self.slots[i];
            let Some(key) = slot.key else { continue };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let page = std::mem::take(&mut slot.page);
            slot.key = None;
            self.bytes -= page.len();
            let hash = key.hash64();
            self.map.remove(&Hashed(key, hash));
            return (i, page);
        }
    }
}
