//! The manifest: an LMDB environment (through `heed`) at `<store>/manifest/`
//! that is the authority on what a store contains. Every change is one LMDB
//! write transaction, committed durably (LMDB syncs on commit; NOSYNC is
//! never used), made through [`Manifest::write`], which in the same
//! transaction appends the change to the change log, truncates the log,
//! removes settled journal intents and seals `meta`.
//!
//! Modules (each documents its on-disk layout at its top):
//! - `keys.rs`: `meta` keys, key encodings, the `meta` checksum.
//! - `tables.rs`: `segments`, `chunks`, `pages` values; the format version.
//! - `digest.rs`: per-table digests kept in `meta`.
//! - `changelog.rs`: the `changes` table and its truncation.
//! - `cursors.rs`: the `cursors` table (consumers of the change log).
//! - `journal.rs`: the `journal` table (intents replayed at open).
//! - `lmdb_check.rs`: structural check of `data.mdb` before LMDB maps it.
//! - `open.rs`: opening, creation, the format version and its upgrade.
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
mod stats;
pub mod tables;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, RwTxn};

use crate::error::{Result, StorageError};
use crate::types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
pub use changelog::Change;
use changelog::LogBounds;
pub use cursors::CursorInfo;
use cursors::CursorState;
use digest::{Digest, Tracked};
pub use journal::{Intent, JournalId, ReplayReport, CHUNK_RESERVATION};
use keys::{key_u32, key_u64, meta_crc, meta_key, per_db, seal_meta};
use stats::Counters;
pub use stats::ManifestStats;
use tables::DATABASES_MAX;
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
    /// Entries kept when no cursor holds the log back.
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
    /// 0 unknown, 1 clean, 2 not clean (set by `begin_epoch`).
    previous_clean: AtomicU8,
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

/// What the manifest holds about one database and the store's WAL, read in
/// one snapshot.
#[derive(Debug, Clone)]
pub struct ManifestState {
    pub db: DbId,
    pub page_size: u32,
    pub db_pages: u32,
    pub next_chunk_id: ChunkId,
    pub next_segment_id: SegmentId,
    pub checkpoint_lsn: Lsn,
    pub epoch: Epoch,
    pub clean_shutdown: bool,
    pub segments: Vec<SegmentMeta>,
    pub chunks: Vec<ChunkMeta>,
    pub pages: Vec<(PageNo, PageLoc)>,
    /// The lowest and highest WAL base (`checkpoint_lsn`) of all the
    /// store's databases: records below the lowest are needed by none;
    /// no new record may be numbered below the highest.
    pub wal_base_min: Lsn,
    pub wal_base_max: Lsn,
}

