//! The page cache: one per process, shared by every database of every
//! store, bounded in bytes.
//!
//! **What it caches.** Pages of page chunks, *after* their checksum was
//! verified, keyed by where they live: (page store instance, chunk id,
//! slot). A chunk is never modified after it is written and chunk ids are
//! never reused within a page store instance, so an entry can never go
//! stale: a checkpoint or compaction that moves a page gives it a new key,
//! and the old entry just ages out. There is no invalidation protocol to
//! get wrong. A reopened store gets a new instance id. Also the pages of
//! small durable commits, copied in when they are sealed, keyed (WAL image
//! instance, record LSN, offset in the record): log records never change
//! and LSNs are never reused (`wal_image/frame_cache.rs`).
//!
//! **Structure.** `SHARDS` shards, each a mutex over a hash map and a ring
//! of slots swept by a CLOCK hand (second chance: a hit sets the slot's
//! reference bit; the hand clears set bits and evicts the first slot it
//! finds clear). Each shard holds at most `capacity / SHARDS` bytes of
//! pages. A lookup copies the page out under the shard lock (a 4 KiB copy,
//! tens of ns); nothing else ever runs under it: no I/O, no callback, no
//! allocation on a hit. An insert reuses the buffer of the entry it evicts
//! when the sizes match (the common case: one page size per process), so
//! a warm cache allocates nothing.
//!
//! Invariants (per shard, under its lock):
//! 1. `map[k] == i` exactly when `slots[i]` is live with key `k`.
//! 2. `bytes` is the sum of the lengths of live slots' pages and is at
//!    most the shard's capacity after every insert.
//! 3. Dead slots hold no memory and are listed in `free`.

mod clock;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use clock::Shard;

/// Shards of the cache (a power of two).
pub const SHARDS: usize = 16;
/// Capacity when neither `BOP_CACHE_MB` nor the URI parameter `cache_mb`
/// sets one.
pub const DEFAULT_CAPACITY_BYTES: u64 = 64 << 20;
/// Largest capacity accepted, in MiB.
pub const CAPACITY_MB_MAX: u64 = 1 << 20;

/// Where a cached page lives: a slot of a chunk of one page store
/// instance, or an offset in a log record of one WAL image instance
/// (`chunk` is then the record's LSN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Process-unique id of the page store or WAL image instance
    /// ([`next_owner_id`]).
    pub owner: u64,
    pub chunk: u64,
    pub slot: u32,
}

impl CacheKey {
    fn hash64(&self) -> u64 {
        // Fast, well-mixed (splitmix64 finaliser over the fields).
        let mut x = self.owner.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ self.chunk.rotate_left(29)
            ^ u64::from(self.slot).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 31;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 29)
    }
}

/// A fresh instance id (for a page store or a WAL image).
pub fn next_owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Counters of the cache (process-wide).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub capacity_bytes: u64,
    pub bytes: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    /// Entries dropped because a newer version replaced them
    /// ([`PageCache::replace`], [`PageCache::remove`]).
    pub removals: u64,
    /// Inserts skipped because the page is larger than a shard.
    pub too_large: u64,
    /// Pages of long sequential scans not cached (no room without evicting).
    pub scan_skips: u64,
}

/// A sharded, byte-bounded CLOCK cache of verified pages.
#[derive(Debug)]
pub struct PageCache {
    shards: Box<[Mutex<Shard>]>,
    capacity_bytes: AtomicU64,
    /// Inserts skipped because the page is larger than a shard (rare; the
    /// other counters live in the shards, under their locks).
    too_large: AtomicU64,
}

impl PageCache {
    pub fn new(capacity_bytes: u64) -> PageCache {
        PageCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            capacity_bytes: AtomicU64::new(capacity_bytes),
            too_large: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &CacheKey) -> (&Mutex<Shard>, u64) {
        let h = key.hash64();
        (&self.shards[(h >> 60) as usize & (SHARDS - 1)], h)
    }

    fn shard_capacity(&self) -> usize {
        (self.capacity_bytes.load(Ordering::Relaxed) / SHARDS as u64) as usize
    }

    fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
        // A shard's state is consistent between statements that can panic
        // (none can mid-update), so a poisoned lock is still usable.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies the page cached under `key` into `out` (whose length must be
    /// the page's) and returns `true`, or returns `false` on a miss.
    pub fn get(&self, key: &CacheKey, out: &mut [u8]) -> bool {
        let (m, h) = self.shard(key);
        Self::lock(m).get(key, h, out)
    }

    /// Caches a verified page under `key` (no-op if it is already cached,
    /// or larger than a shard), evicting as needed to stay in bound.
    pub fn insert(&self, key: CacheKey, page: &[u8]) {
        self.replace(None, key, page);
    }

