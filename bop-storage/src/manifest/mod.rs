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
pub mod tables;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RwTxn};

use crate::error::{Result, StorageError};
use crate::io::IoBackend;
use crate::types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
pub use changelog::Change;
use changelog::LogBounds;
pub use cursors::CursorInfo;
use cursors::CursorState;
use digest::{Digest, Tracked};
pub use journal::{Intent, JournalId, ReplayReport, CHUNK_RESERVATION};
use keys::{key_u32, key_u64, meta_crc, meta_key, per_db, seal_meta};
pub use tables::{ChunkMeta, PageLoc, SegmentMeta};
use tables::{DATABASES_MAX, FORMAT_VERSION};

/// Oldest format version this build upgrades in place.
const UPGRADABLE_FROM: u32 = 2;

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

/// Counters of the manifest, and what the change log, cursors and journal
/// hold now.
#[derive(Clone, Debug, Default)]
pub struct ManifestStats {
    pub format_version: u32,
    /// The version the store was upgraded from at this open (0: none).
    pub upgraded_from: u32,
    /// Whether the open before this one ended with a clean shutdown.
    pub previous_shutdown_clean: bool,
    pub change_log_entries: u64,
    /// First and last sequence number in the log (0 when empty).
    pub change_first_seq: u64,
    pub change_last_seq: u64,
    /// Since this open: changes appended, entries truncated.
    pub changes_appended: u64,
    pub changes_truncated: u64,
    pub cursors: Vec<CursorInfo>,
    /// Cursors marked lagged now, and times a cursor was marked since open.
    pub cursors_lagged: u64,
    pub cursor_lag_events: u64,
    /// Intents whose work is not done yet.
    pub journal_pending: u64,
    /// Since this open: intents written, intents settled (work done).
    pub journal_written: u64,
    pub journal_settled: u64,
    /// At this open: intents replayed, files they removed.
    pub journal_replayed: u64,
    pub journal_files_removed: u64,
    pub map_size_bytes: u64,
    pub map_grows: u64,
}

#[derive(Default)]
struct Counters {
    changes_appended: AtomicU64,
    changes_truncated: AtomicU64,
    cursor_lag_events: AtomicU64,
    journal_written: AtomicU64,
    journal_settled: AtomicU64,
    map_grows: AtomicU64,
    /// Test hook: the commit (counted from the injection) that "crashes".
    crash_at_commit: AtomicU64,
    commits_since_injection: AtomicU64,
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

/// Whether an LMDB table name is one bop creates.
fn is_bop_table(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name);
    if tables::STORE_TABLES.contains(&name.as_ref()) {
        return true;
    }
    ["chunks", "pages"].iter().any(|base| {
        name == *base
            || name
                .strip_prefix(base)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|n| n.parse::<u16>().is_ok())
    })
}

impl Manifest {
    /// Opens the manifest at `dir` with the default configuration,
    /// creating it with `page_size` if `create`.
    pub fn open(dir: &Path, create: bool, page_size: u32) -> Result<Manifest> {
        Self::open_with(dir, create, page_size, ManifestConfig::default())
    }

