//! io_uring backend: [`UringBackend`].
//!
//! File data I/O (reads, writes, fdatasync) goes through io_uring; directory
//! operations, `fallocate`, `ftruncate` and `fstat` stay plain system calls
//! (they are rare and not latency critical). Files are ordinary buffered
//! descriptors (combining io_uring with `O_DIRECT` for log segments is not
//! done yet; see [`super::DirectBackend`] for direct I/O).
//!
//! **Rings.** One process-wide pool of [`RINGS`] rings of [`RING_ENTRIES`]
//! entries, each behind a mutex; a thread prefers its own ring (assigned
//! round robin) and takes any free one before waiting. A call holds its
//! ring from submission until it has reaped every completion it caused, so
//! rings never grow and never mix completions of two calls.
//!
//! **Durable writes.** [`IoFile::write_durable_at`] is one submission: a
//! write linked (`IOSQE_IO_LINK`) to an fdatasync, which the kernel starts
//! as soon as the write has completed, without the caller coming back to
//! submit it. The record log's sync leader writes and syncs with it
//! ([`IoFile::fuses_durable_writes`]). Measured against a write and then
//! an fdatasync (BENCHMARKS.md): with many committers sharing one store's
//! syncs, more commits per second; with one committer, no difference.
//!
//! **Lifetimes.** Every buffer a submitted entry points at belongs to the
//! caller and must outlive the kernel's use of it: [`RingPool::submit`]
//! returns only once every entry it pushed has completed, errors included.
//! If `io_uring_enter` itself fails in a way retrying cannot cure, the ring
//! is poisoned (never entered again, so entries still queued are never
//! consumed) and the call waits, polling the completion queue, until the
//! entries the kernel did take have completed.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};

use super::std_backend::{self, open_file};
use super::{count, IoBackend, IoFile, OpenMode, STATS};
use crate::error::{Result, StorageError};

/// Rings in the process-wide pool.
pub const RINGS: usize = 4;
/// Submission-queue entries per ring (a call submits at most 2).
pub const RING_ENTRIES: u32 = 8;
/// Largest single read or write submitted (the SQE length is 32 bits).
const MAX_IO: usize = 1 << 30;

