//! Safe per-handle logic of the two kinds of bop files: the main database
//! (served by the page store) and the virtual `-wal` file.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bop_frontend::sys::*;
use bop_frontend::{to_code, Op};

use crate::checkpointer;
use crate::locks::ConnId;
use crate::shm::ShmHolder;
use crate::vfs::DbShared;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// SQLite's WAL_WRITE_LOCK slot in the wal-index lock array.
const WAL_WRITE_LOCK: usize = 0;
/// SQLite's WAL_CKPT_LOCK slot.
const WAL_CKPT_LOCK: usize = 1;
/// How long an application's checkpoint waits for bop's background one.
const CKPT_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether slots `[offset, offset + n)` include the WAL write lock.
fn covers_write_lock(offset: usize, n: usize) -> bool {
    (offset..offset + n).contains(&WAL_WRITE_LOCK)
}

/// What one open bop file handle is.
#[derive(Debug)]
pub enum BopFile {
    Main(MainFile),
    Wal(WalFile),
}

#[derive(Debug)]
pub struct MainFile {
    pub db: Arc<DbShared>,
    pub id: ConnId,
    pub level: c_int,
    pub shm: ShmHolder,
    /// Opened by bop's checkpointer, not by the application.
    internal: bool,
}

#[derive(Debug)]
pub struct WalFile {
    pub db: Arc<DbShared>,
}

/// Result of SQLITE_FCNTL_PRAGMA.
pub enum PragmaOutcome {
    NotFound,
    Answer(Option<String>),
    Refuse(String),
}

impl MainFile {
    pub fn new(db: Arc<DbShared>) -> MainFile {
        let internal = checkpointer::opening_internal();
        if !internal {
            db.ckpt.file_opened();
        }
        MainFile {
            db,
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            level: SQLITE_LOCK_NONE,
            shm: ShmHolder::default(),
            internal,
        }
    }

    /// After a commit: the checkpoint policy looks at the WAL's size.
    fn after_commit(&self) {
        checkpointer::after_commit(&self.db.ckpt, &self.db.store);
    }

    pub fn shm_lock(&mut self, offset: usize, n: usize, flags: c_int) -> c_int {
        let releasing_writer = flags & SQLITE_SHM_UNLOCK != 0
            && covers_write_lock(offset, n)
            && self.shm.excl_mask & (1 << WAL_WRITE_LOCK) != 0;
        let taking_writer = flags & SQLITE_SHM_LOCK != 0
            && flags & SQLITE_SHM_EXCLUSIVE != 0
            && covers_write_lock(offset, n);
        if taking_writer {
            // Backpressure: a new transaction starts only when the record
            // log's unsynced buffer has room (bounded wait, then SQLITE_BUSY,
            // which SQLite's busy handler retries).
            if let Err(e) = self.db.store.admit_writer() {
                return to_code(&e, Op::Write);
            }
        }
        let mut rc = SQLITE_OK;
        if releasing_writer {
            // The write transaction is over: seal its frames into one
            // record of the record log before another writer can start.
            match self.db.store.end_write_transaction() {
                Ok(()) => self.after_commit(),
                Err(e) => rc = to_code(&e, Op::Write),
            }
        }
        let mut lrc = self.db.shm.lock(self.id, &mut self.shm, offset, n, flags);
        if lrc == SQLITE_BUSY
            && !self.internal
            && flags & SQLITE_SHM_LOCK != 0
            && flags & SQLITE_SHM_EXCLUSIVE != 0
            && (offset..offset + n).contains(&WAL_CKPT_LOCK)
            && self.db.ckpt.wait_idle(CKPT_WAIT_MAX)
        {
            // The application's checkpoint met bop's background one, which
            // never waits for anything: wait for it to end and try again,
            // so an application without a busy handler does not see a
            // SQLITE_BUSY it would not get without bop.
            lrc = self.db.shm.lock(self.id, &mut self.shm, offset, n, flags);
        }
        if taking_writer && lrc == SQLITE_OK {
            self.db.store.begin_write_transaction();
        }
        if rc == SQLITE_OK {
            lrc
        } else {
            rc
        }
    }

    /// Seals the just-committed transaction into one record of the record
    /// log.
    pub fn commit_phase_two(&self) -> c_int {
        match self.db.store.commit_phase_two() {
            Ok(()) => {
                self.after_commit();
                SQLITE_OK
            }
            Err(e) => to_code(&e, Op::Write),
        }
    }

