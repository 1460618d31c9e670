//! Cursors: named consumers of the change log. A consumer registers a
//! cursor, reads the changes after its acknowledged sequence number, and
//! acknowledges what it has processed; the change log is truncated below
//! the slowest cursor ([`trim`], run by every write transaction of the
//! manifest). A cursor that falls more than `change_log_max_entries`
//! behind is marked *lagged*: the entries it needs are gone, and its reads
//! fail with `StorageError::CursorLagged` until the consumer resyncs from
//! a snapshot and registers the cursor again.
//!
//! This module sits above `changelog.rs` (the entries and their encoding)
//! and imports it; `changelog.rs` knows nothing of cursors.
//!
//! Table `cursors`: key = cursor name (1 to 64 bytes of `[A-Za-z0-9_.-]`);
//! value, little-endian:
//!
//! ```text
//! offset size field
//! 0      8    acknowledged sequence number (every change at or below it is processed)
//! 8      8    sequence number at registration
//! 16     1    lagged (1) or not (0)
//! 17     7    reserved, zero
//! ```

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::keys::{bad, decode_key_u64, heed_err, key_u64};
use crate::error::{Result, StorageError};
use crate::types::le;

use super::changelog::Change;
use super::digest::Tracked;
use super::keys::meta_key;
use super::Manifest;

const ACKED: usize = 0;
const REGISTERED: usize = 8;
const LAGGED: usize = 16;
const VALUE_LEN: usize = 24;
const _: () = assert!(REGISTERED == ACKED + 8 && LAGGED == REGISTERED + 8);
const _: () = assert!(VALUE_LEN == LAGGED + 1 + 7);

/// Longest cursor name.
pub const CURSOR_NAME_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CursorState {
    pub acked: u64,
    pub registered_at: u64,
    pub lagged: bool,
}

impl CursorState {
    pub fn encode(&self) -> [u8; VALUE_LEN] {
        let mut b = [0u8; VALUE_LEN];
        le::put_u64(&mut b, ACKED, self.acked);
        le::put_u64(&mut b, REGISTERED, self.registered_at);
        b[LAGGED] = u8::from(self.lagged);
        b
    }

    pub fn decode(v: &[u8], path: &Path) -> Result<CursorState> {
        if v.len() != VALUE_LEN || v[LAGGED] > 1 {
            return Err(bad(path, "cursor value"));
        }
        Ok(CursorState {
            acked: le::u64_at(v, ACKED),
            registered_at: le::u64_at(v, REGISTERED),
            lagged: v[LAGGED] == 1,
        })
    }
}

/// A cursor as the stats and the API report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorInfo {
    pub name: String,
    pub acked: u64,
    pub registered_at: u64,
    /// Changes logged after the acknowledged one.
    pub lag: u64,
    pub lagged: bool,
}

/// Checks a cursor name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= CURSOR_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StorageError::Config(format!(
            "cursor name {name:?}: use 1 to {CURSOR_NAME_MAX} letters, digits, '_', '-' or '.'"
        )))
    }
}

/// Every cursor, in name order.
pub fn all(
    db: Database<Bytes, Bytes>,
    txn: &RoTxn,
    path: &Path,
) -> Result<Vec<(String, CursorState)>> {
    let me = heed_err(path);
    let mut out = Vec::new();
    for item in db.iter(txn).map_err(&me)? {
        let (k, v) = item.map_err(&me)?;
        let name = String::from_utf8(k.to_vec()).map_err(|_| bad(path, "cursor name"))?;
        out.push((name, CursorState::decode(v, path)?));
    }
    Ok(out)
}

/// One cursor, or a clear error when it is not registered.
pub fn get(
    db: Database<Bytes, Bytes>,
    txn: &RoTxn,
    path: &Path,
    name: &str,
) -> Result<CursorState> {
    match db.get(txn, name.as_bytes()).map_err(heed_err(path))? {
        Some(v) => CursorState::decode(v, path),
        None => Err(StorageError::Config(format!(
            "no change-log cursor named {name:?} (register it first)"
        ))),
    }
}

