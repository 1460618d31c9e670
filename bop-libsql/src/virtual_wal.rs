//! libSQL's virtual WAL over a bop store: the role of SQLite's `wal.c`,
//! in safe code. The shim (`shim.rs`) turns libSQL's `libsql_wal_methods`
//! calls into calls of the [`VirtualWal`] trait implemented here by
//! [`BopWal`].
//!
//! Per database (one [`Shared`] per store database in the process, shared
//! by every libSQL connection to it):
//! - the **WAL image** lives in the store (`Store::wal_image_*`): standard
//!   SQLite WAL bytes (header, frame headers with salts and checksums,
//!   pages), written by [`BopWal::frames`]; each commit is sealed into one
//!   record of the record log (`Store::commit_phase_two`, or `Store::wal_image_sync` under
//!   `synchronous=FULL`, which waits for the durable watermark);
//! - the **index** (the wal-index's job) is in memory: the page number of
//!   every committed frame and, per page, its frames in ascending order;
//! - **snapshots**: a read transaction pins the committed frame count at
//!   its start (`max_frame`); frames above it are invisible to it. When the
//!   WAL is fully checkpointed at that moment the reader reads only the
//!   database (its effective frame limit `m_eff` is 0), as `wal.c`'s read
//!   lock 0.
//! - **one writer**: [`BopWal::begin_write`] fails with `SQLITE_BUSY` while
//!   another connection writes and with `SQLITE_BUSY_SNAPSHOT` when the
//!   connection's snapshot is older than the newest commit.
//!
//! Invariants (of `State`):
//! 1. `frames.len() == max_frame`; `index[p]` lists, ascending, every
//!    `f <= max_frame` with `frames[f - 1] == p`.
//! 2. The store's WAL image holds exactly `image_len(max_frame)` committed
//!    bytes, of generation `gen`, headed by `header`; `cksum` is the running
//!    checksum after frame `max_frame` (`header.cksum` when it is 0).
//! 3. `backfilled <= min(m_eff)` over the readers of generation `gen`: a
//!    checkpoint never copies a page version a reader must not see.
//! 4. The image is restarted (emptied, `gen + 1`) only when everything is
//!    backfilled, no writer is active and no reader of `gen` reads frames
//!    (`m_eff > 0`), so no reader ever reads a frame of another generation.
//!
//! Lock order: `Shared::ckpt`, then `Shared::state`, then the store's own
//! locks. Store I/O of a writer's frames happens without `state` (the
//! writer slot already excludes other writers).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};

use bop_storage::Store;

use crate::error::{Error, Result};
use crate::format::{
    encode_frame_header, frame_offset, image_len, parse_image, ParsedImage, WalHeader,
};

/// How long a checkpoint waits for another one to end before SQLITE_BUSY.
const CKPT_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// One page handed to [`VirtualWal::frames`].
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    pub pgno: u32,
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckpointMode {
    Passive,
    Full,
    Restart,
    Truncate,
}

/// What a checkpoint did (`PRAGMA wal_checkpoint`'s three columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// The checkpoint could not do all its mode asks (readers or a writer
    /// held it back): SQLITE_BUSY.
    pub busy: bool,
    /// Frames in the WAL.
    pub log_frames: u32,
    /// Frames of the WAL copied into the database.
    pub checkpointed: u32,
}

/// A page a checkpoint copied, for libSQL's per-page checkpoint callback
/// (called with the highest frame the checkpoint may copy, and `None` once
/// when the checkpoint completed).
pub struct CheckpointPage<'a> {
    pub page: &'a [u8],
    pub pgno: u32,
    pub frame: u32,
}

/// libSQL's per-page checkpoint callback: the highest frame the
/// checkpoint may copy, and the page copied (`None` once at completion).
pub type CheckpointCallback<'a> = dyn FnMut(u32, Option<CheckpointPage<'_>>) -> Result<()> + 'a;

