//! The manifest: an LMDB environment (through `heed`) at `<store>/manifest/`
//! that is the authority on what a store contains. Every change is one LMDB
//! write transaction, committed durably (LMDB syncs on commit; NOSYNC is
//! never used), made through `Manifest::write`, which in the same
//! transaction appends the change to the change log, truncates it,
//! removes settled journal intents and seals `meta`.
//!
//! The record log and the page stores register their files here; the
//! manifest imports neither (the journal's replay is handed their file
//! paths by its caller, `store_dir.rs`).
//!
//! Modules (each documents its on-disk layout at its top):
//! - `keys.rs`: `meta` keys, key encodings, the `meta` checksum.
//! - `tables.rs`: `segments`, `chunks`, `pages` values; the format version.
//! - `digest.rs`: per-table digests kept in `meta`.
//! - `changelog.rs`: the `changes` table (the change log: every change,
//!   in order).
//! - `cursors.rs`: the `cursors` table (consumers of the change log) and
//!   the change log's truncation below the slowest cursor.
//! - `journal.rs`: the `journal` table (intents replayed at open).
//! - `lmdb_check.rs`: structural check of `data.mdb` before LMDB maps it.
//! - `open.rs`: opening (in named steps), creation, the format version and
//!   its upgrade.
//! - `state.rs`: loading a database's state; the writes that change it.
//! - `stats.rs`: counters and `ManifestStats`.
//!
//! Map growth: the map starts at `ManifestConfig::map_size_bytes`; a write
//! that fails with `MDB_MAP_FULL` is aborted, the map doubled and the write
//! retried. LMDB allows a resize only with no transaction open in the
//! process, so every transaction holds `gate` shared and a resize holds it
//! exclusively.

pub mod changelog;
pub mod cursors;
pub mod digest;
pub mod journal;
pub mod keys;
mod lmdb_check;
mod open;
mod state;
mod stats;
pub mod tables;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, RwTxn};

use crate::error::{Result, StorageError};
use crate::types::{DbId, Epoch};
pub use changelog::Change;
pub use cursors::CursorInfo;
use cursors::{ChangeLogBounds, CursorState};
use digest::{Digest, Tracked};
pub use journal::{Intent, JournalId, ReplayReport, CHUNK_RESERVATION};
use keys::{key_u64, meta_crc, meta_key, per_db, seal_meta};
pub use state::{ManifestState, PublishBatch};
use stats::Counters;
pub use stats::ManifestStats;
pub use tables::{ChunkMeta, PageLoc, SegmentMeta};

/// Tuning of the manifest.
#[derive(Clone, Copy, Debug)]
pub struct ManifestConfig {
    /// Initial size of LMDB's map (virtual address space; LMDB maps lazily,
    /// so this costs no memory or disk until used). It doubles when full.
    pub map_size_bytes: usize,
    /// Most entries the change log holds; a cursor that falls further
    /// behind is marked lagged.
    pub change_log_max_entries: u64,
    /// Entries kept when no cursor holds the change log back.
    pub change_log_tail_entries: u64,
}

impl Default for ManifestConfig {
    fn default() -> Self {
        ManifestConfig {
            map_size_bytes: 64 << 30,
            change_log_max_entries: 100_000,
            change_log_tail_entries: 1_000,
        }
    }
}

pub struct Manifest {
    env: Env,
    path: PathBuf,
    meta: Database<Bytes, Bytes>,
    segments: Database<Bytes, Bytes>,
    changes: Database<Bytes, Bytes>,
    cursors: Database<Bytes, Bytes>,
    journal: Database<Bytes, Bytes>,
    /// The `chunks` and `pages` tables of each database opened so far.
    tables: Mutex<HashMap<DbId, DbTables>>,
    config: ManifestConfig,
    /// Held shared by every transaction, exclusively by a map resize.
    gate: RwLock<()>,
    /// Journal intents whose work is done and durable: removed by the next
    /// write transaction.
    settled: Mutex<Vec<JournalId>>,
    counters: Counters,
    replayed: Mutex<ReplayReport>,
    /// 0 unknown, 1 clean, 2 not clean (set by `begin_epoch` and
    /// `defer_epoch`).
    previous_clean: AtomicU8,
    /// The epoch this open has yet to begin (`defer_epoch`): the next write
    /// transaction begins it first, in the same commit.
    pending_epoch: Mutex<Option<Epoch>>,
    /// Whether `pending_epoch` holds one (read without its lock on the
    /// record log's append path).
    epoch_pending: AtomicBool,
    upgraded_from: AtomicU32,
    /// An injected crash fired: every later write fails (the machine is off).
    crashed: AtomicBool,
}

#[derive(Clone, Copy)]
struct DbTables {
    chunks: Database<Bytes, Bytes>,
    pages: Database<Bytes, Bytes>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("path", &self.path)
            .finish()
    }
}

fn is_map_full(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Manifest {
            source: heed::Error::Mdb(heed::MdbError::MapFull),
            ..
        }
    )
}