    /// Caches `page` under `new` in place of the entry under `old` (if it is
    /// still cached): the old entry's buffer is reused, so a cached page that
    /// keeps getting newer versions (a frame of the WAL image superseded by a
    /// later frame of the same page) costs no allocation and no growth. The
    /// two shards are locked one after the other, never together.
    pub fn replace(&self, old: Option<&CacheKey>, new: CacheKey, page: &[u8]) {
        let spare = old.and_then(|k| {
            let (m, h) = self.shard(k);
            Self::lock(m).remove(k, h)
        });
        let cap = self.shard_capacity();
        if page.len() > cap {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (m, h) = self.shard(&new);
        Self::lock(m).insert(new, h, page, cap, spare);
    }

    /// Drops the entry under `key`, if cached.
    pub fn remove(&self, key: &CacheKey) {
        let (m, h) = self.shard(key);
        Self::lock(m).remove(key, h);
    }

    /// Caches a page read by a long sequential scan only if it fits without
    /// evicting anything: a scan larger than the cache would otherwise push
    /// out the hot pages and pay a copy per page for entries it never reads
    /// again (scan resistance). Returns whether it was cached.
    pub fn insert_if_room(&self, key: CacheKey, page: &[u8]) -> bool {
        let cap = self.shard_capacity();
        let (m, h) = self.shard(&key);
        let mut shard = Self::lock(m);
        if shard.bytes() + page.len() > cap {
            shard.counters.scan_skips += 1;
            return false;
        }
        shard.insert(key, h, page, cap, None).is_some()
    }

    /// Changes the bound; shards over it evict at once.
    pub fn set_capacity(&self, capacity_bytes: u64) {
        self.capacity_bytes.store(capacity_bytes, Ordering::Relaxed);
        let cap = self.shard_capacity();
        for m in self.shards.iter() {
            Self::lock(m).trim(cap);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let mut out = CacheStats {
            capacity_bytes: self.capacity_bytes.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            ..Default::default()
        };
        for m in self.shards.iter() {
            let s = Self::lock(m);
            out.bytes += s.bytes() as u64;
            out.entries += s.len() as u64;
            out.hits += s.counters.hits;
            out.misses += s.counters.misses;
            out.inserts += s.counters.inserts;
            out.evictions += s.counters.evictions;
            out.removals += s.counters.removals;
            out.scan_skips += s.counters.scan_skips;
        }
        out
    }
}

/// The capacity `BOP_CACHE_MB` asks for; an unset, empty or invalid value
/// gives the default (an invalid one with a warning).
fn env_capacity() -> u64 {
    match std::env::var("BOP_CACHE_MB") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(mb) if mb <= CAPACITY_MB_MAX => mb << 20,
            _ => {
                tracing::warn!(value = %v, "BOP_CACHE_MB must be a number of MiB from 0 to {CAPACITY_MB_MAX}; using the default");
                DEFAULT_CAPACITY_BYTES
            }
        },
        _ => DEFAULT_CAPACITY_BYTES,
    }
}

