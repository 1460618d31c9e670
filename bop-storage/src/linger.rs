//! The close grace: a store whose last database closed stays open in the
//! process for its `close_grace_ms` (a "lingering" store), so an open
//! soon after revives it without opening the manifest, checking it,
//! decoding its change log or scanning the record log.
//!
//! - A lingering store keeps its process lock (`LOCK`, which then says
//!   "lingering" after the pid): another process that finds it so waits up
//!   to `CLOSE_GRACE_MAX_MS` longer for it (`store_dir::lock_process`).
//! - At most [`LINGERING_MAX`] stores linger; beyond, the oldest closes at
//!   once.
//! - One background thread (the reaper) closes a store whose grace ran
//!   out: the normal clean shutdown, outside any registry lock.
//! - At process exit (`atexit`), every lingering store closes cleanly, so
//!   the next process finds a clean store.
//! - A revival checks that the store's files are the ones it left (the
//!   manifest's and the record log's segments' inode, size and mtime) and
//!   that `LOCK` is still the file it holds; else the lingering state is
//!   closed and the store opened afresh. A store whose directory was
//!   replaced closes without writing to it (`StoreDir::owns_path`).
//! - A store taken out of the list is closed while `closing` is held,
//!   taken before the list lock is released; an open that does not find
//!   its store in the list waits on `closing`, so it never takes from the
//!   registry a store being closed (and skips the checks above).

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::store_dir::{StoreDir, LOG_DIR};

/// At most this many stores linger in a process; the oldest closes first.
pub const LINGERING_MAX: usize = 16;

static REVIVALS: AtomicU64 = AtomicU64::new(0);

/// Lingering stores now and revivals so far, process-wide.
pub fn stats() -> (u64, u64) {
    (list().len() as u64, REVIVALS.load(Ordering::Relaxed))
}

/// What a store's files looked like when it began to linger.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint(Vec<(String, u64, u64, i64, i64)>);

impl Fingerprint {
    fn of(path: &Path) -> Option<Fingerprint> {
        let mut files = vec![path.join("manifest").join("data.mdb")];
        for e in std::fs::read_dir(path.join(LOG_DIR)).ok()? {
            files.push(e.ok()?.path());
        }
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let m = std::fs::metadata(&f).ok()?;
            out.push((
                f.to_string_lossy().into_owned(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
            ));
        }
        out.sort();
        Some(Fingerprint(out))
    }
}

struct Lingering {
    dir: Arc<StoreDir>,
    until: Instant,
    print: Fingerprint,
}

struct List {
    items: Mutex<VecDeque<Lingering>>,
    wake: Condvar,
    /// Held while the reaper closes stores, so the exit hook waits for a
    /// close in progress.
    closing: Mutex<()>,
}

impl List {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Lingering>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn list() -> &'static List {
    static L: OnceLock<List> = OnceLock::new();
    L.get_or_init(|| List {
        items: Mutex::new(VecDeque::new()),
        wake: Condvar::new(),
        closing: Mutex::new(()),
    })
}

/// Keeps `dir` open for its grace if the caller holds its last handle
/// (a database closing). Stores that must close now are closed here.
pub(crate) fn linger(dir: &Arc<StoreDir>) {
    let grace = dir.close_grace;
    if grace.is_zero() || Arc::strong_count(dir) != 1 || dir.fail.is_failed() || !dir.owns_path() {
        return;
    }
    let Some(print) = Fingerprint::of(&dir.path) else {
        return;
    };
    start();
    dir.mark_lingering(true);
    let mut items = list().lock();
    items.push_back(Lingering {
        dir: dir.clone(),
        until: Instant::now() + grace,
        print,
    });
    let over = items.len().saturating_sub(LINGERING_MAX);
    let evicted = items.drain(..over).collect::<Vec<_>>();
    list().wake.notify_one();
    close_taken(items, evicted);
}

