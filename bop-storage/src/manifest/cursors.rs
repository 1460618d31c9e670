//! Cursors: named consumers of the change log. A consumer registers a
//! cursor, reads the changes after its acknowledged sequence number, and
//! acknowledges what it has processed; the log is truncated below the
//! slowest cursor (`changelog::trim`). A cursor that falls more than
//! `change_log_max_entries` behind is marked *lagged*: the entries it needs
//! are gone, and its reads fail with `StorageError::CursorLagged` until the
//! consumer resyncs from a snapshot and registers the cursor again.
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
use heed::{Database, RoTxn};

use super::keys::{bad, heed_err};
use crate::error::{Result, StorageError};
use crate::types::le;

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
