//! A growable byte buffer whose start is aligned to `ALIGN` in memory, so
//! whole aligned ranges of it can be handed to `O_DIRECT` writes as they
//! are. Safe code only: a `Vec<u8>` with an offset to its first aligned
//! byte; growing moves the bytes to a new aligned start.
//!
//! The memory is kept between uses (the record log's buffer fills and
//! drains on every flush): it is given back only when it grew past twice
//! the caller's `keep_bytes`. Bytes past `len` are not kept zero; `padded`
//! zeroes the part past `len` it hands out.

/// Memory and file alignment of the record log's buffered writes (the
/// largest logical block size bop supports for direct I/O).
pub const ALIGN: usize = 4096;

#[derive(Debug, Default)]
pub struct AlignedVec {
    backing: Vec<u8>,
    /// Index in `backing` of the first (aligned) byte.
    off: usize,
    len: usize,
}

impl AlignedVec {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated (for the memory bound's metric).
    pub fn capacity_bytes(&self) -> usize {
        self.backing.len()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.backing[self.off..self.off + self.len]
    }

    /// Makes room for `cap` bytes from the aligned start.
    fn reserve(&mut self, cap: usize) {
        if self.off + cap <= self.backing.len() {
            return;
        }
        let old_cap = self.backing.len().saturating_sub(ALIGN);
        let mut fresh = vec![0u8; cap.max(2 * old_cap).max(ALIGN) + ALIGN];
        let off = fresh.as_ptr().align_offset(ALIGN);
        fresh[off..off + self.len].copy_from_slice(self.as_slice());
        self.backing = fresh;
        self.off = off;
    }

    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.reserve(self.len + data.len());
        let at = self.off + self.len;
        self.backing[at..at + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// Shortens to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Drops the first `n` bytes (a multiple of `ALIGN`, so the start stays
    /// aligned); gives the memory back if it grew past `2 * keep_bytes`.
    pub fn drain_front(&mut self, n: usize, keep_bytes: usize) {
        debug_assert!(n.is_multiple_of(ALIGN) && n <= self.len);
        let (start, end) = (self.off + n, self.off + self.len);
        self.backing.copy_within(start..end, self.off);
        let rest = self.len - n;
        self.len = rest;
        if self.backing.len() > 2 * keep_bytes + ALIGN && rest <= keep_bytes / 2 {
            let mut small = AlignedVec::default();
            small.reserve(keep_bytes.max(ALIGN));
            small.extend_from_slice(self.as_slice());
            *self = small;
        }
    }

    /// The bytes `[from, to)` where `to` may run past the end: the part past
    /// the end reads as zeros. `from` must be a multiple of `ALIGN` for the
    /// slice to start aligned in memory.
    pub fn padded(&mut self, from: usize, to: usize) -> &[u8] {
        self.reserve(to);
        let end = self.off + self.len;
        if self.off + to > end {
            self.backing[end..self.off + to].fill(0);
        }
        &self.backing[self.off + from..self.off + to]
    }
}

/// Rounds down / up to a multiple of `align` (a power of two).
pub fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

pub fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_aligned_and_zero_padded() {
        let mut b = AlignedVec::default();
        for i in 0..10_000u32 {
            b.extend_from_slice(&i.to_le_bytes());
            assert_eq!(b.as_slice().as_ptr().align_offset(ALIGN), 0);
        }
        assert_eq!(b.len(), 40_000);
        assert_eq!(&b.as_slice()[4..8], &1u32.to_le_bytes());
        b.truncate(39_000);
        let p = b.padded(36_864, 40_960);
        assert_eq!(p.as_ptr().align_offset(ALIGN), 0);
        assert!(p[39_000 - 36_864..].iter().all(|&x| x == 0));
        b.drain_front(36_864, 8192);
        assert_eq!(b.len(), 39_000 - 36_864);
        assert_eq!(&b.as_slice()[..4], &(36_864u32 / 4).to_le_bytes());
        assert!(b.capacity_bytes() <= 2 * 8192 + 2 * ALIGN);
        // Stale bytes past the end are never handed out: padding is zero.
        b.extend_from_slice(&[0xff; 5000]);
        b.truncate(10);
        assert!(b.padded(0, 8192)[10..].iter().all(|&x| x == 0));
        assert_eq!(b.as_slice().as_ptr().align_offset(ALIGN), 0);
        assert_eq!(align_down(5000, 4096), 4096);
        assert_eq!(align_up(4097, 4096), 8192);
        assert_eq!(align_up(4096, 4096), 4096);
    }
}
