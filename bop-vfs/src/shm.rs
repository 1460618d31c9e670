//! The wal-index (`-shm`) in process memory, shared by every connection to
//! one database in this process. It is derived state: when the last handle
//! closes it is dropped. The next opener starts from a wal-index bop built
//! from the frames it knows (`wal_index.rs`), or, when it does not know
//! them all, from zeros, and SQLite rebuilds it by reading the WAL image.
//!
//! Invariants:
//! 1. Regions are allocated once (zeroed, or built before any connection
//!    maps them) and never move or shrink while the [`Shm`] lives (SQLite
//!    keeps raw pointers to them).
//! 2. For each of the `SQLITE_SHM_NLOCK` slots: either `excl` is set and
//!    `shared == 0`, or `excl` is unset.

use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use bop_frontend::sys::*;

use crate::locks::ConnId;

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    shared: u32,
    excl: Option<ConnId>,
}

#[derive(Debug, Default)]
struct State {
    /// Each region is `u64`s so it is 8-byte aligned for SQLite's atomics.
    regions: Vec<Box<[u64]>>,
    slots: [Slot; SQLITE_SHM_NLOCK],
}

#[derive(Debug, Default)]
pub struct Shm {
    state: Mutex<State>,
}

/// A connection's holdings, kept in its file handle.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShmHolder {
    pub shared_mask: u16,
    pub excl_mask: u16,
}

impl Shm {
    /// A wal-index that starts with `regions` (of `wal_index::REGION_BYTES`).
    pub fn with_regions(regions: Vec<Box<[u64]>>) -> Shm {
        Shm {
            state: Mutex::new(State {
                regions,
                ..Default::default()
            }),
        }
    }

    /// Returns region `index` of `size_bytes`, allocating it (and any
    /// before it) if `extend`; null if absent and not `extend`.
    pub fn map(&self, index: usize, size_bytes: usize, extend: bool) -> Result<*mut c_void, c_int> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.regions.len() <= index {
            if !extend {
                return Ok(std::ptr::null_mut());
            }
            while s.regions.len() <= index {
                s.regions
                    .push(vec![0u64; size_bytes.div_ceil(8)].into_boxed_slice());
            }
        }
        let region = &mut s.regions[index];
        if region.len() * 8 < size_bytes {
            return Err(SQLITE_IOERR_SHMMAP);
        }
        Ok(region.as_mut_ptr().cast())
    }

    /// SQLite's xShmLock for slots `[offset, offset + n)`.
    pub fn lock(
        &self,
        me: ConnId,
        holder: &mut ShmHolder,
        offset: usize,
        n: usize,
        flags: c_int,
    ) -> c_int {
        if offset + n > SQLITE_SHM_NLOCK || n == 0 {
            return SQLITE_MISUSE;
        }
        let mask: u16 = (((1u32 << n) - 1) << offset) as u16;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if flags & SQLITE_SHM_UNLOCK != 0 {
            for i in offset..offset + n {
                let bit = 1u16 << i;
                if holder.shared_mask & bit != 0 {
                    s.slots[i].shared -= 1;
                }
                if holder.excl_mask & bit != 0 {
                    s.slots[i].excl = None;
                }
            }
            holder.shared_mask &= !mask;
            holder.excl_mask &= !mask;
            return SQLITE_OK;
        }
        if flags & SQLITE_SHM_SHARED != 0 {
            debug_assert_eq!(n, 1);
            if holder.shared_mask & mask != 0 {
                return SQLITE_OK;
            }
            if s.slots[offset].excl.is_some_and(|h| h != me) {
                return SQLITE_BUSY;
            }
            s.slots[offset].shared += 1;
            holder.shared_mask |= mask;
            return SQLITE_OK;
        }
        // Exclusive.
        for i in offset..offset + n {
            let own_shared = u32::from(holder.shared_mask & (1 << i) != 0);
            let slot = s.slots[i];
            if slot.excl.is_some_and(|h| h != me) || slot.shared > own_shared {
                return SQLITE_BUSY;
            }
        }
        for i in offset..offset + n {
            s.slots[i].excl = Some(me);
            debug_assert!(s.slots[i].shared <= 1, "invariant 2");
        }
        holder.excl_mask |= mask;
        SQLITE_OK
    }

    /// Releases everything a closing connection still holds.
    pub fn release_all(&self, me: ConnId, holder: &mut ShmHolder) {
        self.lock(
            me,
            holder,
            0,
            SQLITE_SHM_NLOCK,
            SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_exclusive_conflict() {
        let shm = Shm::default();
        let (mut a, mut b) = (ShmHolder::default(), ShmHolder::default());
        assert_eq!(
            shm.lock(1, &mut a, 3, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED),
            SQLITE_OK
        );
        assert_eq!(
            shm.lock(2, &mut b, 3, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE),
            SQLITE_BUSY
        );
        assert_eq!(
            shm.lock(2, &mut b, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE),
            SQLITE_OK
        );
        assert_eq!(
            shm.lock(1, &mut a, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED),
            SQLITE_BUSY
        );
        shm.release_all(2, &mut b);
        assert_eq!(
            shm.lock(1, &mut a, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED),
            SQLITE_OK
        );
        let p1 = shm.map(0, 32768, true).unwrap();
        let p2 = shm.map(1, 32768, true).unwrap();
        assert_eq!(shm.map(0, 32768, false).unwrap(), p1);
        assert!(!p2.is_null());
        assert!(shm.map(5, 32768, false).unwrap().is_null());
    }
}