struct Ring {
    uring: Mutex<IoUring>,
    /// `io_uring_enter` failed for good: never use this ring again.
    poisoned: AtomicBool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// The fixed pool of rings shared by every [`UringBackend`].
#[derive(Debug)]
pub struct RingPool {
    rings: Vec<Ring>,
}

fn is_retry(errno: i32) -> bool {
    errno == libc::EINTR || errno == libc::EAGAIN || errno == libc::EBUSY
}

impl RingPool {
    fn new() -> std::io::Result<RingPool> {
        let mut rings = Vec::with_capacity(RINGS);
        for _ in 0..RINGS {
            let uring = IoUring::new(RING_ENTRIES)?;
            let mut probe = io_uring::Probe::new();
            uring.submitter().register_probe(&mut probe)?;
            for code in [opcode::Read::CODE, opcode::Write::CODE, opcode::Fsync::CODE] {
                if !probe.is_supported(code) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!("io_uring opcode {code} is not supported by this kernel"),
                    ));
                }
            }
            rings.push(Ring {
                uring: Mutex::new(uring),
                poisoned: AtomicBool::new(false),
            });
        }
        let pool = RingPool { rings };
        // Prove every ring can be entered (seccomp may allow setup only).
        for ring in &pool.rings {
            let mut res = [0i32; 1];
            let mut uring = ring.uring.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: a NOP refers to no memory and no descriptor.
            unsafe { Self::submit_on(ring, &mut uring, &[opcode::Nop::new().build()], &mut res)? };
        }
        Ok(pool)
    }

    /// The process-wide pool, created on first use. A failure to create it
    /// is remembered: later calls fail the same way without retrying.
    pub fn shared() -> std::io::Result<Arc<RingPool>> {
        /// The pool, or why it could not be made (errno, message).
        type Made = std::result::Result<Arc<RingPool>, (Option<i32>, String)>;
        static POOL: OnceLock<Made> = OnceLock::new();
        match POOL.get_or_init(|| {
            RingPool::new()
                .map(Arc::new)
                .map_err(|e| (e.raw_os_error(), e.to_string()))
        }) {
            Ok(p) => Ok(p.clone()),
            Err((Some(errno), _)) => Err(std::io::Error::from_raw_os_error(*errno)),
            Err((None, what)) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                what.clone(),
            )),
        }
    }

    /// A ring for this call: this thread's own if free, else any free one,
    /// else wait for this thread's own.
    fn acquire(&self) -> std::io::Result<(&Ring, MutexGuard<'_, IoUring>)> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let start = MINE.with(|m| *m) % self.rings.len();
        let live = || {
            (0..self.rings.len())
                .map(move |i| &self.rings[(start + i) % self.rings.len()])
                .filter(|r| !r.poisoned.load(Ordering::Relaxed))
        };
        for ring in live() {
            if let Ok(g) = ring.uring.try_lock() {
                return Ok((ring, g));
            }
        }
        let Some(ring) = live().next() else {
            return Err(std::io::Error::other("every io_uring ring has failed"));
        };
        let g = ring.uring.lock().unwrap_or_else(|p| p.into_inner());
        Ok((ring, g))
    }

    /// Submits `sqes` (user data is overwritten with their index) on one
    /// ring and waits for all of their completions; `res[i]` gets the
    /// result of `sqes[i]` (a byte count, or a negative errno).
    ///
    /// # Safety
    ///
    /// Every buffer and descriptor the entries refer to must stay valid (and
    /// a buffer the kernel writes must not be otherwise accessed) until this
    /// returns.
    pub unsafe fn submit(&self, sqes: &[squeue::Entry], res: &mut [i32]) -> std::io::Result<()> {
        let (ring, mut uring) = self.acquire()?;
        // SAFETY: forwarded to our caller.
        unsafe { Self::submit_on(ring, &mut uring, sqes, res) }
    }

    /// [`submit`](Self::submit) on a given ring, locked by the caller.
    ///
    /// # Safety
    ///
    /// As [`submit`](Self::submit).
    unsafe fn submit_on(
        ring: &Ring,
        uring: &mut IoUring,
        sqes: &[squeue::Entry],
        res: &mut [i32],
    ) -> std::io::Result<()> {
        assert!(sqes.len() == res.len() && sqes.len() <= RING_ENTRIES as usize);
        let entries: Vec<squeue::Entry> = sqes
            .iter()
            .enumerate()
            .map(|(i, e)| e.clone().user_data(i as u64))
            .collect();
        {
            let mut sq = uring.submission();
            // SAFETY: the caller keeps everything the entries point at valid
            // until we return, and we return only after every entry the
            // kernel consumed has completed (below). `push_multiple` pushes
            // all or none; the queue is empty here (every earlier call
            // reaped all it submitted, a poisoned ring is never acquired).
            if unsafe { sq.push_multiple(&entries) }.is_err() {
                return Err(std::io::Error::other("io_uring submission queue full"));
            }
        }
        let mut pending = entries.len();
        let mut done = vec![false; entries.len()];
        while pending > 0 {
            match uring.submit_and_wait(pending) {
                Ok(submitted) => {
                    if submitted > 0 {
                        count(&STATS.uring_submissions);
                    }
                }
                Err(e) if e.raw_os_error().is_some_and(is_retry) => {}
                Err(e) => {
                    ring.poisoned.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "io_uring_enter failed; retiring the ring");
                    Self::drain_poisoned(uring, &mut done, res, &mut pending);
                    return Err(e);
                }
            }
            Self::reap(uring, &mut done, res, &mut pending);
        }
        Ok(())
    }

    fn reap(uring: &mut IoUring, done: &mut [bool], res: &mut [i32], pending: &mut usize) {
        for cqe in uring.completion() {
            let i = cqe.user_data() as usize;
            if i < done.len() && !done[i] {
                done[i] = true;
                res[i] = cqe.result();
                *pending -= 1;
            }
        }
    }

    /// After a fatal `io_uring_enter` error: waits (without entering the
    /// ring again) for the completions of entries the kernel consumed.
    /// Entries it did not consume stay queued on the retired ring, never to
    /// be read by the kernel.
    fn drain_poisoned(
        uring: &mut IoUring,
        done: &mut [bool],
        res: &mut [i32],
        pending: &mut usize,
    ) {
        let unconsumed = uring.submission().len();
        let mut waited = Duration::ZERO;
        while *pending > unconsumed {
            Self::reap(uring, done, res, pending);
            std::thread::sleep(Duration::from_millis(1));
            waited += Duration::from_millis(1);
            if waited.as_millis().is_multiple_of(10_000) {
                tracing::error!(
                    in_flight = *pending - unconsumed,
                    "still waiting for io_uring completions on a retired ring"
                );
            }
        }
        for (i, d) in done.iter().enumerate() {
            if !d {
                res[i] = -libc::ECANCELED;
            }
        }
    }
}

