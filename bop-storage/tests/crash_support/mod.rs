//! Crash injection at every step of multi-step work, shared by the
//! `crash_*.rs` tests (one scenario each).
//!
//! A scenario builds a durable state (`setup`), closes and reopens the
//! store, then runs one step of
//! multi-step work (a checkpoint publish, a compaction, a chunk deletion, a
//! segment drop) with a crash injected at its Nth point, for N = 1, 2, …
//! until the step completes without reaching N. A point is either a file
//! operation of the simulated file system (`SimFs::CRASH`: that operation
//! and all later ones fail; `path_filter` limits which operations count) or
//! a manifest commit (`Manifest::inject_commit_crash`: the commit is not
//! made, as if the power failed just before it). The power cut then keeps
//! all (a process kill), none, or a random part of what was not durable,
//! and the store is reopened — through the journal replay — on what a
//! reboot finds. LMDB lives on the real file system (on /dev/shm when there
//! is one, for speed): what it committed is durable, as its fsync makes it.
//!
//! After every reopen: the data is exactly the state before the step or
//! exactly the state after it (after it if the step returned), every
//! checksum verifies (`Store::verify`), the files in `chunks*/` and `wal/`
//! are exactly those the manifest lists (spares aside), the open-time scans
//! had no chunk or segment file left to remove (the journal did it), the
//! change log replayed from its start arrives at the manifest's state, and
//! the store goes on working.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::io::IoBackend;
use bop_storage::{Store, StoreOptions};

pub const PAGE: usize = 4096;

/// What the test knows about the store's content: page -> fill byte of a
/// database image, or the frames of the WAL image.
pub type Model = BTreeMap<u32, u8>;

/// A step: given the model before it, returns the models of the states it
/// goes through (the last one after it) and its result.
pub type Step = dyn Fn(&Store, &Model) -> (Vec<Model>, bop_storage::Result<()>);

pub struct Scenario<'a> {
    pub name: &'static str,
    pub opts: &'a dyn Fn(&SimFs) -> StoreOptions,
    /// Builds the durable state before the step; returns its model.
    pub setup: &'a dyn Fn(&Store) -> Model,
    /// The step, given the model before it; returns the models of the
    /// states it goes through, the last one after it (whether or not a
    /// crash interrupted it), and its result.
    pub step: &'a Step,
    /// Reads the model back from a reopened store.
    pub read: &'a dyn Fn(&Store) -> Model,
    /// Only file operations on paths containing this count as points.
    pub path_filter: &'static str,
    /// The named database of the store to run in (`None`: the main one).
    pub db: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub runs: u64,
    pub file_points: u64,
    pub commit_points: u64,
    /// Reopens that found the state before the step, one in between (a
    /// step of several publishes), or the state after it.
    pub ended_before: u64,
    pub ended_between: u64,
    pub ended_after: u64,
    pub journal_replays: u64,
    pub journal_files_removed: u64,
}

/// A directory for the stores' real part (LMDB).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Reads every page of the database image as a fill byte (each page must
/// be uniform).
pub fn read_pages(store: &Store) -> Model {
    let n = (store.db_size() / PAGE as u64) as u32;
    let mut buf = vec![0u8; PAGE];
    let mut out = Model::new();
    for p in 1..=n {
        store
            .db_read(u64::from(p - 1) * PAGE as u64, &mut buf)
            .unwrap_or_else(|e| panic!("page {p} unreadable after the crash: {e}"));
        assert!(buf.iter().all(|&b| b == buf[0]), "page {p} is torn");
        out.insert(p, buf[0]);
    }
    out
}

/// What SQLite reads: each page of the database image, then each frame
/// of the WAL image in order over it (page -> fill byte).
pub fn read_effective(store: &Store) -> Model {
    let frame = 24 + PAGE as u64;
    let mut model = read_pages(store);
    for f in 1..=store.stats().wal_image_frames {
        let off = 32 + (f - 1) * frame;
        let mut head = [0u8; 24];
        assert_eq!(store.wal_image_read(off, &mut head).unwrap(), 24);
        let pgno = u32::from_be_bytes(head[..4].try_into().unwrap());
        let mut page = vec![0u8; PAGE];
        assert_eq!(store.wal_image_read(off + 24, &mut page).unwrap(), PAGE);
        assert!(page.iter().all(|&b| b == page[0]), "frame {f} is torn");
        model.insert(pgno, page[0]);
    }
    model
}

