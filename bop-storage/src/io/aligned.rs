//! Page-aligned buffers for direct I/O, and a bounded pool of them.
//!
//! `O_DIRECT` needs the buffer address, the file offset and the length
//! aligned to the device's block size. [`AlignedBuf`] is a heap buffer whose
//! address and length are multiples of [`ALIGN`]. [`BufPool`] keeps a few
//! of them for reuse, bounded both by count and by bytes; a request beyond
//! the bound gets a temporary buffer (freed on drop, counted in
//! [`crate::io::IoStats::bounce_allocs_over_pool`]) rather than growing the
//! pool.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Alignment of every [`AlignedBuf`]: the largest logical block size of
/// common devices, so it is safe for 512- and 4096-byte sectors alike.
pub const ALIGN: usize = 4096;

/// A zero-initialised heap buffer aligned to [`ALIGN`], of a length that is
/// a non-zero multiple of [`ALIGN`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `AlignedBuf` owns its allocation exclusively (like `Box<[u8]>`);
// nothing else points into it, so moving it to or sharing `&` references
// with another thread is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: see `Send`; `&AlignedBuf` only gives `&[u8]`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of at least `len` bytes (rounded up to [`ALIGN`], and
    /// at least one block).
    pub fn zeroed(len: usize) -> AlignedBuf {
        let len = len.max(1).div_ceil(ALIGN) * ALIGN;
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (len >= ALIGN).
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, ALIGN).expect("aligned buffer layout")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed at allocation)
        // bytes owned by `self`, alive for the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly this
        // layout (same `len`, same alignment) and is freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A bounded pool of equally sized [`AlignedBuf`]s.
///
/// At most `max_count` buffers, and at most `max_bytes` bytes of them, are
/// out of or in the pool at once; [`take`](Self::take) beyond that returns
/// a temporary buffer that is freed, not pooled, when dropped.
#[derive(Debug)]
pub struct BufPool {
    buf_len: usize,
    max_count: usize,
    state: Mutex<PoolState>,
    over_pool: AtomicU64,
}

#[derive(Debug, Default)]
struct PoolState {
    free: Vec<AlignedBuf>,
    /// Pool buffers currently lent out.
    lent: usize,
}

impl BufPool {
    /// A pool of buffers of `buf_len` bytes (rounded up to [`ALIGN`]),
    /// bounded by `max_count` buffers and `max_bytes` bytes (the smaller
    /// bound wins; at least zero buffers).
    pub fn new(buf_len: usize, max_count: usize, max_bytes: usize) -> BufPool {
        let buf_len = buf_len.max(1).div_ceil(ALIGN) * ALIGN;
        BufPool {
            buf_len,
            max_count: max_count.min(max_bytes / buf_len),
            state: Mutex::new(PoolState::default()),
            over_pool: AtomicU64::new(0),
        }
    }

    /// Length of each buffer.
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// Most buffers the pool holds or lends at once.
    pub fn capacity(&self) -> usize {
        self.max_count
    }

    /// Buffers handed out beyond the bound (temporary allocations).
    pub fn over_pool(&self) -> u64 {
        self.over_pool.load(Ordering::Relaxed)
    }

    /// Buffers currently kept for reuse.
    pub fn idle(&self) -> usize {
        self.lock().free.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of [`buf_len`](Self::buf_len) bytes. Its content is
    /// unspecified (whatever its last user left).
    pub fn take(&self) -> PooledBuf<'_> {
        {
            let mut s = self.lock();
            if let Some(buf) = s.free.pop() {
                s.lent += 1;
                return PooledBuf {
                    buf: Some(buf),
                    pool: Some(self),
                };
            }
            if s.lent < self.max_count {
                s.lent += 1;
                drop(s);
                return PooledBuf {
                    buf: Some(AlignedBuf::zeroed(self.buf_len)),
                    pool: Some(self),
                };
            }
        }
        self.over_pool.fetch_add(1, Ordering::Relaxed);
        super::count(&super::STATS.bounce_allocs_over_pool);
        PooledBuf {
            buf: Some(AlignedBuf::zeroed(self.buf_len)),
            pool: None,
        }
    }
}

/// A buffer from a [`BufPool`], returned to it on drop (or freed, if it was
/// a temporary one).
#[derive(Debug)]
pub struct PooledBuf<'a> {
    buf: Option<AlignedBuf>,
    pool: Option<&'a BufPool>,
}

impl PooledBuf<'_> {
    /// Whether this buffer came from the pool (not a temporary one).
    pub fn is_pooled(&self) -> bool {
        self.pool.is_some()
    }
}

impl Deref for PooledBuf<'_> {
    type Target = AlignedBuf;
    fn deref(&self) -> &AlignedBuf {
        self.buf.as_ref().expect("present until drop")
    }
}

impl DerefMut for PooledBuf<'_> {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        self.buf.as_mut().expect("present until drop")
    }
}

impl Drop for PooledBuf<'_> {
    fn drop(&mut self) {
        if let (Some(pool), Some(buf)) = (self.pool, self.buf.take()) {
            let mut s = pool.lock();
            s.lent -= 1;
            s.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_rounded() {
        for len in [1, 100, 4096, 4097, 1 << 20] {
            let b = AlignedBuf::zeroed(len);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.len() % ALIGN, 0);
            assert!(b.len() >= len);
            assert!(b.iter().all(|&x| x == 0));
        }
        let mut b = AlignedBuf::zeroed(0);
        assert_eq!(b.len(), ALIGN);
        b[4095] = 7;
        assert_eq!(b[4095], 7);
    }

    #[test]
    fn pool_is_bounded_and_counts_temporaries() {
        // 3 by count, but only 2 by bytes.
        let pool = BufPool::new(8192, 3, 2 * 8192 + 100);
        assert_eq!(pool.capacity(), 2);
        let before = crate::io::io_stats().bounce_allocs_over_pool;
        {
            let a = pool.take();
            let b = pool.take();
            assert!(a.is_pooled() && b.is_pooled());
            let c = pool.take();
            let d = pool.take();
            assert!(!c.is_pooled() && !d.is_pooled());
            assert_eq!(pool.over_pool(), 2);
            assert_eq!(c.len(), 8192);
        }
        assert_eq!(pool.idle(), 2, "only pooled buffers come back");
        assert!(crate::io::io_stats().bounce_allocs_over_pool >= before + 2);
        // Reused, not reallocated; the bound holds again.
        for _ in 0..10 {
            let a = pool.take();
            let b = pool.take();
            assert!(a.is_pooled() && b.is_pooled());
        }
        assert_eq!(pool.over_pool(), 2);
        assert_eq!(pool.idle(), 2);
    }

    #[test]
    fn a_pool_bounded_to_nothing_only_lends_temporaries() {
        let pool = BufPool::new(4096, 4, 1000);
        assert_eq!(pool.capacity(), 0);
        assert!(!pool.take().is_pooled());
        assert_eq!(pool.idle(), 0);
    }
}