/// io_uring for file data, plain system calls for the rest. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct UringBackend {
    pool: Arc<RingPool>,
}

impl UringBackend {
    /// Sets up (on first use in the process) the shared ring pool; fails
    /// where io_uring is unavailable (ENOSYS: old kernel; EPERM: disabled
    /// by `kernel.io_uring_disabled` or a seccomp filter).
    pub fn new() -> std::io::Result<UringBackend> {
        Ok(UringBackend {
            pool: RingPool::shared()?,
        })
    }
}

#[derive(Debug)]
struct UringFile {
    file: File,
    path: PathBuf,
    pool: Arc<RingPool>,
}

fn os_err(res: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(-res)
}

impl UringFile {
    fn fd(&self) -> types::Fd {
        types::Fd(self.file.as_raw_fd())
    }

    /// One entry, resubmitted while it fails with EINTR or EAGAIN.
    ///
    /// # Safety
    ///
    /// As [`RingPool::submit`].
    unsafe fn one(&self, op: &'static str, sqe: squeue::Entry) -> Result<u32> {
        loop {
            let mut res = [0i32; 1];
            // SAFETY: forwarded to our caller.
            unsafe { self.pool.submit(std::slice::from_ref(&sqe), &mut res) }
                .map_err(|e| StorageError::io(op, &self.path, e))?;
            match res[0] {
                r if r >= 0 => return Ok(r as u32),
                r if r == -libc::EINTR || r == -libc::EAGAIN => continue,
                r => return Err(StorageError::io(op, &self.path, os_err(r))),
            }
        }
    }

    /// Writes `buf` at `offset` to the end, resubmitting after short writes.
    fn write_from(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let chunk = &buf[done..buf.len().min(done + MAX_IO)];
            let sqe = opcode::Write::new(self.fd(), chunk.as_ptr(), chunk.len() as u32)
                .offset(offset + done as u64)
                .build();
            // SAFETY: `chunk` (borrowed for this call) and the descriptor
            // (owned by `self`) outlive `one`, which returns only after the
            // write completed.
            let n = unsafe { self.one("write", sqe)? };
            if n == 0 {
                return Err(StorageError::io(
                    "write",
                    &self.path,
                    std::io::Error::from(std::io::ErrorKind::WriteZero),
                ));
            }
            done += n as usize;
        }
        Ok(())
    }
}

