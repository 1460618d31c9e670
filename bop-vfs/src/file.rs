//! Safe per-handle logic of the three kinds of bop files: the main
//! database (served by the page store), the virtual `-wal` file, and a
//! rollback journal kept in memory.
//!
//! A new database is empty (size 0) until SQLite first writes it, so
//! SQLite runs that first write transaction in rollback mode, with a
//! journal: bop keeps it in memory ([`JournalFile`]), since the database
//! file's sync publishes the transaction's pages atomically (a crash before
//! it leaves the database empty, a crash after it finds the whole
//! transaction) and the journal serves only ROLLBACK within the process.
//! The page 1 that transaction writes is made a WAL database's
//! ([`as_wal_page1`]), so every connection opens the WAL at its next
//! transaction.

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
    Journal(JournalFile),
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

/// A rollback journal, in memory for as long as SQLite keeps it open (one
/// transaction, in `journal_mode=DELETE`). Nothing ever reads it after a
/// crash: bop reports that no journal exists.
#[derive(Debug)]
pub struct JournalFile {
    pub db: Arc<DbShared>,
    data: Vec<u8>,
}

impl JournalFile {
    pub fn new(db: Arc<DbShared>) -> JournalFile {
        JournalFile {
            db,
            data: Vec::new(),
        }
    }

    /// Copies what the journal holds at `offset` into `buf` (the rest is
    /// zeroed); returns how many bytes it held.
    fn read(&self, buf: &mut [u8], offset: u64) -> usize {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let n = (self.data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        buf[n..].fill(0);
        n
    }

    fn write(&mut self, data: &[u8], offset: u64) -> c_int {
        let Ok(start) = usize::try_from(offset) else {
            return SQLITE_FULL;
        };
        let end = start + data.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(data);
        SQLITE_OK
    }

    fn truncate(&mut self, size: u64) {
        self.data
            .truncate(usize::try_from(size).unwrap_or(usize::MAX));
    }
}

/// The magic string that starts a SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Page 1 as SQLite writes it in rollback mode (a new database's first
/// transaction, or `VACUUM INTO` a bop path) names rollback mode in its
/// file format bytes (18 and 19 = 1). bop databases are always in WAL
/// mode: the page written gets WAL's bytes (2), and the change counter
/// (and version-valid-for, when it matched) moves on by one, so every
/// connection, the writer included, sees at its next transaction that the
/// file changed, rereads page 1 and opens the WAL (SQLite's lockBtree).
/// `None`: write `data` as it is.
pub fn as_wal_page1(offset: u64, data: &[u8]) -> Option<Vec<u8>> {
    if offset != 0 || data.len() < 100 || !data.starts_with(SQLITE_MAGIC) {
        return None;
    }
    if data[18] == 2 && data[19] == 2 {
        return None;
    }
    let mut page = data.to_vec();
    page[18] = 2;
    page[19] = 2;
    let counter = u32::from_be_bytes([page[24], page[25], page[26], page[27]]);
    let next = counter.wrapping_add(1).to_be_bytes();
    if page[92..96] == page[24..28] {
        page[92..96].copy_from_slice(&next);
    }
    page[24..28].copy_from_slice(&next);
    Some(page)
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
                // A bop database is in WAL mode from its first write on.
                // SQLite would say "delete" before it, and on the connection
                // that wrote it until its next transaction opens the WAL.
                None => PragmaOutcome::Answer(Some("wal".into())),
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
            BopFile::Journal(j) => &j.db.store,
        }
    }

    pub fn read(&mut self, buf: &mut [u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_read(offset, buf),
            BopFile::Wal(w) => w.db.store.wal_image_read(offset, buf),
            BopFile::Journal(j) => Ok(j.read(buf, offset)),
        };
        match r {
            Ok(n) if n == buf.len() => SQLITE_OK,
            Ok(_) => SQLITE_IOERR_SHORT_READ,
            Err(e) => to_code(&e, Op::Read),
        }
    }

    pub fn write(&mut self, data: &[u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => match as_wal_page1(offset, data) {
                Some(page) => m.db.store.db_write(offset, &page),
                None => m.db.store.db_write(offset, data),
            },
            BopFile::Wal(w) => w.db.store.wal_image_write(offset, data),
            BopFile::Journal(j) => return j.write(data, offset),
        };
        r.map_or_else(|e| to_code(&e, Op::Write), |_| SQLITE_OK)
    }

    pub fn truncate(&mut self, size: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_truncate(size),
            BopFile::Wal(w) => w.db.store.wal_image_truncate(size),
            BopFile::Journal(j) => {
                j.truncate(size);
                Ok(())
            }
        };
        r.map_or_else(|e| to_code(&e, Op::Truncate), |_| SQLITE_OK)
    }

    pub fn sync(&mut self) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_sync(),
            BopFile::Wal(w) => w.db.store.wal_image_sync(),
            // Never read after a crash: nothing to make durable.
            BopFile::Journal(_) => Ok(()),
        };
        r.map_or_else(|e| to_code(&e, Op::Sync), |_| SQLITE_OK)
    }

    pub fn size(&self) -> u64 {
        match self {
            BopFile::Main(m) => m.db.store.db_size(),
            BopFile::Wal(w) => w.db.store.wal_image_size(),
            BopFile::Journal(j) => j.data.len() as u64,
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
            BopFile::Wal(_) | BopFile::Journal(_) => SQLITE_OK,
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
            BopFile::Wal(_) | BopFile::Journal(_) => false,
        }
    }

    pub fn device_characteristics(&self) -> c_int {
        // Writes never disturb bytes outside their range, even on power loss.
        SQLITE_IOCAP_POWERSAFE_OVERWRITE
    }
}