    /// Opens the manifest at `dir`, creating it with `page_size` if
    /// `create`; upgrades a version 2 store in place; refuses a newer or
    /// foreign one.
    pub fn open_with(
        dir: &Path,
        create: bool,
        page_size: u32,
        config: ManifestConfig,
    ) -> Result<Manifest> {
        let map_err = keys::heed_err(dir);
        let format_err = |what: String| StorageError::Format {
            path: dir.to_path_buf(),
            what,
        };
        if config.change_log_max_entries == 0 {
            return Err(StorageError::Config(
                "change_log_max_entries must be at least 1".into(),
            ));
        }
        if create {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io("mkdir", dir, e))?;
        }
        // LMDB trusts its B-tree structure: check it before LMDB maps it.
        let data = dir.join("data.mdb");
        if data.exists() {
            lmdb_check::check(&data)?;
        }
        let map_size = config.map_size_bytes.max(1 << 20).next_multiple_of(1 << 20);
        // SAFETY: the store's exclusive process lock (LOCK file) guarantees
        // no other process maps this environment, and within the process the
        // store registry opens each environment once.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(map_size)
                .max_dbs(tables::STORE_TABLES.len() as u32 + 2 * (u32::from(DATABASES_MAX) + 1))
                .open(dir)
        }
        .map_err(&map_err)?;
        let mut wtxn = env.write_txn().map_err(&map_err)?;
        // A foreign LMDB environment is refused before anything is created
        // in it (dropping the transaction aborts it).
        if let Some(main) = env
            .open_database::<Bytes, Bytes>(&wtxn, None)
            .map_err(&map_err)?
        {
            for item in main.iter(&wtxn).map_err(&map_err)? {
                let (k, _) = item.map_err(&map_err)?;
                if !is_bop_table(k) {
                    return Err(format_err(format!(
                        "manifest holds LMDB table {:?}, which bop never creates: not a bop store",
                        String::from_utf8_lossy(k)
                    )));
                }
            }
        }
        let mut create_table = |name: &str| -> Result<Database<Bytes, Bytes>> {
            env.create_database(&mut wtxn, Some(name)).map_err(&map_err)
        };
        let meta = create_table("meta")?;
        let segments = create_table("segments")?;
        let changes = create_table("changes")?;
        let cursors = create_table("cursors")?;
        let journal = create_table("journal")?;
        let main = DbTables {
            chunks: create_table("chunks")?,
            pages: create_table("pages")?,
        };
        let mut upgraded_from = 0;
        // A manifest whose first transaction never committed (a crash while
        // the store was being created) is empty: create it now.
        let empty = meta.is_empty(&wtxn).map_err(&map_err)?;
        let put = |w: &mut RwTxn, k: &[u8], v: &[u8]| meta.put(w, k, v).map_err(&map_err);
        let put_log_keys = |w: &mut RwTxn| -> Result<()> {
            put(w, meta_key::NEXT_CHANGE_SEQ, &1u64.to_le_bytes())?;
            put(w, meta_key::NEXT_JOURNAL_ID, &1u64.to_le_bytes())?;
            for key in [
                meta_key::DIGEST_CHANGES,
                meta_key::DIGEST_CURSORS,
                meta_key::DIGEST_JOURNAL,
            ] {
                put(w, key, &Digest::default().encode())?;
            }
            Ok(())
        };
        match meta
            .get(&wtxn, meta_key::FORMAT_VERSION)
            .map_err(&map_err)?
        {
            None if create || empty => {
                put(
                    &mut wtxn,
                    meta_key::FORMAT_VERSION,
                    &FORMAT_VERSION.to_le_bytes(),
                )?;
                put(&mut wtxn, meta_key::PAGE_SIZE, &page_size.to_le_bytes())?;
                put(&mut wtxn, meta_key::DB_PAGES, &0u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_SEGMENT_ID, &1u64.to_le_bytes())?;
                put(
                    &mut wtxn,
                    meta_key::CHECKPOINT_LSN,
                    &Lsn::FIRST.0.to_le_bytes(),
                )?;
                put(&mut wtxn, meta_key::EPOCH, &0u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_DB_ID, &1u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::CLEAN_SHUTDOWN, &[1])?;
                for key in [
                    meta_key::DIGEST_SEGMENTS,
                    meta_key::DIGEST_CHUNKS,
                    meta_key::DIGEST_PAGES,
                ] {
                    put(&mut wtxn, key, &Digest::default().encode())?;
                }
                put_log_keys(&mut wtxn)?;
                seal_meta(&meta, &mut wtxn).map_err(&map_err)?;
            }
            None => {
                return Err(format_err(
                    "manifest has no format version: not a bop store".into(),
                ))
            }
            Some(v) => {
                let version = keys::decode_u32(v, dir)?;
                if version == UPGRADABLE_FROM {
                    // Format 2 lacks only the change log, cursors and
                    // journal: their tables were created above; add their
                    // meta keys. The meta checksum is verified first, so a
                    // damaged store is never resealed as a good one.
                    let stored = meta
                        .get(&wtxn, meta_key::META_CRC)
                        .map_err(&map_err)?
                        .map(|v| keys::decode_u32(v, dir))
                        .transpose()?;
                    let actual = meta_crc(&meta, &wtxn).map_err(&map_err)?;
                    if stored != Some(actual) {
                        return Err(StorageError::corrupt(
                            dir,
                            0,
                            "manifest meta checksum mismatch (format 2 store not upgraded)",
                        ));
                    }
                    put_log_keys(&mut wtxn)?;
                    put(
                        &mut wtxn,
                        meta_key::FORMAT_VERSION,
                        &FORMAT_VERSION.to_le_bytes(),
                    )?;
                    seal_meta(&meta, &mut wtxn).map_err(&map_err)?;
                    upgraded_from = version;
                    tracing::info!(path = %dir.display(), "manifest upgraded from format 2 to 3 (change log, cursors, journal)");
                } else if version > FORMAT_VERSION {
                    return Err(format_err(format!(
                        "store format version {version} is newer than this build reads ({FORMAT_VERSION}): use a newer bop"
                    )));
                } else if version != FORMAT_VERSION {
                    return Err(format_err(format!(
                        "store format version {version} is not supported (this build reads {UPGRADABLE_FROM} and {FORMAT_VERSION})"
                    )));
                }
            }
        }
        // An existing store's meta is not resealed here: `load` verifies it.
        wtxn.commit().map_err(&map_err)?;
        let m = Manifest {
            env,
            path: dir.to_path_buf(),
            meta,
            segments,
            changes,
            cursors,
            journal,
            tables: Mutex::new(HashMap::from([(DbId::MAIN, main)])),
            config,
            gate: RwLock::new(()),
            settled: Mutex::new(Vec::new()),
            counters: Counters::default(),
            replayed: Mutex::new(ReplayReport::default()),
            previous_clean: AtomicU8::new(0),
            upgraded_from: AtomicU32::new(upgraded_from),
            crashed: AtomicBool::new(false),
        };
        m.verify_log_tables()?;
        Ok(m)
    }

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
            let seen = self.env.info().map_size;
            let r = {
                let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
                self.write_once(&f)
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

    /// Writes journal intent `intent` in transaction `w`; returns its id.
    fn add_intent(&self, w: &mut RwTxn, intent: &Intent) -> Result<JournalId> {
        let me = self.map_err();
        let id = self.meta_u64(w, meta_key::NEXT_JOURNAL_ID)?;
        let mut jr =
            Tracked::begin(&self.meta, w, self.journal, meta_key::DIGEST_JOURNAL).map_err(&me)?;
        jr.put(w, &key_u64(id), &intent.encode()).map_err(&me)?;
        jr.finish(&self.meta, w).map_err(&me)?;
        self.meta
            .put(w, meta_key::NEXT_JOURNAL_ID, &(id + 1).to_le_bytes())
            .map_err(&me)?;
        Ok(JournalId(id))
    }

    fn remove_intents(&self, w: &mut RwTxn, ids: &[JournalId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let me = self.map_err();
        let mut jr =
            Tracked::begin(&self.meta, w, self.journal, meta_key::DIGEST_JOURNAL).map_err(&me)?;
        for id in ids {
            jr.delete(w, &key_u64(id.0)).map_err(&me)?;
        }
        jr.finish(&self.meta, w).map_err(&me)
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

    /// Journals that chunk files `first..first + CHUNK_RESERVATION` of `db`
    /// may be written before a publish lists them (call before creating the
    /// first). Returns the intent and the end of the reserved range.
    pub fn reserve_chunks(&self, db: DbId, first: ChunkId) -> Result<(JournalId, ChunkId)> {
        let end = ChunkId(first.0 + CHUNK_RESERVATION);
        let id =
            self.write(|w, _| self.add_intent(w, &Intent::ChunksInFlight { db, first, end }))?;
        self.counters
            .journal_written
            .fetch_add(1, Ordering::Relaxed);
        Ok((id, end))
    }

    /// Marks journal intent `id` as done (its files are gone and their
    /// directory synced): the next write transaction removes it.
    pub fn journal_done(&self, id: JournalId) {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
    }

    /// Removes the settled journal intents now.
    pub fn settle_journal(&self) -> Result<()> {
        if self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return Ok(());
        }
        self.write(|_, _| Ok(()))
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

    // ----- journal -----

    /// The pending journal intents, in id order.
    pub fn journal_entries(&self) -> Result<Vec<(JournalId, Intent)>> {
        let me = self.map_err();
        self.read(|rtxn| {
            let mut out = Vec::new();
            for item in self.journal.iter(rtxn).map_err(&me)? {
                let (k, v) = item.map_err(&me)?;
                let id = keys::decode_key_u64(k, &self.path, "journal key")?;
                out.push((JournalId(id), Intent::decode(v, &self.path)?));
            }
            Ok(out)
        })
    }

    /// Finishes the work of every pending journal intent (call at open,
    /// before the WAL and the page stores look at their files): deletes
    /// each file an intent names that the manifest does not list, syncs
    /// the directories, then removes the intents.
    pub fn replay_journal(
        &self,
        io: &dyn IoBackend,
        chunk_dir: &dyn Fn(DbId) -> PathBuf,
        wal_dir: &Path,
    ) -> Result<ReplayReport> {
        let entries = self.journal_entries()?;
        let mut report = ReplayReport::default();
        if entries.is_empty() {
            return Ok(report);
        }
        let me = self.map_err();
        let listed_segments: HashSet<u64> = self.read(|rtxn| {
            let mut s = HashSet::new();
            for item in self.segments.iter(rtxn).map_err(&me)? {
                let (k, _) = item.map_err(&me)?;
                s.insert(keys::decode_key_u64(k, &self.path, "segment key")?);
            }
            Ok(s)
        })?;
        let listed_chunks = |db: DbId| -> Result<HashSet<u64>> {
            let Ok(t) = self.tables(db) else {
                return Ok(HashSet::new()); // never registered: nothing listed
            };
            self.read(|rtxn| {
                let mut s = HashSet::new();
                for item in t.chunks.iter(rtxn).map_err(&me)? {
                    let (k, _) = item.map_err(&me)?;
                    s.insert(keys::decode_key_u64(k, &self.path, "chunk key")?);
                }
                Ok(s)
            })
        };
        let mut dirs = BTreeSet::new();
        let mut remove = |path: PathBuf, report: &mut ReplayReport| -> Result<()> {
            if io.exists(&path) {
                tracing::info!(path = %path.display(), "journal replay: removing a file of unfinished work");
                io.remove_file(&path)?;
                report.files_removed += 1;
                if let Some(d) = path.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
            Ok(())
        };
        for (id, intent) in &entries {
            tracing::info!(id = id.0, ?intent, "replaying journal intent");
            match intent {
                Intent::ChunksInFlight { db, first, end } => {
                    let listed = listed_chunks(*db)?;
                    for c in first.0..end.0 {
                        if !listed.contains(&c) {
                            let name = crate::page_store::chunk::chunk_file_name(ChunkId(c));
                            remove(chunk_dir(*db).join(name), &mut report)?;
                        }
                    }
                }
                Intent::DeleteChunks { db, ids } => {
                    let listed = listed_chunks(*db)?;
                    for c in ids {
                        if listed.contains(&c.0) {
                            tracing::warn!(
                                chunk = c.0,
                                "journal names a chunk the manifest lists; kept"
                            );
                            continue;
                        }
                        let name = crate::page_store::chunk::chunk_file_name(*c);
                        remove(chunk_dir(*db).join(name), &mut report)?;
                    }
                }
                Intent::DeleteSegments { ids } => {
                    for s in ids {
                        if listed_segments.contains(&s.0) {
                            tracing::warn!(
                                segment = s.0,
                                "journal names a segment the manifest lists; kept"
                            );
                            continue;
                        }
                        let name = crate::wal::segment::segment_file_name(*s);
                        remove(wal_dir.join(name), &mut report)?;
                    }
                }
            }
            report.intents += 1;
        }
        for d in &dirs {
            io.sync_dir(d)?;
        }
        let ids: Vec<JournalId> = entries.iter().map(|(id, _)| *id).collect();
        self.write(|w, _| self.remove_intents(w, &ids))?;
        *self.replayed.lock().unwrap_or_else(|p| p.into_inner()) = report;
        Ok(report)
    }

    // ----- change log and cursors -----

    /// The first and last sequence numbers in the change log and its
    /// length (`(0, last, 0)` when empty; `last` is the last ever assigned).
    pub fn change_log_bounds(&self) -> Result<(u64, u64, u64)> {
        self.read(|rtxn| self.bounds_in(rtxn))
    }

    fn bounds_in(&self, rtxn: &heed::RoTxn) -> Result<(u64, u64, u64)> {
        let me = self.map_err();
        let last = self.meta_u64(rtxn, meta_key::NEXT_CHANGE_SEQ)? - 1;
        let len = self.changes.len(rtxn).map_err(&me)?;
        let first = match self.changes.first(rtxn).map_err(&me)? {
            Some((k, _)) => keys::decode_key_u64(k, &self.path, "change key")?,
            None => 0,
        };
        Ok((first, last, len))
    }

    /// Up to `max` changes with sequence numbers above `after`, in order
    /// (for operators; consumers use a cursor).
    pub fn changes_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Change)>> {
        self.read(|rtxn| self.changes_after_in(rtxn, after, max))
    }

    fn changes_after_in(
        &self,
        rtxn: &heed::RoTxn,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Change)>> {
        let me = self.map_err();
        let mut out = Vec::new();
        let from = key_u64(after.saturating_add(1));
        let range = (
            std::ops::Bound::Included(&from[..]),
            std::ops::Bound::Unbounded,
        );
        for item in self.changes.range(rtxn, &range).map_err(&me)? {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(&me)?;
            let seq = keys::decode_key_u64(k, &self.path, "change key")?;
            out.push((seq, Change::decode(v, &self.path)?));
        }
        Ok(out)
    }

    /// Registers cursor `name` at the end of the log (it reads changes made
    /// after now); an existing cursor is returned as it is. To resync a
    /// lagged cursor, drop it and register it again.
    pub fn register_cursor(&self, name: &str) -> Result<CursorInfo> {
        cursors::validate_name(name)?;
        let me = self.map_err();
        self.write(|w, _| {
            let (_, last, _) = self.bounds_in(w)?;
            let state = match self.cursors.get(w, name.as_bytes()).map_err(&me)? {
                Some(v) => CursorState::decode(v, &self.path)?,
                None => {
                    let s = CursorState {
                        acked: last,
                        registered_at: last,
                        lagged: false,
                    };
                    let mut cur =
                        Tracked::begin(&self.meta, w, self.cursors, meta_key::DIGEST_CURSORS)
                            .map_err(&me)?;
                    cur.put(w, name.as_bytes(), &s.encode()).map_err(&me)?;
                    cur.finish(&self.meta, w).map_err(&me)?;
                    s
                }
            };
            Ok(info(name, &state, last))
        })
    }

    /// Up to `max` changes after cursor `name`'s acknowledged one. Fails
    /// with `StorageError::CursorLagged` when entries it needs were
    /// truncated (the consumer must resync).
    pub fn read_changes(&self, name: &str, max: usize) -> Result<Vec<(u64, Change)>> {
        self.read(|rtxn| {
            let state = cursors::get(self.cursors, rtxn, &self.path, name)?;
            let (first, last, _) = self.bounds_in(rtxn)?;
            let missing = first == 0 && state.acked < last || first > state.acked + 1;
            if state.lagged || missing {
                return Err(StorageError::CursorLagged {
                    cursor: name.to_owned(),
                    acked: state.acked,
                    oldest: if first == 0 { last + 1 } else { first },
                });
            }
            self.changes_after_in(rtxn, state.acked, max)
        })
    }

    /// Acknowledges every change up to `seq` for cursor `name`; entries no
    /// cursor needs any more are truncated in the same transaction.
    pub fn ack(&self, name: &str, seq: u64) -> Result<()> {
        let me = self.map_err();
        self.write(|w, _| {
            let state = cursors::get(self.cursors, w, &self.path, name)?;
            let (first, last, _) = self.bounds_in(w)?;
            if state.lagged {
                return Err(StorageError::CursorLagged {
                    cursor: name.to_owned(),
                    acked: state.acked,
                    oldest: if first == 0 { last + 1 } else { first },
                });
            }
            if seq > last {
                return Err(StorageError::Config(format!(
                    "cursor {name:?}: cannot acknowledge change {seq}, the last is {last}"
                )));
            }
            if seq > state.acked {
                let mut cur = Tracked::begin(&self.meta, w, self.cursors, meta_key::DIGEST_CURSORS)
                    .map_err(&me)?;
                let s = CursorState {
                    acked: seq,
                    ..state
                };
                cur.put(w, name.as_bytes(), &s.encode()).map_err(&me)?;
                cur.finish(&self.meta, w).map_err(&me)?;
            }
            Ok(())
        })
    }

    /// Removes cursor `name`; returns whether it existed.
    pub fn drop_cursor(&self, name: &str) -> Result<bool> {
        let me = self.map_err();
        self.write(|w, _| {
            let existed = self.cursors.get(w, name.as_bytes()).map_err(&me)?.is_some();
            if existed {
                let mut cur = Tracked::begin(&self.meta, w, self.cursors, meta_key::DIGEST_CURSORS)
                    .map_err(&me)?;
                cur.delete(w, name.as_bytes()).map_err(&me)?;
                cur.finish(&self.meta, w).map_err(&me)?;
            }
            Ok(existed)
        })
    }

    /// Every cursor with its lag.
    pub fn cursors(&self) -> Result<Vec<CursorInfo>> {
        self.read(|rtxn| {
            let (_, last, _) = self.bounds_in(rtxn)?;
            Ok(cursors::all(self.cursors, rtxn, &self.path)?
                .iter()
                .map(|(n, s)| info(n, s, last))
                .collect())
        })
    }

    /// Counters and the state of the change log, cursors and journal.
    pub fn stats(&self) -> Result<ManifestStats> {
        let me = self.map_err();
        let (bounds, cursors, journal_pending) = self.read(|rtxn| {
            let bounds = self.bounds_in(rtxn)?;
            let cursors: Vec<CursorInfo> = cursors::all(self.cursors, rtxn, &self.path)?
                .iter()
                .map(|(n, s)| info(n, s, bounds.1))
                .collect();
            Ok((bounds, cursors, self.journal.len(rtxn).map_err(&me)?))
        })?;
        let c = &self.counters;
        let replayed = *self.replayed.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ManifestStats {
            format_version: FORMAT_VERSION,
            upgraded_from: self.upgraded_from.load(Ordering::Relaxed),
            previous_shutdown_clean: self.previous_clean.load(Ordering::Relaxed) == 1,
            change_log_entries: bounds.2,
            change_first_seq: bounds.0,
            change_last_seq: bounds.1,
            changes_appended: c.changes_appended.load(Ordering::Relaxed),
            changes_truncated: c.changes_truncated.load(Ordering::Relaxed),
            cursors_lagged: cursors.iter().filter(|c| c.lagged).count() as u64,
            cursors,
            cursor_lag_events: c.cursor_lag_events.load(Ordering::Relaxed),
            // Intents whose work is done wait for the next write to go.
            journal_pending:
                journal_pending.saturating_sub(
                    self.settled.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
                ),
            journal_written: c.journal_written.load(Ordering::Relaxed),
            journal_settled: c.journal_settled.load(Ordering::Relaxed),
            journal_replayed: replayed.intents,
            journal_files_removed: replayed.files_removed,
            map_size_bytes: self.env.info().map_size as u64,
            map_grows: c.map_grows.load(Ordering::Relaxed),
        })
    }
}

fn info(name: &str, s: &CursorState, last: u64) -> CursorInfo {
    CursorInfo {
        name: name.to_owned(),
        acked: s.acked,
        registered_at: s.registered_at,
        lag: last.saturating_sub(s.acked),
        lagged: s.lagged,
    }
}
