//! The record log's recovery as a whole: fuzz bytes become the log segment of a real
//! store, which is then opened.
//!
//! Once per process, two template stores are built in a temporary directory
//! (page size 512, synthetic SQLite frames as in `bop-storage/tests/common.rs`):
//!
//! - template A: one generation of the SQLite WAL image, 3 records;
//! - template B: two generations (records 1-2, then a restart at offset 0
//!   with records 3-4), so the manifest's checkpoint LSN is 3 and recovery
//!   verifies but skips records below it.
//!
//! Input layout: byte 0 = flags, the rest = the segment's record area (the
//! bytes after the 4096-byte segment header), or with `HEADER` first 44
//! bytes that replace the segment header's used part.
//!
//! - `FIX_CRC` (bit 0): before writing, walk the records by their length
//!   fields and recompute payload and header checksums, so the fuzzer can
//!   reach the LSN / epoch / durable-LSN / WAL-offset logic behind them.
//! - `HEADER` (bit 1): the segment header comes from the input (its checksum
//!   fixed too with `FIX_CRC`).
//! - `TEMPLATE_B` (bit 2): start from template B.
//! - `WRITE_AFTER` (bit 3): after a successful open, commit one more
//!   transaction, close, reopen, and check it survived.
//!
//! Properties: `Store::open_shared` returns `Ok` or `Err`, never panics or
//! hangs. When it returns `Ok`, the WAL image it serves (`wal_size`,
//! `wal_read`) must be exactly what a reference scan of the records says:
//! the newest generation of consecutive, checksum-valid records (past a
//! failed record below the checkpoint, the scan resumes at the first later
//! record numbered at most the checkpoint LSN that checks out). Without
//! `FIX_CRC` and `HEADER` that image must also be a prefix of the template's
//! image (damage can only shorten the log).
//!
//! Each iteration uses a fresh store directory (the engine keeps a
//! process-wide registry of open stores by path and an exclusive flock),
//! under `/dev/shm` when it exists.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bop_storage::log::record::{RecordHeader, RECORD_HEADER_LEN, RECORD_MAGIC};
use bop_storage::log::segment::{segment_file_name, SEGMENT_HEADER_LEN};
use bop_storage::manifest::Manifest;
use bop_storage::{Store, StoreOptions};

pub const FIX_CRC: u8 = 1;
pub const HEADER: u8 = 2;
pub const TEMPLATE_B: u8 = 4;
pub const WRITE_AFTER: u8 = 8;

pub const PAGE: u32 = 512;
pub const FRAME: u64 = 24 + PAGE as u64;
const HEADER_USED: usize = 44;
/// Inputs are capped so one iteration stays fast (records are ~0.5 KiB).
const MAX_BODY: usize = 64 << 10;

/// A template store: its files, and what recovery of it must give.
pub struct Template {
    dir: PathBuf,
    /// Name of the one segment file under `wal/`.
    seg_name: String,
    /// The 4096-byte segment header.
    pub seg_header: Vec<u8>,
    /// Record area: the segment bytes from 4096 to the end of the last record.
    pub body: Vec<u8>,
    /// The SQLite WAL image the store serves after a clean reopen.
    pub image: Vec<u8>,
    first_lsn: u64,
    checkpoint_lsn: u64,
    /// The epoch recovery runs in (template epoch + 1).
    open_epoch: u32,
}

struct Templates {
    root: PathBuf,
    a: Template,
    b: Template,
}

fn scratch_root() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("bop-fuzz-{}", std::process::id()))
}

/// Removes scratch directories of earlier fuzzing processes that are gone
/// (libFuzzer exits without running destructors).
fn remove_stale_scratch(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("bop-fuzz-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let root = scratch_root();
        remove_stale_scratch(root.parent().unwrap());
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("scratch dir");
        let a = build_template(&root.join("tpl-a"), false);
        let b = build_template(&root.join("tpl-b"), true);
        Templates { root, a, b }
    })
}

