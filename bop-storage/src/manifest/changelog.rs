//! The change log: every manifest change, in order, under a sequence number
//! that only grows (across reopen too: the counter `next_change_seq` lives
//! in `meta`). Each write transaction of the manifest appends its changes in
//! the same transaction, so the change log and the state never disagree.
//! (The change log is the manifest's own; it has nothing to do with the
//! record log, `log/`.)
//!
//! Table `changes`: key = sequence number u64 BE; value = one encoded
//! [`Change`], little-endian:
//!
//! ```text
//! offset size field
//! 0      1    kind (CHANGE_* below)
//! 1      1    version of the encoding = 1
//! 2      2    reserved, zero
//! 4      ..   payload of the kind
//!
//! 1 segment added     4 id u64 | 12 first_lsn u64 | 20 capacity u64            (28 bytes)
//! 2 segments dropped  4 has_base u8 | 5 zero u8 | 6 base db u16 | 8 base lsn u64
//!                     | 16 count u32 | 20 segment ids u64 × count
//! 3 published         4 db u16 | 6 zero u16 | 8 db_pages u32 | 12 pages changed u32
//!                     | 16 pages removed u32 | 20 chunks with a new live count u32
//!                     | 24 next_chunk_id u64 | 32 chunks added u32 | 36 chunks removed u32
//!                     | 40 added: (id u64, page_count u32, live u32) × added
//!                     | then removed chunk ids u64 × removed
//! 4 database registered 4 db u16 | 6 zero u16 | 8 page_size u32 | 12 base lsn u64
//!                     | 20 name length u16 | 22 name (ASCII)
//! 5 epoch begun       4 epoch u32 | 8 previous open ended cleanly u8            (9 bytes)
//! 6 clean shutdown    4 epoch u32                                              (8 bytes)
//! ```
//!
//! A `published` change names the chunks added, not every page: each chunk's
//! slot table (docs/FORMAT.md) lists its pages, so a consumer that wants
//! the changed pages reads the new chunks. Cursor and journal bookkeeping
//! is not logged (logging an acknowledgement would itself need one).
//!
//! Truncation (`cursors::trim`, in every write transaction): entries at or
//! below the slowest cursor's acknowledged sequence number are deleted;
//! with no cursor keeping it, only a tail of `change_log_tail_entries` is
//! kept; and the change log never holds more than `change_log_max_entries`:
//! a cursor that would need more is marked lagged and its next read fails
//! with `StorageError::CursorLagged`.

use std::path::Path;

use heed::RwTxn;

use super::digest::Tracked;
use super::keys::{self, meta_key};
use super::keys::{bad, key_u64};
use super::tables::ChunkMeta;
use super::Manifest;
use crate::error::Result;
use crate::types::{le, ChunkId, DbId, Epoch, Lsn, SegmentId};

pub const CHANGE_VERSION: u8 = 1;
const HEADER_LEN: usize = 4;

pub const CHANGE_SEGMENT_ADDED: u8 = 1;
pub const CHANGE_SEGMENTS_DROPPED: u8 = 2;
pub const CHANGE_PUBLISHED: u8 = 3;
pub const CHANGE_DATABASE_REGISTERED: u8 = 4;
pub const CHANGE_EPOCH_BEGUN: u8 = 5;
pub const CHANGE_CLEAN_SHUTDOWN: u8 = 6;

// Segment added.
const SA_ID: usize = 4;
const SA_FIRST_LSN: usize = 12;
const SA_CAPACITY: usize = 20;
const SA_LEN: usize = 28;
const _: () = assert!(SA_ID == HEADER_LEN && SA_FIRST_LSN == SA_ID + 8);
const _: () = assert!(SA_CAPACITY == SA_FIRST_LSN + 8 && SA_LEN == SA_CAPACITY + 8);
// Segments dropped.
const SD_HAS_BASE: usize = 4;
const SD_BASE_DB: usize = 6;
const SD_BASE_LSN: usize = 8;
const SD_COUNT: usize = 16;
const SD_IDS: usize = 20;
const _: () = assert!(SD_HAS_BASE == HEADER_LEN && SD_BASE_DB == SD_HAS_BASE + 2);
const _: () = assert!(SD_BASE_LSN == SD_BASE_DB + 2 && SD_COUNT == SD_BASE_LSN + 8);
const _: () = assert!(SD_IDS == SD_COUNT + 4);
// Published.
const PB_DB: usize = 4;
const PB_DB_PAGES: usize = 8;
const PB_PAGES_CHANGED: usize = 12;
const PB_PAGES_REMOVED: usize = 16;
const PB_CHUNKS_UPDATED: usize = 20;
const PB_NEXT_CHUNK: usize = 24;
const PB_ADDED: usize = 32;
const PB_REMOVED: usize = 36;
const PB_LISTS: usize = 40;
const PB_ADDED_ENTRY: usize = 16;
const _: () = assert!(PB_DB == HEADER_LEN && PB_DB_PAGES == PB_DB + 4);
const _: () =
    assert!(PB_PAGES_CHANGED == PB_DB_PAGES + 4 && PB_PAGES_REMOVED == PB_PAGES_CHANGED + 4);
