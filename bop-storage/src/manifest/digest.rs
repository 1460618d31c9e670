//! Table digests: LMDB does not checksum its pages, so the manifest keeps,
//! for each of its tables, the number of entries and a sum of per-entry
//! hashes in `meta` (which `meta_crc` covers). Every write keeps them up to
//! date; every open recomputes them from the entries it loads. A flipped key
//! or value, or an entry lost or gained through damage to LMDB's own
//! structures, then fails the open instead of silently changing the store.
//!
//! Digest value layout (16 bytes, little-endian): `count u64 | sum u64`,
//! where `sum` is the wrapping sum of [`entry_hash`] over the entries.

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use crate::types::le;

/// A 64-bit hash of one entry, from two CRC-32Cs in opposite orders.
pub fn entry_hash(k: &[u8], v: &[u8]) -> u64 {
    let lo = crc32c::crc32c_append(crc32c::crc32c(k), v);
    let hi = crc32c::crc32c_append(crc32c::crc32c(v), k);
    (u64::from(hi) << 32) | u64::from(lo)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub count: u64,
    pub sum: u64,
}

impl Digest {
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        le::put_u64(&mut b, 0, self.count);
        le::put_u64(&mut b, 8, self.sum);
        b
    }

    pub fn decode(v: &[u8]) -> Option<Digest> {
        (v.len() == 16).then(|| Digest {
            count: le::u64_at(v, 0),
            sum: le::u64_at(v, 8),
        })
    }

    pub fn add(&mut self, k: &[u8], v: &[u8]) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(entry_hash(k, v));
    }

    fn remove(&mut self, k: &[u8], v: &[u8]) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(entry_hash(k, v));
    }
}

/// A table written in one transaction, its digest kept in step.
pub struct Tracked {
    db: Database<Bytes, Bytes>,
    digest: Digest,
    meta_key: Vec<u8>,
}

impl Tracked {
    /// Starts tracking `db`, whose digest is stored under `meta_key`.
    pub fn begin(
        meta: &Database<Bytes, Bytes>,
        w: &RoTxn,
        db: Database<Bytes, Bytes>,
        meta_key: &[u8],
    ) -> heed::Result<Tracked> {
        let digest = meta
            .get(w, meta_key)?
            .and_then(Digest::decode)
            .unwrap_or_default();
        Ok(Tracked {
            db,
            digest,
            meta_key: meta_key.to_vec(),
        })
    }

    pub fn put(&mut self, w: &mut RwTxn, k: &[u8], v: &[u8]) -> heed::Result<()> {
        if let Some(old) = self.db.get(w, k)? {
            let old = old.to_vec();
            self.digest.remove(k, &old);
        }
        self.db.put(w, k, v)?;
        self.digest.add(k, v);
        Ok(())
    }

    pub fn delete(&mut self, w: &mut RwTxn, k: &[u8]) -> heed::Result<()> {
        if let Some(old) = self.db.get(w, k)? {
            let old = old.to_vec();
            self.digest.remove(k, &old);
            self.db.delete(w, k)?;
        }
        Ok(())
    }

    /// Stores the digest back into `meta` (before `seal_meta`).
    pub fn finish(self, meta: &Database<Bytes, Bytes>, w: &mut RwTxn) -> heed::Result<()> {
        meta.put(w, &self.meta_key, &self.digest.encode())
    }
}
