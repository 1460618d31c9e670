//! bop's checkpoint policy: keeps each database's WAL short without relying
//! on SQLite's autocheckpoint (which an application may turn off, and which
//! never runs on an idle database).
//!
//! **When.** After every commit the writer's connection checks its
//! database's WAL image: at `wal_bytes_max` or more a checkpoint is
//! requested. A background thread also looks every second for databases
//! whose current WAL generation (frames since SQLite last restarted its
//! WAL) is older than `age_ms`.
//!
//! **How.** One process-wide thread runs the requests: it opens a
//! connection of its own to the database (through the VFS, so it joins the
//! open store), runs a PASSIVE checkpoint — which copies what it can
//! without waiting for or blocking any reader or writer — and closes the
//! connection. SQLite restarts the WAL at the next write transaction after
//! a complete checkpoint. A checkpoint is never run from inside a VFS call
//! (SQLite is not re-entrant there), and the VFS never needs a handle of the
//! application's connections.
//!
//! **Readers that block.** A PASSIVE checkpoint stops at the oldest
//! snapshot a reader still uses. While checkpoints stay incomplete the
//! database counts them; after `blocked_warn_ms` of that it logs one warning
//! (tracing and `sqlite3_log`) and counts it, and requests are retried at
//! most once a second.
//!
//! **Closing.** Closing the application's last connection to a database
//! waits for a checkpoint of that database that is running, so when close
//! returns, nothing of bop's holds the store open.
//!
//! Invariants (under `CkptState::sync`):
//! 1. `user_files` counts the open main-database handles of application
//!    connections (the checkpointer's own are not counted).
//! 2. `running` is set only while `user_files > 0` was true when the run
//!    started, and a close that brings `user_files` to 0 waits until
//!    `running` is clear.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use bop_frontend::report;
use bop_frontend::sys::{SQLITE_BUSY, SQLITE_MISUSE, SQLITE_WARNING};
use bop_storage::Store;

/// Runs one PASSIVE checkpoint on a connection of bop's own to the database
/// `uri` (a `file:` URI naming the VFS bop): returns the frames in the WAL
/// and the frames checkpointed, or SQLite's error code. The FFI shim
/// installs it at registration ([`install_runner`]) when the front end gave
/// SQLite's checkpoint functions; without it the policy is off.
pub type Runner = fn(&CStr) -> Result<(i32, i32), c_int>;

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Installs the function that runs checkpoints (once per process).
pub fn install_runner(run: Runner) {
    let _ = RUNNER.set(run);
}

/// The policy of one database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CkptConfig {
    /// Checkpoint once the WAL image is this large (0: never by size).
    pub wal_bytes_max: u64,
    /// Checkpoint once the WAL's oldest frame is this old (0: never by age).
    pub age_ms: u64,
    /// Warn once checkpoints have stayed incomplete this long.
    pub blocked_warn_ms: u64,
}

impl Default for CkptConfig {
    fn default() -> Self {
        CkptConfig {
            wal_bytes_max: 16 << 20,
            age_ms: 30_000,
            blocked_warn_ms: 10_000,
        }
    }
}

impl CkptConfig {
    fn enabled(&self) -> bool {
        self.wal_bytes_max > 0 || self.age_ms > 0
    }
}

/// How often requests are retried while checkpoints stay incomplete, and
/// how often the thread looks for old WALs.
const RETRY_INCOMPLETE: Duration = Duration::from_secs(1);
const AGE_SCAN_EVERY: Duration = Duration::from_secs(1);
/// Pause before a follow-up checkpoint when commits arrived while one ran
/// (it catches up with them, so the writer can restart the WAL).
const FOLLOW_UP_AFTER: Duration = Duration::from_millis(10);
/// How long a close waits for a running checkpoint, at most.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(30);

/// Counters of one database's checkpointer, for `PRAGMA bop_stats`.
#[derive(Debug, Default)]
pub struct CkptCounters {
    pub requests: AtomicU64,
    pub runs: AtomicU64,
    pub complete: AtomicU64,
    pub incomplete: AtomicU64,
    pub busy: AtomicU64,
    pub errors: AtomicU64,
    pub blocked_warnings: AtomicU64,
}