/// Writes `pages` (page -> fill) into the database image.
pub fn write_pages(store: &Store, pages: &Model) -> bop_storage::Result<()> {
    for (&p, &fill) in pages {
        store.db_write(u64::from(p - 1) * PAGE as u64, &vec![fill; PAGE])?;
    }
    Ok(())
}

/// Files of `dir` in the simulated file system, by name.
fn names(fs: &SimFs, dir: &Path) -> BTreeSet<String> {
    if !fs.exists(dir) {
        return BTreeSet::new();
    }
    fs.list_dir(dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Asserts that the chunk and WAL directories hold exactly what the
/// manifest lists (WAL spares aside).
pub fn assert_no_leaks(fs: &SimFs, path: &Path, store: &Store, what: &str) {
    let m = store.manifest();
    let state = m.load_db(store.db_id()).unwrap();
    let listed: BTreeSet<String> = state
        .chunks
        .iter()
        .map(|c| format!("{:016x}.chunk", c.id.0))
        .collect();
    let chunk_dir = if store.db_id() == bop_storage::DbId::MAIN {
        path.join("chunks")
    } else {
        path.join(format!("chunks-{}", store.db_id().0))
    };
    assert_eq!(names(fs, &chunk_dir), listed, "{what}: chunk files");
    let segs: BTreeSet<String> = state
        .segments
        .iter()
        .map(|s| format!("{:016x}.seg", s.id.0))
        .collect();
    let all = names(fs, &path.join("wal"));
    let wal: BTreeSet<String> = all
        .iter()
        .filter(|n| !n.ends_with(".spare") && !n.ends_with(".idx"))
        .cloned()
        .collect();
    assert_eq!(wal, segs, "{what}: log segment files");
    // A segment index exists only beside its segment.
    for idx in all.iter().filter(|n| n.ends_with(".idx")) {
        let seg = idx.replace(".idx", ".seg");
        assert!(
            segs.contains(&seg),
            "{what}: index {idx} without its segment"
        );
    }
}

/// Replays the whole change log and asserts it arrives at the manifest's
/// state: the segments, the database's chunks, its size and chunk counter
/// (the log and the state are written in the same transactions).
pub fn assert_log_matches_state(store: &Store, what: &str) {
    use bop_storage::manifest::Change;
    let m = store.manifest();
    let (first, last, _) = m.change_log_bounds().unwrap();
    assert_eq!(first, 1, "{what}: the whole history is kept");
    let log = m.changes_after(0, usize::MAX).unwrap();
    assert_eq!(log.len() as u64, last, "{what}");
    let db = store.db_id();
    let mut segments = BTreeSet::new();
    let mut chunks = BTreeSet::new();
    let mut size = None;
    for (_, c) in log {
        match c {
            Change::SegmentAdded { id, .. } => assert!(segments.insert(id.0), "{what}"),
            Change::SegmentsDropped { ids, .. } => {
                for id in ids {
                    assert!(segments.remove(&id.0), "{what}: dropped {id:?} twice");
                }
            }
            Change::Published {
                db: d,
                db_pages,
                next_chunk_id,
                chunks_added,
                chunks_removed,
                ..
            } if d == db => {
                for c in chunks_added {
                    assert!(chunks.insert(c.id.0), "{what}");
                }
                for id in chunks_removed {
                    chunks.remove(&id.0);
                }
                size = Some((db_pages, next_chunk_id));
            }
            _ => {}
        }
    }
    let state = m.load_db(db).unwrap();
    let want: BTreeSet<u64> = state.segments.iter().map(|s| s.id.0).collect();
    assert_eq!(
        segments, want,
        "{what}: segments by the log and by the state"
    );
    let want: BTreeSet<u64> = state.chunks.iter().map(|c| c.id.0).collect();
    assert_eq!(chunks, want, "{what}: chunks by the log and by the state");
    // A database nothing was ever published for is empty (a new
    // database has no page until SQLite first writes one).
    let size = size.unwrap_or((0, bop_storage::types::ChunkId(1)));
    assert_eq!(
        size,
        (state.db_pages, state.next_chunk_id),
        "{what}: size by the log and by the state"
    );
}

#[derive(Clone, Copy, Debug)]
enum Point {
    FileOp(u64),
    Commit(u64),
}

/// Runs the scenario with a crash at every point, under each crash mode.
pub fn run(sc: &Scenario) -> Summary {
    let root = scratch();
    let mut sum = Summary::default();
    for (mi, mode) in [CrashMode::KeepAll, CrashMode::LoseAll, CrashMode::Random]
        .into_iter()
        .enumerate()
    {
        for commits in [false, true] {
            for n in 1.. {
                let point = if commits {
                    Point::Commit(n)
                } else {
                    Point::FileOp(n)
                };
                let seed = (mi as u64) << 32 | n << 1 | u64::from(commits);
                let what = format!("{}: {mode:?} crash at {point:?} (seed {seed})", sc.name);
                let path = root.path().join(format!("s{}", sum.runs));
                sum.runs += 1;
                let fired = one(sc, &path, mode, point, seed, &what, &mut sum);
                let _ = std::fs::remove_dir_all(&path);
                if !fired {
                    break;
                }
                match point {
                    Point::FileOp(_) => sum.file_points += 1,
                    Point::Commit(_) => sum.commit_points += 1,
                }
            }
        }
    }
    println!("{}: {sum:?}", sc.name);
    assert!(sum.file_points > 0 && sum.commit_points > 0, "{sum:?}");
    sum
}

/// One crash; returns whether the injected crash fired.
fn one(
    sc: &Scenario,
    path: &Path,
    mode: CrashMode,
    point: Point,
    seed: u64,
    what: &str,
    sum: &mut Summary,
) -> bool {
    let fs = SimFs::new();
    let store = Store::open_db_shared(path, sc.db, &(sc.opts)(&fs)).unwrap();
    let before = (sc.setup)(&store);
    // Closed and reopened: the step starts from a fresh open, with no
    // journal intent left from the setup (a chunk-id reservation is settled
    // at close), so each intent the step needs is its own.
    drop(store);
    let store = Store::open_db_shared(path, sc.db, &(sc.opts)(&fs)).unwrap();
    assert_eq!(
        store.stats().manifest.journal_replayed,
        0,
        "{what}: clean close"
    );
    let fired_before = fs.stats().faults_fired;
    match point {
        Point::FileOp(n) => fs.inject(Fault {
            op: FaultOp::Any,
            nth: n,
            errno: SimFs::CRASH,
            path_contains: Some(sc.path_filter.to_string()),
            sticky: false,
        }),
        Point::Commit(n) => store.manifest().inject_commit_crash(n),
    }
    let (states, result) = (sc.step)(&store, &before);
    let fired = match point {
        Point::FileOp(_) => fs.stats().faults_fired > fired_before,
        Point::Commit(_) => store.manifest().commit_crash_fired(),
    };
    if !fired {
        if let Err(e) = &result {
            panic!("{what}: the step failed without a crash: {e}");
        }
    }
    // The power goes (after the step when nothing fired).
    store.halt();
    drop(store);
    let after_fs = fs.crash(mode, &mut SimRng::new(seed));
    let store = Store::open_db_shared(path, sc.db, &(sc.opts)(&after_fs))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let got = (sc.read)(&store);
    let after = states.last().expect("a step has a final state");
    if result.is_ok() {
        assert_eq!(
            &got, after,
            "{what}: the step returned, so its result is durable"
        );
    } else {
        assert!(
            got == before || states.contains(&got),
            "{what}: neither the state before the step nor one it goes through:\n got    {got:?}\n before {before:?}\n states {states:?}"
        );
    }
    if got == before {
        sum.ended_before += 1;
    } else if &got == after {
        sum.ended_after += 1;
    } else {
        sum.ended_between += 1;
    }
    store
        .verify()
        .unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    let st = store.stats();
    assert_eq!(
        st.pages.stray_chunks_removed, 0,
        "{what}: the journal replay left chunk files to the scan"
    );
    assert_eq!(
        st.log_stray_segments_removed, 0,
        "{what}: the journal replay left segment files to the scan"
    );
    // Replayed: what is left is at most the chunk-id reservation of a
    // publish the open made itself (retained WAL generations applied).
    let left = store.manifest().journal_entries().unwrap();
    assert!(
        left.iter()
            .all(|(_, i)| matches!(i, bop_storage::manifest::Intent::ChunksInFlight { .. }))
            && left.len() <= 1,
        "{what}: journal replayed, yet {left:?}"
    );
    sum.journal_replays += st.manifest.journal_replayed;
    sum.journal_files_removed += st.manifest.journal_files_removed;
    assert_no_leaks(&after_fs, path, &store, what);
    assert_log_matches_state(&store, what);
    // The store goes on working: a checkpoint reuses the chunk ids a crash
    // may have left files under.
    store.db_write(0, &vec![0xEE; PAGE]).unwrap();
    store.db_sync().unwrap();
    store.verify().unwrap();
    assert_no_leaks(&after_fs, path, &store, what);
    drop(store);
    fired
}
