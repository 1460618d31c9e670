//! A simulated file system for tests: everything in memory, deterministic
//! from a seed, with the faults real disks and kernels produce.
//!
//! - **Power cut** ([`SimFs::crash`]): writes, length changes, creations and
//!   removals not yet made durable are lost — all, none, or any subset, and
//!   a lost-in-part write keeps only some of its 512-byte sectors, in any
//!   order the kernel could produce. The old file system then fails every
//!   operation with EIO (the machine is off); the returned one holds what a
//!   reboot would find.
//! - **Errors** ([`SimFs::inject`]): EIO, ENOSPC or any errno at the Nth
//!   matching operation, optionally only on paths containing a string,
//!   once or sticky.
//! - **Slow I/O** ([`SimFs::set_latency`]): every matching operation takes
//!   at least a given time.
//!
//! - **Alignment** ([`SimFs::set_log_alignment`]): files opened with
//!   [`IoBackend::open_log`] refuse writes not aligned like direct I/O's.
//! - **Fused durable writes** ([`SimFs::set_fused_durable_writes`]): files
//!   opened with [`IoBackend::open_log`] say they fuse a write with its
//!   sync, as io_uring files do, so the record log takes that path.
//!
//! Durability model (POSIX's, without ext4's or xfs's extra promises):
//! `sync_data` makes a file's content durable; the creation, rename or
//! removal of an entry, file or directory, is durable once its directory is
//! synced (`sync_dir`). A power cut loses a directory whose entry is not
//! durable with everything under it, so a store's files survive only when
//! every directory up to one that existed before the test was synced after
//! its entry was made. Directories the simulated file system has never
//! seen, such as the ancestors [`IoBackend::create_dir_all`] adds for the
//! first directory under a test's scratch directory, existed before: their
//! entries are durable. A directory can be renamed only while its entry is
//! not durable (a store's temporary directory during its creation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{IoBackend, IoFile, OpenMode};
use crate::error::{Result, StorageError};

const SECTOR: usize = 512;

/// Kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    Read,
    Write,
    Sync,
    Open,
    Any,
}

/// One injected fault.
#[derive(Clone, Debug)]
pub struct Fault {
    pub op: FaultOp,
    /// Fails the `nth` matching operation from now on (1 = the next one).
    pub nth: u64,
    pub errno: i32,
    /// Only operations on paths containing this string match.
    pub path_contains: Option<String>,
    /// Keep failing every matching operation after the first failure.
    pub sticky: bool,
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default, Clone)]
struct FileState {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    pending: Vec<Pending>,
    /// The file's directory entry survives a power cut.
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<PathBuf, Arc<Mutex<FileState>>>,
    /// Files removed whose removal is not yet durable (entry resurrects on a
    /// power cut), with their durable content.
    removed: BTreeMap<PathBuf, Vec<u8>>,
    /// Directories, with whether their entry in their parent is durable.
    dirs: BTreeMap<PathBuf, bool>,
    faults: Vec<(Fault, u64)>,
    /// Slow I/O: every matching operation first sleeps this long.
    latency: Vec<(FaultOp, std::time::Duration)>,
    crashed: bool,
    /// Alignment required of writes to files opened with `open_log` (1: any).
    log_alignment: usize,
    /// Files opened with `open_log` fuse durable writes.
    log_fused: bool,
    /// Counters for the test report.
    ops: u64,
    faults_fired: u64,
    durable_writes: u64,
}

/// The simulated file system. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// A small deterministic generator (xorshift64*), so a failing seed replays.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How much of the not-yet-durable state a power cut keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything unsynced is lost.
    LoseAll,
    /// Everything written survives (a process crash: the kernel had it).
    KeepAll,
    /// Each unsynced change survives or not at random; writes may be torn
    /// at sector boundaries; unsynced directory entries may vanish.
    Random,
}

