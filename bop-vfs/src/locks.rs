//! In-process file locks on the main database, with SQLite's lock levels
//! (NONE < SHARED < RESERVED < PENDING < EXCLUSIVE). Other processes are
//! kept out of the store as a whole by the store's own process lock, so
//! these only arbitrate between connections of this process.
//!
//! Invariants of [`DbLocks`]:
//! 1. `shared` counts connections at SHARED or above.
//! 2. At most one connection holds RESERVED, at most one PENDING, at most
//!    one EXCLUSIVE; a connection holding EXCLUSIVE is the only one counted
//!    in `shared`.

use std::ffi::c_int;
use std::sync::Mutex;

use bop_frontend::sys::*;

/// Identifies one open file handle.
pub type ConnId = u64;

#[derive(Debug, Default)]
struct State {
    shared: u32,
    reserved: Option<ConnId>,
    pending: Option<ConnId>,
    exclusive: Option<ConnId>,
}

#[derive(Debug, Default)]
pub struct DbLocks {
    state: Mutex<State>,
}

fn other(holder: Option<ConnId>, me: ConnId) -> bool {
    holder.is_some_and(|h| h != me)
}

impl DbLocks {
    /// [`DbLocks::lock`], but fails with `SQLITE_BUSY` at once, taking
    /// nothing, when another connection holds SHARED: PENDING is never held
    /// waiting for readers to finish.
    pub fn lock_if_alone(&self, me: ConnId, level: &mut c_int, want: c_int) -> c_int {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mine = u32::from(*level >= SQLITE_LOCK_SHARED);
        if s.shared > mine {
            return SQLITE_BUSY;
        }
        Self::lock_locked(&mut s, me, level, want)
    }

    /// Raises `*level` towards `want`; returns SQLITE_OK or SQLITE_BUSY.
    pub fn lock(&self, me: ConnId, level: &mut c_int, want: c_int) -> c_int {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::lock_locked(&mut s, me, level, want)
    }

    fn lock_locked(s: &mut State, me: ConnId, level: &mut c_int, want: c_int) -> c_int {
        if *level >= want {
            return SQLITE_OK;
        }
        if *level == SQLITE_LOCK_NONE {
            debug_assert_eq!(want, SQLITE_LOCK_SHARED, "SQLite takes SHARED first");
            if other(s.pending, me) || other(s.exclusive, me) {
                return SQLITE_BUSY;
            }
            s.shared += 1;
            *level = SQLITE_LOCK_SHARED;
            if want == SQLITE_LOCK_SHARED {
                return SQLITE_OK;
            }
        }
        if want == SQLITE_LOCK_RESERVED {
            if other(s.reserved, me) || other(s.exclusive, me) {
                return SQLITE_BUSY;
            }
            s.reserved = Some(me);
            *level = SQLITE_LOCK_RESERVED;
            return SQLITE_OK;
        }
        // PENDING or EXCLUSIVE.
        if other(s.pending, me) || other(s.exclusive, me) {
            return SQLITE_BUSY;
        }
        s.pending = Some(me);
        *level = SQLITE_LOCK_PENDING;
        if want == SQLITE_LOCK_PENDING {
            return SQLITE_OK;
        }
        if s.shared > 1 {
            return SQLITE_BUSY; // stays PENDING: new readers wait, SQLite retries
        }
        s.exclusive = Some(me);
        *level = SQLITE_LOCK_EXCLUSIVE;
        debug_assert_eq!(s.shared, 1, "invariant 2");
        SQLITE_OK
    }

    /// Lowers `*level` to `to` (SHARED or NONE).
    pub fn unlock(&self, me: ConnId, level: &mut c_int, to: c_int) {
        if *level <= to {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.exclusive == Some(me) {
            s.exclusive = None;
        }
        if s.pending == Some(me) {
            s.pending = None;
        }
        if s.reserved == Some(me) {
            s.reserved = None;
        }
        if to == SQLITE_LOCK_NONE && *level >= SQLITE_LOCK_SHARED {
            s.shared -= 1;
        }
        *level = to;
    }

    /// Whether some connection holds RESERVED or above.
    pub fn reserved(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.reserved.is_some() || s.pending.is_some() || s.exclusive.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writer_excludes() {
        let l = DbLocks::default();
        let (mut a, mut b) = (SQLITE_LOCK_NONE, SQLITE_LOCK_NONE);
        assert_eq!(l.lock(1, &mut a, SQLITE_LOCK_SHARED), SQLITE_OK);
        assert_eq!(l.lock(2, &mut b, SQLITE_LOCK_SHARED), SQLITE_OK);
        assert_eq!(l.lock(1, &mut a, SQLITE_LOCK_RESERVED), SQLITE_OK);
        assert_eq!(l.lock(2, &mut b, SQLITE_LOCK_RESERVED), SQLITE_BUSY);
        assert_eq!(l.lock(1, &mut a, SQLITE_LOCK_EXCLUSIVE), SQLITE_BUSY);
        assert_eq!(a, SQLITE_LOCK_PENDING);
        l.unlock(2, &mut b, SQLITE_LOCK_NONE);
        assert_eq!(l.lock(1, &mut a, SQLITE_LOCK_EXCLUSIVE), SQLITE_OK);
        assert_eq!(l.lock(2, &mut b, SQLITE_LOCK_SHARED), SQLITE_BUSY);
        assert!(l.reserved());
        l.unlock(1, &mut a, SQLITE_LOCK_NONE);
        assert_eq!(l.lock(2, &mut b, SQLITE_LOCK_SHARED), SQLITE_OK);
        assert!(!l.reserved());
    }

    #[test]
    fn an_exclusive_attempt_beside_readers_can_leave_no_pending_behind() {
        let l = DbLocks::default();
        let (mut ckpt, mut reader, mut late) =
            (SQLITE_LOCK_NONE, SQLITE_LOCK_NONE, SQLITE_LOCK_NONE);
        assert_eq!(l.lock(1, &mut ckpt, SQLITE_LOCK_SHARED), SQLITE_OK);
        assert_eq!(l.lock(2, &mut reader, SQLITE_LOCK_SHARED), SQLITE_OK);
        // A closing checkpointer connection's EXCLUSIVE attempt fails at
        // once and takes nothing: a reader arriving now is not refused.
        assert_eq!(
            l.lock_if_alone(1, &mut ckpt, SQLITE_LOCK_EXCLUSIVE),
            SQLITE_BUSY
        );
        assert_eq!(ckpt, SQLITE_LOCK_SHARED);
        assert_eq!(l.lock(3, &mut late, SQLITE_LOCK_SHARED), SQLITE_OK);
        // Alone, it gets EXCLUSIVE as usual.
        l.unlock(2, &mut reader, SQLITE_LOCK_NONE);
        l.unlock(3, &mut late, SQLITE_LOCK_NONE);
        assert_eq!(
            l.lock_if_alone(1, &mut ckpt, SQLITE_LOCK_EXCLUSIVE),
            SQLITE_OK
        );
    }
}