/// Bounds of the change log (`ManifestConfig::change_log_max_entries`
/// and `change_log_tail_entries`).
#[derive(Clone, Copy, Debug)]
pub struct ChangeLogBounds {
    pub max_entries: u64,
    pub tail_entries: u64,
}

/// What one [`trim`] did.
#[derive(Debug, Default)]
pub struct Trimmed {
    pub entries: u64,
    /// Cursors newly marked lagged: (name, acked seq, oldest seq kept).
    pub lagged: Vec<(String, u64, u64)>,
}

/// Deletes the change-log entries no cursor needs and keeps the change log
/// within its bound, marking the cursors that fall behind it as lagged.
/// `last` is the highest sequence number assigned so far. Runs in every
/// write transaction of the manifest (`Manifest::write`).
#[allow(clippy::too_many_arguments)]
pub fn trim(
    change_table: &mut Tracked,
    cursor_table: &mut Tracked,
    w: &mut RwTxn,
    changes: Database<Bytes, Bytes>,
    cursor_db: Database<Bytes, Bytes>,
    last: u64,
    bounds: ChangeLogBounds,
    path: &Path,
) -> Result<Trimmed> {
    let me = heed_err(path);
    let mut out = Trimmed::default();
    let all = all(cursor_db, w, path)?;
    let active: Vec<&(String, CursorState)> = all.iter().filter(|(_, c)| !c.lagged).collect();
    // Everything at or below `floor` goes.
    let mut floor = match active.iter().map(|(_, c)| c.acked).min() {
        Some(min_acked) => min_acked,
        None => last.saturating_sub(bounds.tail_entries),
    };
    let bound_floor = last.saturating_sub(bounds.max_entries);
    if bound_floor > floor {
        floor = bound_floor;
        let oldest_kept = bound_floor + 1;
        for (name, c) in active {
            if c.acked < bound_floor {
                let lagged = CursorState { lagged: true, ..*c };
                cursor_table
                    .put(w, name.as_bytes(), &lagged.encode())
                    .map_err(&me)?;
                out.lagged.push((name.clone(), c.acked, oldest_kept));
            }
        }
    }
    loop {
        let first = match changes.first(w).map_err(&me)? {
            Some((k, _)) => decode_key_u64(k, path, "change key")?,
            None => break,
        };
        if first > floor {
            break;
        }
        change_table.delete(w, &key_u64(first)).map_err(&me)?;
        out.entries += 1;
    }
    Ok(out)
}

impl Manifest {
    /// Registers cursor `name` at the end of the change log (it reads changes
    /// made after now); an existing cursor is returned as it is. To resync a
    /// lagged cursor, drop it and register it again.
    pub fn register_cursor(&self, name: &str) -> Result<CursorInfo> {
        validate_name(name)?;
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
            let state = get(self.cursors, rtxn, &self.path, name)?;
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
            let state = get(self.cursors, w, &self.path, name)?;
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
            Ok(all(self.cursors, rtxn, &self.path)?
                .iter()
                .map(|(n, s)| info(n, s, last))
                .collect())
        })
    }
}

pub(super) fn info(name: &str, s: &CursorState, last: u64) -> CursorInfo {
    CursorInfo {
        name: name.to_owned(),
        acked: s.acked,
        registered_at: s.registered_at,
        lag: last.saturating_sub(s.acked),
        lagged: s.lagged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_names_are_checked() {
        let s = CursorState {
            acked: 41,
            registered_at: 7,
            lagged: true,
        };
        assert_eq!(CursorState::decode(&s.encode(), Path::new("m")).unwrap(), s);
        assert!(CursorState::decode(&s.encode()[..23], Path::new("m")).is_err());
        let mut bad_flag = s.encode();
        bad_flag[LAGGED] = 2;
        assert!(CursorState::decode(&bad_flag, Path::new("m")).is_err());
        validate_name("replica-1.eu_west").unwrap();
        for n in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(validate_name(n).is_err(), "{n:?}");
        }
    }
}
