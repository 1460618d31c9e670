//! The manifest: an LMDB environment (through `heed`) at `<store>/manifest/`
//! that is the authority on what a store contains. Every change is one LMDB
//! write transaction, committed durably (LMDB syncs on commit; NOSYNC is
//! never used).
//!
//! Tables (layouts in `tables.rs` and docs/FORMAT.md):
//! - `meta`: format version, page size, database size, id counters, WAL base
//!   LSN, open epoch, clean-shutdown marker.
//! - `segments`: WAL segment id -> first LSN and capacity.
//! - `chunks`: page chunk id -> page count and live page count.
//! - `pages`: page number -> (chunk id, slot, crc32c).

pub mod digest;
mod lmdb_check;
pub mod tables;

use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};

use crate::error::{Result, StorageError};
use crate::types::{ChunkId, Epoch, Lsn, PageNo, SegmentId};
use digest::{Digest, Tracked};
use tables::{key_u32, key_u64, meta_key, FORMAT_VERSION};
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

/// Everything the manifest holds, read in one snapshot at open.
#[derive(Debug, Clone)]
pub struct ManifestState {
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
}

/// One atomic publication of checkpointed pages.
#[derive(Debug, Default)]
pub struct PublishBatch {
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
                .max_dbs(8)
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
        let chunks = env
            .create_database(&mut wtxn, Some("chunks"))
            .map_err(map_err)?;
        let pages = env
            .create_database(&mut wtxn, Some("pages"))
            .map_err(map_err)?;
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
            chunks,
            pages,
        })
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

    /// Reads the whole manifest in one read transaction.
    pub fn load(&self) -> Result<ManifestState> {
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
        for item in self.chunks.iter(&rtxn).map_err(&me)? {
            let (k, v) = item.map_err(&me)?;
            digests[1].add(k, v);
            chunks.push(ChunkMeta::decode(k, v, &self.path)?);
        }
        let mut pages = Vec::new();
        for item in self.pages.iter(&rtxn).map_err(&me)? {
            let (k, v) = item.map_err(&me)?;
            digests[2].add(k, v);
            pages.push(PageLoc::decode(k, v, &self.path)?);
        }
        let names = [
            meta_key::DIGEST_SEGMENTS,
            meta_key::DIGEST_CHUNKS,
            meta_key::DIGEST_PAGES,
        ];
        for (key, actual) in names.into_iter().zip(digests) {
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
        Ok(ManifestState {
            page_size: self.meta_u32(&rtxn, meta_key::PAGE_SIZE)?,
            db_pages: self.meta_u32(&rtxn, meta_key::DB_PAGES)?,
            next_chunk_id: ChunkId(self.meta_u64(&rtxn, meta_key::NEXT_CHUNK_ID)?),
            next_segment_id: SegmentId(self.meta_u64(&rtxn, meta_key::NEXT_SEGMENT_ID)?),
            checkpoint_lsn: Lsn(self.meta_u64(&rtxn, meta_key::CHECKPOINT_LSN)?),
            epoch: Epoch(self.meta_u32(&rtxn, meta_key::EPOCH)?),
            clean_shutdown: clean,
            segments,
            chunks,
            pages,
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

    /// Drops WAL segments and moves the WAL base: records below `base` are
    /// never replayed again.
    pub fn drop_segments(&self, ids: &[SegmentId], base: Lsn) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut segments = Tracked::begin(&self.meta, &w, self.segments, meta_key::DIGEST_SEGMENTS)
            .map_err(&me)?;
        for id in ids {
            segments.delete(&mut w, &key_u64(id.0)).map_err(&me)?;
        }
        segments.finish(&self.meta, &mut w).map_err(&me)?;
        self.meta
            .put(&mut w, meta_key::CHECKPOINT_LSN, &base.0.to_le_bytes())
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }

    /// Publishes checkpointed pages atomically: readers of the manifest see
    /// all of the batch or none of it.
    pub fn publish(&self, batch: &PublishBatch) -> Result<()> {
        let me = self.map_err();
        let mut w = self.env.write_txn().map_err(&me)?;
        let mut chunks =
            Tracked::begin(&self.meta, &w, self.chunks, meta_key::DIGEST_CHUNKS).map_err(&me)?;
        let mut pages =
            Tracked::begin(&self.meta, &w, self.pages, meta_key::DIGEST_PAGES).map_err(&me)?;
        for c in &batch.new_chunks {
            chunks
                .put(&mut w, &key_u64(c.id.0), &c.encode_value())
                .map_err(&me)?;
        }
        for (id, live) in &batch.chunk_live_updates {
            let old = self
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
            .put(&mut w, meta_key::DB_PAGES, &batch.db_pages.to_le_bytes())
            .map_err(&me)?;
        self.meta
            .put(
                &mut w,
                meta_key::NEXT_CHUNK_ID,
                &batch.next_chunk_id.0.to_le_bytes(),
            )
            .map_err(&me)?;
        seal_meta(&self.meta, &mut w).map_err(&me)?;
        w.commit().map_err(&me)
    }
}