/// libSQL's WAL methods as a safe trait: what `shim.rs` calls.
pub trait VirtualWal {
    /// Starts a read transaction (a snapshot); returns whether the database
    /// changed since this connection's previous one (the pager then drops
    /// its cache).
    fn begin_read(&mut self) -> Result<bool>;
    fn end_read(&mut self);
    /// The frame holding the newest version of `pgno` visible to this
    /// connection, or 0 (read it from the database file).
    fn find_frame(&self, pgno: u32) -> Result<u32>;
    /// The page stored in `frame`.
    fn read_frame(&self, frame: u32, out: &mut [u8]) -> Result<()>;
    /// Frame header and page of `frame`.
    fn read_frame_raw(&self, frame: u32, out: &mut [u8]) -> Result<()>;
    /// Database size in pages of the snapshot, or 0 if the WAL has none.
    fn db_size(&self) -> u32;
    fn begin_write(&mut self) -> Result<()>;
    fn end_write(&mut self) -> Result<()>;
    /// Rolls back the uncommitted frames; `undo_page` is told each page.
    fn undo(&mut self, undo_page: &mut dyn FnMut(u32) -> Result<()>) -> Result<()>;
    fn savepoint(&self) -> [u32; 4];
    fn savepoint_undo(&mut self, data: &mut [u32; 4]) -> Result<()>;
    fn frame_count(&self) -> u32;
    /// Writes frames; with `commit` (then `n_truncate > 0`) they end the
    /// transaction, and `sync` makes the commit durable before returning.
    fn frames(
        &mut self,
        page_size: u32,
        pages: &[Page<'_>],
        n_truncate: u32,
        commit: bool,
        sync: bool,
    ) -> Result<()>;
    fn checkpoint(
        &mut self,
        mode: CheckpointMode,
        busy: &mut dyn FnMut() -> bool,
        on_page: Option<&mut CheckpointCallback<'_>>,
    ) -> Result<CheckpointOutcome>;
    /// Frames at the last commit since the previous call (0: none).
    fn callback(&mut self) -> u32;
    fn exclusive_mode(&mut self, op: i32) -> i32;
    fn page_size(&self) -> u32;
    /// Puts the store in the failed state (a panic interrupted a write).
    fn fail(&self, reason: String);
    /// The connection closes.
    fn close(self: Box<Self>) -> Result<()>;
}

#[derive(Clone, Copy, Debug)]
struct Snap {
    gen: u64,
    max_frame: u32,
    /// Highest frame this reader reads from the WAL (0: none, the WAL was
    /// fully checkpointed when the snapshot was taken).
    m_eff: u32,
    n_page: u32,
    change: u64,
}

#[derive(Debug)]
struct State {
    gen: u64,
    header: WalHeader,
    max_frame: u32,
    n_page: u32,
    /// Commit counter: a snapshot with the same value sees the same data.
    change: u64,
    backfilled: u32,
    cksum: [u32; 2],
    frames: Vec<u32>,
    index: HashMap<u32, Vec<u32>>,
    /// Connection id -> (generation, m_eff) of its read transaction.
    readers: HashMap<u64, (u64, u32)>,
    writer: Option<u64>,
}

impl State {
    fn snap(&self) -> Snap {
        Snap {
            gen: self.gen,
            max_frame: self.max_frame,
            m_eff: if self.backfilled >= self.max_frame {
                0
            } else {
                self.max_frame
            },
            n_page: self.n_page,
            change: self.change,
        }
    }

    /// The highest frame a checkpoint may copy (invariant 3).
    fn safe_frame(&self) -> u32 {
        self.readers
            .values()
            .map(|&(g, m)| if g == self.gen { m } else { 0 })
            .min()
            .unwrap_or(self.max_frame)
            .min(self.max_frame)
    }

    /// Whether the image may be restarted (invariant 4).
    fn can_restart(&self, writer: Option<u64>) -> bool {
        self.max_frame > 0
            && self.backfilled == self.max_frame
            && self.writer == writer
            && self.readers.values().all(|&(g, m)| g != self.gen || m == 0)
    }