const _: () =
    assert!(PB_CHUNKS_UPDATED == PB_PAGES_REMOVED + 4 && PB_NEXT_CHUNK == PB_CHUNKS_UPDATED + 4);
const _: () = assert!(PB_ADDED == PB_NEXT_CHUNK + 8 && PB_REMOVED == PB_ADDED + 4);
const _: () = assert!(PB_LISTS == PB_REMOVED + 4 && PB_ADDED_ENTRY == 8 + 4 + 4);
// Database registered.
const DR_DB: usize = 4;
const DR_PAGE_SIZE: usize = 8;
const DR_BASE: usize = 12;
const DR_NAME_LEN: usize = 20;
const DR_NAME: usize = 22;
const _: () = assert!(DR_DB == HEADER_LEN && DR_PAGE_SIZE == DR_DB + 4);
const _: () = assert!(DR_BASE == DR_PAGE_SIZE + 4 && DR_NAME_LEN == DR_BASE + 8);
const _: () = assert!(DR_NAME == DR_NAME_LEN + 2);
// Epoch begun, clean shutdown.
const EB_EPOCH: usize = 4;
const EB_CLEAN: usize = 8;
const EB_LEN: usize = 9;
const CS_EPOCH: usize = 4;
const CS_LEN: usize = 8;
const _: () = assert!(EB_EPOCH == HEADER_LEN && EB_CLEAN == EB_EPOCH + 4 && EB_LEN == EB_CLEAN + 1);
const _: () = assert!(CS_EPOCH == HEADER_LEN && CS_LEN == CS_EPOCH + 4);

/// One manifest change, as consumers read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A segment of the record log was registered (its file is durable).
    SegmentAdded {
        id: SegmentId,
        first_lsn: Lsn,
        capacity_bytes: u64,
    },
    /// Segments of the record log were dropped; with `base`, a database's
    /// base moved (its log records below the base are in its page store).
    SegmentsDropped {
        ids: Vec<SegmentId>,
        base: Option<(DbId, Lsn)>,
    },
    /// Checkpointed pages of database `db` were published.
    Published {
        db: DbId,
        db_pages: u32,
        /// Pages that moved to a new location.
        pages_changed: u32,
        /// Pages removed (truncated away).
        pages_removed: u32,
        /// Existing chunks whose live page count changed.
        chunks_updated: u32,
        next_chunk_id: ChunkId,
        chunks_added: Vec<ChunkMeta>,
        chunks_removed: Vec<ChunkId>,
    },
    DatabaseRegistered {
        db: DbId,
        name: String,
        page_size: u32,
        base: Lsn,
    },
    /// The store was opened (epoch `epoch`); whether the previous open had
    /// ended with a clean shutdown.
    EpochBegun {
        epoch: Epoch,
        previous_clean: bool,
    },
    CleanShutdown {
        epoch: Epoch,
    },
}

fn header(kind: u8, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0] = kind;
    b[1] = CHANGE_VERSION;
    b
}