/// The process-wide page cache.
pub fn global() -> &'static PageCache {
    static CACHE: OnceLock<PageCache> = OnceLock::new();
    CACHE.get_or_init(|| PageCache::new(env_capacity()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: u64, slot: u32) -> CacheKey {
        CacheKey {
            owner,
            chunk: 7,
            slot,
        }
    }

    fn page(seed: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seed as usize * 131 + i) as u8).collect()
    }

    #[test]
    fn replace_drops_the_older_version_and_keeps_the_bytes_bound() {
        let c = PageCache::new(1 << 20);
        let mut out = vec![0u8; 4096];
        c.replace(None, key(1, 1), &page(1, 4096));
        for v in 2..50u32 {
            c.replace(Some(&key(1, v - 1)), key(1, v), &page(v, 4096));
        }
        let s = c.stats();
        assert_eq!((s.entries, s.bytes, s.removals), (1, 4096, 48), "{s:?}");
        assert!(!c.get(&key(1, 48), &mut out), "the older version is gone");
        assert!(c.get(&key(1, 49), &mut out));
        assert_eq!(out, page(49, 4096));
        // The older key already gone (evicted, say): a plain insert.
        c.replace(Some(&key(1, 1)), key(1, 50), &page(50, 4096));
        assert_eq!(c.stats().entries, 2);
        c.remove(&key(1, 49));
        c.remove(&key(1, 49));
        let s = c.stats();
        assert_eq!((s.entries, s.bytes, s.removals), (1, 4096, 49), "{s:?}");
        assert!(c.get(&key(1, 50), &mut out));
        assert_eq!(out, page(50, 4096));
    }

    #[test]
    fn hits_return_what_was_inserted_and_misses_say_so() {
        let c = PageCache::new(1 << 20);
        let mut out = vec![0u8; 4096];
        assert!(!c.get(&key(1, 1), &mut out));
        c.insert(key(1, 1), &page(1, 4096));
        assert!(c.get(&key(1, 1), &mut out));
        assert_eq!(out, page(1, 4096));
        assert!(!c.get(&key(2, 1), &mut out), "another owner's slot 1");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.entries), (1, 2, 1, 1));
        assert_eq!(s.bytes, 4096);
    }

    #[test]
    fn stays_within_its_bound_with_mixed_page_sizes() {
        let cap = 256 << 10;
        let c = PageCache::new(cap);
        for i in 0..2000u32 {
            let len = [512, 4096, 8192, 1024][i as usize % 4];
            c.insert(key(1, i), &page(i, len));
            let s = c.stats();
            assert!(s.bytes <= cap, "{} bytes over the bound {cap}", s.bytes);
        }
        let s = c.stats();
        assert!(s.evictions > 0 && s.bytes > cap / 2, "{s:?}");
        // Whatever is still cached is intact.
        let mut found = 0;
        for i in 0..2000u32 {
            let len = [512, 4096, 8192, 1024][i as usize % 4];
            let mut out = vec![0u8; len];
            if c.get(&key(1, i), &mut out) {
                assert_eq!(out, page(i, len));
                found += 1;
            }
        }
        assert_eq!(found, s.entries);
    }

    #[test]
    fn second_chance_keeps_a_hot_page_through_a_scan() {
        // One shard's worth of pages per shard, scanned once, while page
        // `hot` is read between inserts: CLOCK keeps it.
        let c = PageCache::new(SHARDS as u64 * 8 * 4096);
        let hot = key(9, 0);
        c.insert(hot, &page(0, 4096));
        let mut out = vec![0u8; 4096];
        for i in 1..2000u32 {
            c.insert(key(1, i), &page(i, 4096));
            assert!(c.get(&hot, &mut out), "hot page evicted after {i} inserts");
        }
        assert_eq!(out, page(0, 4096));
    }

    #[test]
    fn shrinking_evicts_at_once_and_too_large_pages_are_skipped() {
        let c = PageCache::new(1 << 20);
        for i in 0..200u32 {
            c.insert(key(1, i), &page(i, 4096));
        }
        c.set_capacity(64 << 10);
        assert!(c.stats().bytes <= 64 << 10, "{:?}", c.stats());
        c.set_capacity(SHARDS as u64 * 1024);
        c.insert(key(2, 0), &page(0, 4096));
        let s = c.stats();
        assert_eq!(s.too_large, 1, "{s:?}");
        c.set_capacity(0);
        assert_eq!(c.stats().bytes, 0);
        assert!(!c.get(&key(1, 199), &mut vec![0u8; 4096]));
    }

    #[test]
    fn scan_pages_fill_free_room_but_never_evict() {
        let c = PageCache::new(SHARDS as u64 * 4 * 4096);
        for i in 0..(SHARDS as u32 * 4) {
            c.insert(key(1, i), &page(i, 4096));
        }
        let before = c.stats();
        let mut cached = 0;
        for i in 0..1000u32 {
            cached += usize::from(c.insert_if_room(key(2, i), &page(i, 4096)));
        }
        let s = c.stats();
        assert_eq!(s.evictions, before.evictions, "{s:?}");
        assert_eq!(s.entries, before.entries + cached as u64);
        assert!(s.scan_skips >= 1000 - cached as u64, "{s:?}");
        // The pages cached before the scan are all still there.
        let mut out = vec![0u8; 4096];
        let kept = (0..(SHARDS as u32 * 4))
            .filter(|&i| c.get(&key(1, i), &mut out))
            .count();
        assert_eq!(kept as u64, before.entries);
    }

    #[test]
    fn concurrent_readers_and_inserters_see_only_correct_pages() {
        let c = std::sync::Arc::new(PageCache::new(512 << 10));
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut out = vec![0u8; 4096];
                    let mut x = t.wrapping_mul(2654435761) | 1;
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let slot = x % 600;
                        if c.get(&key(1, slot), &mut out) {
                            assert_eq!(out, page(slot, 4096), "slot {slot}");
                        } else {
                            c.insert(key(1, slot), &page(slot, 4096));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = c.stats();
        assert!(s.bytes <= 512 << 10, "{s:?}");
        assert!(s.hits > 0 && s.evictions > 0, "{s:?}");
    }
}
