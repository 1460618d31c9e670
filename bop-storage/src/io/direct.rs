//! Direct I/O for the record log's segments: [`DirectBackend`].
//!
//! **Which files.** Only files opened with [`IoBackend::open_log`] (log
//! segments) bypass the kernel's page cache. Everything else
//! ([`IoBackend::open`]: page chunks, the manifest's files) stays buffered
//! exactly as in [`StdBackend`]: bop's own page cache (`cache/`) is bounded
//! and holds the pages read lately, and a page read that misses it should
//! still find the kernel's cache warm. Log segments are written once,
//! sequentially, and read back only by recovery, by checkpoints and by the
//! rare reader of a recent record (a durable commit's pages are copied
//! into bop's page cache when it is sealed: `wal_image/frame_cache.rs`),
//! so caching them in the kernel only evicts useful pages.
//!
//! **Two descriptors per segment.** Writes go to an `O_DIRECT` descriptor;
//! reads, `fdatasync`, `fallocate`, `ftruncate` and `fstat` go to an
//! ordinary buffered descriptor of the same inode. Linux keeps the two
//! coherent: a direct write first writes back and afterwards invalidates
//! the cached pages of the range it covers, so a later buffered read sees
//! it; `fdatasync` acts on the inode whichever descriptor it is called on.
//!
//! **Alignment.** `O_DIRECT` needs the buffer address, file offset and
//! length aligned to the logical block size (512 here, 4096 on 4Kn
//! devices). [`ALIGN`] = 4096 satisfies both, and is what
//! [`IoFile::write_alignment`] reports. An aligned write is one `pwrite`; an
//! unaligned one is a read-modify-write of the partial first and last
//! blocks through a bounce buffer from a bounded [`BufPool`], in pieces of
//! at most one pool buffer (never one huge allocation). Writes to one file
//! are serialised (a read-modify-write must not race another write to the
//! same block), which costs nothing to the record log: it has one writer.
//!
//! **Durable writes** are a direct write, then `fdatasync` (the default
//! [`IoFile::write_durable_at`]; the record log makes the two calls
//! itself, as nothing is gained by fusing them). Not `pwritev2(RWF_DSYNC)`:
//! for an O_DIRECT overwrite that needs no metadata change, on a device
//! with FUA, Linux (iomap) sends the data as a FUA write and skips the
//! cache flush. FUA makes only *that* write durable; earlier direct writes
//! that completed without a sync may still sit in the device's volatile
//! cache. `fdatasync` flushes the whole device cache (and commits any
//! needed metadata), covering every earlier write. Where the device has no
//! FUA (like a virtio disk), RWF_DSYNC does a full flush anyway, so it
//! would save one system call (~1 µs), not a device round trip.
//!
//! **When the filesystem refuses.** [`DirectMode`] says what happens when
//! `open(O_DIRECT)` fails with EINVAL (filesystems without direct I/O), or
//! the first direct write on a file fails with EINVAL (an alignment the
//! filesystem wants but we did not meet): `Required` fails, `Optional`
//! falls back to buffered I/O for that file (logged once per process,
//! counted in [`IoStats::direct_fallbacks`](super::IoStats)), `Disabled`
//! never tries.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::aligned::{BufPool, ALIGN};
use super::std_backend::{self, open_file, StdBackend};
use super::{count, IoBackend, IoFile, OpenMode, STATS};
use crate::error::{Result, StorageError};

/// What to do where direct I/O is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DirectMode {
    /// Fail the open (or the first write) of a log segment that cannot use
    /// direct I/O.
    Required,
    /// Use direct I/O where the filesystem supports it, buffered I/O
    /// elsewhere (the default).
    #[default]
    Optional,
    /// Never use direct I/O (the backend then behaves like `std`).
    Disabled,
}

/// Size of each bounce buffer: the largest piece of an unaligned write
/// written with one `pwrite`.
pub const BOUNCE_PIECE: usize = 256 << 10;
/// Bounce buffers kept by the process-wide pool at most.
pub const BOUNCE_POOL_COUNT: usize = 4;
/// Bytes of bounce buffers kept by the process-wide pool at most.
pub const BOUNCE_POOL_BYTES: usize = 1 << 20;

