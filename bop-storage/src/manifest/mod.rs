//! The manifest: an LMDB environment (through `heed`) at `<store>/manifest/`
//! that is the authority on what a store contains. Every change is one LMDB
//! write transaction, committed durably (LMDB syncs on commit; NOSYNC is
//! never used).
//!
//! Tables (layouts in `tables.rs` and docs/FORMAT.md):
//! - `meta`: format version, id counters, open epoch, clean-shutdown marker,
//!   the registry of named databases, and per database: page size, database
//!   size, chunk id counter and WAL base LSN.
//! - `segments`: WAL segment id -> first LSN and capacity (one WAL per
//!   store, shared by its databases).
//! - per database, `chunks`: page chunk id -> page count and live page count.
//! - per database, `pages`: page number -> (chunk id, slot, crc32c).

pub mod digest;
mod lmdb_check;
pub mod tables;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};

use crate::error::{Result, StorageError};
use crate::types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
use digest::{Digest, Tracked};
use tables::{key_u32, key_u64, meta_key, per_db, DATABASES_MAX, FORMAT_VERSION};
pub use tables::{ChunkMeta, PageLoc, SegmentMeta};

/// Checksum of every `meta` entry but `meta_crc` itself, in key order:
/// LMDB does not checksum its pages, and a flipped checkpoint LSN or page
/// count would otherwise silently change what the store means.
fn meta_crc(meta: &Database<Bytes, Bytes>, txn: &heed::RoTxn) -> heed::Result<u32> {
    let mut crc = 0u32;
    for item in meta.iter(txn)? {
        let (k, v) = item?;
        if k == meta_key::META_CRC {
            continue;
        }
        for part in [&[k.len() as u8][..], k, &(v.len() as u32).to_le_bytes(), v] {
            crc = crc32c::crc32c_append(crc, part);
        }
    }
    Ok(crc)
}

/// Stores the checksum of `meta` before a write transaction commits.
fn seal_meta(meta: &Database<Bytes, Bytes>, w: &mut heed::RwTxn) -> heed::Result<()> {
    let crc = meta_crc(meta, w)?;
    meta.put(w, meta_key::META_CRC, &crc.to_le_bytes())
}

/// Virtual address space reserved for the LMDB map. LMDB maps lazily, so
/// this costs no memory or disk until used.
const MAP_SIZE_BYTES: usize = 64 << 30;

pub struct Manifest {
    env: Env,
    path: PathBuf,
    meta: Database<Bytes, Bytes>,
    segments: Database<Bytes, Bytes>,
    /// The `chunks` and `pages` tables of each database opened so far.
    tables: Mutex<HashMap<DbId, DbTables>>,
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
}