impl CkptCounters {
    /// The counters as `PRAGMA bop_stats` names them.
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("ckpt_requests", l(&self.requests)),
            ("ckpt_runs", l(&self.runs)),
            ("ckpt_complete", l(&self.complete)),
            ("ckpt_incomplete", l(&self.incomplete)),
            ("ckpt_busy", l(&self.busy)),
            ("ckpt_errors", l(&self.errors)),
            ("ckpt_blocked_warnings", l(&self.blocked_warnings)),
        ]
    }
}

#[derive(Debug, Default)]
struct Sync {
    /// Invariant 1.
    user_files: usize,
    /// Invariant 2.
    running: bool,
    /// The WAL generation seen last, and when it was first seen.
    generation: u64,
    generation_since: Option<Instant>,
    /// Since when checkpoints have been incomplete, and whether that was
    /// reported.
    blocked_since: Option<Instant>,
    warned: bool,
    /// No request before this (after an incomplete checkpoint).
    next_allowed: Option<Instant>,
    /// The WAL generation and size of the last request by size: the next
    /// waits for a new generation or another half of the bound (SQLite
    /// restarts the WAL only at a write transaction that starts with every
    /// frame checkpointed, so the WAL may stay long for a while after a
    /// complete checkpoint).
    last_request: Option<(u64, u64)>,
    /// The WAL image size after the last commit.
    wal_bytes: u64,
    /// The generation the age trigger fired for last (once per generation).
    aged_generation: Option<u64>,
}

/// The checkpointer's state for one database (in its `DbShared`).
#[derive(Debug)]
pub struct CkptState {
    pub cfg: CkptConfig,
    /// The path the database was opened by (`<store>` or `<store>/<name>`).
    path: PathBuf,
    sync: Mutex<Sync>,
    idle: Condvar,
    queued: AtomicBool,
    pub counters: CkptCounters,
}