/// Closes `stores`, just taken out of the list under `items`: `closing` is
/// taken before the list lock is released, so an open that finds its
/// store gone from the list waits for its close ([`revive`]).
fn close_taken(items: MutexGuard<'_, VecDeque<Lingering>>, stores: Vec<Lingering>) {
    if stores.is_empty() {
        return;
    }
    let closing = list().closing.lock().unwrap_or_else(|p| p.into_inner());
    drop(items);
    drop(stores);
    drop(closing);
}

/// Takes the lingering state of the store at `path` out of the list, if
/// any; the caller holds it while it opens through the registry, which
/// then finds it. A store whose files changed while it lingered is
/// closed, not revived. When the store is not in the list, waits for a
/// close in progress (it may be this store's: the registry must not hand
/// it out).
pub(crate) fn revive(path: &Path) -> Option<Arc<StoreDir>> {
    let found = {
        let mut items = list().lock();
        match items.iter().position(|l| l.dir.path == path) {
            Some(at) => items.remove(at)?,
            None => {
                drop(items);
                drop(list().closing.lock().unwrap_or_else(|p| p.into_inner()));
                return None;
            }
        }
    };
    if !found.dir.owns_path() || Fingerprint::of(path).as_ref() != Some(&found.print) {
        tracing::info!(path = %path.display(), "a lingering store's files changed; opening it afresh");
        let _closing = list().closing.lock().unwrap_or_else(|p| p.into_inner());
        drop(found);
        return None;
    }
    found.dir.mark_lingering(false);
    REVIVALS.fetch_add(1, Ordering::Relaxed);
    Some(found.dir)
}

/// Closes every lingering store now (the exit hook; tests).
pub fn close_all() {
    let mut items = list().lock();
    let all: Vec<_> = items.drain(..).collect();
    close_taken(items, all);
    // A close the reaper has in progress ends before this returns.
    drop(list().closing.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Closes the lingering store at `path`, if any (before its files are
/// changed behind bop's back, or opened with another I/O backend).
pub fn close(path: &Path) {
    let mut items = list().lock();
    let found = items
        .iter()
        .position(|l| l.dir.path == path)
        .and_then(|at| items.remove(at));
    close_taken(items, found.into_iter().collect());
}

/// The process that started the reaper and registered the exit hook.
static OWNER_PID: AtomicU64 = AtomicU64::new(0);

/// Starts the reaper and registers the exit hook, once.
fn start() {
    static START: Once = Once::new();
    START.call_once(|| {
        OWNER_PID.store(u64::from(std::process::id()), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("bop-linger".into())
            .spawn(reap);
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread to close lingering stores; they close at exit");
        }
        // SAFETY: `at_exit` is an `extern "C" fn()` that lives as long as
        // the process (the library is never unloaded).
        unsafe { libc::atexit(at_exit) };
    });
}

extern "C" fn at_exit() {
    // A child forked from the owner inherits the list but not the store:
    // closing it there would mark clean a store its parent still writes.
    if OWNER_PID.load(Ordering::Relaxed) != u64::from(std::process::id()) {
        return;
    }
    // No unwinding across the C boundary: the engine's panic catcher (the
    // one the front ends' guard wraps; bop-storage cannot reach that guard,
    // which lives above it) turns a panic into a report, logged. The outer
    // catch holds a panic raised while the report's payload drops.
    let caught = std::panic::catch_unwind(|| {
        if let Err(report) = crate::panic::catch(close_all) {
            tracing::error!(%report, "closing the lingering stores at exit panicked");
        }
    });
    drop(caught);
}

/// The reaper: closes stores whose grace ran out, outside the list lock.
fn reap() {
    let l = list();
    let mut items = l.lock();
    loop {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while i < items.len() {
            if items[i].until <= now {
                expired.extend(items.remove(i));
            } else {
                next = Some(next.map_or(items[i].until, |n| n.min(items[i].until)));
                i += 1;
            }
        }
        if !expired.is_empty() {
            let closing = l.closing.lock().unwrap_or_else(|p| p.into_inner());
            drop(items);
            drop(expired);
            drop(closing);
            items = l.lock();
            continue;
        }
        let wait = next.map_or(Duration::from_secs(3600), |n| n - now);
        items = l
            .wake
            .wait_timeout(items, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
