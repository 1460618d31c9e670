//! The store's state in the manifest: what `load` reads about a database
//! and the record log, and the writes that change it — log segments added
//! and dropped, checkpointed pages published, databases registered, epochs
//! begun, clean shutdowns — each one transaction through `Manifest::write`,
//! which appends its changes to the change log.

use heed::RwTxn;

use super::changelog::Change;
use super::digest::{Digest, Tracked};
use super::journal::{Intent, JournalId};
use super::keys::{self, key_u32, key_u64, meta_key, per_db};
use super::tables::{ChunkMeta, PageLoc, SegmentMeta, DATABASES_MAX};
use super::{DbTables, Manifest};
use crate::error::{Result, StorageError};
use crate::types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
use std::sync::atomic::Ordering;

/// What the manifest holds about one database and the store's record log,
/// read in one snapshot.
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
    /// The lowest and highest base (`checkpoint_lsn`) of all the
    /// store's databases: records below the lowest are needed by none;
    /// no new record may be numbered below the highest.
    pub log_base_min: Lsn,
    pub log_base_max: Lsn,
}

/// One atomic publication of checkpointed pages.
#[derive(Debug, Default)]
pub struct PublishBatch {
    pub db: DbId,
    /// The database's page size, when this publish is its first (SQLite
    /// may choose another page size than the store's before it).
    pub page_size: Option<u32>,
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
    /// Moves the database's base in the same transaction (its log records
    /// below it are in the pages this batch publishes; see
    /// [`Manifest::drop_segments`]).
    pub base: Option<Lsn>,
}

impl Manifest {
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

    /// The base of every database (the LSN below which its log records are
    /// obsolete): the main one and the named ones.
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