impl Manifest {
    fn map_err(&self) -> impl Fn(heed::Error) -> StorageError + '_ {
        keys::heed_err(&self.path)
    }

    /// Runs `f` in a read transaction.
    fn read<T>(&self, f: impl FnOnce(&heed::RoTxn) -> Result<T>) -> Result<T> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let rtxn = self.env.read_txn().map_err(self.map_err())?;
        f(&rtxn)
    }

    /// Runs `f` in a write transaction and commits it with the changes `f`
    /// pushed appended to the change log, the change log trimmed, settled
    /// journal intents removed and `meta` sealed. A full map is grown and `f`
    /// run again (so `f` must have no effect outside the transaction).
    fn write<T>(&self, f: impl Fn(&mut RwTxn, &mut Vec<Change>) -> Result<T>) -> Result<T> {
        let mut grows = 0;
        loop {
            let (seen, r) = {
                let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
                (self.env.info().map_size, self.write_once(&f))
            };
            match r {
                Err(e) if is_map_full(&e) && grows < 32 => {
                    grows += 1;
                    self.grow(seen)?;
                }
                r => return r,
            }
        }
    }

    fn write_once<T>(&self, f: &impl Fn(&mut RwTxn, &mut Vec<Change>) -> Result<T>) -> Result<T> {
        let me = self.map_err();
        if self.crashed.load(Ordering::SeqCst) {
            return Err(self.injected_crash());
        }
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut changes = Vec::new();
        // A deferred epoch begins with the first change; its lock is held
        // to the commit, so no two transactions begin it.
        let mut pending = self.pending_epoch.lock().unwrap_or_else(|p| p.into_inner());
        let begun = match *pending {
            Some(epoch) => Some(self.put_epoch_begun(&mut w, epoch, &mut changes)?),
            None => None,
        };
        let out = f(&mut w, &mut changes)?;
        let settled: Vec<JournalId> = self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Change log, truncation, settled intents.
        let mut chg =
            Tracked::begin(&self.meta, &w, self.changes, meta_key::DIGEST_CHANGES).map_err(&me)?;
        let mut cur =
            Tracked::begin(&self.meta, &w, self.cursors, meta_key::DIGEST_CURSORS).map_err(&me)?;
        let mut jr =
            Tracked::begin(&self.meta, &w, self.journal, meta_key::DIGEST_JOURNAL).map_err(&me)?;
        let next_seq = self.meta_u64(&w, meta_key::NEXT_CHANGE_SEQ)?;
        let next_seq = changelog::append(&mut chg, &mut w, next_seq, &changes).map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::NEXT_CHANGE_SEQ, &next_seq.to_le_bytes())
            .map_err(&me)?;
        let trimmed = cursors::trim(
            &mut chg,
            &mut cur,
            &mut w,
            self.changes,
            self.cursors,
            next_seq - 1,
            ChangeLogBounds {
                max_entries: self.config.change_log_max_entries,
                tail_entries: self.config.change_log_tail_entries,
            },
            &self.path,
        )?;
        for id in &settled {
            jr.delete(&mut w, &key_u64(id.0)).map_err(&me)?;
        }
        chg.finish(&self.meta, &mut w).map_err(&me)?;
        cur.finish(&self.meta, &mut w).map_err(&me)?;
        jr.finish(&self.meta, &mut w).map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        let crash_at = self.counters.crash_at_commit.load(Ordering::SeqCst);
        if crash_at != 0
            && self
                .counters
                .commits_since_injection
                .fetch_add(1, Ordering::SeqCst)
                + 1
                >= crash_at
        {
            drop(w); // aborted: as if the power went before the commit
            self.crashed.store(true, Ordering::SeqCst);
            return Err(self.injected_crash());
        }
        w.commit().map_err(&me)?;
        // Committed: account for it.
        if let Some(previous_clean) = begun {
            self.epoch_begun(&mut pending, previous_clean);
        }
        drop(pending);
        let c = &self.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.changes_appended
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        c.changes_truncated
            .fetch_add(trimmed.entries, Ordering::Relaxed);
        if !settled.is_empty() {
            c.journal_settled
                .fetch_add(settled.len() as u64, Ordering::Relaxed);
            self.settled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|id| !settled.contains(id));
        }
        for (name, acked, oldest) in &trimmed.lagged {
            c.cursor_lag_events.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                cursor = %name,
                acked,
                oldest,
                max_entries = self.config.change_log_max_entries,
                "change-log cursor fell too far behind: entries it needs were truncated; it must resync"
            );
        }
        Ok(out)
    }

    fn injected_crash(&self) -> StorageError {
        StorageError::io(
            "commit",
            &self.path,
            std::io::Error::other("injected crash before the manifest commit"),
        )
    }

    /// Doubles the map (unless another writer already grew it past
    /// `seen`), with no transaction open.
    fn grow(&self, seen: usize) -> Result<()> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let now = self.env.info().map_size;
        if now > seen {
            return Ok(());
        }
        let new = now.saturating_mul(2).next_multiple_of(1 << 20);
        // SAFETY: `gate` is held exclusively, and every transaction of this
        // environment is created under `gate` held shared (`read`,
        // `write`), so no transaction is open in this process; the store's
        // process lock keeps other processes out.
        unsafe { self.env.resize(new) }.map_err(self.map_err())?;
        self.counters.map_grows.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %self.path.display(), from = now, to = new, "manifest map full: grown");
        Ok(())
    }

    /// Test hook: the `nth` manifest commit from now (1 = the next) is not
    /// made, as if the power failed just before it, and every later write
    /// fails. For crash tests of multi-step work.
    #[doc(hidden)]
    pub fn inject_commit_crash(&self, nth: u64) {
        self.counters
            .commits_since_injection
            .store(0, Ordering::SeqCst);
        self.counters.crash_at_commit.store(nth, Ordering::SeqCst);
    }

    /// Whether an injected commit crash fired.
    #[doc(hidden)]
    pub fn commit_crash_fired(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// The tables of database `db` (opened on first use).
    fn tables(&self, db: DbId) -> Result<DbTables> {
        if let Some(t) = self
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&db)
        {
            return Ok(*t);
        }
        let me = self.map_err();
        let name = |base: &[u8]| String::from_utf8(per_db(base, db)).expect("ASCII");
        let (chunks, pages) = {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            let rtxn = self.env.read_txn().map_err(&me)?;
            let chunks = self
                .env
                .open_database(&rtxn, Some(&name(b"chunks")))
                .map_err(&me)?;
            let pages = self
                .env
                .open_database(&rtxn, Some(&name(b"pages")))
                .map_err(&me)?;
            // Committed, not aborted: LMDB closes the handles a transaction
            // opened when it is aborted.
            rtxn.commit().map_err(&me)?;
            (chunks, pages)
        };
        match (chunks, pages) {
            (Some(chunks), Some(pages)) => {
                let t = DbTables { chunks, pages };
                self.tables
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(db, t);
                Ok(t)
            }
            _ => Err(StorageError::corrupt(
                &self.path,
                0,
                format!("manifest lacks the tables of {db}"),
            )),
        }
    }

    fn meta_value<'t>(&self, txn: &'t heed::RoTxn, key: &[u8]) -> Result<&'t [u8]> {
        self.meta
            .get(txn, key)
            .map_err(self.map_err())?
            .ok_or_else(|| {
                StorageError::corrupt(
                    &self.path,
                    0,
                    format!("manifest lacks meta key {:?}", String::from_utf8_lossy(key)),
                )
            })
    }

    fn meta_u64(&self, txn: &heed::RoTxn, key: &[u8]) -> Result<u64> {
        keys::decode_u64(self.meta_value(txn, key)?, &self.path)
    }

    fn meta_u32(&self, txn: &heed::RoTxn, key: &[u8]) -> Result<u32> {
        keys::decode_u32(self.meta_value(txn, key)?, &self.path)
    }

    fn check_meta_crc(&self, rtxn: &heed::RoTxn) -> Result<()> {
        let stored = keys::decode_u32(self.meta_value(rtxn, meta_key::META_CRC)?, &self.path)?;
        let actual = meta_crc(&self.meta, rtxn).map_err(self.map_err())?;
        if stored != actual {
            return Err(StorageError::corrupt(
                &self.path,
                0,
                format!(
                    "manifest meta checksum mismatch (stored {stored:08x}, computed {actual:08x})"
                ),
            ));
        }
        Ok(())
    }

    fn check_digest(&self, rtxn: &heed::RoTxn, key: &[u8], actual: Digest) -> Result<()> {
        let stored = Digest::decode(self.meta_value(rtxn, key)?);
        if stored != Some(actual) {
            return Err(StorageError::corrupt(
                &self.path,
                0,
                format!(
                    "manifest table damaged: {} holds {} entries that do not match its digest ({stored:?})",
                    String::from_utf8_lossy(key),
                    actual.count
                ),
            ));
        }
        Ok(())
    }

    /// Verifies the meta checksum and the digests of the change log,
    /// cursor and journal tables, and decodes every entry.
    fn verify_change_log_tables(&self) -> Result<()> {
        let me = self.map_err();
        self.read(|rtxn| {
            self.check_meta_crc(rtxn)?;
            for (table, key) in [
                (self.changes, meta_key::DIGEST_CHANGES),
                (self.cursors, meta_key::DIGEST_CURSORS),
                (self.journal, meta_key::DIGEST_JOURNAL),
            ] {
                let mut d = Digest::default();
                for item in table.iter(rtxn).map_err(&me)? {
                    let (k, v) = item.map_err(&me)?;
                    d.add(k, v);
                    if key == meta_key::DIGEST_CHANGES {
                        Change::decode(v, &self.path)?;
                    } else if key == meta_key::DIGEST_CURSORS {
                        CursorState::decode(v, &self.path)?;
                    } else {
                        Intent::decode(v, &self.path)?;
                    }
                }
                self.check_digest(rtxn, key, d)?;
            }
            Ok(())
        })
    }
}
