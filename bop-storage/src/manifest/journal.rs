//! The recovery journal: intents of multi-step work whose files live
//! outside LMDB. An intent is written in (or before) the transaction of the
//! first durable step and removed once the last step is durable; `open`
//! replays what is left before anything else touches the files, so a crash
//! at any step leaves no file behind that the manifest does not list.
//!
//! | intent | written | removed |
//! |---|---|---|
//! | chunks in flight (db, ids `first..end`) | before a checkpoint or compaction creates a chunk file outside the current range (own transaction; one per `CHUNK_RESERVATION` chunk files) | in the publish transaction that uses up the range, or after the last publish at close |
//! | delete chunks (db, ids) | in the publish transaction that drops them | after the files are unlinked and the directory synced (next write transaction) |
//! | delete segments (ids) | in the `drop_segments` transaction | after the files are unlinked or renamed to spares and the directory synced |
//!
//! A range kept across publishes stays correct: its published chunks are
//! listed (replay leaves them), its dropped ones are meant to be gone.
//! Replay deletes each named file that the manifest does not list (a listed
//! one is never touched); a missing file counts as done, so replay is
//! idempotent. New log segments are not journaled (a roll is on the commit
//! path): the record log's sweep of `wal/` at open removes an unregistered
//! one.
//!
//! Table `journal`: key = intent id u64 BE (from meta `next_journal_id`);
//! value, little-endian:
//!
//! ```text
//! offset size field
//! 0      1    kind (INTENT_* below)
//! 1      1    version of the encoding = 1
//! 2      2    reserved, zero
//! 4      2    db id (chunk intents; zero for segments)
//! 6      2    reserved, zero
//! 8      ..   chunks in flight: first id u64 | end id u64 (exclusive)    (24 bytes)
//!             delete chunks / delete segments: count u32 | ids u64 × count
//! ```

use std::path::Path;

use super::keys::bad;
use crate::error::Result;
use crate::types::{le, ChunkId, DbId, SegmentId};

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use heed::RwTxn;

use super::digest::Tracked;
use super::keys::{self, key_u64, meta_key};
use super::Manifest;
use crate::io::IoBackend;

pub const INTENT_VERSION: u8 = 1;
pub const INTENT_CHUNKS_IN_FLIGHT: u8 = 1;
pub const INTENT_DELETE_CHUNKS: u8 = 2;
pub const INTENT_DELETE_SEGMENTS: u8 = 3;

const KIND: usize = 0;
const VERSION: usize = 1;
const DB: usize = 4;
const BODY: usize = 8;
const FLIGHT_FIRST: usize = 8;
const FLIGHT_END: usize = 16;
const FLIGHT_LEN: usize = 24;
const LIST_COUNT: usize = 8;
const LIST_IDS: usize = 12;
const _: () = assert!(VERSION == KIND + 1 && DB == VERSION + 3 && BODY == DB + 4);
const _: () = assert!(FLIGHT_FIRST == BODY && FLIGHT_END == FLIGHT_FIRST + 8);
const _: () = assert!(FLIGHT_LEN == FLIGHT_END + 8);
const _: () = assert!(LIST_COUNT == BODY && LIST_IDS == LIST_COUNT + 4);

/// Chunk ids a checkpoint reserves at once (one journal write covers this
/// many chunk files; a larger checkpoint reserves again).
pub const CHUNK_RESERVATION: u64 = 64;

/// Identifies one journal entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JournalId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Chunk files `first..end` of `db` may exist before a publish lists
    /// them.
    ChunksInFlight {
        db: DbId,
        first: ChunkId,
        end: ChunkId,
    },
    /// Chunk files a publish dropped, to unlink.
    DeleteChunks { db: DbId, ids: Vec<ChunkId> },
    /// Log segment files `drop_segments` dropped, to unlink (or keep as
    /// spares: a spare has another name).
    DeleteSegments { ids: Vec<SegmentId> },
}

fn list(kind: u8, db: DbId, ids: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let mut b = vec![0u8; LIST_IDS + 8 * ids.len()];
    b[KIND] = kind;
    b[VERSION] = INTENT_VERSION;
    le::put_u16(&mut b, DB, db.0);
    le::put_u32(&mut b, LIST_COUNT, ids.len() as u32);
    for (i, id) in ids.enumerate() {
        le::put_u64(&mut b, LIST_IDS + 8 * i, id);
    }
    b
}