fn shared_pool() -> Arc<BufPool> {
    static POOL: OnceLock<Arc<BufPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(BufPool::new(
            BOUNCE_PIECE,
            BOUNCE_POOL_COUNT,
            BOUNCE_POOL_BYTES,
        ))
    })
    .clone()
}

/// Direct I/O for log segments, buffered I/O for everything else. See the
/// module documentation.
#[derive(Debug, Clone)]
pub struct DirectBackend {
    mode: DirectMode,
    pool: Arc<BufPool>,
    #[cfg(test)]
    sim: SimEinval,
}

/// Test hook: pretend the filesystem refuses direct I/O.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SimEinval {
    None,
    Open,
    FirstWrite,
}

impl Default for DirectBackend {
    fn default() -> Self {
        DirectBackend::new(DirectMode::Optional)
    }
}

impl DirectBackend {
    /// A backend sharing the process-wide bounce-buffer pool.
    pub fn new(mode: DirectMode) -> DirectBackend {
        DirectBackend::with_pool(mode, shared_pool())
    }

    /// A backend with its own bounce-buffer pool.
    pub fn with_pool(mode: DirectMode, pool: Arc<BufPool>) -> DirectBackend {
        DirectBackend {
            mode,
            pool,
            #[cfg(test)]
            sim: SimEinval::None,
        }
    }

    pub fn mode(&self) -> DirectMode {
        self.mode
    }

    /// Falls back to buffered I/O for one file: count, and warn once per
    /// process.
    fn note_fallback(path: &Path, why: &std::io::Error) {
        count(&STATS.direct_fallbacks);
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %path.display(),
                error = %why,
                "direct I/O is not supported here; using buffered I/O for such log segments \
                 (logged once; see io_stats().direct_fallbacks)"
            );
        }
    }

    fn required_error(path: &Path, why: &std::io::Error) -> StorageError {
        StorageError::Config(format!(
            "direct I/O is required (io=direct-required) but {} refuses it: {why}; \
             use io=direct to fall back to buffered I/O where direct I/O is not supported",
            path.display()
        ))
    }

    /// Opens the `O_DIRECT` descriptor for the file `buffered` has open.
    fn open_direct(&self, path: &Path, buffered: &File) -> std::io::Result<File> {
        #[cfg(test)]
        if self.sim == SimEinval::Open {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_direct()
            .open(path)?;
        // Opened by path a second time: make sure it is the same inode (a
        // rename in between would be a caller bug, but never write to the
        // wrong file).
        let (a, b) = (buffered.metadata()?, direct.metadata()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(std::io::Error::other(
                "the file was replaced while being opened",
            ));
        }
        Ok(direct)
    }
}

trait DirectFlag {
    fn custom_flags_direct(&mut self) -> &mut Self;
}

impl DirectFlag for std::fs::OpenOptions {
    fn custom_flags_direct(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
    }
}

/// A log segment file under [`DirectBackend`].
#[derive(Debug)]
struct DirectFile {
    path: PathBuf,
    /// Reads, syncs, length changes; writes once fallen back.
    buffered: File,
    /// The `O_DIRECT` descriptor, if direct I/O was opened.
    direct: Option<File>,
    mode: DirectMode,
    /// Writes go to `direct` (false: never opened, or fell back).
    direct_active: AtomicBool,
    /// Serialises writes; true once a direct write has succeeded (after
    /// that an EINVAL is an error, not a reason to fall back).
    write_lock: Mutex<bool>,
    pool: Arc<BufPool>,
    #[cfg(test)]
    sim_first_write_einval: AtomicBool,
}

const A: u64 = ALIGN as u64;

fn is_aligned(ptr: *const u8, len: usize, offset: u64) -> bool {
    (ptr as usize).is_multiple_of(ALIGN) && len.is_multiple_of(ALIGN) && offset.is_multiple_of(A)
}