    pub fn pragma(&self, name: &str, arg: Option<&str>) -> PragmaOutcome {
        match name.to_ascii_lowercase().as_str() {
            "journal_mode" => match arg {
                Some(mode) if !mode.eq_ignore_ascii_case("wal") => PragmaOutcome::Refuse(format!(
                    "bop: journal_mode={mode} is not supported; bop databases always use WAL mode"
                )),
                _ => PragmaOutcome::NotFound,
            },
            "bop_stats" => PragmaOutcome::Answer(Some(bop_frontend::bop_stats(
                &self.db.store.stats(),
                &self.db.vfs_stats(),
            ))),
            "bop_verify" => match self.db.store.verify() {
                Ok(r) => PragmaOutcome::Answer(Some(format!(
                    "ok pages={} records={}",
                    r.pages_checked, r.records_checked
                ))),
                Err(e) => PragmaOutcome::Refuse(e.to_string()),
            },
            _ => PragmaOutcome::NotFound,
        }
    }
}

impl Drop for MainFile {
    fn drop(&mut self) {
        self.db.shm.release_all(self.id, &mut self.shm);
        let mut level = self.level;
        self.db.locks.unlock(self.id, &mut level, SQLITE_LOCK_NONE);
        if !self.internal {
            // The application's last close waits for a running background
            // checkpoint (which holds the store open).
            self.db.ckpt.file_closed();
        }
    }
}

impl BopFile {
    pub fn store(&self) -> &bop_storage::Store {
        match self {
            BopFile::Main(m) => &m.db.store,
            BopFile::Wal(w) => &w.db.store,
        }
    }

    pub fn read(&mut self, buf: &mut [u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_read(offset, buf),
            BopFile::Wal(w) => w.db.store.wal_image_read(offset, buf),
        };
        match r {
            Ok(n) if n == buf.len() => SQLITE_OK,
            Ok(_) => SQLITE_IOERR_SHORT_READ,
            Err(e) => to_code(&e, Op::Read),
        }
    }

    pub fn write(&mut self, data: &[u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_write(offset, data),
            BopFile::Wal(w) => w.db.store.wal_image_write(offset, data),
        };
        r.map_or_else(|e| to_code(&e, Op::Write), |_| SQLITE_OK)
    }

    pub fn truncate(&mut self, size: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_truncate(size),
            BopFile::Wal(w) => w.db.store.wal_image_truncate(size),
        };
        r.map_or_else(|e| to_code(&e, Op::Truncate), |_| SQLITE_OK)
    }

    pub fn sync(&mut self) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_sync(),
            BopFile::Wal(w) => w.db.store.wal_image_sync(),
        };
        r.map_or_else(|e| to_code(&e, Op::Sync), |_| SQLITE_OK)
    }

    pub fn size(&self) -> u64 {
        match self {
            BopFile::Main(m) => m.db.store.db_size(),
            BopFile::Wal(w) => w.db.store.wal_image_size(),
        }
    }

    pub fn lock(&mut self, want: c_int) -> c_int {
        match self {
            // The checkpointer's own connection never closes the last
            // handle (it runs only while the application has the database
            // open), so at close SQLite's attempt at EXCLUSIVE (to
            // checkpoint and delete the WAL) fails anyway: it must not hold
            // PENDING meanwhile, which would make the application's readers
            // starting a transaction get SQLITE_BUSY.
            BopFile::Main(m) if m.internal && want == SQLITE_LOCK_EXCLUSIVE => {
                m.db.locks.lock_if_alone(m.id, &mut m.level, want)
            }
            BopFile::Main(m) => m.db.locks.lock(m.id, &mut m.level, want),
            BopFile::Wal(_) => SQLITE_OK,
        }
    }

    pub fn unlock(&mut self, to: c_int) -> c_int {
        if let BopFile::Main(m) = self {
            m.db.locks.unlock(m.id, &mut m.level, to);
        }
        SQLITE_OK
    }

    pub fn check_reserved(&self) -> bool {
        match self {
            BopFile::Main(m) => m.db.locks.reserved(),
            BopFile::Wal(_) => false,
        }
    }

    pub fn device_characteristics(&self) -> c_int {
        // Writes never disturb bytes outside their range, even on power loss.
        SQLITE_IOCAP_POWERSAFE_OVERWRITE
    }
}