/// Counters of a simulated file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub ops: u64,
    pub faults_fired: u64,
    pub files: usize,
    /// Calls of [`IoFile::write_durable_at`].
    pub durable_writes: u64,
}

fn errno_err(op: &'static str, path: &Path, errno: i32) -> StorageError {
    StorageError::io(op, path, std::io::Error::from_raw_os_error(errno))
}

impl SimFs {
    /// A fault whose `errno` is this panics instead of failing (to test that
    /// panics in the engine fail safe).
    pub const PANIC: i32 = -1;

    /// A fault whose `errno` is this cuts the power at that operation: it
    /// fails (EIO) without effect, and so does every later one, as after
    /// [`SimFs::crash`], which the test then calls to get the file system a
    /// reboot finds. Counting operations this way puts a crash at every
    /// step of multi-step work in turn.
    pub const CRASH: i32 = -2;

    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        let mut s = self.state.lock().expect("sim lock");
        s.faults.push((fault, 0));
    }

    /// Removes every fault rule and all latency.
    pub fn clear_faults(&self) {
        let mut s = self.state.lock().expect("sim lock");
        s.faults.clear();
        s.latency.clear();
    }

    /// Makes every operation of kind `op` take at least `delay` (slow disk).
    pub fn set_latency(&self, op: FaultOp, delay: std::time::Duration) {
        self.state
            .lock()
            .expect("sim lock")
            .latency
            .push((op, delay));
    }

    /// Makes files opened from now on with [`IoBackend::open_log`] report
    /// `write_alignment() == align` and fail every write whose offset or
    /// length is not a multiple of it with EINVAL, as an `O_DIRECT` file
    /// would (the buffer address is not checked). 1 (the default) accepts
    /// any write. Files opened with `open` are not affected.
    pub fn set_log_alignment(&self, align: usize) {
        assert!(align >= 1, "alignment must be at least 1");
        self.state.lock().expect("sim lock").log_alignment = align;
    }

    /// Makes files opened from now on with [`IoBackend::open_log`] report
    /// [`IoFile::fuses_durable_writes`] (as io_uring files do), so the
    /// record log writes and syncs them with one
    /// [`IoFile::write_durable_at`]: a write, then a sync, each subject to
    /// faults as alone.
    pub fn set_fused_durable_writes(&self, on: bool) {
        self.state.lock().expect("sim lock").log_fused = on;
    }

    pub fn stats(&self) -> SimStats {
        let s = self.state.lock().expect("sim lock");
        SimStats {
            ops: s.ops,
            faults_fired: s.faults_fired,
            files: s.files.len(),
            durable_writes: s.durable_writes,
        }
    }

    /// Checks crash state and fault rules for one operation.
    fn check(&self, op: FaultOp, name: &'static str, path: &Path) -> Result<()> {
        let delay: std::time::Duration = {
            let s = self.state.lock().expect("sim lock");
            s.latency
                .iter()
                .filter(|(o, _)| *o == FaultOp::Any || *o == op)
                .map(|(_, d)| *d)
                .sum()
        };
        if !delay.is_zero() {
            std::thread::sleep(delay); // outside the lock, like a slow device
        }
        let mut s = self.state.lock().expect("sim lock");
        if s.crashed {
            return Err(errno_err(name, path, libc::EIO));
        }
        s.ops += 1;
        let path_str = path.to_string_lossy();
        let mut fire = None;
        for (f, seen) in s.faults.iter_mut() {
            let op_matches = f.op == FaultOp::Any || f.op == op;
            let path_matches = f
                .path_contains
                .as_deref()
                .is_none_or(|p| path_str.contains(p));
            if !(op_matches && path_matches) {
                continue;
            }
            *seen += 1;
            if *seen == f.nth || (f.sticky && *seen > f.nth) {
                fire = Some(f.errno);
                break;
            }
        }
        if let Some(errno) = fire {
            s.faults_fired += 1;
            if errno == Self::PANIC {
                drop(s);
                panic!("injected panic at {name} {}", path.display());
            }
            if errno == Self::CRASH {
                s.crashed = true;
                return Err(errno_err(name, path, libc::EIO));
            }
            return Err(errno_err(name, path, errno));
        }
        Ok(())
    }

    /// Simulates a power cut: returns the file system a reboot finds, and
    /// makes this one fail every further operation.
    pub fn crash(&self, mode: CrashMode, rng: &mut SimRng) -> SimFs {
        let mut s = self.state.lock().expect("sim lock");
        s.crashed = true;
        let dirs = surviving_dirs(&s.dirs, mode, rng);
        let survives = |p: &Path| p.parent().is_none_or(|d| dirs.contains_key(d));
        let mut next = State {
            dirs: dirs.clone(),
            log_alignment: s.log_alignment,
            log_fused: s.log_fused,
            ..Default::default()
        };
        for (path, data) in &s.removed {
            if !survives(path) {
                continue;
            }
            let keep_removal = match mode {
                CrashMode::LoseAll => false,
                CrashMode::KeepAll => true,
                CrashMode::Random => rng.chance(50),
            };
            if !keep_removal {
                next.files.insert(
                    path.clone(),
                    Arc::new(Mutex::new(FileState {
                        current: data.clone(),
                        durable: data.clone(),
                        pending: vec![],
                        entry_durable: true,
                    })),
                );
            }
        }
        for (path, f) in &s.files {
            let f = f.lock().expect("file lock");
            let keep_entry = f.entry_durable
                || match mode {
                    CrashMode::LoseAll => false,
                    CrashMode::KeepAll => true,
                    CrashMode::Random => rng.chance(50),
                };
            if !keep_entry || !survives(path) {
                continue;
            }
            let mut data = f.durable.clone();
            for p in &f.pending {
                let apply = match mode {
                    CrashMode::LoseAll => false,
                    CrashMode::KeepAll => true,
                    CrashMode::Random => rng.chance(60),
                };
                if !apply {
                    continue;
                }
                match p {
                    Pending::SetLen(len) => data.resize(*len as usize, 0),
                    Pending::Write {
                        offset,
                        data: bytes,
                    } => {
                        let torn = mode == CrashMode::Random && rng.chance(30);
                        let end = *offset as usize + bytes.len();
                        if data.len() < end {
                            data.resize(end, 0);
                        }
                        if !torn {
                            data[*offset as usize..end].copy_from_slice(bytes);
                            continue;
                        }
                        // Keep a random subset of the sectors the write touched.
                        let mut at = 0usize;
                        while at < bytes.len() {
                            let abs = *offset as usize + at;
                            let sector_end = (abs / SECTOR + 1) * SECTOR;
                            let n = (sector_end - abs).min(bytes.len() - at);
                            if rng.chance(50) {
                                data[abs..abs + n].copy_from_slice(&bytes[at..at + n]);
                            }
                            at += n;
                        }
                    }
                }
            }
            next.files.insert(
                path.clone(),
                Arc::new(Mutex::new(FileState {
                    current: data.clone(),
                    durable: data,
                    pending: vec![],
                    entry_durable: true,
                })),
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(next)),
        }
    }
}