/// `pwrite` retrying EINTR; returns the count written (maybe short).
fn pwrite(file: &File, buf: &[u8], offset: u64) -> std::io::Result<usize> {
    loop {
        match file.write_at(buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Reads up to `buf.len()` bytes at `offset`, zero-filling past end of file.
fn pread_fill(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

impl DirectFile {
    /// Writes `buf` at `offset` through the `O_DIRECT` descriptor: aligned
    /// spans directly, the rest block-aligned through bounce buffers.
    /// `probed` is set by the first successful direct write.
    fn direct_write(
        &self,
        direct: &File,
        probed: &mut bool,
        buf: &[u8],
        offset: u64,
    ) -> std::io::Result<()> {
        #[cfg(test)]
        if self.sim_first_write_einval.swap(false, Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let rest = &buf[(pos - offset) as usize..];
            if is_aligned(rest.as_ptr(), rest.len(), pos) {
                let n = pwrite(direct, rest, pos)?;
                count(&STATS.direct_writes);
                *probed = true;
                if n == 0 || !n.is_multiple_of(ALIGN) {
                    // Only a full device does this; the rest would be
                    // unaligned, so report it rather than loop.
                    return Err(short_write());
                }
                pos += n as u64;
                continue;
            }
            pos = self.bounce_piece(direct, probed, buf, offset, pos)?;
        }
        Ok(())
    }

    /// Writes the next piece of `buf` (user bytes from `pos` on) through a
    /// bounce buffer; returns the new `pos`.
    fn bounce_piece(
        &self,
        direct: &File,
        probed: &mut bool,
        buf: &[u8],
        offset: u64,
        pos: u64,
    ) -> std::io::Result<u64> {
        let end = offset + buf.len() as u64;
        let mut bounce = self.pool.take();
        let blk_start = pos - pos % A;
        let data_end = end.min(blk_start + bounce.len() as u64);
        let blk_end = data_end.div_ceil(A) * A;
        let span = (blk_end - blk_start) as usize;
        let head = pos > blk_start;
        let tail = data_end < blk_end;
        if head || tail {
            count(&STATS.rmw_writes);
        }
        // The file length before the write, when the padded write may
        // extend the file past `data_end` (the length is set back below).
        let len_before = if tail {
            Some(direct.metadata()?.len())
        } else {
            None
        };
        if head {
            pread_fill(direct, &mut bounce[..ALIGN], blk_start)?;
        }
        if tail {
            let tail_blk = blk_end - A;
            if !(head && tail_blk == blk_start) {
                let at = (tail_blk - blk_start) as usize;
                pread_fill(direct, &mut bounce[at..at + ALIGN], tail_blk)?;
            }
        }
        let from = (pos - blk_start) as usize;
        let to = (data_end - blk_start) as usize;
        bounce[from..to]
            .copy_from_slice(&buf[(pos - offset) as usize..(data_end - offset) as usize]);
        let n = pwrite(direct, &bounce[..span], blk_start)?;
        count(&STATS.direct_writes);
        *probed = true;
        if n != span {
            return Err(short_write());
        }
        if let Some(len_before) = len_before {
            if blk_end > len_before {
                // The padding past the caller's end must not lengthen the
                // file: a buffered write would not have.
                direct.set_len(len_before.max(data_end))?;
            }
        }
        Ok(data_end)
    }
}

fn short_write() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::WriteZero, "short O_DIRECT write")
}

impl IoFile for DirectFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        std_backend::read_full(&self.buffered, &self.path, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut probed = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let (true, Some(direct)) = (self.direct_active.load(Ordering::Relaxed), &self.direct) {
            match self.direct_write(direct, &mut probed, buf, offset) {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && !*probed
                        && self.mode == DirectMode::Optional =>
                {
                    // The filesystem took O_DIRECT at open but refuses our
                    // writes: buffered from now on (nothing was written).
                    DirectBackend::note_fallback(&self.path, &e);
                    self.direct_active.store(false, Ordering::Relaxed);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !*probed => {
                    return Err(DirectBackend::required_error(&self.path, &e))
                }
                Err(e) => return Err(StorageError::io("write (O_DIRECT)", &self.path, e)),
            }
        }
        self.buffered
            .write_all_at(buf, offset)
            .map_err(|e| StorageError::io("write", &self.path, e))
    }

    fn write_cached_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        // Serialised with direct writes, like every write of this file.
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.buffered
            .write_all_at(buf, offset)
            .map_err(|e| StorageError::io("write", &self.path, e))
    }

    fn sync_data(&self) -> Result<()> {
        self.buffered
            .sync_data()
            .map_err(|e| StorageError::io("fdatasync", &self.path, e))
    }

    fn write_alignment(&self) -> usize {
        if self.direct_active.load(Ordering::Relaxed) {
            ALIGN
        } else {
            1
        }
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        std_backend::allocate(&self.buffered, &self.path, len_bytes)
    }

    fn truncate(&self, len_bytes: u64) -> Result<()> {
        std_backend::truncate(&self.buffered, &self.path, len_bytes)
    }

    fn len_bytes(&self) -> Result<u64> {
        std_backend::len_bytes(&self.buffered, &self.path)
    }
}

impl IoBackend for DirectBackend {
    /// Buffered, as [`StdBackend`]: see the module documentation.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        StdBackend.open(path, mode)
    }

    fn open_log(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        if self.mode == DirectMode::Disabled || mode == OpenMode::ReadOnly {
            return StdBackend.open(path, mode);
        }
        let buffered = open_file(path, mode, 0)?;
        let direct = match self.open_direct(path, &buffered) {
            Ok(f) => Some(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if self.mode == DirectMode::Required {
                    if mode == OpenMode::CreateNew {
                        // Do not leave the file we just created behind.
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(Self::required_error(path, &e));
                }
                Self::note_fallback(path, &e);
                None
            }
            Err(e) => return Err(StorageError::io("open (O_DIRECT)", path, e)),
        };
        Ok(Arc::new(DirectFile {
            path: path.to_path_buf(),
            buffered,
            direct_active: AtomicBool::new(direct.is_some()),
            direct,
            mode: self.mode,
            write_lock: Mutex::new(false),
            pool: self.pool.clone(),
            #[cfg(test)]
            sim_first_write_einval: AtomicBool::new(self.sim == SimEinval::FirstWrite),
        }))
    }

    fn name(&self) -> &'static str {
        "direct"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::aligned::AlignedBuf;
    use crate::io::sim::SimRng;

    fn tmp() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("bop-direct-")
            .tempdir()
            .unwrap()
    }

    fn read_all(f: &dyn IoFile) -> Vec<u8> {
        let mut v = vec![0u8; f.len_bytes().unwrap() as usize];
        f.read_exact_at(&mut v, 0).unwrap();
        v
    }

    /// Random unaligned writes through DirectBackend and StdBackend to two
    /// files end byte-for-byte equal, including the length.
    #[test]
    fn unaligned_writes_match_buffered_byte_for_byte() {
        let dir = tmp();
        // A small pool (buffers of 8 KiB) so large writes go in pieces.
        let pool = Arc::new(BufPool::new(8192, 2, 1 << 20));
        let direct = DirectBackend::with_pool(DirectMode::Required, pool.clone());
        let d = direct
            .open_log(&dir.path().join("d.seg"), OpenMode::CreateNew)
            .unwrap();
        let s = StdBackend
            .open(&dir.path().join("s.seg"), OpenMode::CreateNew)
            .unwrap();
        assert_eq!(d.write_alignment(), ALIGN);
        assert_eq!(s.write_alignment(), 1);
        let before = crate::io::io_stats();
        let mut rng = SimRng::new(7);
        // Some preallocated, some not: writes past the end extend both.
        d.allocate(64 << 10).unwrap();
        s.allocate(64 << 10).unwrap();
        for i in 0..400 {
            let len = match rng.below(4) {
                0 => 1 + rng.below(20) as usize,
                1 => 1 + rng.below(5000) as usize,
                2 => ALIGN * (1 + rng.below(3) as usize),
                _ => 1 + rng.below(40_000) as usize,
            };
            let offset = match rng.below(3) {
                0 => rng.below(200_000),
                1 => rng.below(40) * A,
                _ => rng.below(90_000),
            };
            // An aligned source buffer, sliced at a random start, so some
            // writes take the one-pwrite path and some do not.
            let skew = if rng.chance(50) {
                0
            } else {
                rng.below(64) as usize
            };
            let mut src = AlignedBuf::zeroed(len + skew);
            for b in src.iter_mut() {
                *b = rng.next_u64() as u8;
            }
            let data = &src[skew..skew + len];
            d.write_all_at(data, offset).unwrap();
            s.write_all_at(data, offset).unwrap();
            if i % 50 == 0 {
                d.sync_data().unwrap();
            }
            if i % 37 == 0 {
                assert_eq!(d.len_bytes().unwrap(), s.len_bytes().unwrap(), "write {i}");
            }
        }
        // Synced writes too.
        for f in [&d, &s] {
            f.write_all_at(b"tail", 300_001).unwrap();
            f.sync_data().unwrap();
        }
        let (dv, sv) = (read_all(d.as_ref()), read_all(s.as_ref()));
        assert_eq!(dv.len(), sv.len());
        assert!(dv == sv, "contents differ");
        let after = crate::io::io_stats();
        assert!(after.direct_writes > before.direct_writes);
        assert!(after.rmw_writes > before.rmw_writes);
        // One file's writes are serialised: one bounce buffer at a time,
        // reused, never beyond the pool.
        assert_eq!(pool.idle(), 1, "the bounce buffer comes back");
        assert_eq!(pool.over_pool(), 0);
        // Reopened through a fresh buffered handle: the same bytes.
        let again = StdBackend
            .open(&dir.path().join("d.seg"), OpenMode::ReadOnly)
            .unwrap();
        assert!(read_all(again.as_ref()) == sv);
    }

    /// Files writing at once share one bounded pool: beyond it they get
    /// temporary buffers (counted), and the pool never grows.
    #[test]
    fn concurrent_files_share_a_bounded_pool() {
        let dir = tmp();
        let pool = Arc::new(BufPool::new(ALIGN, 1, 1 << 20));
        let b = DirectBackend::with_pool(DirectMode::Required, pool.clone());
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let b = b.clone();
                let path = dir.path().join(format!("{t}.seg"));
                s.spawn(move || {
                    let f = b.open_log(&path, OpenMode::CreateNew).unwrap();
                    let mut expect = vec![0u8; 64 << 10];
                    let mut rng = SimRng::new(u64::from(t));
                    for _ in 0..300 {
                        let len = 1 + rng.below(10_000) as usize;
                        let at = rng.below((expect.len() - len) as u64) as usize;
                        let v: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                        f.write_all_at(&v, at as u64).unwrap();
                        expect[at..at + len].copy_from_slice(&v);
                    }
                    let got = read_all(f.as_ref());
                    assert!(got[..] == expect[..got.len()]);
                });
            }
        });
        assert_eq!(pool.idle(), 1, "the pool keeps at most its bound");
        assert!(pool.over_pool() > 0, "4 writers, 1 pooled buffer");
    }

    #[test]
    fn aligned_synced_write_round_trips() {
        let dir = tmp();
        let b = DirectBackend::new(DirectMode::Required);
        let f = b
            .open_log(&dir.path().join("a.seg"), OpenMode::CreateNew)
            .unwrap();
        f.allocate(1 << 20).unwrap();
        let mut buf = AlignedBuf::zeroed(3 * ALIGN);
        buf.fill(0xab);
        // Counters are process-wide and tests run in parallel: check this
        // file's effect through its data, and that the call works.
        f.write_all_at(&buf, 2 * A).unwrap();
        f.sync_data().unwrap();
        // The record log writes, then syncs: no fused call on this backend.
        assert!(!f.fuses_durable_writes());
        let mut back = vec![0u8; 3 * ALIGN];
        f.read_exact_at(&mut back, 2 * A).unwrap();
        assert!(back.iter().all(|&x| x == 0xab));
        assert_eq!(f.len_bytes().unwrap(), 1 << 20);
    }

    #[test]
    fn simulated_einval_falls_back_or_fails() {
        let dir = tmp();
        for (sim, mode) in [
            (SimEinval::Open, DirectMode::Optional),
            (SimEinval::Open, DirectMode::Required),
            (SimEinval::FirstWrite, DirectMode::Optional),
            (SimEinval::FirstWrite, DirectMode::Required),
        ] {
            let mut b = DirectBackend::new(mode);
            b.sim = sim;
            let path = dir.path().join(format!("{sim:?}-{mode:?}.seg"));
            let before = crate::io::io_stats().direct_fallbacks;
            let opened = b.open_log(&path, OpenMode::CreateNew);
            if (sim, mode) == (SimEinval::Open, DirectMode::Required) {
                let e = opened.unwrap_err();
                assert!(matches!(e, StorageError::Config(_)), "{e}");
                assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
                assert!(!path.exists(), "the half-opened file is removed");
                continue;
            }
            let f = opened.unwrap();
            let written = f.write_all_at(b"hello", 10);
            if (sim, mode) == (SimEinval::FirstWrite, DirectMode::Required) {
                let e = written.unwrap_err();
                assert!(matches!(e, StorageError::Config(_)), "{e}");
                continue;
            }
            written.unwrap();
            assert_eq!(f.write_alignment(), 1, "{sim:?} {mode:?}: buffered now");
            assert!(crate::io::io_stats().direct_fallbacks > before);
            f.write_all_at(b"!", 15).unwrap();
            f.sync_data().unwrap();
            let mut back = [0u8; 16];
            f.read_exact_at(&mut back, 0).unwrap();
            assert_eq!(&back[10..], b"hello!");
        }
    }

    /// /dev/shm is tmpfs. Linux before 6.6 refuses O_DIRECT there (EINVAL);
    /// later kernels accept it (and even unaligned direct writes, served
    /// from the page cache). Either way: Optional always works, Required
    /// works exactly when the kernel accepts O_DIRECT, and data is intact.
    #[test]
    fn tmpfs_optional_works_required_matches_kernel() {
        let Ok(dir) = tempfile::Builder::new()
            .prefix("bop-direct-")
            .tempdir_in("/dev/shm")
        else {
            return; // no /dev/shm on this machine
        };
        let probe = dir.path().join("probe");
        let kernel_accepts = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags_direct()
            .open(&probe)
            .is_ok();
        let before = crate::io::io_stats().direct_fallbacks;
        let opt = DirectBackend::new(DirectMode::Optional)
            .open_log(&dir.path().join("o.seg"), OpenMode::CreateNew)
            .unwrap();
        opt.write_all_at(b"abc", 1).unwrap();
        opt.sync_data().unwrap();
        let mut back = [0u8; 4];
        opt.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"\0abc");
        let req = DirectBackend::new(DirectMode::Required)
            .open_log(&dir.path().join("r.seg"), OpenMode::CreateNew);
        if kernel_accepts {
            let req = req.unwrap();
            req.write_all_at(b"abc", 1).unwrap();
            req.sync_data().unwrap();
        } else {
            assert!(matches!(req.unwrap_err(), StorageError::Config(_)));
            assert_eq!(opt.write_alignment(), 1);
            assert!(crate::io::io_stats().direct_fallbacks > before);
        }
    }

    #[test]
    fn disabled_and_read_only_are_buffered() {
        let dir = tmp();
        let path = dir.path().join("x.seg");
        let f = DirectBackend::new(DirectMode::Disabled)
            .open_log(&path, OpenMode::CreateNew)
            .unwrap();
        assert_eq!(f.write_alignment(), 1);
        f.write_all_at(b"x", 0).unwrap();
        let r = DirectBackend::new(DirectMode::Required)
            .open_log(&path, OpenMode::ReadOnly)
            .unwrap();
        assert_eq!(r.write_alignment(), 1);
        assert!(r.write_all_at(b"y", 0).is_err());
    }
}