    /// Empties the image: the next commit writes a new header (sequence and
    /// salt-1 incremented, a new salt-2) at offset 0.
    fn restart(&mut self, store: &Store) -> Result<()> {
        // Publishes checkpointed pages, then moves the database's base in
        // the record log past the old generation (its segments can be
        // dropped).
        store.wal_image_truncate(0)?;
        self.gen += 1;
        self.header = self.header.restart(random_bytes());
        self.max_frame = 0;
        self.backfilled = 0;
        self.cksum = self.header.cksum;
        self.frames.clear();
        self.index.clear();
        Ok(())
    }
}

/// Everything the libSQL connections to one database in this process share.
#[derive(Debug)]
pub struct Shared {
    store: Arc<Store>,
    page_size: u32,
    state: Mutex<State>,
    /// Held by the running checkpoint.
    ckpt: Mutex<()>,
}

impl Shared {
    /// Builds the index from the store's WAL image (written by this front
    /// end or by stock SQLite through the VFS), validating it as SQLite's
    /// recovery does.
    ///
    /// When the store knows every frame of the image already (it read
    /// their headers when it recovered or sealed the records, see
    /// `Store::wal_index_seed`), the index is built from that list without
    /// reading the image; the records are verified at their first read.
    fn load(store: Arc<Store>) -> Result<Shared> {
        let page_size = store.page_size();
        let parsed = match image_from_seed(&store, page_size) {
            Some(p) => p,
            None => read_image(&store, page_size)?,
        };
        let header = parsed
            .header
            .unwrap_or_else(|| WalHeader::new(page_size, 0, random_bytes()));
        let mut index: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, &p) in parsed.frames.iter().enumerate() {
            index.entry(p).or_default().push(i as u32 + 1);
        }
        let max_frame = parsed.frames.len() as u32;
        Ok(Shared {
            page_size,
            state: Mutex::new(State {
                gen: 0,
                header,
                max_frame,
                n_page: parsed.n_page,
                change: parsed.commits,
                backfilled: 0,
                cksum: if max_frame == 0 {
                    header.cksum
                } else {
                    parsed.cksum
                },
                frames: parsed.frames,
                index,
                readers: HashMap::new(),
                writer: None,
            }),
            ckpt: Mutex::new(()),
            store,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads and validates the whole image (`format::parse_image`).
pub fn read_image(store: &Store, page_size: u32) -> Result<ParsedImage> {
    parse_image(store.wal_image_size(), page_size, |off, buf| {
        let n = store.wal_image_read(off, buf)?;
        if n != buf.len() {
            return Err(Error::Corrupt(format!("short read at WAL offset {off}")));
        }
        Ok(())
    })
}

/// The image as the store's frame list describes it, when the store has
/// one for the whole image and its header is one SQLite accepts for this
/// page size; the same result `read_image` gives, without reading.
pub fn image_from_seed(store: &Store, page_size: u32) -> Option<ParsedImage> {
    let seed = store.wal_index_seed()?;
    let header = WalHeader::decode(&seed.header).ok()?;
    if header.page_size != page_size {
        return None;
    }
    let last = seed.frames.last()?;
    Some(ParsedImage {
        header: Some(header),
        n_page: last.db_pages,
        cksum: seed.last_cksum,
        commits: seed.frames.iter().filter(|f| f.db_pages != 0).count() as u64,
        frames: seed.frames.iter().map(|f| f.pgno).collect(),
    })
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static REG: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Opens the virtual WAL of the database `db_path` (the full pathname
/// libSQL opened through the `bop` VFS) for one connection.
pub fn open(db_path: &Path) -> Result<BopWal> {
    let store = bop_vfs::open_store(db_path).ok_or_else(|| {
        Error::Misuse(format!(
            "{}: the database must be opened through the bop VFS",
            db_path.display()
        ))
    })?;
    // libSQL opens the WAL once the database is in WAL mode: what its
    // first transaction wrote in rollback mode (a new database) is
    // published first, so no WAL record is durable without the pages under
    // it.
    store.publish_before_wal()?;
    let key = store.path().to_path_buf();
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    let shared = match reg.get(&key).and_then(Weak::upgrade) {
        Some(s) if Arc::ptr_eq(&s.store, &store) => s,
        _ => {
            let s = Arc::new(Shared::load(store)?);
            reg.insert(key, Arc::downgrade(&s));
            s
        }
    };
    Ok(BopWal {
        id: next_id(),
        shared,
        snap: None,
        last_change: None,
        txn: None,
        exclusive: false,
        callback_frames: 0,
    })
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Salt bytes: SQLite only needs them to differ between generations and
/// databases; std's per-instance random hasher keys suffice.
fn random_bytes<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; N];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(next_id());
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
    }
    out
}

/// The open write transaction of a connection.
#[derive(Debug)]
struct Txn {
    gen: u64,
    /// Committed frames when it started; its own frames follow.
    base: u32,
    header: WalHeader,
    /// Running checksum after frame `base`.
    prev_cksum: [u32; 2],
    /// Page number of each of its frames (`base + 1 + i`). Their checksums
    /// are computed at commit (spilled frames may be rewritten in place).
    frames: Vec<u32>,
    /// Page -> its newest own frame.
    index: HashMap<u32, u32>,
    /// The WAL header is in the store's pending image (always, unless the
    /// image is empty and nothing was written yet).
    header_written: bool,
}

impl Txn {
    fn new(st: &State) -> Txn {
        Txn {
            gen: st.gen,
            base: st.max_frame,
            header: st.header,
            prev_cksum: st.cksum,
            frames: Vec::new(),
            index: HashMap::new(),
            header_written: st.max_frame > 0,
        }
    }

    fn next_frame(&self) -> u32 {
        self.base + self.frames.len() as u32 + 1
    }

    /// Keeps the first `keep` frames.
    fn truncate(&mut self, keep: usize) {
        if keep >= self.frames.len() {
            return;
        }
        self.frames.truncate(keep);
        self.index.clear();
        for (i, &p) in self.frames.iter().enumerate() {
            self.index.insert(p, self.base + i as u32 + 1);
        }
    }

    fn push(&mut self, pgno: u32) -> u32 {
        let f = self.next_frame();
        self.frames.push(pgno);
        self.index.insert(pgno, f);
        f
    }
}

/// One libSQL connection's view of the virtual WAL.
#[derive(Debug)]
pub struct BopWal {
    id: u64,
    shared: Arc<Shared>,
    snap: Option<Snap>,
    last_change: Option<u64>,
    txn: Option<Txn>,
    exclusive: bool,
    callback_frames: u32,
}

impl BopWal {
    fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Drops the transaction's frames from the store's pending image.
    fn discard_frames(&self, t: &Txn, keep: usize) -> Result<()> {
        let end = image_len(t.base + keep as u32, self.shared.page_size);
        if end == 0 && !t.header_written {
            return Ok(());
        }
        // Truncating to 0 empties the image; only happens when it held
        // nothing committed (base == 0).
        self.store().wal_image_truncate(end)?;
        Ok(())
    }

    fn read_exact(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        let n = self.store().wal_image_read(offset, out)?;
        if n != out.len() {
            return Err(Error::Corrupt(format!(
                "short read of {} bytes at WAL offset {offset} (got {n})",
                out.len()
            )));
        }
        Ok(())
    }

    /// Copies frames into the page store: every frame no reader of an
    /// older snapshot still needs, and under FULL and stronger modes waits
    /// (through the busy handler) for such readers to end first. Returns
    /// the generation and its frame count when the copy was planned, and
    /// whether pages were written: the caller publishes them (a WAL
    /// restart does, with the move of the base, in one manifest
    /// transaction). Until then they are served by the page store and kept
    /// by the WAL image's records, which only a restart gives up.
    fn backfill(
        &self,
        shared: &Shared,
        mode: CheckpointMode,
        busy: &mut BusyHandler<'_>,
        mut on_page: Option<&mut CheckpointCallback<'_>>,
    ) -> Result<(u64, u32, bool)> {
        let ps = shared.page_size;
        let (safe, max, gen, n_page, backfilled, mut copy) = loop {
            let st = shared.state();
            let safe = st.safe_frame();
            if mode >= CheckpointMode::Full && safe < st.max_frame && !busy.gave_up {
                drop(st);
                busy.wait();
                continue;
            }
            break collect(&st, safe);
        };
        copy.sort_unstable();
        let store = &shared.store;
        if !copy.is_empty() {
            // Only durable frames may reach the page store: a page copied
            // from a commit a crash then loses would mix two versions.
            store.wal_image_sync()?;
            let mut page = vec![0u8; ps as usize];
            for &(pgno, frame) in &copy {
                self.read_exact(frame_offset(frame, ps) + 24, &mut page)?;
                store.db_write(u64::from(pgno - 1) * u64::from(ps), &page)?;
                if let Some(cb) = on_page.as_mut() {
                    cb(
                        safe,
                        Some(CheckpointPage {
                            page: &page,
                            pgno,
                            frame,
                        }),
                    )?;
                }
            }
        }
        let complete = safe == max;
        if complete && max > 0 && backfilled < max {
            if let Some(cb) = on_page.as_mut() {
                cb(safe, None)?;
            }
            store.db_truncate(u64::from(n_page) * u64::from(ps))?;
        }
        let wrote = !copy.is_empty() || (complete && backfilled < max);
        let mut st = shared.state();
        if st.gen == gen && safe > st.backfilled {
            st.backfilled = safe;
        }
        Ok((gen, max, wrote))
    }

    fn commit(&mut self, pages: &[Page<'_>], n_truncate: u32, sync: bool) -> Result<()> {
        let ps = self.shared.page_size;
        let fl = 24 + ps as usize;
        let store = self.shared.store.clone();
        let mut t = self.txn.take().ok_or_else(|| {
            Error::Invariant("xFrames (commit) outside a write transaction".into())
        })?;
        let spilled_before = t.frames.len();
        let result = (|| -> Result<[u32; 2]> {
            let spilled = t.frames.len();
            let first_new = t.next_frame();
            let mut run = Vec::with_capacity(pages.len() * fl);
            let last = pages.len() - 1;
            for (i, p) in pages.iter().enumerate() {
                // The last page always gets a new frame: the commit frame.
                if i != last {
                    if let Some(&f) = t.index.get(&p.pgno) {
                        store.wal_image_write(frame_offset(f, ps) + 24, p.data)?;
                        continue;
                    }
                }
                t.push(p.pgno);
                run.extend_from_slice(&[0u8; 24]);
                run.extend_from_slice(p.data);
            }
            // Checksums, chained from the previous commit (or the header).
            let hdr = t.header;
            let mut ck = t.prev_cksum;
            let mut page = vec![0u8; ps as usize];
            let mut fh = [0u8; 24];
            for k in 0..spilled {
                let f = t.base + k as u32 + 1;
                self.read_exact(frame_offset(f, ps) + 24, &mut page)?;
                ck = encode_frame_header(&hdr, t.frames[k], 0, &page, ck, &mut fh);
                store.wal_image_write(frame_offset(f, ps), &fh)?;
            }
            let n_new = t.frames.len() - spilled;
            for j in 0..n_new {
                let nt = if j == n_new - 1 { n_truncate } else { 0 };
                let (h, d) = run[j * fl..(j + 1) * fl].split_at_mut(24);
                ck = encode_frame_header(&hdr, t.frames[spilled + j], nt, d, ck, h);
            }
            store.wal_image_write(frame_offset(first_new, ps), &run)?;
            // The commit frame's header once more, on its own: a 24-byte
            // frame header with a non-zero database size is how the store
            // recognizes the end of a transaction (as SQLite writes it).
            let last_f = t.next_frame() - 1;
            let at = (n_new - 1) * fl;
            store.wal_image_write(frame_offset(last_f, ps), &run[at..at + 24])?;
            if sync {
                store.wal_image_sync()?;
            } else {
                store.commit_phase_two()?;
            }
            Ok(ck)
        })();
        let ck = match result {
            Ok(ck) => ck,
            Err(e) => {
                // Keep the transaction without the frames this call added
                // (they may not have reached the store): SQLite rolls it
                // back (xUndo, or the end of its read transaction).
                t.truncate(spilled_before);
                self.txn = Some(t);
                return Err(e);
            }
        };
        let mut st = self.shared.state();
        if st.gen != t.gen || st.max_frame != t.base || st.writer != Some(self.id) {
            return Err(Error::Invariant(format!(
                "commit of generation {} at frame {} found generation {} at frame {}",
                t.gen, t.base, st.gen, st.max_frame
            )));
        }
        for (k, &pgno) in t.frames.iter().enumerate() {
            let f = t.base + k as u32 + 1;
            st.frames.push(pgno);
            st.index.entry(pgno).or_default().push(f);
        }
        st.max_frame = t.base + t.frames.len() as u32;
        st.n_page = n_truncate;
        st.change += 1;
        st.cksum = ck;
        let snap = st.snap();
        st.readers.insert(self.id, (snap.gen, snap.m_eff));
        self.snap = Some(snap);
        self.last_change = Some(snap.change);
        self.callback_frames = st.max_frame;
        self.txn = Some(Txn::new(&st));
        Ok(())
    }
}

impl VirtualWal for BopWal {
    fn begin_read(&mut self) -> Result<bool> {
        self.end_read();
        let mut st = self.shared.state();
        let snap = st.snap();
        st.readers.insert(self.id, (snap.gen, snap.m_eff));
        self.snap = Some(snap);
        let changed = self.last_change != Some(snap.change);
        self.last_change = Some(snap.change);
        Ok(changed)
    }

    fn end_read(&mut self) {
        // As wal.c, ending the read transaction ends a write transaction
        // still open: after an I/O or SQLITE_FULL error the pager drops
        // its state this way, without xUndo or xEndWriteTransaction.
        if self.txn.is_some() {
            if let Err(e) = self.end_write() {
                tracing::warn!(error = %e, "dropping an abandoned write transaction failed");
            }
        }
        if self.snap.take().is_some() {
            self.shared.state().readers.remove(&self.id);
        }
    }

    fn find_frame(&self, pgno: u32) -> Result<u32> {
        if let Some(&f) = self.txn.as_ref().and_then(|t| t.index.get(&pgno)) {
            return Ok(f);
        }
        let Some(s) = self.snap else {
            return Ok(0);
        };
        if s.m_eff == 0 {
            return Ok(0);
        }
        let st = self.shared.state();
        if st.gen != s.gen {
            return Err(Error::Invariant(format!(
                "a reader of WAL generation {} outlived it (now {})",
                s.gen, st.gen
            )));
        }
        Ok(st
            .index
            .get(&pgno)
            .and_then(|v| {
                let i = v.partition_point(|&f| f <= s.m_eff);
                (i > 0).then(|| v[i - 1])
            })
            .unwrap_or(0))
    }

    fn read_frame(&self, frame: u32, out: &mut [u8]) -> Result<()> {
        if frame == 0 {
            return Err(Error::Invariant("read of frame 0".into()));
        }
        self.read_exact(frame_offset(frame, self.shared.page_size) + 24, out)
    }

    fn read_frame_raw(&self, frame: u32, out: &mut [u8]) -> Result<()> {
        if frame == 0 {
            return Err(Error::Invariant("read of frame 0".into()));
        }
        self.read_exact(frame_offset(frame, self.shared.page_size), out)
    }

    fn db_size(&self) -> u32 {
        self.snap
            .filter(|s| s.max_frame > 0)
            .map_or(0, |s| s.n_page)
    }

    fn begin_write(&mut self) -> Result<()> {
        if self.txn.is_some() {
            return Ok(());
        }
        let Some(mut snap) = self.snap else {
            return Err(Error::Misuse(
                "write transaction without a read transaction".into(),
            ));
        };
        // Backpressure: wait (bounded) for room in the record log's write
        // buffer.
        self.store().admit_writer()?;
        let mut st = self.shared.state();
        if let Some(w) = st.writer {
            if w != self.id {
                return Err(Error::Busy("another connection is writing".into()));
            }
        }
        if snap.change != st.change {
            return Err(Error::BusySnapshot(
                "another connection committed since this transaction began".into(),
            ));
        }
        st.writer = Some(self.id);
        // Same data; the image may have been restarted since.
        snap = Snap {
            n_page: snap.n_page,
            ..st.snap()
        };
        st.readers.insert(self.id, (snap.gen, snap.m_eff));
        if st.can_restart(Some(self.id)) {
            // Not while a checkpoint copies frames of this generation.
            let guard = match self.shared.ckpt.try_lock() {
                Ok(g) => Some(g),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if guard.is_some() {
                if let Err(e) = st.restart(&self.shared.store) {
                    st.writer = None;
                    return Err(e);
                }
                snap = Snap {
                    n_page: snap.n_page,
                    ..st.snap()
                };
                st.readers.insert(self.id, (snap.gen, snap.m_eff));
            }
        }
        self.snap = Some(snap);
        self.txn = Some(Txn::new(&st));
        Ok(())
    }

    fn end_write(&mut self) -> Result<()> {
        let mut r = Ok(());
        if let Some(t) = self.txn.take() {
            // Uncommitted frames (or only the header of a new image) left
            // by a transaction that ended without commit or undo.
            if !t.frames.is_empty() || (t.base == 0 && t.header_written) {
                r = self.discard_frames(&t, 0);
            }
        }
        let mut st = self.shared.state();
        if st.writer == Some(self.id) {
            st.writer = None;
        }
        r
    }

    fn undo(&mut self, undo_page: &mut dyn FnMut(u32) -> Result<()>) -> Result<()> {
        let Some(mut t) = self.txn.take() else {
            return Ok(());
        };
        let mut r = t.frames.iter().try_for_each(|&p| undo_page(p));
        if r.is_ok() {
            r = self.discard_frames(&t, 0);
        }
        t.frames.clear();
        t.index.clear();
        if t.base == 0 {
            t.header_written = false;
        }
        self.txn = Some(t);
        r
    }

    fn savepoint(&self) -> [u32; 4] {
        match (&self.txn, self.snap) {
            (Some(t), _) => [t.next_frame() - 1, 0, 0, t.gen as u32],
            (None, Some(s)) => [s.max_frame, 0, 0, s.gen as u32],
            (None, None) => [0; 4],
        }
    }

    fn savepoint_undo(&mut self, data: &mut [u32; 4]) -> Result<()> {
        let Some(mut t) = self.txn.take() else {
            return Ok(());
        };
        if data[3] != t.gen as u32 {
            // The WAL restarted after the savepoint: none of the frames
            // written since belong to it.
            data[0] = 0;
            data[3] = t.gen as u32;
        }
        let keep = data[0].saturating_sub(t.base) as usize;
        let mut r = Ok(());
        if keep < t.frames.len() {
            r = self.discard_frames(&t, keep);
            t.truncate(keep);
            if t.base == 0 && keep == 0 {
                t.header_written = false;
            }
        }
        self.txn = Some(t);
        r
    }

    fn frame_count(&self) -> u32 {
        match (&self.txn, self.snap) {
            (Some(t), _) => t.next_frame() - 1,
            (None, Some(s)) => s.max_frame,
            (None, None) => self.shared.state().max_frame,
        }
    }

    fn frames(
        &mut self,
        page_size: u32,
        pages: &[Page<'_>],
        n_truncate: u32,
        commit: bool,
        sync: bool,
    ) -> Result<()> {
        let ps = self.shared.page_size;
        if page_size != ps {
            return Err(Error::Corrupt(format!(
                "page size {page_size} differs from the store's {ps}"
            )));
        }
        if pages.is_empty() || commit != (n_truncate > 0) {
            return Err(Error::Invariant(format!(
                "xFrames with {} pages, commit={commit}, n_truncate={n_truncate}",
                pages.len()
            )));
        }
        let store = self.shared.store.clone();
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| Error::Invariant("xFrames outside a write transaction".into()))?;
        if !t.header_written {
            store.wal_image_write(0, &t.header.encode())?;
            t.header_written = true;
        }
        if commit {
            return self.commit(pages, n_truncate, sync);
        }
        // A spill: frames of the open transaction. A page written before
        // is rewritten in place; new pages are appended with one write.
        let before = t.frames.len();
        let r = (|| -> Result<()> {
            let mut run = Vec::new();
            let mut run_start = None;
            for p in pages {
                if let Some(&f) = t.index.get(&p.pgno) {
                    store.wal_image_write(frame_offset(f, ps) + 24, p.data)?;
                    continue;
                }
                let f = t.push(p.pgno);
                run_start.get_or_insert(f);
                let mut fh = [0u8; 24];
                fh[..4].copy_from_slice(&p.pgno.to_be_bytes());
                run.extend_from_slice(&fh);
                run.extend_from_slice(p.data);
            }
            if let Some(f) = run_start {
                store.wal_image_write(frame_offset(f, ps), &run)?;
            }
            Ok(())
        })();
        if r.is_err() {
            // Frames appended by this call may not be in the store: forget
            // them (SQLite rolls the transaction back next).
            t.truncate(before);
        }
        r
    }

    fn checkpoint(
        &mut self,
        mode: CheckpointMode,
        busy: &mut dyn FnMut() -> bool,
        on_page: Option<&mut CheckpointCallback<'_>>,
    ) -> Result<CheckpointOutcome> {
        let shared = self.shared.clone();
        let _ckpt = lock_ckpt(&shared)?;
        let mut busy = BusyHandler {
            f: busy,
            gave_up: false,
        };
        // FULL, RESTART and TRUNCATE hold the writer slot, waited for
        // through the busy handler (wal.c's WAL_WRITE_LOCK): no commit
        // moves the WAL on while they wait for readers. Without it they run
        // as PASSIVE and report busy (wal.c's downgrade).
        let slot = if mode >= CheckpointMode::Full {
            WriterSlot::acquire(&shared, self.id, &mut busy)
        } else {
            None
        };
        let run = if mode >= CheckpointMode::Full && slot.is_none() {
            CheckpointMode::Passive
        } else {
            mode
        };
        let holder = slot.as_ref().map(|s| s.id);
        let r = self.backfill(&shared, run, &mut busy, on_page);
        let (gen, log_frames, wrote) = r?;
        let mut st = shared.state();
        let checkpointed = if st.gen == gen {
            st.backfilled.min(log_frames)
        } else {
            0
        };
        // RESTART and TRUNCATE, with every frame copied, wait through the
        // busy handler for the readers of this generation's frames to end
        // (wal.c's exclusive WAL_READ_LOCK(1..N)); readers that start
        // meanwhile read only the database, so the wait ends when the
        // readers already running do. Other modes restart when they can.
        let mut restarted = false;
        loop {
            if st.can_restart(holder) {
                st.restart(&shared.store)?;
                restarted = true;
                break;
            }
            let waits = run >= CheckpointMode::Restart
                && st.gen == gen
                && st.max_frame > 0
                && st.backfilled == st.max_frame;
            if !waits {
                break;
            }
            drop(st);
            let again = busy.wait();
            st = shared.state();
            if !again {
                break;
            }
        }
        let all_done = st.backfilled == st.max_frame;
        drop(st);
        drop(slot);
        if wrote && !restarted {
            shared.store.db_sync()?;
        }
        let busy_out = run != mode
            || match mode {
                CheckpointMode::Passive => false,
                CheckpointMode::Full => !all_done && !restarted,
                CheckpointMode::Restart | CheckpointMode::Truncate => !restarted && log_frames > 0,
            };
        // As wal.c: the WAL as it was when the checkpoint started (commits
        // that arrived meanwhile are the next checkpoint's); TRUNCATE
        // reports the emptied WAL.
        let zero = restarted && mode == CheckpointMode::Truncate;
        Ok(CheckpointOutcome {
            busy: busy_out,
            log_frames: if zero { 0 } else { log_frames },
            checkpointed: if zero { 0 } else { checkpointed },
        })
    }

    fn callback(&mut self) -> u32 {
        std::mem::take(&mut self.callback_frames)
    }

    fn exclusive_mode(&mut self, op: i32) -> i32 {
        // As wal.c: 0 leaves exclusive mode (1 if it was in it), > 0 enters
        // it, < 0 asks whether the connection is in normal mode.
        match op {
            0 => i32::from(std::mem::replace(&mut self.exclusive, false)),
            op if op > 0 => {
                self.exclusive = true;
                1
            }
            _ => i32::from(!self.exclusive),
        }
    }

    fn page_size(&self) -> u32 {
        self.shared.page_size
    }

    fn fail(&self, reason: String) {
        self.shared.store.fail(reason);
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        // No checkpoint at close (stock SQLite checkpoints at the last
        // close): the WAL image is durable in the store, the next open
        // indexes it, and closing stays fast.
        let r = self.end_write();
        self.txn = None;
        self.end_read();
        r
    }
}

/// Takes `Shared::ckpt`. Another checkpoint (often bop's background one,
/// which never waits for anything) is waited for, boundedly, so that an
/// application without a busy handler does not get a SQLITE_BUSY it would
/// not get without bop; past the bound it is SQLITE_BUSY, as in wal.c.
fn lock_ckpt(shared: &Shared) -> Result<MutexGuard<'_, ()>> {
    let deadline = std::time::Instant::now() + CKPT_WAIT_MAX;
    loop {
        match shared.ckpt.try_lock() {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy("another checkpoint is running".into()))
            }
        }
    }
}

/// SQLite's busy handler for one checkpoint: as in wal.c, once it gives
/// up it is not called again by the same checkpoint.
struct BusyHandler<'a> {
    f: &'a mut dyn FnMut() -> bool,
    gave_up: bool,
}

impl BusyHandler<'_> {
    /// Calls the handler (it sleeps); false once it gave up.
    fn wait(&mut self) -> bool {
        if !self.gave_up && !(self.f)() {
            self.gave_up = true;
        }
        !self.gave_up
    }
}

/// The writer slot (`State::writer`) held by a checkpoint; released when
/// dropped.
struct WriterSlot<'a> {
    shared: &'a Shared,
    id: u64,
    /// The connection held it before (it is released by its own
    /// transaction's end, not here).
    owned: bool,
}