/// The directories a power cut leaves: those whose entry is durable or
/// kept (by `mode`), under a parent that survives. All durable afterwards.
fn surviving_dirs(
    dirs: &BTreeMap<PathBuf, bool>,
    mode: CrashMode,
    rng: &mut SimRng,
) -> BTreeMap<PathBuf, bool> {
    // A parent sorts before its children (it is their prefix).
    let mut out = BTreeMap::new();
    for (dir, &durable) in dirs {
        let parent_ok = dir
            .parent()
            .is_none_or(|p| out.contains_key(p) || !dirs.contains_key(p));
        let keep = durable
            || match mode {
                CrashMode::LoseAll => false,
                CrashMode::KeepAll => true,
                CrashMode::Random => rng.chance(50),
            };
        if parent_ok && keep {
            out.insert(dir.clone(), true);
        }
    }
    out
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    path: PathBuf,
    state: Arc<Mutex<FileState>>,
    read_only: bool,
    /// Writes must be aligned to this (see `SimFs::set_log_alignment`).
    alignment: usize,
    /// See `SimFs::set_fused_durable_writes`.
    fused: bool,
}

impl IoFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.fs.check(FaultOp::Read, "read", &self.path)?;
        let f = self.state.lock().expect("file lock");
        let start = (offset as usize).min(f.current.len());
        let n = (f.current.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&f.current[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !offset.is_multiple_of(self.alignment as u64)
            || !buf.len().is_multiple_of(self.alignment)
        {
            return Err(errno_err("write", &self.path, libc::EINVAL));
        }
        self.write_cached_at(buf, offset)
    }

    /// Like a buffered descriptor beside a direct one: any alignment.
    fn write_cached_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if self.read_only {
            return Err(errno_err("write", &self.path, libc::EBADF));
        }
        self.fs.check(FaultOp::Write, "write", &self.path)?;
        let mut f = self.state.lock().expect("file lock");
        let end = offset as usize + buf.len();
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        f.current[offset as usize..end].copy_from_slice(buf);
        f.pending.push(Pending::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        if let Err(e) = self.fs.check(FaultOp::Sync, "fdatasync", &self.path) {
            // As Linux does after a writeback error: the unsynced data stays
            // readable (clean pages in the cache) but is never written back,
            // so a later fdatasync that succeeds proves nothing about it.
            // Only rewriting the bytes makes them durable again. (Not when
            // the power went: then the crash decides what survives.)
            if !self.fs.state.lock().expect("sim lock").crashed {
                self.state.lock().expect("file lock").pending.clear();
            }
            return Err(e);
        }
        let mut f = self.state.lock().expect("file lock");
        let pending = std::mem::take(&mut f.pending);
        for p in pending {
            match p {
                Pending::SetLen(len) => f.durable.resize(len as usize, 0),
                Pending::Write { offset, data } => {
                    let end = offset as usize + data.len();
                    if f.durable.len() < end {
                        f.durable.resize(end, 0);
                    }
                    f.durable[offset as usize..end].copy_from_slice(&data);
                }
            }
        }
        Ok(())
    }

    fn write_alignment(&self) -> usize {
        self.alignment
    }

    fn write_durable_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        super::count(&super::STATS.durable_writes);
        self.fs.state.lock().expect("sim lock").durable_writes += 1;
        self.write_all_at(buf, offset)?;
        self.sync_data()
    }

    fn fuses_durable_writes(&self) -> bool {
        self.fused
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        self.fs.check(FaultOp::Write, "fallocate", &self.path)?;
        let mut f = self.state.lock().expect("file lock");
        if (f.current.len() as u64) < len_bytes {
            f.current.resize(len_bytes as usize, 0);
            f.pending.push(Pending::SetLen(len_bytes));
        }
        Ok(())
    }

    fn truncate(&self, len_bytes: u64) -> Result<()> {
        self.fs.check(FaultOp::Write, "truncate", &self.path)?;
        let mut f = self.state.lock().expect("file lock");
        f.current.resize(len_bytes as usize, 0);
        f.pending.push(Pending::SetLen(len_bytes));
        Ok(())
    }

    fn len_bytes(&self) -> Result<u64> {
        self.fs.check(FaultOp::Read, "stat", &self.path)?;
        Ok(self.state.lock().expect("file lock").current.len() as u64)
    }
}