impl IoFile for UringFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let end = buf.len().min(done + MAX_IO);
            let chunk = &mut buf[done..end];
            let sqe = opcode::Read::new(self.fd(), chunk.as_mut_ptr(), chunk.len() as u32)
                .offset(offset + done as u64)
                .build();
            // SAFETY: `chunk` is borrowed mutably (no other access) for the
            // whole call, the descriptor is owned by `self`, and `one`
            // returns only after the read completed.
            let n = unsafe { self.one("read", sqe)? };
            if n == 0 {
                break; // end of file
            }
            done += n as usize;
        }
        Ok(done)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_from(buf, offset)
    }

    /// A gathered write is one `pwritev` (chunk files: thousands of
    /// pages written once, where one ring entry per page would cost more).
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> Result<()> {
        super::std_backend::write_all_vectored(&self.file, &self.path, bufs, offset)
    }

    fn sync_data(&self) -> Result<()> {
        let sqe = opcode::Fsync::new(self.fd())
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        // SAFETY: the entry refers only to the descriptor, owned by `self`.
        unsafe { self.one("fdatasync", sqe) }.map(|_| ())
    }

    /// One submission: the write, linked to an fdatasync that the kernel
    /// starts only once the write completed in full. If the write comes
    /// back short (or must be retried), the link is severed and the sync
    /// cancelled: the rest is written and synced separately.
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        count(&STATS.durable_writes);
        let len = buf.len().min(MAX_IO);
        let sqes = [
            opcode::Write::new(self.fd(), buf.as_ptr(), len as u32)
                .offset(offset)
                .build()
                .flags(squeue::Flags::IO_LINK),
            opcode::Fsync::new(self.fd())
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
        ];
        let mut res = [0i32; 2];
        // SAFETY: `buf` is borrowed for the whole call and the descriptor
        // is owned by `self`; `submit` returns only after both entries
        // completed (or were never consumed), errors included.
        unsafe { self.pool.submit(&sqes, &mut res) }
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        let written = match res[0] {
            r if r >= 0 => r as usize,
            r if r == -libc::EINTR || r == -libc::EAGAIN => 0,
            r => return Err(StorageError::io("write", &self.path, os_err(r))),
        };
        if written == buf.len() {
            match res[1] {
                r if r >= 0 => return Ok(()),
                r if r == -libc::EINTR || r == -libc::EAGAIN || r == -libc::ECANCELED => {}
                // An fdatasync failure is final (the kernel may have dropped
                // the dirty pages): no retry.
                r => return Err(StorageError::io("fdatasync", &self.path, os_err(r))),
            }
        } else {
            self.write_from(&buf[written..], offset + written as u64)?;
        }
        self.sync_data()
    }

    fn fuses_durable_writes(&self) -> bool {
        true
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        std_backend::allocate(&self.file, &self.path, len_bytes)
    }

    fn truncate(&self, len_bytes: u64) -> Result<()> {
        std_backend::truncate(&self.file, &self.path, len_bytes)
    }

    fn len_bytes(&self) -> Result<u64> {
        std_backend::len_bytes(&self.file, &self.path)
    }
}

impl IoBackend for UringBackend {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        Ok(Arc::new(UringFile {
            file: open_file(path, mode, 0)?,
            path: path.to_path_buf(),
            pool: self.pool.clone(),
        }))
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::SimRng;
    use crate::io::StdBackend;

    /// io_uring works where the suite runs; a machine that refuses it fails
    /// these tests rather than skip them.
    fn backend() -> UringBackend {
        UringBackend::new().unwrap_or_else(|e| {
            panic!("io_uring is refused here ({e}): the io_uring backend cannot be tested")
        })
    }