    /// Registers a new named database with `page_size`, whose log records
    /// start at `base` (the record log's next LSN: none of its records is
    /// older).
    pub fn register_db(&self, name: &str, page_size: u32, base: Lsn) -> Result<DbId> {
        let me = self.map_err();
        let mut name_key = meta_key::DB_PREFIX.to_vec();
        name_key.extend_from_slice(name.as_bytes());
        let (db, made) = self.write(|w, changes| {
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
            changes.push(Change::DatabaseRegistered {
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

    /// Reads what the manifest holds about the main database and the record
    /// log.
    pub fn load(&self) -> Result<ManifestState> {
        self.load_db(DbId::MAIN)
    }

    /// Reads what the manifest holds about database `db` and the record log,
    /// in one read transaction, verifying the meta checksum and the digests
    /// of the tables read.
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
            let mut log_base_min = base_of(DbId::MAIN)?;
            let mut log_base_max = log_base_min;
            for (_, d) in &named {
                let b = base_of(*d)?;
                log_base_min = log_base_min.min(b);
                log_base_max = log_base_max.max(b);
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
                log_base_min,
                log_base_max,
            })
        })
    }

    /// Starts a new open epoch and marks the store as not cleanly shut
    /// down, durably, now; remembers whether the previous open ended
    /// cleanly.
    pub fn begin_epoch(&self, epoch: Epoch) -> Result<()> {
        self.set_pending_epoch(Some(epoch));
        self.write(|_, _| Ok(()))
    }

    /// Defers the start of epoch `epoch` (the previous open ended cleanly)
    /// to the first change: the first write transaction begins it in its
    /// own commit, and the record log calls [`Manifest::ensure_epoch`]
    /// before its first append. Until then the manifest still says "shut
    /// down cleanly", which stays true while nothing is written: an open
    /// that only reads writes nothing, and its close need not mark a clean
    /// shutdown ([`Manifest::epoch_is_pending`]).
    pub fn defer_epoch(&self, epoch: Epoch) {
        self.previous_clean.store(1, Ordering::Relaxed);
        self.set_pending_epoch(Some(epoch));
    }

    /// Begins the deferred epoch (durably) unless it is begun: call before
    /// anything that needs it, such as a record carrying its number.
    pub fn ensure_epoch(&self) -> Result<()> {
        if !self.epoch_is_pending() {
            return Ok(());
        }
        self.write(|_, _| Ok(()))
    }

    /// Whether this open's epoch is deferred and not begun yet: nothing
    /// has been written since the last clean shutdown.
    pub fn epoch_is_pending(&self) -> bool {
        self.epoch_pending.load(Ordering::Acquire)
    }

    fn set_pending_epoch(&self, epoch: Option<Epoch>) {
        let mut p = self.pending_epoch.lock().unwrap_or_else(|p| p.into_inner());
        *p = epoch;
        self.epoch_pending.store(epoch.is_some(), Ordering::Release);
    }

    /// In write transaction `w`: begins `epoch` (its number, the store
    /// marked not cleanly shut down, `EpochBegun` in the change log).
    /// Returns whether the previous open ended cleanly.
    pub(super) fn put_epoch_begun(
        &self,
        w: &mut RwTxn,
        epoch: Epoch,
        changes: &mut Vec<Change>,
    ) -> Result<bool> {
        let me = self.map_err();
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
        changes.push(Change::EpochBegun {
            epoch,
            previous_clean,
        });
        Ok(previous_clean)
    }

    /// The pending epoch was begun by a commit that just succeeded.
    pub(super) fn epoch_begun(&self, pending: &mut Option<Epoch>, previous_clean: bool) {
        *pending = None;
        self.epoch_pending.store(false, Ordering::Release);
        self.previous_clean
            .store(if previous_clean { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// Records a clean shutdown (everything published, record log synced).
    pub fn mark_clean_shutdown(&self) -> Result<()> {
        let me = self.map_err();
        self.write(|w, changes| {
            let epoch = Epoch(self.meta_u32(w, meta_key::EPOCH)?);
            self.meta
                .put(w, meta_key::CLEAN_SHUTDOWN, &[1])
                .map_err(&me)?;
            changes.push(Change::CleanShutdown { epoch });
            Ok(())
        })
    }

    /// Registers a new log segment (its file is already durable).
    pub fn add_segment(&self, seg: &SegmentMeta) -> Result<()> {
        let me = self.map_err();
        self.write(|w, changes| {
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
            changes.push(Change::SegmentAdded {
                id: seg.id,
                first_lsn: seg.first_lsn,
                capacity_bytes: seg.capacity_bytes,
            });
            Ok(())
        })
    }

    /// Drops log segments and, with `base`, moves a database's base:
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
        let intent = self.write(|w, changes| {
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
            changes.push(Change::SegmentsDropped {
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
        let intent = self.write(|w, changes| {
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
            let db_pages_before = self.meta_u32(w, &per(meta_key::DB_PAGES))?;
            self.meta
                .put(w, &per(meta_key::DB_PAGES), &batch.db_pages.to_le_bytes())
                .map_err(&me)?;
            if let Some(ps) = batch.page_size {
                self.meta
                    .put(w, &per(meta_key::PAGE_SIZE), &ps.to_le_bytes())
                    .map_err(&me)?;
            }
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
            // A publish that only moves the base (a WAL restart with
            // nothing checkpointed since the last publish) is no change of
            // the page store.
            let publishes = !batch.pages.is_empty()
                || !batch.new_chunks.is_empty()
                || !batch.removed_chunks.is_empty()
                || !batch.chunk_live_updates.is_empty()
                || batch.page_size.is_some()
                || batch.db_pages != db_pages_before;
            if publishes {
                changes.push(Change::Published {
                    db: batch.db,
                    db_pages: batch.db_pages,
                    pages_changed: batch.pages.len() as u32 - removed_pages,
                    pages_removed: removed_pages,
                    chunks_updated: batch.chunk_live_updates.len() as u32,
                    next_chunk_id: batch.next_chunk_id,
                    chunks_added: batch.new_chunks.clone(),
                    chunks_removed: batch.removed_chunks.clone(),
                });
            }
            if let Some(base) = batch.base {
                self.meta
                    .put(w, &per(meta_key::CHECKPOINT_LSN), &base.0.to_le_bytes())
                    .map_err(&me)?;
                changes.push(Change::SegmentsDropped {
                    ids: Vec::new(),
                    base: Some((batch.db, base)),
                });
            }
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