impl SimFs {
    fn open_aligned(&self, path: &Path, mode: OpenMode, log: bool) -> Result<Arc<SimFile>> {
        self.check(FaultOp::Open, "open", path)?;
        let mut s = self.state.lock().expect("sim lock");
        let existing = s.files.get(path).cloned();
        let state = match (mode, existing) {
            (OpenMode::CreateNew, Some(_)) => return Err(errno_err("open", path, libc::EEXIST)),
            (OpenMode::CreateNew, None) => {
                let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                if !s.dirs.contains_key(&parent) {
                    return Err(errno_err("open", path, libc::ENOENT));
                }
                s.removed.remove(path);
                let st = Arc::new(Mutex::new(FileState::default()));
                s.files.insert(path.to_path_buf(), st.clone());
                st
            }
            (_, Some(st)) => st,
            (_, None) => return Err(errno_err("open", path, libc::ENOENT)),
        };
        let alignment = if log { s.log_alignment.max(1) } else { 1 };
        let fused = log && s.log_fused;
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            state,
            read_only: mode == OpenMode::ReadOnly,
            alignment,
            fused,
        }))
    }
}

impl IoBackend for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        Ok(self.open_aligned(path, mode, false)?)
    }

    fn open_log(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        Ok(self.open_aligned(path, mode, true)?)
    }

    fn name(&self) -> &'static str {
        "sim"
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        self.check(FaultOp::Write, "unlink", path)?;
        let mut s = self.state.lock().expect("sim lock");
        if let Some(f) = s.files.remove(path) {
            let f = f.lock().expect("file lock");
            if f.entry_durable {
                let durable = f.durable.clone();
                drop(f);
                s.removed.insert(path.to_path_buf(), durable);
            }
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(FaultOp::Write, "rename", from)?;
        let mut s = self.state.lock().expect("sim lock");
        if s.dirs.contains_key(from) {
            return rename_dir(&mut s, from, to);
        }
        let Some(f) = s.files.remove(from) else {
            return Err(errno_err("rename", from, libc::ENOENT));
        };
        {
            let mut st = f.lock().expect("file lock");
            if st.entry_durable {
                // Until the directory is synced a power cut may undo it.
                s.removed.insert(from.to_path_buf(), st.durable.clone());
            }
            st.entry_durable = false;
        }
        s.removed.remove(to);
        s.files.insert(to.to_path_buf(), f);
        Ok(())
    }

    /// Creates `path` and its missing ancestors. The new ones are not
    /// durable until their parent is synced, except ancestors of the first
    /// directory made under a directory the simulated file system has never
    /// seen: those existed before (see the module's comment).
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.check(FaultOp::Write, "mkdir", path)?;
        let mut s = self.state.lock().expect("sim lock");
        if s.files.contains_key(path) {
            return Err(errno_err("mkdir", path, libc::EEXIST));
        }
        let known = s
            .dirs
            .keys()
            .any(|d| path.starts_with(d) && d.parent().is_some());
        for a in path.ancestors() {
            if !s.dirs.contains_key(a) {
                let existed_before = !known && a != path;
                s.dirs
                    .insert(a.to_path_buf(), existed_before || a.parent().is_none());
            }
        }
        Ok(())
    }

    fn real_directories(&self) -> bool {
        false
    }

    /// Removes `path` and everything under it. Modelled as durable at once
    /// (a removed tree does not come back at a power cut); only a store's
    /// abandoned temporary directory is removed this way.
    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        self.check(FaultOp::Write, "rmdir", path)?;
        let mut s = self.state.lock().expect("sim lock");
        s.files.retain(|p, _| !p.starts_with(path));
        s.removed.retain(|p, _| !p.starts_with(path));
        s.dirs.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        self.check(FaultOp::Sync, "fsync dir", path)?;
        let mut s = self.state.lock().expect("sim lock");
        for (p, f) in &s.files {
            if p.parent() == Some(path) {
                f.lock().expect("file lock").entry_durable = true;
            }
        }
        for (d, durable) in s.dirs.iter_mut() {
            if d.parent() == Some(path) {
                *durable = true;
            }
        }
        s.removed.retain(|p, _| p.parent() != Some(path));
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        self.check(FaultOp::Read, "readdir", dir)?;
        let s = self.state.lock().expect("sim lock");
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state.lock().expect("sim lock");
        s.files.contains_key(path) || s.dirs.contains_key(path)
    }
}

