//! Helpers shared by the engine tests: a store driven the way SQLite drives
//! it, with synthetic WAL frames.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bop_storage::wal_format::checksum;
use bop_storage::{Store, StoreOptions};

pub const PAGE: u32 = 4096;
pub const FRAME: u64 = 24 + PAGE as u64;

pub fn open(path: &Path) -> bop_storage::Result<Arc<Store>> {
    Store::open_shared(path, &StoreOptions::default())
}

/// Writes one SQLite-style transaction of `pages` (page number, fill byte)
/// at frame `first_frame` (1-based) and returns the next frame number.
/// Frame 1 also writes the 32-byte WAL header, as SQLite does.
pub fn write_txn(store: &Store, first_frame: u64, pages: &[(u32, u8)], db_size: u32) -> u64 {
    if first_frame == 1 {
        let mut hdr = [0u8; 32];
        hdr[..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
        hdr[8..12].copy_from_slice(&PAGE.to_be_bytes());
        store.wal_image_write(0, &hdr).unwrap();
    }
    let mut frame_no = first_frame;
    for (i, (pgno, fill)) in pages.iter().enumerate() {
        let off = 32 + (frame_no - 1) * FRAME;
        let mut fh = [0u8; 24];
        fh[..4].copy_from_slice(&pgno.to_be_bytes());
        if i + 1 == pages.len() {
            fh[4..8].copy_from_slice(&db_size.to_be_bytes());
        }
        store.wal_image_write(off, &fh).unwrap();
        store
            .wal_image_write(off + 24, &vec![*fill; PAGE as usize])
            .unwrap();
        frame_no += 1;
    }
    frame_no
}

/// Reads the page data of frame `frame_no` (1-based) from the WAL image.
pub fn read_frame(store: &Store, frame_no: u64) -> Vec<u8> {
    let mut buf = vec![0u8; PAGE as usize];
    let n = store
        .wal_image_read(32 + (frame_no - 1) * FRAME + 24, &mut buf)
        .unwrap();
    assert_eq!(n, buf.len(), "frame {frame_no} is inside the WAL image");
    buf
}

/// The one log segment file of a store (tests keep to one segment).
pub fn only_segment(path: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

/// Offsets of every record header (`BOPR` magic at a record boundary) in a
/// segment, found by walking the lengths from the first record.
pub fn record_offsets(seg: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 4096;
    while pos + 48 <= seg.len() && &seg[pos..pos + 4] == b"BOPR" {
        out.push(pos);
        let len = u32::from_le_bytes(seg[pos + 32..pos + 36].try_into().unwrap()) as usize;
        pos += 48 + len;
    }
    out
}

/// Copies a store directory (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Runs the test `name` of this test binary in a child process with
/// `env_key=env_value`, and returns the word it printed after `OUTCOME `
/// (None if it printed none: it crashed). Used to contain crashes inside
/// LMDB when a test opens a deliberately damaged manifest.
pub fn child_outcome(name: &str, env_key: &str, env_value: &Path) -> Option<String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env_key, env_value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest prints the outcome after the test's name on the same line.
    stdout
        .lines()
        .find_map(|l| l.split("OUTCOME ").nth(1))?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// What a test does before each operation on a log segment file
/// (`*.seg`): count it, hold it. Every method defaults to nothing.
pub trait SegmentHooks: Send + Sync + std::fmt::Debug {
    fn before_read(&self) {}
    fn before_write(&self) {}
    fn before_sync(&self) {}
}

/// The real file system (`StdBackend`), with `H`'s hooks run before reads,
/// writes (direct or cached) and syncs of log segment files.
#[derive(Debug)]
pub struct HookedBackend<H: SegmentHooks + 'static>(pub Arc<H>);

#[derive(Debug)]
struct HookedFile<H: SegmentHooks + 'static> {
    inner: Arc<dyn bop_storage::io::IoFile>,
    hooks: Option<Arc<H>>,
}

impl<H: SegmentHooks + 'static> bop_storage::io::IoFile for HookedFile<H> {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> bop_storage::Result<usize> {
        if let Some(h) = &self.hooks {
            h.before_read();
        }
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> bop_storage::Result<()> {
        if let Some(h) = &self.hooks {
            h.before_write();
        }
        self.inner.write_all_at(buf, offset)
    }
    fn write_cached_at(&self, buf: &[u8], offset: u64) -> bop_storage::Result<()> {
        if let Some(h) = &self.hooks {
            h.before_write();
        }
        self.inner.write_cached_at(buf, offset)
    }
    fn sync_data(&self) -> bop_storage::Result<()> {
        if let Some(h) = &self.hooks {
            h.before_sync();
        }
        self.inner.sync_data()
    }
    fn allocate(&self, len: u64) -> bop_storage::Result<()> {
        self.inner.allocate(len)
    }
    fn truncate(&self, len: u64) -> bop_storage::Result<()> {
        self.inner.truncate(len)
    }
    fn len_bytes(&self) -> bop_storage::Result<u64> {
        self.inner.len_bytes()
    }
}