impl<'a> WriterSlot<'a> {
    /// Takes the slot, calling the busy handler while another connection
    /// writes; `None` once the handler gives up.
    fn acquire(shared: &'a Shared, id: u64, busy: &mut BusyHandler<'_>) -> Option<Self> {
        loop {
            let mut st = shared.state();
            match st.writer {
                None => {
                    st.writer = Some(id);
                    return Some(WriterSlot {
                        shared,
                        id,
                        owned: true,
                    });
                }
                Some(w) if w == id => {
                    return Some(WriterSlot {
                        shared,
                        id,
                        owned: false,
                    })
                }
                Some(_) => {
                    drop(st);
                    if !busy.wait() {
                        return None;
                    }
                }
            }
        }
    }
}

impl Drop for WriterSlot<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.state();
        if self.owned && st.writer == Some(self.id) {
            st.writer = None;
        }
    }
}

/// Pages to copy: for each page, its newest frame at or below `safe` when
/// that frame is not yet backfilled (pages past the database end skipped).
fn collect(st: &State, safe: u32) -> (u32, u32, u64, u32, u32, Vec<(u32, u32)>) {
    let mut copy = Vec::new();
    if safe > st.backfilled {
        for (&pgno, frames) in &st.index {
            if pgno > st.n_page {
                continue;
            }
            let i = frames.partition_point(|&f| f <= safe);
            if i > 0 && frames[i - 1] > st.backfilled {
                copy.push((pgno, frames[i - 1]));
            }
        }
    }
    (safe, st.max_frame, st.gen, st.n_page, st.backfilled, copy)
}