thread_local! {
    /// Set while the checkpointer thread opens its own connection, so its
    /// main-database handle is not counted as the application's.
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the handle being opened on this thread is the checkpointer's.
pub fn opening_internal() -> bool {
    INTERNAL.with(Cell::get)
}

impl CkptState {
    pub fn new(cfg: CkptConfig, path: &Path) -> Arc<CkptState> {
        Arc::new(CkptState {
            cfg,
            path: path.to_path_buf(),
            sync: Mutex::new(Sync::default()),
            idle: Condvar::new(),
            queued: AtomicBool::new(false),
            counters: CkptCounters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Sync> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An application connection opened the database.
    pub fn file_opened(&self) {
        self.lock().user_files += 1;
    }

    /// An application connection closed it: the last one waits for a
    /// running checkpoint (invariant 2).
    pub fn file_closed(&self) {
        let mut s = self.lock();
        s.user_files = s.user_files.saturating_sub(1);
        if s.user_files == 0 {
            let deadline = Instant::now() + CLOSE_WAIT_MAX;
            while s.running {
                let now = Instant::now();
                if now >= deadline {
                    tracing::warn!(path = %self.path.display(), "closing while a background checkpoint still runs");
                    break;
                }
                s = self
                    .idle
                    .wait_timeout(s, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }

    /// Waits (at most `max`) while a background checkpoint of this database
    /// runs; returns whether one was running.
    pub fn wait_idle(&self, max: Duration) -> bool {
        let mut s = self.lock();
        if !s.running {
            return false;
        }
        let deadline = Instant::now() + max;
        while s.running {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .idle
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// The age of the current WAL generation (None: no generation seen).
    pub fn wal_age(&self) -> Option<Duration> {
        self.lock().generation_since.map(|t| t.elapsed())
    }
}

/// Called after each commit of the database whose checkpointer state is
/// `c`: requests a checkpoint when its WAL image passes the policy's size.
pub fn after_commit(c: &Arc<CkptState>, store: &Arc<Store>) {
    if !c.cfg.enabled() {
        return;
    }
    let (wal_bytes, generation) = (store.wal_image_size(), store.wal_image_generation());
    let max = c.cfg.wal_bytes_max;
    let wanted = {
        let mut s = c.lock();
        s.wal_bytes = wal_bytes;
        if s.generation_since.is_none() || s.generation != generation {
            s.generation = generation;
            s.generation_since = Some(Instant::now());
        }
        let grown = s
            .last_request
            .is_none_or(|(g, size)| g != generation || wal_bytes >= size + max / 2);
        let wanted = max > 0
            && wal_bytes >= max
            && grown
            && s.next_allowed.is_none_or(|t| Instant::now() >= t);
        if wanted {
            s.last_request = Some((generation, wal_bytes));
        }
        wanted
    };
    if wanted {
        request(c, Arc::downgrade(store), None);
    }
}

/// A queued checkpoint: the database's checkpointer state, and its store
/// by a weak reference (a queued request never keeps a store open; see
/// `run`).
type Job = (Arc<CkptState>, Weak<Store>);

/// Queues a checkpoint (at most one queued per database), at once or at
/// `due`.
fn request(c: &Arc<CkptState>, db: Weak<Store>, due: Option<Instant>) {
    let Some(t) = thread() else { return };
    if c.queued.swap(true, Ordering::AcqRel) {
        return;
    }
    c.counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut q = t.lock();
    match due {
        Some(at) => q.delayed.push((at, (c.clone(), db))),
        None => q.queue.push_back((c.clone(), db)),
    }
    drop(q);
    t.wake.notify_one();
}

/// Makes the checkpointer look at the database of `c` (on `store`) for
/// age triggers.
pub fn register(c: &Arc<CkptState>, store: &Arc<Store>) {
    if !c.cfg.enabled() || c.cfg.age_ms == 0 {
        return;
    }
    let Some(t) = thread() else { return };
    let mut q = t.lock();
    q.known.retain(|(_, w)| w.strong_count() > 0);
    q.known.push((c.clone(), Arc::downgrade(store)));
}

struct Queue {
    queue: VecDeque<Job>,
    /// Follow-ups due at a time (at most one per database: `queued`).
    delayed: Vec<(Instant, Job)>,
    /// Databases watched for age triggers.
    known: Vec<Job>,
}

struct Checkpointer {
    q: Mutex<Queue>,
    wake: Condvar,
}

impl Checkpointer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The checkpointer thread, started on first use; `None` where no
/// [`Runner`] was installed (the C API gives no checkpoint functions) or
/// the thread cannot start.
fn thread() -> Option<&'static Checkpointer> {
    static T: OnceLock<Option<Checkpointer>> = OnceLock::new();
    T.get_or_init(|| {
        RUNNER.get()?;
        let spawned = std::thread::Builder::new()
            .name("bop-checkpoint".into())
            .spawn(|| {
                // The spawn returns before `T` is set: wait for it.
                let t = loop {
                    if let Some(Some(t)) = T.get() {
                        break t;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                };
                run_loop(t);
            });
        match spawned {
            Ok(_) => Some(Checkpointer {
                q: Mutex::new(Queue {
                    queue: VecDeque::new(),
                    delayed: Vec::new(),
                    known: Vec::new(),
                }),
                wake: Condvar::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the checkpointer thread; bop's checkpoint policy is off");
                None
            }
        }
    })
    .as_ref()
}

fn run_loop(t: &'static Checkpointer) {
    let mut last_scan = Instant::now();
    loop {
        let next = {
            let mut q = t.lock();
            loop {
                let now = Instant::now();
                let mut i = 0;
                while i < q.delayed.len() {
                    if q.delayed[i].0 <= now {
                        let (_, job) = q.delayed.swap_remove(i);
                        q.queue.push_back(job);
                    } else {
                        i += 1;
                    }
                }
                if let Some(job) = q.queue.pop_front() {
                    break Some(job);
                }
                if last_scan.elapsed() >= AGE_SCAN_EVERY {
                    break None;
                }
                let mut wait = AGE_SCAN_EVERY.saturating_sub(last_scan.elapsed());
                if let Some(due) = q.delayed.iter().map(|d| d.0).min() {
                    wait = wait.min(due.saturating_duration_since(now));
                }
                q = t
                    .wake
                    .wait_timeout(q, wait.max(Duration::from_millis(1)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        match next {
            Some((c, store)) => {
                // A panic must not end the thread (and must not leave
                // `running` set: `run` clears it on unwind).
                if let Err(msg) = bop_frontend::catch("the checkpointer", || run(&c, &store)) {
                    tracing::error!("{msg}");
                }
            }
            None => {
                last_scan = Instant::now();
                let mut q = t.lock();
                q.known.retain(|(_, w)| w.strong_count() > 0);
                let known = q.known.clone();
                drop(q);
                for (c, store) in known {
                    let due = {
                        let mut s = c.lock();
                        let due = s.user_files > 0
                            && s.wal_bytes > 0
                            && s.generation_since
                                .is_some_and(|t| t.elapsed().as_millis() as u64 >= c.cfg.age_ms)
                            && s.next_allowed.is_none_or(|t| Instant::now() >= t)
                            && s.aged_generation != Some(s.generation);
                        if due {
                            // Once per generation.
                            s.aged_generation = Some(s.generation);
                        }
                        due
                    };
                    if due {
                        request(&c, store, None);
                    }
                }
            }
        }
    }
}

/// Clears `running` (and wakes a waiting close) however `run` ends.
struct Running<'a>(&'a CkptState);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.lock().running = false;
        self.0.idle.notify_all();
    }
}

/// Runs one checkpoint on this (the checkpointer's) thread.
///
/// The store is reached only while `running` is set and only if an
/// application connection had its database open when the run started: the
/// last close waits for `running` to clear (invariant 2), so this thread
/// never holds the last reference to a store and never closes one.
fn run(c: &Arc<CkptState>, weak: &Weak<Store>) {
    c.queued.store(false, Ordering::Release);
    let store = {
        let mut s = c.lock();
        if s.user_files == 0 {
            return; // Nobody uses it any more: the last close checkpoints.
        }
        let Some(store) = weak.upgrade() else { return };
        s.running = true;
        store
    };
    let _running = Running(c);
    let result = match (file_uri(&c.path), RUNNER.get()) {
        (Some(uri), Some(runner)) => {
            INTERNAL.with(|f| f.set(true));
            let r = runner(&uri);
            INTERNAL.with(|f| f.set(false));
            r
        }
        _ => Err(SQLITE_MISUSE),
    };
    c.counters.runs.fetch_add(1, Ordering::Relaxed);
    // Commits that arrived while it ran are not covered: SQLite restarts
    // the WAL only once every frame is checkpointed, so catch up with them
    // shortly (a follow-up copies only those).
    let max = c.cfg.wal_bytes_max;
    let behind = match result {
        Ok((log, _)) => store.wal_image_frames() > log as u64 && store.wal_image_size() >= max,
        Err(_) => false,
    };
    drop(store);
    let mut s = c.lock();
    match result {
        Ok((log, done)) if done >= log => {
            c.counters.complete.fetch_add(1, Ordering::Relaxed);
            s.blocked_since = None;
            s.warned = false;
            s.next_allowed = None;
            if behind && max > 0 {
                drop(s);
                request(c, weak.clone(), Some(Instant::now() + FOLLOW_UP_AFTER));
            }
        }
        Ok((log, done)) => {
            c.counters.incomplete.fetch_add(1, Ordering::Relaxed);
            let since = *s.blocked_since.get_or_insert_with(Instant::now);
            s.next_allowed = Some(Instant::now() + RETRY_INCOMPLETE);
            if !s.warned && since.elapsed().as_millis() as u64 >= c.cfg.blocked_warn_ms {
                s.warned = true;
                c.counters.blocked_warnings.fetch_add(1, Ordering::Relaxed);
                let msg = format!(
                    "bop: {}: checkpoints have been incomplete for {} ms ({done} of {log} WAL frames copied): a reader holds an old snapshot, and the WAL grows until it ends",
                    c.path.display(),
                    since.elapsed().as_millis()
                );
                report(SQLITE_WARNING, &msg);
            }
        }
        Err(rc) if rc & 0xff == SQLITE_BUSY => {
            // Another checkpoint (an application's) is running.
            c.counters.busy.fetch_add(1, Ordering::Relaxed);
            s.next_allowed = Some(Instant::now() + RETRY_INCOMPLETE);
        }
        Err(rc) => {
            c.counters.errors.fetch_add(1, Ordering::Relaxed);
            s.next_allowed = Some(Instant::now() + RETRY_INCOMPLETE);
            tracing::warn!(path = %c.path.display(), rc, "background checkpoint failed");
        }
    }
}

/// `file:<path>?vfs=bop`, with the characters a URI path cannot hold
/// escaped.
fn file_uri(path: &Path) -> Option<CString> {
    let mut uri = String::from("file:");
    use std::os::unix::ffi::OsStrExt;
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'%' | b'?' | b'#' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push_str("?vfs=bop");
    CString::new(uri).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_a_uri_path_cannot_hold() {
        assert_eq!(
            file_uri(Path::new("/a b/x?y#z%1é.db"))
                .unwrap()
                .to_str()
                .unwrap(),
            "file:/a b/x%3Fy%23z%251%C3%A9.db?vfs=bop"
        );
    }
}