impl Change {
    pub fn kind(&self) -> u8 {
        match self {
            Change::SegmentAdded { .. } => CHANGE_SEGMENT_ADDED,
            Change::SegmentsDropped { .. } => CHANGE_SEGMENTS_DROPPED,
            Change::Published { .. } => CHANGE_PUBLISHED,
            Change::DatabaseRegistered { .. } => CHANGE_DATABASE_REGISTERED,
            Change::EpochBegun { .. } => CHANGE_EPOCH_BEGUN,
            Change::CleanShutdown { .. } => CHANGE_CLEAN_SHUTDOWN,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Change::SegmentAdded {
                id,
                first_lsn,
                capacity_bytes,
            } => {
                let mut b = header(self.kind(), SA_LEN);
                le::put_u64(&mut b, SA_ID, id.0);
                le::put_u64(&mut b, SA_FIRST_LSN, first_lsn.0);
                le::put_u64(&mut b, SA_CAPACITY, *capacity_bytes);
                b
            }
            Change::SegmentsDropped { ids, base } => {
                let mut b = header(self.kind(), SD_IDS + 8 * ids.len());
                if let Some((db, lsn)) = base {
                    b[SD_HAS_BASE] = 1;
                    le::put_u16(&mut b, SD_BASE_DB, db.0);
                    le::put_u64(&mut b, SD_BASE_LSN, lsn.0);
                }
                le::put_u32(&mut b, SD_COUNT, ids.len() as u32);
                for (i, id) in ids.iter().enumerate() {
                    le::put_u64(&mut b, SD_IDS + 8 * i, id.0);
                }
                b
            }
            Change::Published {
                db,
                db_pages,
                pages_changed,
                pages_removed,
                chunks_updated,
                next_chunk_id,
                chunks_added,
                chunks_removed,
            } => {
                let len = PB_LISTS + PB_ADDED_ENTRY * chunks_added.len() + 8 * chunks_removed.len();
                let mut b = header(self.kind(), len);
                le::put_u16(&mut b, PB_DB, db.0);
                le::put_u32(&mut b, PB_DB_PAGES, *db_pages);
                le::put_u32(&mut b, PB_PAGES_CHANGED, *pages_changed);
                le::put_u32(&mut b, PB_PAGES_REMOVED, *pages_removed);
                le::put_u32(&mut b, PB_CHUNKS_UPDATED, *chunks_updated);
                le::put_u64(&mut b, PB_NEXT_CHUNK, next_chunk_id.0);
                le::put_u32(&mut b, PB_ADDED, chunks_added.len() as u32);
                le::put_u32(&mut b, PB_REMOVED, chunks_removed.len() as u32);
                let mut at = PB_LISTS;
                for c in chunks_added {
                    le::put_u64(&mut b, at, c.id.0);
                    le::put_u32(&mut b, at + 8, c.page_count);
                    le::put_u32(&mut b, at + 12, c.live_pages);
                    at += PB_ADDED_ENTRY;
                }
                for id in chunks_removed {
                    le::put_u64(&mut b, at, id.0);
                    at += 8;
                }
                b
            }
            Change::DatabaseRegistered {
                db,
                name,
                page_size,
                base,
            } => {
                let mut b = header(self.kind(), DR_NAME + name.len());
                le::put_u16(&mut b, DR_DB, db.0);
                le::put_u32(&mut b, DR_PAGE_SIZE, *page_size);
                le::put_u64(&mut b, DR_BASE, base.0);
                le::put_u16(&mut b, DR_NAME_LEN, name.len() as u16);
                b[DR_NAME..].copy_from_slice(name.as_bytes());
                b
            }
            Change::EpochBegun {
                epoch,
                previous_clean,
            } => {
                let mut b = header(self.kind(), EB_LEN);
                le::put_u32(&mut b, EB_EPOCH, epoch.0);
                b[EB_CLEAN] = u8::from(*previous_clean);
                b
            }
            Change::CleanShutdown { epoch } => {
                let mut b = header(self.kind(), CS_LEN);
                le::put_u32(&mut b, CS_EPOCH, epoch.0);
                b
            }
        }
    }

    /// Decodes one change (`path` names the manifest in errors).
    pub fn decode(v: &[u8], path: &Path) -> Result<Change> {
        let short = || bad(path, "change entry too short");
        if v.len() < HEADER_LEN {
            return Err(short());
        }
        if v[1] != CHANGE_VERSION {
            return Err(bad(path, &format!("change encoding version {}", v[1])));
        }
        let need = |n: usize| if v.len() < n { Err(short()) } else { Ok(()) };
        let exact = |n: usize| {
            if v.len() != n {
                Err(bad(path, "change entry length"))
            } else {
                Ok(())
            }
        };
        Ok(match v[0] {
            CHANGE_SEGMENT_ADDED => {
                exact(SA_LEN)?;
                Change::SegmentAdded {
                    id: SegmentId(le::u64_at(v, SA_ID)),
                    first_lsn: Lsn(le::u64_at(v, SA_FIRST_LSN)),
                    capacity_bytes: le::u64_at(v, SA_CAPACITY),
                }
            }
            CHANGE_SEGMENTS_DROPPED => {
                need(SD_IDS)?;
                let n = le::u32_at(v, SD_COUNT) as usize;
                exact(SD_IDS + 8 * n)?;
                Change::SegmentsDropped {
                    ids: (0..n)
                        .map(|i| SegmentId(le::u64_at(v, SD_IDS + 8 * i)))
                        .collect(),
                    base: (v[SD_HAS_BASE] == 1).then(|| {
                        (
                            DbId(le::u16_at(v, SD_BASE_DB)),
                            Lsn(le::u64_at(v, SD_BASE_LSN)),
                        )
                    }),
                }
            }
            CHANGE_PUBLISHED => {
                need(PB_LISTS)?;
                let added = le::u32_at(v, PB_ADDED) as usize;
                let removed = le::u32_at(v, PB_REMOVED) as usize;
                exact(PB_LISTS + PB_ADDED_ENTRY * added + 8 * removed)?;
                let mut at = PB_LISTS;
                let mut chunks_added = Vec::with_capacity(added);
                for _ in 0..added {
                    chunks_added.push(ChunkMeta {
                        id: ChunkId(le::u64_at(v, at)),
                        page_count: le::u32_at(v, at + 8),
                        live_pages: le::u32_at(v, at + 12),
                    });
                    at += PB_ADDED_ENTRY;
                }
                let chunks_removed = (0..removed)
                    .map(|i| ChunkId(le::u64_at(v, at + 8 * i)))
                    .collect();
                Change::Published {
                    db: DbId(le::u16_at(v, PB_DB)),
                    db_pages: le::u32_at(v, PB_DB_PAGES),
                    pages_changed: le::u32_at(v, PB_PAGES_CHANGED),
                    pages_removed: le::u32_at(v, PB_PAGES_REMOVED),
                    chunks_updated: le::u32_at(v, PB_CHUNKS_UPDATED),
                    next_chunk_id: ChunkId(le::u64_at(v, PB_NEXT_CHUNK)),
                    chunks_added,
                    chunks_removed,
                }
            }
            CHANGE_DATABASE_REGISTERED => {
                need(DR_NAME)?;
                let n = le::u16_at(v, DR_NAME_LEN) as usize;
                exact(DR_NAME + n)?;
                Change::DatabaseRegistered {
                    db: DbId(le::u16_at(v, DR_DB)),
                    name: String::from_utf8(v[DR_NAME..].to_vec())
                        .map_err(|_| bad(path, "database name"))?,
                    page_size: le::u32_at(v, DR_PAGE_SIZE),
                    base: Lsn(le::u64_at(v, DR_BASE)),
                }
            }
            CHANGE_EPOCH_BEGUN => {
                exact(EB_LEN)?;
                Change::EpochBegun {
                    epoch: Epoch(le::u32_at(v, EB_EPOCH)),
                    previous_clean: v[EB_CLEAN] == 1,
                }
            }
            CHANGE_CLEAN_SHUTDOWN => {
                exact(CS_LEN)?;
                Change::CleanShutdown {
                    epoch: Epoch(le::u32_at(v, CS_EPOCH)),
                }
            }
            k => return Err(bad(path, &format!("unknown change kind {k}"))),
        })
    }
}