/// Renames the directory `from` (whose entry must not be durable yet) with
/// everything under it to `to`, which must not exist or be an empty
/// directory. The new entry is durable once `to`'s parent is synced.
fn rename_dir(s: &mut State, from: &Path, to: &Path) -> Result<()> {
    if s.dirs.get(from) == Some(&true) {
        return Err(StorageError::Invariant(format!(
            "the simulated file system models renaming a directory only before its entry \
             is durable: {}",
            from.display()
        )));
    }
    let under = |p: &Path, d: &Path| p.starts_with(d) && p != d;
    if s.files.contains_key(to)
        || s.files.keys().any(|p| under(p, to))
        || s.dirs.keys().any(|p| under(p, to))
    {
        return Err(errno_err("rename", from, libc::ENOTEMPTY));
    }
    if !to.parent().is_none_or(|p| s.dirs.contains_key(p)) {
        return Err(errno_err("rename", from, libc::ENOENT));
    }
    let moved = |p: &Path| to.join(p.strip_prefix(from).expect("under from"));
    let dirs: Vec<(PathBuf, bool)> = s
        .dirs
        .iter()
        .filter(|(d, _)| d.starts_with(from))
        .map(|(d, v)| (d.clone(), *v))
        .collect();
    for (d, durable) in dirs {
        s.dirs.remove(&d);
        s.dirs.insert(moved(&d), durable && d != from);
    }
    let files: Vec<PathBuf> = s
        .files
        .keys()
        .filter(|p| p.starts_with(from))
        .cloned()
        .collect();
    for p in files {
        let f = s.files.remove(&p).expect("listed");
        s.files.insert(moved(&p), f);
    }
    s.dirs.insert(to.to_path_buf(), false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_are_lost_synced_kept() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        f.write_all_at(b"HELLO world", 0).unwrap();
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        assert!(f.write_all_at(b"x", 0).is_err(), "the old fs is off");
        let g = after.open(Path::new("/d/a"), OpenMode::Existing).unwrap();
        let mut buf = vec![0u8; 16];
        let n = g.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }

    #[test]
    fn undurable_entries_vanish_and_faults_fire() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_data().unwrap(); // data synced, directory not
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(2));
        assert!(!after.exists(Path::new("/d/a")));

        after.inject(Fault {
            op: FaultOp::Write,
            nth: 2,
            errno: libc::ENOSPC,
            path_contains: None,
            sticky: false,
        });
        let g = after.open(Path::new("/d/b"), OpenMode::CreateNew).unwrap();
        g.write_all_at(b"1", 0).unwrap();
        let e = g.write_all_at(b"2", 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        g.write_all_at(b"3", 2).unwrap();
    }

    #[test]
    fn crash_fault_stops_the_machine_at_the_nth_operation() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"one", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.inject(Fault {
            op: FaultOp::Any,
            nth: 2,
            errno: SimFs::CRASH,
            path_contains: None,
            sticky: false,
        });
        f.write_all_at(b"two", 0).unwrap();
        assert!(f.sync_data().is_err(), "the 2nd operation crashes");
        assert!(
            f.read_at(&mut [0u8; 3], 0).is_err(),
            "and the machine is off"
        );
        let after = fs.crash(CrashMode::KeepAll, &mut SimRng::new(1));
        let g = after.open(Path::new("/d/a"), OpenMode::Existing).unwrap();
        let mut buf = [0u8; 3];
        g.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"two", "a process crash keeps what the kernel had");
    }

    #[test]
    fn latency_slows_matching_operations_only() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        let slow = std::time::Duration::from_millis(300);
        fs.set_latency(FaultOp::Sync, slow);
        let t = std::time::Instant::now();
        f.write_all_at(b"x", 0).unwrap();
        assert!(t.elapsed() < slow, "writes are not slowed");
        f.sync_data().unwrap();
        assert!(t.elapsed() >= slow, "syncs are");
        fs.clear_faults();
        let t = std::time::Instant::now();
        f.sync_data().unwrap();
        assert!(t.elapsed() < slow);
    }

    #[test]
    fn log_alignment_refuses_unaligned_writes_of_log_files_only() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let plain = fs.open(Path::new("/d/p"), OpenMode::CreateNew).unwrap();
        fs.open(Path::new("/d/l"), OpenMode::CreateNew).unwrap();
        let before = fs.open_log(Path::new("/d/l"), OpenMode::Existing).unwrap();
        assert_eq!(before.write_alignment(), 1);
        before.write_all_at(b"x", 3).unwrap();
        fs.set_log_alignment(4096);
        let log = fs.open_log(Path::new("/d/l"), OpenMode::Existing).unwrap();
        assert_eq!(log.write_alignment(), 4096);
        assert_eq!(plain.write_alignment(), 1);
        for (len, off) in [(1usize, 0u64), (4096, 1), (4095, 4096), (8191, 0)] {
            let e = log.write_all_at(&vec![1u8; len], off).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{len}@{off}");
            let e = log.write_durable_at(&vec![1u8; len], off).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{len}@{off}");
        }
        log.write_all_at(&[2u8; 8192], 4096).unwrap();
        log.write_durable_at(&[3u8; 4096], 0).unwrap();
        plain.write_all_at(b"unaligned is fine", 7).unwrap();
        let mut b = [0u8; 4];
        log.read_exact_at(&mut b, 4094).unwrap();
        assert_eq!(b, [3, 3, 2, 2]);
        // Durable after write_durable_at: survives a power cut.
        fs.sync_dir(Path::new("/d")).unwrap();
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(9));
        let g = after.open(Path::new("/d/l"), OpenMode::Existing).unwrap();
        g.read_exact_at(&mut b, 4094).unwrap();
        assert_eq!(b, [3, 3, 2, 2]);
    }

    #[test]
    fn random_crash_tears_at_sector_boundaries() {
        let mut saw_torn = false;
        for seed in 0..64 {
            let fs2 = SimFs::new();
            fs2.create_dir_all(Path::new("/d")).unwrap();
            fs2.sync_dir(Path::new("/")).unwrap();
            let h = fs2.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
            h.write_all_at(&vec![0u8; 4096], 0).unwrap();
            h.sync_data().unwrap();
            fs2.sync_dir(Path::new("/d")).unwrap();
            h.write_all_at(&vec![1u8; 4096], 0).unwrap();
            let after = fs2.crash(CrashMode::Random, &mut SimRng::new(seed));
            let g = after.open(Path::new("/d/a"), OpenMode::Existing).unwrap();
            let mut buf = vec![0u8; 4096];
            g.read_exact_at(&mut buf, 0).unwrap();
            for sector in buf.chunks(SECTOR) {
                assert!(sector.iter().all(|&b| b == sector[0]), "sectors are atomic");
            }
            if buf.chunks(SECTOR).any(|s| s[0] == 0) && buf.chunks(SECTOR).any(|s| s[0] == 1) {
                saw_torn = true;
            }
        }
        assert!(saw_torn, "some seed tears the write");
    }

    fn names(fs: &SimFs, paths: &[&str]) -> Vec<bool> {
        paths.iter().map(|p| fs.exists(Path::new(p))).collect()
    }

    #[test]
    fn directory_entries_are_durable_only_once_their_parent_is_synced() {
        let fs = SimFs::new();
        // /scratch is taken as existing before; /scratch/s is new.
        fs.create_dir_all(Path::new("/scratch/s")).unwrap();
        fs.create_dir_all(Path::new("/scratch/s/wal")).unwrap();
        let f = fs
            .open(Path::new("/scratch/s/wal/a"), OpenMode::CreateNew)
            .unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/scratch/s/wal")).unwrap();
        // The file's entry is durable, its directories' are not.
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        let all = [
            "/scratch",
            "/scratch/s",
            "/scratch/s/wal",
            "/scratch/s/wal/a",
        ];
        assert_eq!(names(&after, &all), [true, false, false, false]);
        // KeepAll keeps them.
        let after = fs.crash(CrashMode::KeepAll, &mut SimRng::new(1));
        assert_eq!(names(&after, &all), [true; 4]);
        // Synced from the top down, everything survives a LoseAll cut.
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/scratch/s")).unwrap();
        fs.create_dir_all(Path::new("/scratch/s/wal")).unwrap();
        let f = fs
            .open(Path::new("/scratch/s/wal/a"), OpenMode::CreateNew)
            .unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/scratch/s/wal")).unwrap();
        fs.sync_dir(Path::new("/scratch/s")).unwrap();
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        assert_eq!(
            names(&after, &all),
            [true, false, false, false],
            "/scratch unsynced"
        );
        fs.sync_dir(Path::new("/scratch")).unwrap_err(); // the old one is off
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/scratch/s")).unwrap();
        fs.create_dir_all(Path::new("/scratch/s/wal")).unwrap();
        let f = fs
            .open(Path::new("/scratch/s/wal/a"), OpenMode::CreateNew)
            .unwrap();
        f.sync_data().unwrap();
        for d in ["/scratch/s/wal", "/scratch/s", "/scratch"] {
            fs.sync_dir(Path::new(d)).unwrap();
        }
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        assert_eq!(names(&after, &all), [true; 4]);
        // A random cut never keeps an entry whose directory it lost.
        for seed in 0..64 {
            let fs = SimFs::new();
            fs.create_dir_all(Path::new("/scratch/s")).unwrap();
            fs.create_dir_all(Path::new("/scratch/s/wal")).unwrap();
            fs.open(Path::new("/scratch/s/wal/a"), OpenMode::CreateNew)
                .unwrap();
            let after = fs.crash(CrashMode::Random, &mut SimRng::new(seed));
            let n = names(&after, &all);
            assert!(n.windows(2).all(|w| w[0] || !w[1]), "seed {seed}: {n:?}");
        }
    }

    #[test]
    fn a_directory_renamed_into_place_is_durable_once_the_parent_is_synced() {
        let build = || {
            let fs = SimFs::new();
            fs.create_dir_all(Path::new("/p/.s.tmp")).unwrap();
            fs.create_dir_all(Path::new("/p/.s.tmp/wal")).unwrap();
            let f = fs
                .open(Path::new("/p/.s.tmp/wal/a"), OpenMode::CreateNew)
                .unwrap();
            f.write_all_at(b"x", 0).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(Path::new("/p/.s.tmp/wal")).unwrap();
            fs.sync_dir(Path::new("/p/.s.tmp")).unwrap();
            fs.rename(Path::new("/p/.s.tmp"), Path::new("/p/s"))
                .unwrap();
            assert!(!fs.exists(Path::new("/p/.s.tmp")));
            assert!(fs.exists(Path::new("/p/s/wal/a")));
            fs
        };
        let fs = build();
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        assert!(!after.exists(Path::new("/p/s")) && !after.exists(Path::new("/p/.s.tmp")));
        let fs = build();
        fs.sync_dir(Path::new("/p")).unwrap();
        let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
        assert!(after.exists(Path::new("/p/s/wal/a")));
        // A durable directory cannot be renamed (not modelled); a non-empty
        // target refuses.
        assert!(after.rename(Path::new("/p/s"), Path::new("/p/t")).is_err());
        after.create_dir_all(Path::new("/p/n/x")).unwrap();
        let e = after
            .rename(Path::new("/p/n"), Path::new("/p/s"))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    }
}
