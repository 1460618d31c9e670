//! Keys of the manifest: the names in `meta`, the big-endian numeric keys of
//! the other tables, and the checksum that covers `meta`.
//!
//! Keys are big-endian so that LMDB's byte-wise order is numeric order;
//! every value is little-endian.
//!
//! ```text
//! meta     key: ASCII name   value: u32/u64 LE, u8, or a 16-byte digest
//!          per-database keys end in `.<db id>` for databases other than
//!          the main one (`db_pages.3`); `db.<name>` -> db id u32 LE
//!          registers a named database
//! ```

use std::path::Path;

use heed::types::Bytes;
use heed::Database;

use crate::error::{Result, StorageError};
use crate::types::DbId;

pub mod meta_key {
    pub const FORMAT_VERSION: &[u8] = b"format_version";
    pub const PAGE_SIZE: &[u8] = b"page_size";
    pub const DB_PAGES: &[u8] = b"db_pages";
    pub const NEXT_CHUNK_ID: &[u8] = b"next_chunk_id";
    pub const NEXT_SEGMENT_ID: &[u8] = b"next_segment_id";
    pub const CHECKPOINT_LSN: &[u8] = b"checkpoint_lsn";
    pub const EPOCH: &[u8] = b"epoch";
    pub const CLEAN_SHUTDOWN: &[u8] = b"clean_shutdown";
    /// crc32c over every other meta entry (see [`super::meta_crc`]).
    pub const META_CRC: &[u8] = b"meta_crc";
    /// Table digests (see `manifest/digest.rs`).
    pub const DIGEST_SEGMENTS: &[u8] = b"digest_segments";
    pub const DIGEST_CHUNKS: &[u8] = b"digest_chunks";
    pub const DIGEST_PAGES: &[u8] = b"digest_pages";
    /// Next id for a named database.
    pub const NEXT_DB_ID: &[u8] = b"next_db_id";
    /// Prefix of the keys that register named databases (`db.<name>`).
    pub const DB_PREFIX: &[u8] = b"db.";
    /// Format 3: the sequence number the next change gets (u64, from 1).
    pub const NEXT_CHANGE_SEQ: &[u8] = b"next_change_seq";
    /// Format 3: the id the next journal intent gets (u64, from 1).
    pub const NEXT_JOURNAL_ID: &[u8] = b"next_journal_id";
    /// Format 3: digests of the change log, cursor and journal tables.
    pub const DIGEST_CHANGES: &[u8] = b"digest_changes";
    pub const DIGEST_CURSORS: &[u8] = b"digest_cursors";
    pub const DIGEST_JOURNAL: &[u8] = b"digest_journal";
}

/// The name of a per-database meta key or table: `base` for the main
/// database, `base.<id>` for the others.
pub fn per_db(base: &[u8], db: DbId) -> Vec<u8> {
    let mut k = base.to_vec();
    if db != DbId::MAIN {
        k.extend_from_slice(format!(".{}", db.0).as_bytes());
    }
    k
}

pub fn key_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn key_u32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// Decodes a big-endian u64 key.
pub fn decode_key_u64(k: &[u8], path: &Path, what: &str) -> Result<u64> {
    k.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| bad(path, what))
}

pub(crate) fn bad(path: &Path, what: &str) -> StorageError {
    StorageError::corrupt(path, 0, format!("manifest value malformed: {what}"))
}

pub fn decode_u32(v: &[u8], path: &Path) -> Result<u32> {
    v.try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| bad(path, "u32"))
}

pub fn decode_u64(v: &[u8], path: &Path) -> Result<u64> {
    v.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| bad(path, "u64"))
}

/// Checksum of every `meta` entry but `meta_crc` itself, in key order, each
/// as key length u8, key, value length u32 LE, value. LMDB does not checksum
/// its pages, and a flipped checkpoint LSN or page count would otherwise
/// silently change what the store means.
pub fn meta_crc(meta: &Database<Bytes, Bytes>, txn: &heed::RoTxn) -> heed::Result<u32> {
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
pub fn seal_meta(meta: &Database<Bytes, Bytes>, w: &mut heed::RwTxn) -> heed::Result<()> {
    let crc = meta_crc(meta, w)?;
    meta.put(w, meta_key::META_CRC, &crc.to_le_bytes())
}

/// Maps LMDB's errors for the manifest at `path`.
pub fn heed_err(path: &Path) -> impl Fn(heed::Error) -> StorageError + '_ {
    move |source| StorageError::Manifest {
        path: path.to_path_buf(),
        source,
    }
}