    #[test]
    fn read_write_durable_round_trip() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.seg");
        let f = b.open(&path, OpenMode::CreateNew).unwrap();
        f.allocate(1 << 16).unwrap();
        f.write_all_at(b"hello", 100).unwrap();
        let before = crate::io::io_stats();
        f.write_durable_at(b" world", 105).unwrap();
        assert!(crate::io::io_stats().durable_writes > before.durable_writes);
        assert!(crate::io::io_stats().uring_submissions > before.uring_submissions);
        f.sync_data().unwrap();
        let mut back = [0u8; 11];
        f.read_exact_at(&mut back, 100).unwrap();
        assert_eq!(&back, b"hello world");
        // Seen by an ordinary read too.
        let plain = std::fs::read(&path).unwrap();
        assert_eq!(plain.len(), 1 << 16);
        assert_eq!(&plain[100..111], b"hello world");
        // Empty writes.
        f.write_all_at(b"", 5).unwrap();
        f.write_durable_at(b"", 5).unwrap();
    }

    #[test]
    fn short_reads_at_end_of_file() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let f = b.open(&dir.path().join("s"), OpenMode::CreateNew).unwrap();
        f.write_all_at(&[7u8; 10_000], 0).unwrap();
        let mut buf = vec![0u8; 8192];
        assert_eq!(f.read_at(&mut buf, 4096).unwrap(), 10_000 - 4096);
        assert!(buf[..10_000 - 4096].iter().all(|&x| x == 7));
        assert_eq!(f.read_at(&mut buf, 10_000).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 1 << 20).unwrap(), 0);
        let e = f.read_exact_at(&mut buf, 4096).unwrap_err();
        assert!(e.to_string().contains("short read"), "{e}");
        assert_eq!(f.len_bytes().unwrap(), 10_000);
    }

    #[test]
    fn errors_name_the_path_and_errno() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"x").unwrap();
        let f = b.open(&path, OpenMode::ReadOnly).unwrap();
        let e = f.write_all_at(b"y", 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert!(e.to_string().contains("ro"), "{e}");
        let e = f.write_durable_at(b"y", 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    /// Many threads (more than rings) mixing writes, durable writes and
    /// reads on one file and on their own files.
    #[test]
    fn concurrent_use_of_the_ring_pool() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let shared = b
            .open(&dir.path().join("shared"), OpenMode::CreateNew)
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..(RINGS * 3) as u64 {
                let b = b.clone();
                let shared = shared.clone();
                let dir = dir.path().to_path_buf();
                s.spawn(move || {
                    let own = b
                        .open(&dir.join(format!("t{t}")), OpenMode::CreateNew)
                        .unwrap();
                    let mut rng = SimRng::new(t);
                    for i in 0..200u64 {
                        let v = vec![(t * 31 + i) as u8; 1 + rng.below(9000) as usize];
                        let at = t * 4096;
                        shared.write_all_at(&v[..64.min(v.len())], at).unwrap();
                        if i % 20 == 0 {
                            own.write_durable_at(&v, 0).unwrap();
                        } else {
                            own.write_all_at(&v, 0).unwrap();
                        }
                        let mut back = vec![0u8; v.len()];
                        own.read_exact_at(&mut back, 0).unwrap();
                        assert_eq!(back, v);
                    }
                });
            }
        });
    }

    /// The same random writes through uring and std give the same file.
    #[test]
    fn random_writes_match_std() {
        let b = backend();
        let dir = tempfile::tempdir().unwrap();
        let u = b.open(&dir.path().join("u"), OpenMode::CreateNew).unwrap();
        let s = StdBackend
            .open(&dir.path().join("s"), OpenMode::CreateNew)
            .unwrap();
        let mut rng = SimRng::new(3);
        for i in 0..300 {
            let v: Vec<u8> = (0..1 + rng.below(20_000))
                .map(|_| rng.next_u64() as u8)
                .collect();
            let at = rng.below(100_000);
            if i % 7 == 0 {
                u.write_durable_at(&v, at).unwrap();
                s.write_durable_at(&v, at).unwrap();
            } else {
                u.write_all_at(&v, at).unwrap();
                s.write_all_at(&v, at).unwrap();
            }
        }
        let a = std::fs::read(dir.path().join("u")).unwrap();
        let c = std::fs::read(dir.path().join("s")).unwrap();
        assert!(a == c);
    }
}