impl<H: SegmentHooks + 'static> bop_storage::io::IoBackend for HookedBackend<H> {
    fn open(
        &self,
        path: &Path,
        mode: bop_storage::io::OpenMode,
    ) -> bop_storage::Result<Arc<dyn bop_storage::io::IoFile>> {
        let is_seg = path.extension().is_some_and(|e| e == "seg");
        Ok(Arc::new(HookedFile {
            inner: bop_storage::io::StdBackend.open(path, mode)?,
            hooks: is_seg.then(|| self.0.clone()),
        }))
    }
}

/// The files with extension `ext` in a store's `wal/` directory, sorted.
pub fn wal_files(path: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Writes the WAL header and then transactions as SQLite does (valid
/// salts and cumulative checksums: the store knows every frame of such an
/// image after reopen, which a deferred publish needs).
pub struct WalWriter {
    salt: [u8; 8],
    cksum: [u32; 2],
    next_frame: u64,
}

impl WalWriter {
    pub fn start(store: &Store) -> WalWriter {
        Self::try_start(store).unwrap()
    }

    /// [`WalWriter::start`], returning the store's error.
    pub fn try_start(store: &Store) -> bop_storage::Result<WalWriter> {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
        h[4..8].copy_from_slice(&3007000u32.to_be_bytes());
        h[8..12].copy_from_slice(&PAGE.to_be_bytes());
        // New salts for each generation, as SQLite's restart makes.
        static SALT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let salt = SALT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        h[16..24].copy_from_slice(&salt.to_be_bytes());
        let cksum = checksum(false, &h[..24], [0, 0]);
        h[24..28].copy_from_slice(&cksum[0].to_be_bytes());
        h[28..32].copy_from_slice(&cksum[1].to_be_bytes());
        store.wal_image_write(0, &h)?;
        Ok(WalWriter {
            salt: h[16..24].try_into().unwrap(),
            cksum,
            next_frame: 1,
        })
    }

    /// One transaction of `pages` (page, fill); the database has `db_pages`
    /// pages after it.
    pub fn txn(&mut self, store: &Store, pages: &[(u32, u8)], db_pages: u32) {
        self.try_txn(store, pages, db_pages).unwrap()
    }

    /// [`WalWriter::txn`], returning the store's error.
    pub fn try_txn(
        &mut self,
        store: &Store,
        pages: &[(u32, u8)],
        db_pages: u32,
    ) -> bop_storage::Result<()> {
        for (i, &(pgno, fill)) in pages.iter().enumerate() {
            let mut f = vec![fill; FRAME as usize];
            f[..24].fill(0);
            f[0..4].copy_from_slice(&pgno.to_be_bytes());
            if i + 1 == pages.len() {
                f[4..8].copy_from_slice(&db_pages.to_be_bytes());
            }
            f[8..16].copy_from_slice(&self.salt);
            self.cksum = checksum(false, &f[..8], self.cksum);
            self.cksum = checksum(false, &f[24..], self.cksum);
            f[16..20].copy_from_slice(&self.cksum[0].to_be_bytes());
            f[20..24].copy_from_slice(&self.cksum[1].to_be_bytes());
            let off = 32 + (self.next_frame - 1) * FRAME;
            store.wal_image_write(off, &f)?;
            self.next_frame += 1;
        }
        store.wal_image_sync()
    }
}