/// Appends `changes` to the change log from sequence number `next_seq` on;
/// returns the next sequence number.
pub fn append(
    change_table: &mut Tracked,
    w: &mut RwTxn,
    mut next_seq: u64,
    changes: &[Change],
) -> heed::Result<u64> {
    for c in changes {
        change_table.put(w, &key_u64(next_seq), &c.encode())?;
        next_seq += 1;
    }
    Ok(next_seq)
}

impl Manifest {
    /// The first and last sequence numbers in the change log and its
    /// length (`(0, last, 0)` when empty; `last` is the last ever assigned).
    pub fn change_log_bounds(&self) -> Result<(u64, u64, u64)> {
        self.read(|rtxn| self.bounds_in(rtxn))
    }

    pub(super) fn bounds_in(&self, rtxn: &heed::RoTxn) -> Result<(u64, u64, u64)> {
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

    pub(super) fn changes_after_in(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_damage_is_refused() {
        let p = Path::new("m");
        let all = [
            Change::SegmentAdded {
                id: SegmentId(7),
                first_lsn: Lsn(99),
                capacity_bytes: 8 << 20,
            },
            Change::SegmentsDropped {
                ids: vec![SegmentId(1), SegmentId(2)],
                base: Some((DbId(3), Lsn(55))),
            },
            Change::SegmentsDropped {
                ids: vec![],
                base: None,
            },
            Change::Published {
                db: DbId(2),
                db_pages: 10,
                pages_changed: 4,
                pages_removed: 1,
                chunks_updated: 2,
                next_chunk_id: ChunkId(9),
                chunks_added: vec![ChunkMeta {
                    id: ChunkId(8),
                    page_count: 4,
                    live_pages: 3,
                }],
                chunks_removed: vec![ChunkId(1), ChunkId(5)],
            },
            Change::DatabaseRegistered {
                db: DbId(4),
                name: "orders".into(),
                page_size: 4096,
                base: Lsn(12),
            },
            Change::EpochBegun {
                epoch: Epoch(3),
                previous_clean: false,
            },
            Change::CleanShutdown { epoch: Epoch(3) },
        ];
        for c in &all {
            let b = c.encode();
            assert_eq!(&Change::decode(&b, p).unwrap(), c);
            assert!(Change::decode(&b[..b.len() - 1], p).is_err(), "{c:?}");
            let mut longer = b.clone();
            longer.push(0);
            assert!(Change::decode(&longer, p).is_err(), "{c:?}");
            let mut newer = b.clone();
            newer[1] = 2;
            assert!(Change::decode(&newer, p).is_err());
        }
        assert!(Change::decode(&[99, 1, 0, 0], p).is_err());
    }
}
