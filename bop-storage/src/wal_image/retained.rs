//! Retained generations: earlier generations of a database's WAL image
//! whose pages SQLite checkpointed into the page store, kept in the record
//! log instead of being published at the WAL's restart.
//!
//! SQLite restarts its WAL (or truncates or deletes it) only once every
//! frame of it is checkpointed, so the generation that ends then holds the
//! pages the checkpoints wrote, in order. While those pages are few (the
//! page store's `publish_defer_bytes_max`) and the generations' records
//! small (`publish_defer_log_bytes_max`), the restart publishes nothing:
//! the records stay in the log (the database's base does not move past
//! them) and the pages stay pending in the page store. A later publish
//! carries all of them and moves the base past every retained generation
//! in the same manifest transaction ([`super::WalImage::publish_all`]).
//! After a crash, recovery applies the retained generations' frames to the
//! page store before it builds the WAL image from the newest generation
//! (`apply_generation`), so what SQLite sees is what it checkpointed.
//!
//! This turns a WAL restart under frequent checkpoints (libSQL's or
//! SQLite's `wal_autocheckpoint` at a few pages) from a chunk file, a sync
//! of its directory and a manifest commit into nothing beyond the new
//! generation's record.
//!
//! Invariants (with the image's, `mod.rs`):
//! 6. Every record of the database from `first_lsn` up to the current
//!    generation's first record belongs to a retained generation; the
//!    database's base in the manifest is at most `first_lsn`.
//! 7. Every page pending in the page store while generations are retained
//!    is a copy of a frame of a retained generation or of the current one
//!    (the last copy SQLite checkpointed); pages written otherwise (rollback
//!    mode, the WAL image empty) are published with the base moved past the
//!    retained generations first.

use std::collections::HashSet;

use crate::error::{Result, StorageError};
use crate::log::RecoveredRecord;
use crate::page_store::PageStore;
use crate::types::{Lsn, PageNo};
use crate::wal_format::{SQLITE_FRAME_HEADER_LEN, SQLITE_WAL_HEADER_LEN};

/// What the image knows of its retained generations (invariant 6).
#[derive(Debug, Default)]
pub(crate) struct Retained {
    /// LSN of the oldest retained record; `None`: nothing retained.
    pub first_lsn: Option<Lsn>,
    /// Payload bytes of the retained records.
    pub bytes: u64,
    /// Pages the retained records hold frames for.
    pub pgnos: HashSet<u32>,
}

impl Retained {
    pub fn is_empty(&self) -> bool {
        self.first_lsn.is_none()
    }

    pub fn clear(&mut self) {
        *self = Retained::default();
    }
}

/// Applies one retained generation's records (oldest first) to the page
/// store as SQLite's checkpoint did: every frame's page in order, then the
/// database's size from the last commit frame. Reads every record (each is
/// verified first). Returns the number of frames applied.
pub(crate) fn apply_generation(
    records: &[RecoveredRecord],
    page_size: u32,
    pages: &PageStore,
) -> Result<u64> {
    let frame_len = SQLITE_FRAME_HEADER_LEN + u64::from(page_size);
    let mut buf = vec![0u8; frame_len as usize];
    let mut db_pages = None;
    let mut applied = 0;
    for r in records {
        let skip = if r.wal_offset == 0 {
            SQLITE_WAL_HEADER_LEN
        } else {
            0
        };
        let len = u64::from(r.loc.payload_len);
        if (len - skip.min(len)) % frame_len != 0 {
            return Err(StorageError::corrupt(
                &r.loc.segment.path,
                r.loc.payload_offset,
                format!(
                    "log record {} of a retained WAL generation is not whole frames",
                    r.loc.lsn
                ),
            ));
        }
        let mut at = skip;
        while at < len {
            r.loc.read(&mut buf, at)?;
            let pgno = u32::from_be_bytes(buf[0..4].try_into().expect("4 bytes"));
            let commit = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes"));
            if pgno == 0 {
                return Err(StorageError::corrupt(
                    &r.loc.segment.path,
                    r.loc.payload_offset + at,
                    format!("log record {} holds a frame of page 0", r.loc.lsn),
                ));
            }
            pages.write_page(PageNo(pgno), &buf[SQLITE_FRAME_HEADER_LEN as usize..])?;
            if commit != 0 {
                db_pages = Some(commit);
            }
            applied += 1;
            at += frame_len;
        }
    }
    if let Some(n) = db_pages {
        pages.truncate(n)?;
    }
    Ok(applied)
}