impl Manifest {
    /// Opens the manifest at `dir`, creating it with `page_size` if `create`.
    pub fn open(dir: &Path, create: bool, page_size: u32) -> Result<Manifest> {
        let map_err = |source| StorageError::Manifest {
            path: dir.to_path_buf(),
            source,
        };
        if create {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io("mkdir", dir, e))?;
        }
        // LMDB trusts its B-tree structure: check it before LMDB maps it.
        let data = dir.join("data.mdb");
        if data.exists() {
            lmdb_check::check(&data)?;
        }
        // SAFETY: the store's exclusive process lock (LOCK file) guarantees
        // no other process maps this environment, and within the process the
        // store registry opens each environment once.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(MAP_SIZE_BYTES)
                .max_dbs(2 + 2 * (u32::from(DATABASES_MAX) + 1))
                .open(dir)
        }
        .map_err(map_err)?;
        let mut wtxn = env.write_txn().map_err(map_err)?;
        let meta: Database<Bytes, Bytes> = env
            .create_database(&mut wtxn, Some("meta"))
            .map_err(map_err)?;
        let segments = env
            .create_database(&mut wtxn, Some("segments"))
            .map_err(map_err)?;
        let main = DbTables {
            chunks: env
                .create_database(&mut wtxn, Some("chunks"))
                .map_err(map_err)?,
            pages: env
                .create_database(&mut wtxn, Some("pages"))
                .map_err(map_err)?,
        };
        // A manifest whose first transaction never committed (a crash while
        // the store was being created) is empty: create it now.
        let empty = meta.is_empty(&wtxn).map_err(map_err)?;
        match meta.get(&wtxn, meta_key::FORMAT_VERSION).map_err(map_err)? {
            None if create || empty => {
                let put = |w: &mut heed::RwTxn, k: &[u8], v: &[u8]| meta.put(w, k, v);
                put(
                    &mut wtxn,
                    meta_key::FORMAT_VERSION,
                    &FORMAT_VERSION.to_le_bytes(),
                )
                .map_err(map_err)?;
                put(&mut wtxn, meta_key::PAGE_SIZE, &page_size.to_le_bytes()).map_err(map_err)?;
                put(&mut wtxn, meta_key::DB_PAGES, &0u32.to_le_bytes()).map_err(map_err)?;
                put(&mut wtxn, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes()).map_err(map_err)?;
                put(&mut wtxn, meta_key::NEXT_SEGMENT_ID, &1u64.to_le_bytes()).map_err(map_err)?;
                put(
                    &mut wtxn,
                    meta_key::CHECKPOINT_LSN,
                    &Lsn::FIRST.0.to_le_bytes(),
                )
                .map_err(map_err)?;
                put(&mut wtxn, meta_key::EPOCH, &0u32.to_le_bytes()).map_err(map_err)?;
                put(&mut wtxn, meta_key::NEXT_DB_ID, &1u32.to_le_bytes()).map_err(map_err)?;
                put(&mut wtxn, meta_key::CLEAN_SHUTDOWN, &[1]).map_err(map_err)?;
                for key in [
                    meta_key::DIGEST_SEGMENTS,
                    meta_key::DIGEST_CHUNKS,
                    meta_key::DIGEST_PAGES,
                ] {
                    put(&mut wtxn, key, &Digest::default().encode()).map_err(map_err)?;
                }
                seal_meta(&meta, &mut wtxn).map_err(map_err)?;
            }
            None => {
                return Err(StorageError::Format {
                    path: dir.to_path_buf(),
                    what: "manifest has no format version: not a bop store".into(),
                })
            }
            Some(v) => {
                let version = tables::decode_u32(v, dir)?;
                if version != FORMAT_VERSION {
                    return Err(StorageError::Format {
                        path: dir.to_path_buf(),
                        what: format!(
                            "store format version {version} is not supported (this build reads {FORMAT_VERSION})"
                        ),
                    });
                }
            }
        }
        // An existing store's meta is not resealed here: `load` verifies it.
        wtxn.commit().map_err(map_err)?;
        Ok(Manifest {
            env,
            path: dir.to_path_buf(),
            meta,
            segments,
            tables: Mutex::new(HashMap::from([(DbId::MAIN, main)])),
        })
    }

    /// The tables of database `db` (opened on first use).
    fn tables(&self, db: DbId) -> Result<DbTables> {
        let mut map = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(&db) {
            return Ok(*t);
        }
        let me = self.map_err();
        let name = |base: &[u8]| String::from_utf8(per_db(base, db)).expect("ASCII");
        let rtxn = self.env.read_txn().map_err(&me)?;
        let chunks = self
            .env
            .open_database(&rtxn, Some(&name(b"chunks")))
            .map_err(&me)?;
        let pages = self
            .env
            .open_database(&rtxn, Some(&name(b"pages")))
            .map_err(&me)?;
        rtxn.commit().map_err(&me)?;
        match (chunks, pages) {
            (Some(chunks), Some(pages)) => {
                let t = DbTables { chunks, pages };
                map.insert(db, t);
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
        let me = self.map_err();
        let rtxn = self.env.read_txn().map_err(&me)?;
        let mut out = Vec::new();
        for item in self
            .meta
            .prefix_iter(&rtxn, meta_key::DB_PREFIX)
            .map_err(&me)?
        {
            let (k, v) = item.map_err(&me)?;
            let name = String::from_utf8_lossy(&k[meta_key::DB_PREFIX.len()..]).into_owned();
            let id = tables::decode_u32(v, &self.path)?;
            let id = u16::try_from(id)
                .map_err(|_| StorageError::corrupt(&self.path, 0, "database id out of range"))?;
            out.push((name, DbId(id)));
        }
        Ok(out)
    }

    /// The WAL base of every database: the main one and the named ones.
    pub fn db_bases(&self) -> Result<Vec<(DbId, Lsn)>> {
        let named = self.databases()?;
        let me = self.map_err();
        let rtxn = self.env.read_txn().map_err(&me)?;
        let mut out = Vec::new();
        for db in std::iter::once(DbId::MAIN).chain(named.into_iter().map(|(_, d)| d)) {
            let base = self.meta_u64(&rtxn, &per_db(meta_key::CHECKPOINT_LSN, db))?;
            out.push((db, Lsn(base)));
        }
        Ok(out)
    }

    /// Registers a new named database with `page_size`, whose WAL records
    /// start at `base` (the WAL's next LSN: none of its records is older).
    pub fn register_db(&self, name: &str, page_size: u32, base: Lsn) -> Result<DbId> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut name_key = meta_key::DB_PREFIX.to_vec();
        name_key.extend_from_slice(name.as_bytes());
        if let Some(v) = self.meta.get(&w, &name_key).map_err(&me)? {
            let id = tables::decode_u32(v, &self.path)?;
            return Ok(DbId(id as u16));
        }
        let id = tables::decode_u32(self.meta_value(&w, meta_key::NEXT_DB_ID)?, &self.path)?;
        if id > u32::from(DATABASES_MAX) {
            return Err(StorageError::Limit(format!(
                "a store holds at most {DATABASES_MAX} named databases"
            )));
        }
        let db = DbId(id as u16);
        let name_of = |base: &[u8]| String::from_utf8(per_db(base, db)).expect("ASCII");
        let chunks = self
            .env
            .create_database(&mut w, Some(&name_of(b"chunks")))
            .map_err(&me)?;
        let pages = self
            .env
            .create_database(&mut w, Some(&name_of(b"pages")))
            .map_err(&me)?;
        let put = |w: &mut heed::RwTxn, k: &[u8], v: &[u8]| self.meta.put(w, &per_db(k, db), v);
        put(&mut w, meta_key::PAGE_SIZE, &page_size.to_le_bytes()).map_err(&me)?;
        put(&mut w, meta_key::DB_PAGES, &0u32.to_le_bytes()).map_err(&me)?;
        put(&mut w, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes()).map_err(&me)?;
        put(&mut w, meta_key::CHECKPOINT_LSN, &base.0.to_le_bytes()).map_err(&me)?;
        for key in [meta_key::DIGEST_CHUNKS, meta_key::DIGEST_PAGES] {
            put(&mut w, key, &Digest::default().encode()).map_err(&me)?;
        }
        self.meta
            .put(&mut w, &name_key, &u32::from(db.0).to_le_bytes())
            .map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::NEXT_DB_ID, &(id + 1).to_le_bytes())
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)?;
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(db, DbTables { chunks, pages });
        Ok(db)
    }

    fn map_err(&self) -> impl Fn(heed::Error) -> StorageError + '_ {
        move |source| StorageError::Manifest {
            path: self.path.clone(),
            source,
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
        tables::decode_u64(self.meta_value(txn, key)?, &self.path)
    }

    fn meta_u32(&self, txn: &heed::RoTxn, key: &[u8]) -> Result<u32> {
        tables::decode_u32(self.meta_value(txn, key)?, &self.path)
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
        let named = self.databases()?;
        let me = self.map_err();
        let rtxn = self.env.read_txn().map_err(&me)?;
        let stored = tables::decode_u32(self.meta_value(&rtxn, meta_key::META_CRC)?, &self.path)?;
        let actual = meta_crc(&self.meta, &rtxn).map_err(&me)?;
        if stored != actual {
            return Err(StorageError::corrupt(
                &self.path,
                0,
                format!(
                    "manifest meta checksum mismatch (stored {stored:08x}, computed {actual:08x})"
                ),
            ));
        }
        let mut digests = [Digest::default(); 3];
        let mut segments = Vec::new();
        for item in self.segments.iter(&rtxn).map_err(&me)? {
            let (k, v) = item.map_err(&me)?;
            digests[0].add(k, v);
            segments.push(SegmentMeta::decode(k, v, &self.path)?);
        }
        let mut chunks = Vec::new();
        for item in tables.chunks.iter(&rtxn).map_err(&me)? {
            let (k, v) = item.map_err(&me)?;
            digests[1].add(k, v);
            chunks.push(ChunkMeta::decode(k, v, &self.path)?);
        }
        let mut pages = Vec::new();
        for item in tables.pages.iter(&rtxn).map_err(&me)? {
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
            let key = &key[..];
            let stored = Digest::decode(self.meta_value(&rtxn, key)?);
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
        }
        let clean = self
            .meta
            .get(&rtxn, meta_key::CLEAN_SHUTDOWN)
            .map_err(&me)?
            .map(|v| v == [1])
            .unwrap_or(false);
        let base_of = |d: DbId| -> Result<Lsn> {
            Ok(Lsn(
                self.meta_u64(&rtxn, &per_db(meta_key::CHECKPOINT_LSN, d))?
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
            page_size: self.meta_u32(&rtxn, &per(meta_key::PAGE_SIZE))?,
            db_pages: self.meta_u32(&rtxn, &per(meta_key::DB_PAGES))?,
            next_chunk_id: ChunkId(self.meta_u64(&rtxn, &per(meta_key::NEXT_CHUNK_ID))?),
            next_segment_id: SegmentId(self.meta_u64(&rtxn, meta_key::NEXT_SEGMENT_ID)?),
            checkpoint_lsn: base_of(db)?,
            epoch: Epoch(self.meta_u32(&rtxn, meta_key::EPOCH)?),
            clean_shutdown: clean,
            segments,
            chunks,
            pages,
            wal_base_min,
            wal_base_max,
        })
    }

    /// Starts a new open epoch and marks the store as not cleanly shut down.
    pub fn begin_epoch(&self, epoch: Epoch) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::EPOCH, &epoch.0.to_le_bytes())
            .map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::CLEAN_SHUTDOWN, &[0])
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }

    /// Records a clean shutdown (everything published, WAL synced).
    pub fn mark_clean_shutdown(&self) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::CLEAN_SHUTDOWN, &[1])
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }

    /// Registers a new WAL segment (its file is already durable).
    pub fn add_segment(&self, seg: &SegmentMeta) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut segments = Tracked::begin(&self.meta, &w, self.segments, meta_key::DIGEST_SEGMENTS)
            .map_err(&me)?;
        segments
            .put(&mut w, &key_u64(seg.id.0), &seg.encode_value())
            .map_err(&me)?;
        segments.finish(&self.meta, &mut w).map_err(&me)?;
        self.meta
            .put(
                &mut w,
                meta_key::NEXT_SEGMENT_ID,
                &(seg.id.0 + 1).to_le_bytes(),
            )
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }

    /// Drops WAL segments and, with `base`, moves a database's WAL base:
    /// its records below the base are never replayed again.
    pub fn drop_segments(&self, ids: &[SegmentId], base: Option<(DbId, Lsn)>) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut segments = Tracked::begin(&self.meta, &w, self.segments, meta_key::DIGEST_SEGMENTS)
            .map_err(&me)?;
        for id in ids {
            segments.delete(&mut w, &key_u64(id.0)).map_err(&me)?;
        }
        segments.finish(&self.meta, &mut w).map_err(&me)?;
        if let Some((db, base)) = base {
            self.meta
                .put(
                    &mut w,
                    &per_db(meta_key::CHECKPOINT_LSN, db),
                    &base.0.to_le_bytes(),
                )
                .map_err(&me)?;
        }
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }

    /// Publishes checkpointed pages atomically: readers of the manifest see
    /// all of the batch or none of it.
    pub fn publish(&self, batch: &PublishBatch) -> Result<()> {
        let t = self.tables(batch.db)?;
        let per = |k: &[u8]| per_db(k, batch.db);
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut chunks =
            Tracked::begin(&self.meta, &w, t.chunks, &per(meta_key::DIGEST_CHUNKS)).map_err(&me)?;
        let mut pages =
            Tracked::begin(&self.meta, &w, t.pages, &per(meta_key::DIGEST_PAGES)).map_err(&me)?;
        for c in &batch.new_chunks {
            chunks
                .put(&mut w, &key_u64(c.id.0), &c.encode_value())
                .map_err(&me)?;
        }
        for (id, live) in &batch.chunk_live_updates {
            let old = t
                .chunks
                .get(&w, &key_u64(id.0))
                .map_err(&me)?
                .map(<[u8]>::to_vec);
            if let Some(v) = old {
                let mut meta = ChunkMeta::decode(&key_u64(id.0), &v, &self.path)?;
                meta.live_pages = *live;
                chunks
                    .put(&mut w, &key_u64(id.0), &meta.encode_value())
                    .map_err(&me)?;
            }
        }
        for id in &batch.removed_chunks {
            chunks.delete(&mut w, &key_u64(id.0)).map_err(&me)?;
        }
        for (pgno, loc) in &batch.pages {
            match loc {
                Some(loc) => pages
                    .put(&mut w, &key_u32(pgno.0), &loc.encode_value())
                    .map_err(&me)?,
                None => pages.delete(&mut w, &key_u32(pgno.0)).map_err(&me)?,
            }
        }
        chunks.finish(&self.meta, &mut w).map_err(&me)?;
        pages.finish(&self.meta, &mut w).map_err(&me)?;
        self.meta
            .put(
                &mut w,
                &per(meta_key::DB_PAGES),
                &batch.db_pages.to_le_bytes(),
            )
            .map_err(&me)?;
        self.meta
            .put(
                &mut w,
                &per(meta_key::NEXT_CHUNK_ID),
                &batch.next_chunk_id.0.to_le_bytes(),
            )
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }
}