impl Intent {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Intent::ChunksInFlight { db, first, end } => {
                let mut b = vec![0u8; FLIGHT_LEN];
                b[KIND] = INTENT_CHUNKS_IN_FLIGHT;
                b[VERSION] = INTENT_VERSION;
                le::put_u16(&mut b, DB, db.0);
                le::put_u64(&mut b, FLIGHT_FIRST, first.0);
                le::put_u64(&mut b, FLIGHT_END, end.0);
                b
            }
            Intent::DeleteChunks { db, ids } => {
                list(INTENT_DELETE_CHUNKS, *db, ids.iter().map(|c| c.0))
            }
            Intent::DeleteSegments { ids } => {
                list(INTENT_DELETE_SEGMENTS, DbId::MAIN, ids.iter().map(|s| s.0))
            }
        }
    }

    pub fn decode(v: &[u8], path: &Path) -> Result<Intent> {
        if v.len() < BODY || v[VERSION] != INTENT_VERSION {
            return Err(bad(path, "journal entry"));
        }
        let db = DbId(le::u16_at(v, DB));
        let ids = || -> Result<Vec<u64>> {
            if v.len() < LIST_IDS {
                return Err(bad(path, "journal entry"));
            }
            let n = le::u32_at(v, LIST_COUNT) as usize;
            if v.len() != LIST_IDS + 8 * n {
                return Err(bad(path, "journal entry length"));
            }
            Ok((0..n).map(|i| le::u64_at(v, LIST_IDS + 8 * i)).collect())
        };
        Ok(match v[KIND] {
            INTENT_CHUNKS_IN_FLIGHT => {
                if v.len() != FLIGHT_LEN {
                    return Err(bad(path, "journal entry length"));
                }
                let (first, end) = (le::u64_at(v, FLIGHT_FIRST), le::u64_at(v, FLIGHT_END));
                if end < first || end - first > 1 << 20 {
                    return Err(bad(path, "journal chunk range"));
                }
                Intent::ChunksInFlight {
                    db,
                    first: ChunkId(first),
                    end: ChunkId(end),
                }
            }
            INTENT_DELETE_CHUNKS => Intent::DeleteChunks {
                db,
                ids: ids()?.into_iter().map(ChunkId).collect(),
            },
            INTENT_DELETE_SEGMENTS => Intent::DeleteSegments {
                ids: ids()?.into_iter().map(SegmentId).collect(),
            },
            k => return Err(bad(path, &format!("unknown journal intent kind {k}"))),
        })
    }
}

/// What replaying the journal at open did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Intents found and completed.
    pub intents: u64,
    /// Files they named that still existed and were removed.
    pub files_removed: u64,
}

impl Manifest {
    /// Writes journal intent `intent` in transaction `w`; returns its id.
    pub(super) fn add_intent(&self, w: &mut RwTxn, intent: &Intent) -> Result<JournalId> {
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

    pub(super) fn remove_intents(&self, w: &mut RwTxn, ids: &[JournalId]) -> Result<()> {
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
    /// before the record log and the page stores look at their files):
    /// deletes each file an intent names that the manifest does not list,
    /// syncs the directories, then removes the intents. The caller names
    /// the files (`chunk_path`, `segment_path`): the manifest does not know
    /// how the page stores and the record log name theirs.
    pub fn replay_journal(
        &self,
        io: &dyn IoBackend,
        chunk_path: &dyn Fn(DbId, ChunkId) -> PathBuf,
        segment_path: &dyn Fn(SegmentId) -> PathBuf,
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
                            remove(chunk_path(*db, ChunkId(c)), &mut report)?;
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
                        remove(chunk_path(*db, *c), &mut report)?;
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
                        remove(segment_path(*s), &mut report)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_round_trip_and_damage_is_refused() {
        let p = Path::new("m");
        for i in [
            Intent::ChunksInFlight {
                db: DbId(3),
                first: ChunkId(10),
                end: ChunkId(74),
            },
            Intent::DeleteChunks {
                db: DbId(0),
                ids: vec![ChunkId(1), ChunkId(4)],
            },
            Intent::DeleteSegments {
                ids: vec![SegmentId(2)],
            },
        ] {
            let b = i.encode();
            assert_eq!(Intent::decode(&b, p).unwrap(), i);
            assert!(Intent::decode(&b[..b.len() - 1], p).is_err());
            let mut v = b.clone();
            v[VERSION] = 9;
            assert!(Intent::decode(&v, p).is_err());
        }
        let mut backwards = Intent::ChunksInFlight {
            db: DbId(0),
            first: ChunkId(5),
            end: ChunkId(6),
        }
        .encode();
        le::put_u64(&mut backwards, FLIGHT_END, 1);
        assert!(Intent::decode(&backwards, p).is_err());
    }
}