/// Public for the corpus generator.
pub fn template(b: bool) -> &'static Template {
    let t = templates();
    if b {
        &t.b
    } else {
        &t.a
    }
}

fn opts() -> StoreOptions {
    StoreOptions {
        page_size: Some(PAGE),
        ..StoreOptions::default()
    }
}

/// Writes a SQLite-style transaction of `pages` (page number, fill) at
/// frame `first_frame` (1-based); frame 1 also writes the WAL header.
/// Returns the next frame number.
pub fn write_txn(store: &Store, first_frame: u64, pages: &[(u32, u8)], db_size: u32) -> u64 {
    if first_frame == 1 {
        store.wal_image_write(0, &wal_header()).unwrap();
    }
    let mut frame_no = first_frame;
    for (i, (pgno, fill)) in pages.iter().enumerate() {
        let off = 32 + (frame_no - 1) * FRAME;
        store
            .wal_image_write(off, &frame_header(*pgno, i + 1 == pages.len(), db_size))
            .unwrap();
        store
            .wal_image_write(off + 24, &vec![*fill; PAGE as usize])
            .unwrap();
        frame_no += 1;
    }
    frame_no
}

fn wal_header() -> [u8; 32] {
    let mut hdr = [0u8; 32];
    hdr[..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
    hdr[8..12].copy_from_slice(&PAGE.to_be_bytes());
    hdr
}

fn frame_header(pgno: u32, commit: bool, db_size: u32) -> [u8; 24] {
    let mut fh = [0u8; 24];
    fh[..4].copy_from_slice(&pgno.to_be_bytes());
    if commit {
        fh[4..8].copy_from_slice(&db_size.to_be_bytes());
    }
    fh
}

fn read_image(store: &Store) -> Vec<u8> {
    let mut img = vec![0u8; store.wal_image_size() as usize];
    let n = store
        .wal_image_read(0, &mut img)
        .expect("wal_read inside wal_size");
    assert_eq!(n, img.len(), "wal_read returned fewer bytes than wal_size");
    img
}

fn build_template(path: &Path, two_generations: bool) -> Template {
    let image;
    {
        let store = Store::open_shared(path, &opts()).expect("create template store");
        let mut f = write_txn(&store, 1, &[(1, 0xa1)], 1);
        store.wal_image_sync().unwrap();
        f = write_txn(&store, f, &[(2, 0xa2), (3, 0xa3)], 3);
        store.wal_image_sync().unwrap();
        if two_generations {
            // SQLite restarts the WAL after a checkpoint: a new header at 0.
            f = write_txn(&store, 1, &[(1, 0xb1)], 3);
            store.wal_image_sync().unwrap();
        }
        write_txn(&store, f, &[(4, 0xa4)], 4);
        store.wal_image_sync().unwrap();
        image = read_image(&store);
        // Leave the template as a crash would (not shut down cleanly), so
        // damaged records may be read as a torn tail: the interesting path.
        store.halt();
    }
    let manifest = Manifest::open(&path.join("manifest"), false, PAGE).expect("manifest");
    let state = manifest.load().expect("manifest state");
    drop(manifest);
    assert_eq!(state.segments.len(), 1, "template keeps to one segment");
    let seg_name = segment_file_name(state.segments[0].id);
    let seg = std::fs::read(path.join("wal").join(&seg_name)).unwrap();
    // The end of the records: walk the length fields.
    let mut pos = SEGMENT_HEADER_LEN as usize;
    while pos + 48 <= seg.len() && seg[pos..pos + 4] == RECORD_MAGIC {
        pos += 48 + u32::from_le_bytes(seg[pos + 32..pos + 36].try_into().unwrap()) as usize;
    }
    let t = Template {
        dir: path.to_path_buf(),
        seg_name,
        seg_header: seg[..SEGMENT_HEADER_LEN as usize].to_vec(),
        body: seg[SEGMENT_HEADER_LEN as usize..pos].to_vec(),
        image,
        first_lsn: state.segments[0].first_lsn.0,
        checkpoint_lsn: state.checkpoint_lsn.0,
        open_epoch: state.epoch.0 + 1,
    };
    // Self-check: the reference model agrees with the engine on the template.
    let mut seg_img = t.seg_header.clone();
    seg_img.extend_from_slice(&t.body);
    let m = model(&t, &seg_img);
    assert_eq!(
        m.image.as_deref(),
        Some(&t.image[..]),
        "model of the template"
    );
    t
}

/// What the reference scan says recovery keeps.
struct Model {
    /// The served WAL image, or `None` when the engine must refuse the
    /// records (they do not start an image or are not contiguous).
    image: Option<Vec<u8>>,
}

/// Reference scan of one segment: consecutive LSNs from `first_lsn`,
/// non-decreasing epochs below the epoch of this open, valid checksums;
/// records below the checkpoint LSN, and records of other databases of the
/// store (database id other than 0), are verified but not kept; the image
/// is the newest generation of the main database's records.
fn model(t: &Template, seg: &[u8]) -> Model {
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut expected = t.first_lsn;
    let mut last_epoch = 0u32;
    let mut kept: Vec<(u64, &[u8])> = Vec::new();
    // The record at `pos` numbered `lsn`, if it checks out whole.
    let valid = |pos: usize, lsn: u64, last_epoch: u32| -> Option<(RecordHeader, usize)> {
        if pos + RECORD_HEADER_LEN > seg.len() {
            return None;
        }
        let h = RecordHeader::decode(&seg[pos..]).ok()?;
        if h.lsn.0 != lsn || h.epoch.0 < last_epoch || h.epoch.0 >= t.open_epoch {
            return None;
        }
        let body = pos + RECORD_HEADER_LEN;
        let end = body + h.payload_len as usize;
        (end <= seg.len() && crc32c::crc32c(&seg[body..end]) == h.payload_crc).then_some((h, end))
    };
    while pos + RECORD_HEADER_LEN <= seg.len() {
        let Some((h, end)) = valid(pos, expected, last_epoch) else {
            // A failed record below the checkpoint: resume at the first
            // later record (by position) numbered after it and at most the
            // checkpoint LSN that checks out whole.
            if expected < t.checkpoint_lsn {
                let resume = (pos + 1..seg.len().saturating_sub(RECORD_HEADER_LEN - 1))
                    .filter(|&at| seg[at..at + 4] == RECORD_MAGIC)
                    .find_map(|at| {
                        let h = RecordHeader::decode(&seg[at..]).ok()?;
                        (h.lsn.0 > expected && h.lsn.0 <= t.checkpoint_lsn)
                            .then_some(())
                            .and(valid(at, h.lsn.0, last_epoch))
                            .map(|_| (at, h.lsn.0))
                    });
                if let Some((at, lsn)) = resume {
                    pos = at;
                    expected = lsn;
                    continue;
                }
            }
            break;
        };
        let body = pos + RECORD_HEADER_LEN;
        // Records of other databases of the store (any other id) continue
        // the log but are not part of the main database's image.
        if h.lsn.0 >= t.checkpoint_lsn && h.db.0 == 0 {
            kept.push((h.wal_offset, &seg[body..end]));
        }
        expected += 1;
        last_epoch = h.epoch.0;
        pos = end;
    }
    let image = match kept.iter().rposition(|(off, _)| *off == 0) {
        None if kept.is_empty() => Some(Vec::new()),
        None => None,
        Some(start) => {
            let mut img = Vec::new();
            let mut ok = true;
            for (off, payload) in &kept[start..] {
                if *off != img.len() as u64 {
                    ok = false;
                    break;
                }
                img.extend_from_slice(payload);
            }
            ok.then_some(img)
        }
    };
    Model { image }
}

/// Recomputes the checksums of the records found by walking length fields.
fn fix_record_crcs(body: &mut [u8]) {
    let mut pos = 0usize;
    while pos + RECORD_HEADER_LEN <= body.len() && body[pos..pos + 4] == RECORD_MAGIC {
        let len = u32::from_le_bytes(body[pos + 32..pos + 36].try_into().unwrap()) as usize;
        let end = pos.saturating_add(RECORD_HEADER_LEN).saturating_add(len);
        if end <= body.len() {
            let crc = crc32c::crc32c(&body[pos + RECORD_HEADER_LEN..end]);
            body[pos + 36..pos + 40].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&body[pos..pos + 44]);
        body[pos + 44..pos + 48].copy_from_slice(&crc.to_le_bytes());
        if end > body.len() {
            break;
        }
        pos = end;
    }
}

fn copy_dir(from: &Path, to: &Path, skip_seg: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst, skip_seg);
        } else if name != "LOCK" && name != "lock.mdb" && name.to_str() != Some(skip_seg) {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Builds the segment file image an input describes.
pub fn segment_image(t: &Template, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut header = t.seg_header.clone();
    let mut body = rest;
    if flags & HEADER != 0 {
        let n = body.len().min(HEADER_USED);
        header[..n].copy_from_slice(&body[..n]);
        body = &body[n..];
        if flags & FIX_CRC != 0 {
            let crc = crc32c::crc32c(&header[..40]);
            header[40..44].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let mut body = body[..body.len().min(MAX_BODY)].to_vec();
    if flags & FIX_CRC != 0 {
        fix_record_crcs(&mut body);
    }
    header.extend_from_slice(&body);
    header
}

/// The fuzz target.
pub fn log_recovery(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let t = template(flags & TEMPLATE_B != 0);
    let seg = segment_image(t, flags, rest);

    static N: AtomicU64 = AtomicU64::new(0);
    let dir = templates()
        .root
        .join(format!("run-{}", N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&t.dir, &dir, &t.seg_name);
    std::fs::write(dir.join("wal").join(&t.seg_name), &seg).unwrap();
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _cleanup = Cleanup(&dir);

    let store = match Store::open_shared(&dir, &opts()) {
        Ok(s) => s,
        Err(_) => return, // refusing damaged data is allowed
    };
    let got = read_image(&store);
    let m = model(t, &seg);
    match &m.image {
        Some(want) => assert!(
            got == *want,
            "recovered WAL image ({} bytes) differs from the reference scan ({} bytes)",
            got.len(),
            want.len()
        ),
        None => panic!(
            "open succeeded ({} bytes of WAL image) but the records do not form an image",
            got.len()
        ),
    }
    if flags & (FIX_CRC | HEADER) == 0 {
        assert!(
            t.image.starts_with(&got),
            "without forged checksums recovery may only shorten the log"
        );
    }
    if flags & WRITE_AFTER != 0 {
        write_after(store, &dir, got);
    }
}

/// Commits one more transaction after recovery, closes the store, reopens
/// it, and checks that the commit is there.
fn write_after(store: Arc<Store>, dir: &Path, image: Vec<u8>) {
    let size = image.len() as u64;
    let mut want;
    if size >= 32 && (size - 32) % FRAME == 0 {
        want = image;
        let frame = (size - 32) / FRAME + 1;
        write_txn(&store, frame, &[(1, 0xc1)], 1);
    } else {
        write_txn(&store, 1, &[(1, 0xc1)], 1);
        want = wal_header().to_vec();
    }
    want.extend_from_slice(&frame_header(1, true, 1));
    want.extend_from_slice(&[0xc1; PAGE as usize]);
    store.wal_image_sync().expect("commit after recovery");
    assert_eq!(read_image(&store), want, "image after the new commit");
    drop(store);
    let got = match Store::open_shared(dir, &opts()) {
        Ok(store) => read_image(&store),
        Err(e) => panic!("reopen after a commit failed: {e}"),
    };
    assert!(
        got == want,
        "commit after recovery lost at reopen: image {} bytes, want {}",
        got.len(),
        want.len()
    );
}