/// One atomic publication of checkpointed pages.
#[derive(Debug, Default)]
pub struct PublishBatch {
    pub db: DbId,
    pub new_chunks: Vec<ChunkMeta>,
    /// Live counts of existing chunks that changed.
    pub chunk_live_updates: Vec<(ChunkId, u32)>,
    pub removed_chunks: Vec<ChunkId>,
    /// Pages now at a new location (`None`: removed by a truncate).
    pub pages: Vec<(PageNo, Option<PageLoc>)>,
    pub db_pages: u32,
    pub next_chunk_id: ChunkId,
    /// Journal intents this publish completes (the chunks in flight it
    /// lists), removed in its transaction.
    pub settles: Vec<JournalId>,
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
    /// pushed appended to the change log, the log trimmed, settled journal
    /// intents removed and `meta` sealed. A full map is grown and `f` run
    /// again (so `f` must have no effect outside the transaction).
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
        let out = f(&mut w, &mut changes)?;
        let settled: Vec<JournalId> = self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Change log, truncation, settled intents.
        let mut log =
            Tracked::begin(&self.meta, &w, self.changes, meta_key::DIGEST_CHANGES).map_err(&me)?;
        let mut cur =
            Tracked::begin(&self.meta, &w, self.cursors, meta_key::DIGEST_CURSORS).map_err(&me)?;
        let mut jr =
            Tracked::begin(&self.meta, &w, self.journal, meta_key::DIGEST_JOURNAL).map_err(&me)?;
        let next_seq = self.meta_u64(&w, meta_key::NEXT_CHANGE_SEQ)?;
        let next_seq = changelog::append(&mut log, &mut w, next_seq, &changes).map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::NEXT_CHANGE_SEQ, &next_seq.to_le_bytes())
            .map_err(&me)?;
        let trimmed = changelog::trim(
            &mut log,
            &mut cur,
            &mut w,
            self.changes,
            self.cursors,
            next_seq - 1,
            LogBounds {
                max_entries: self.config.change_log_max_entries,
                tail_entries: self.config.change_log_tail_entries,
            },
            &self.path,
        )?;
        for id in &settled {
            jr.delete(&mut w, &key_u64(id.0)).map_err(&me)?;
        }
        log.finish(&self.meta, &mut w).map_err(&me)?;
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
        let c = &self.counters;
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

    /// The store's named databases (the main one has no name).
    pub fn databases(&self) -> Result<Vec<(String, DbId)>> {
        self.read(|rtxn| self.databases_in(rtxn))
    }

    fn databases_in(&self, rtxn: &heed::RoTxn) -> Result<Vec<(String, DbId)>> {
        let me = self.map_err();
        let mut out = Vec::new();
        for item in self
            .meta
            .prefix_iter(rtxn, meta_key::DB_PREFIX)
            .map_err(&me)?
        {
            let (k, v) = item.map_err(&me)?;
            let name = String::from_utf8_lossy(&k[meta_key::DB_PREFIX.len()..]).into_owned();
            let id = keys::decode_u32(v, &self.path)?;
            let id = u16::try_from(id)
                .map_err(|_| StorageError::corrupt(&self.path, 0, "database id out of range"))?;
            out.push((name, DbId(id)));
        }
        Ok(out)
    }

    /// The WAL base of every database: the main one and the named ones.
    pub fn db_bases(&self) -> Result<Vec<(DbId, Lsn)>> {
        self.read(|rtxn| {
            let named = self.databases_in(rtxn)?;
            let mut out = Vec::new();
            for db in std::iter::once(DbId::MAIN).chain(named.into_iter().map(|(_, d)| d)) {
                let base = self.meta_u64(rtxn, &per_db(meta_key::CHECKPOINT_LSN, db))?;
                out.push((db, Lsn(base)));
            }
            Ok(out)
        })
    }

    /// Registers a new named database with `page_size`, whose WAL records
    /// start at `base` (the WAL's next LSN: none of its records is older).
    pub fn register_db(&self, name: &str, page_size: u32, base: Lsn) -> Result<DbId> {
        let me = self.map_err();
        let mut name_key = meta_key::DB_PREFIX.to_vec();
        name_key.extend_from_slice(name.as_bytes());
        let (db, made) = self.write(|w, log| {
            if let Some(v) = self.meta.get(w, &name_key).map_err(&me)? {
                let id = keys::decode_u32(v, &self.path)?;
                return Ok((DbId(id as u16), None));
            }
            let id = keys::decode_u32(self.meta_value(w, meta_key::NEXT_DB_ID)?, &self.path)?;
            if id > u32::from(DATABASES_MAX) {
                return Err(StorageError::Limit(format!(
                    "a store holds at most {DATABASES_MAX} named databases"
                )));
            }
            let db = DbId(id as u16);
            let name_of = |base: &[u8]| String::from_utf8(per_db(base, db)).expect("ASCII");
            let chunks = self
                .env
                .create_database(w, Some(&name_of(b"chunks")))
                .map_err(&me)?;
            let pages = self
                .env
                .create_database(w, Some(&name_of(b"pages")))
                .map_err(&me)?;
            let put = |w: &mut RwTxn, k: &[u8], v: &[u8]| self.meta.put(w, &per_db(k, db), v);
            put(w, meta_key::PAGE_SIZE, &page_size.to_le_bytes()).map_err(&me)?;
            put(w, meta_key::DB_PAGES, &0u32.to_le_bytes()).map_err(&me)?;
            put(w, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes()).map_err(&me)?;
            put(w, meta_key::CHECKPOINT_LSN, &base.0.to_le_bytes()).map_err(&me)?;
            for key in [meta_key::DIGEST_CHUNKS, meta_key::DIGEST_PAGES] {
                put(w, key, &Digest::default().encode()).map_err(&me)?;
            }
            self.meta
                .put(w, &name_key, &u32::from(db.0).to_le_bytes())
                .map_err(&me)?;
            self.meta
                .put(w, meta_key::NEXT_DB_ID, &(id + 1).to_le_bytes())
                .map_err(&me)?;
            log.push(Change::DatabaseRegistered {
                db,
                name: name.to_owned(),
                page_size,
                base,
            });
            Ok((db, Some(DbTables { chunks, pages })))
        })?;
        if let Some(t) = made {
            self.tables
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(db, t);
        }
        Ok(db)
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
    fn verify_log_tables(&self) -> Result<()> {
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

    /// Reads what the manifest holds about the main database and the WAL.
    pub fn load(&self) -> Result<ManifestState> {
        self.load_db(DbId::MAIN)
    }

    /// Reads what the manifest holds about database `db` and the WAL, in
    /// one read transaction, verifying the meta checksum and the digests of
    /// the tables read.
    pub fn load_db(&self, db: DbId) -> Result<ManifestState> {
        let tables = self.tables(db)?;
        let me = self.map_err();
        self.read(|rtxn| {
            let named = self.databases_in(rtxn)?;
            self.check_meta_crc(rtxn)?;
            let mut digests = [Digest::default(); 3];
            let mut segments = Vec::new();
            for item in self.segments.iter(rtxn).map_err(&me)? {
                let (k, v) = item.map_err(&me)?;
                digests[0].add(k, v);
                segments.push(SegmentMeta::decode(k, v, &self.path)?);
            }
            let mut chunks = Vec::new();
            for item in tables.chunks.iter(rtxn).map_err(&me)? {
                let (k, v) = item.map_err(&me)?;
                digests[1].add(k, v);
                chunks.push(ChunkMeta::decode(k, v, &self.path)?);
            }
            let mut pages = Vec::new();
            for item in tables.pages.iter(rtxn).map_err(&me)? {
                let (k, v) = item.map_err(&me)?;
                digests[2].add(k, v);
                pages.push(PageLoc::decode(k, v, &self.path)?);
            }
            let names = [
                meta_key::DIGEST_SEGMENTS.to_vec(),
                per_db(meta_key::DIGEST_CHUNKS, db),
                per_db(meta_key::DIGEST_PAGES, db),
            ];
            for (key, actual) in names.into_iter().zip(digests) {
                self.check_digest(rtxn, &key, actual)?;
            }
            let clean = self
                .meta
                .get(rtxn, meta_key::CLEAN_SHUTDOWN)
                .map_err(&me)?
                .map(|v| v == [1])
                .unwrap_or(false);
            let base_of = |d: DbId| -> Result<Lsn> {
                Ok(Lsn(
                    self.meta_u64(rtxn, &per_db(meta_key::CHECKPOINT_LSN, d))?
                ))
            };
            let mut wal_base_min = base_of(DbId::MAIN)?;
            let mut wal_base_max = wal_base_min;
            for (_, d) in &named {
                let b = base_of(*d)?;
                wal_base_min = wal_base_min.min(b);
                wal_base_max = wal_base_max.max(b);
            }
            let per = |k: &[u8]| per_db(k, db);
            Ok(ManifestState {
                db,
                page_size: self.meta_u32(rtxn, &per(meta_key::PAGE_SIZE))?,
                db_pages: self.meta_u32(rtxn, &per(meta_key::DB_PAGES))?,
                next_chunk_id: ChunkId(self.meta_u64(rtxn, &per(meta_key::NEXT_CHUNK_ID))?),
                next_segment_id: SegmentId(self.meta_u64(rtxn, meta_key::NEXT_SEGMENT_ID)?),
                checkpoint_lsn: base_of(db)?,
                epoch: Epoch(self.meta_u32(rtxn, meta_key::EPOCH)?),
                clean_shutdown: clean,
                segments,
                chunks,
                pages,
                wal_base_min,
                wal_base_max,
            })
        })
    }

    /// Starts a new open epoch and marks the store as not cleanly shut
    /// down; remembers whether the previous open ended cleanly.
    pub fn begin_epoch(&self, epoch: Epoch) -> Result<()> {
        let me = self.map_err();
        let previous_clean = self.write(|w, log| {
            let previous_clean = self
                .meta
                .get(w, meta_key::CLEAN_SHUTDOWN)
                .map_err(&me)?
                .is_some_and(|v| v == [1]);
            self.meta
                .put(w, meta_key::EPOCH, &epoch.0.to_le_bytes())
                .map_err(&me)?;
            self.meta
                .put(w, meta_key::CLEAN_SHUTDOWN, &[0])
                .map_err(&me)?;
            log.push(Change::EpochBegun {
                epoch,
                previous_clean,
            });
            Ok(previous_clean)
        })?;
        self.previous_clean
            .store(if previous_clean { 1 } else { 2 }, Ordering::Relaxed);
        Ok(())
    }

    /// Records a clean shutdown (everything published, WAL synced).
    pub fn mark_clean_shutdown(&self) -> Result<()> {
        let me = self.map_err();
        self.write(|w, log| {
            let epoch = Epoch(self.meta_u32(w, meta_key::EPOCH)?);
            self.meta
                .put(w, meta_key::CLEAN_SHUTDOWN, &[1])
                .map_err(&me)?;
            log.push(Change::CleanShutdown { epoch });
            Ok(())
        })
    }

    /// Registers a new WAL segment (its file is already durable).
    pub fn add_segment(&self, seg: &SegmentMeta) -> Result<()> {
        let me = self.map_err();
        self.write(|w, log| {
            let mut segments =
                Tracked::begin(&self.meta, w, self.segments, meta_key::DIGEST_SEGMENTS)
                    .map_err(&me)?;
            segments
                .put(w, &key_u64(seg.id.0), &seg.encode_value())
                .map_err(&me)?;
            segments.finish(&self.meta, w).map_err(&me)?;
            self.meta
                .put(w, meta_key::NEXT_SEGMENT_ID, &(seg.id.0 + 1).to_le_bytes())
                .map_err(&me)?;
            log.push(Change::SegmentAdded {
                id: seg.id,
                first_lsn: seg.first_lsn,
                capacity_bytes: seg.capacity_bytes,
            });
            Ok(())
        })
    }

    /// Drops WAL segments and, with `base`, moves a database's WAL base:
    /// its records below the base are never replayed again. Returns the
    /// journal intent to delete the segment files: settle it
    /// ([`Manifest::journal_done`]) once they are gone and the directory is
    /// synced.
    pub fn drop_segments(
        &self,
        ids: &[SegmentId],
        base: Option<(DbId, Lsn)>,
    ) -> Result<Option<JournalId>> {
        let me = self.map_err();
        let intent = self.write(|w, log| {
            let mut segments =
                Tracked::begin(&self.meta, w, self.segments, meta_key::DIGEST_SEGMENTS)
                    .map_err(&me)?;
            for id in ids {
                segments.delete(w, &key_u64(id.0)).map_err(&me)?;
            }
            segments.finish(&self.meta, w).map_err(&me)?;
            if let Some((db, base)) = base {
                self.meta
                    .put(
                        w,
                        &per_db(meta_key::CHECKPOINT_LSN, db),
                        &base.0.to_le_bytes(),
                    )
                    .map_err(&me)?;
            }
            let intent = if ids.is_empty() {
                None
            } else {
                Some(self.add_intent(w, &Intent::DeleteSegments { ids: ids.to_vec() })?)
            };
            log.push(Change::SegmentsDropped {
                ids: ids.to_vec(),
                base,
            });
            Ok(intent)
        })?;
        if intent.is_some() {
            self.counters
                .journal_written
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(intent)
    }

    /// Publishes checkpointed pages atomically: readers of the manifest see
    /// all of the batch or none of it. Removes the journal intents of
    /// `batch.settles`; returns the intent to delete the removed chunks'
    /// files, to settle once they are gone and the directory is synced.
    pub fn publish(&self, batch: &PublishBatch) -> Result<Option<JournalId>> {
        let t = self.tables(batch.db)?;
        let per = |k: &[u8]| per_db(k, batch.db);
        let me = self.map_err();
        let intent = self.write(|w, log| {
            let mut chunks = Tracked::begin(&self.meta, w, t.chunks, &per(meta_key::DIGEST_CHUNKS))
                .map_err(&me)?;
            let mut pages = Tracked::begin(&self.meta, w, t.pages, &per(meta_key::DIGEST_PAGES))
                .map_err(&me)?;
            for c in &batch.new_chunks {
                chunks
                    .put(w, &key_u64(c.id.0), &c.encode_value())
                    .map_err(&me)?;
            }
            for (id, live) in &batch.chunk_live_updates {
                let old = t
                    .chunks
                    .get(w, &key_u64(id.0))
                    .map_err(&me)?
                    .map(<[u8]>::to_vec);
                if let Some(v) = old {
                    let mut meta = ChunkMeta::decode(&key_u64(id.0), &v, &self.path)?;
                    meta.live_pages = *live;
                    chunks
                        .put(w, &key_u64(id.0), &meta.encode_value())
                        .map_err(&me)?;
                }
            }
            for id in &batch.removed_chunks {
                chunks.delete(w, &key_u64(id.0)).map_err(&me)?;
            }
            let mut removed_pages = 0;
            for (pgno, loc) in &batch.pages {
                match loc {
                    Some(loc) => pages
                        .put(w, &key_u32(pgno.0), &loc.encode_value())
                        .map_err(&me)?,
                    None => {
                        removed_pages += 1;
                        pages.delete(w, &key_u32(pgno.0)).map_err(&me)?
                    }
                }
            }
            chunks.finish(&self.meta, w).map_err(&me)?;
            pages.finish(&self.meta, w).map_err(&me)?;
            self.meta
                .put(w, &per(meta_key::DB_PAGES), &batch.db_pages.to_le_bytes())
                .map_err(&me)?;
            self.meta
                .put(
                    w,
                    &per(meta_key::NEXT_CHUNK_ID),
                    &batch.next_chunk_id.0.to_le_bytes(),
                )
                .map_err(&me)?;
            self.remove_intents(w, &batch.settles)?;
            let intent = if batch.removed_chunks.is_empty() {
                None
            } else {
                Some(self.add_intent(
                    w,
                    &Intent::DeleteChunks {
                        db: batch.db,
                        ids: batch.removed_chunks.clone(),
                    },
                )?)
            };
            log.push(Change::Published {
                db: batch.db,
                db_pages: batch.db_pages,
                pages_changed: batch.pages.len() as u32 - removed_pages,
                pages_removed: removed_pages,
                chunks_updated: batch.chunk_live_updates.len() as u32,
                next_chunk_id: batch.next_chunk_id,
                chunks_added: batch.new_chunks.clone(),
                chunks_removed: batch.removed_chunks.clone(),
            });
            Ok(intent)
        })?;
        let c = &self.counters;
        c.journal_settled
            .fetch_add(batch.settles.len() as u64, Ordering::Relaxed);
        if intent.is_some() {
            c.journal_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(intent)
    }
}
