//! SQLite's writes of a commit padded to the sector size, byte for byte as
//! `sqlite3WalFrames` and `walWriteToLog` make them when the VFS does not
//! claim power-safe overwrite: the commit frame is repeated up to the next
//! sector boundary and the WAL is synced at that boundary, in the middle of
//! the last padding frame (its header or its page), before the rest of that
//! frame is written. Also: frames of a spilled transaction that rolled
//! back left behind the next, shorter commit, and a restart of the WAL.
//! After every commit the WAL image reads back as written; after a crash
//! (`Store::halt`) it holds a prefix of it that ends at a commit frame and
//! holds every synced commit, and its wal-index seed lists those frames.

use std::sync::Arc;

use bop_storage::wal_format::{checksum, FrameInfo};
use bop_storage::{Store, StoreOptions};

const PAGE: usize = 4096;
const FRAME: usize = 24 + PAGE;

/// A writer of SQLite WAL frames, and the image it believes it wrote.
struct Sqlite {
    store: Arc<Store>,
    ck: [u32; 2],
    salt: [u8; 8],
    image: Vec<u8>,
    /// Where the next frame goes (`mxFrame`'s end).
    end: usize,
    /// The end of the last commit frame acknowledged by a sync.
    synced: usize,
    /// Syncs in the middle of a frame header, and of a page.
    split_in_header: u32,
    split_in_page: u32,
}

impl Sqlite {
    fn new(store: Arc<Store>, salt1: u32) -> Sqlite {
        let mut w = Sqlite {
            store,
            ck: [0, 0],
            salt: [0; 8],
            image: Vec::new(),
            end: 32,
            synced: 0,
            split_in_header: 0,
            split_in_page: 0,
        };
        w.restart(salt1);
        w
    }

    /// A new WAL header (a restart), written when the next frame is.
    fn restart(&mut self, salt1: u32) {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
        h[4..8].copy_from_slice(&3_007_000u32.to_be_bytes());
        h[8..12].copy_from_slice(&(PAGE as u32).to_be_bytes());
        h[16..20].copy_from_slice(&salt1.to_be_bytes());
        h[20..24].copy_from_slice(b"salt");
        self.ck = checksum(false, &h[..24], [0, 0]);
        h[24..28].copy_from_slice(&self.ck[0].to_be_bytes());
        h[28..32].copy_from_slice(&self.ck[1].to_be_bytes());
        self.salt.copy_from_slice(&h[16..24]);
        self.write(0, &h, None);
        self.end = 32;
    }

    /// `walWriteToLog`: a write crossing the sync point is split there and
    /// the WAL synced in between.
    fn write(&mut self, off: usize, data: &[u8], sync_point: Option<usize>) {
        if let Some(s) = sync_point.filter(|&s| off < s && off + data.len() >= s) {
            if (s - 32) % FRAME < 24 {
                self.split_in_header += u32::from((s - 32) % FRAME > 0 && off + data.len() > s);
            } else {
                self.split_in_page += u32::from(off + data.len() > s);
            }
            let (a, b) = data.split_at(s - off);
            self.write(off, a, None);
            self.store.wal_image_sync().unwrap();
            if b.is_empty() {
                return;
            }
            return self.write(s, b, None);
        }
        self.store.wal_image_write(off as u64, data).unwrap();
        if self.image.len() < off + data.len() {
            self.image.resize(off + data.len(), 0);
        }
        self.image[off..off + data.len()].copy_from_slice(data);
    }

    /// `walWriteOneFrame`: the header, then the page.
    fn frame(&mut self, pgno: u32, commit: u32, fill: u8, sync_point: Option<usize>) {
        let page = vec![fill; PAGE];
        let mut fh = [0u8; 24];
        fh[0..4].copy_from_slice(&pgno.to_be_bytes());
        fh[4..8].copy_from_slice(&commit.to_be_bytes());
        fh[8..16].copy_from_slice(&self.salt);
        self.ck = checksum(false, &fh[..8], self.ck);
        self.ck = checksum(false, &page, self.ck);
        fh[16..20].copy_from_slice(&self.ck[0].to_be_bytes());
        fh[20..24].copy_from_slice(&self.ck[1].to_be_bytes());
        let off = self.end;
        self.write(off, &fh, sync_point);
        self.write(off + 24, &page, sync_point);
        self.end += FRAME;
    }

    /// A committed transaction of `pages`, padded to `sector` and synced.
    fn commit(&mut self, pages: &[(u32, u8)], db_pages: u32, sector: usize) {
        let n = pages.len();
        for (i, &(pgno, fill)) in pages.iter().enumerate() {
            self.frame(pgno, if i + 1 == n { db_pages } else { 0 }, fill, None);
        }
        let committed = self.end;
        let sync_point = self.end.div_ceil(sector) * sector;
        let (pgno, fill) = pages[n - 1];
        if sync_point == self.end {
            self.store.wal_image_sync().unwrap();
        }
        while self.end < sync_point {
            self.frame(pgno, db_pages, fill, Some(sync_point));
        }
        self.synced = committed;
        self.check_reads();
    }

    /// Frames of a transaction that spills, then rolls back: SQLite
    /// rewinds to `mxFrame`, so the next commit writes over them.
    fn spill_and_roll_back(&mut self, frames: u32) {
        let end = self.end;
        for i in 0..frames {
            self.frame(100 + i, 0, 0xee, None);
        }
        self.end = end;
        self.ck = frame_cksum(&self.image, end);
    }

    /// Every byte SQLite wrote reads back.
    fn check_reads(&self) {
        let mut buf = vec![0u8; self.end];
        let n = self.store.wal_image_read(0, &mut buf).unwrap();
        assert!(n >= self.end, "the image holds {n} of {} bytes", self.end);
        assert!(
            buf == self.image[..self.end],
            "the WAL image reads back as written"
        );
    }
}

/// The cumulative checksum of the frame ending at `end` (the header's when
/// `end` is 32).
fn frame_cksum(image: &[u8], end: usize) -> [u32; 2] {
    let at = if end == 32 { 24 } else { end - FRAME + 16 };
    let be = |i: usize| u32::from_be_bytes(image[i..i + 4].try_into().unwrap());
    [be(at), be(at + 4)]
}

fn frames_of(image: &[u8], end: usize) -> Vec<FrameInfo> {
    (32..end)
        .step_by(FRAME)
        .map(|f| FrameInfo {
            pgno: u32::from_be_bytes(image[f..f + 4].try_into().unwrap()),
            db_pages: u32::from_be_bytes(image[f + 4..f + 8].try_into().unwrap()),
        })
        .collect()
}

fn run(sector: usize, commits: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("padded.bop");
    let store = Store::open_shared(&path, &StoreOptions::default()).unwrap();
    let mut w = Sqlite::new(store.clone(), 7);
    for c in 0..commits {
        let n = 1 + (c % 3);
        let pages: Vec<(u32, u8)> = (0..n)
            .map(|i| (1 + (c + i) % 5, (c * 3 + i) as u8))
            .collect();
        w.commit(&pages, 5, sector);
        if c % 4 == 1 {
            w.spill_and_roll_back(3);
        }
    }
    // A restart: the next generation's first commit, padded too.
    w.restart(8);
    w.image.truncate(32);
    w.commit(&[(2, 0x22), (3, 0x33)], 5, sector);
    w.commit(&[(4, 0x44)], 5, sector);
    let (synced, image) = (w.synced, w.image[..w.end].to_vec());
    assert!(w.split_in_page > 0, "sector {sector}: a sync inside a page");
    if sector == 512 {
        assert!(w.split_in_header > 0, "a sync inside a frame header");
    }
    store.halt();
    drop(w);
    drop(store);

    let store = Store::open_shared(&path, &StoreOptions::default()).unwrap();
    let size = store.wal_image_size() as usize;
    assert!(
        (synced..=image.len()).contains(&size),
        "sector {sector}: {size} bytes after the crash; the last synced commit ends at {synced}, SQLite wrote {}",
        image.len()
    );
    assert_eq!((size - 32) % FRAME, 0, "whole frames");
    let mut buf = vec![0u8; size];
    store.wal_image_read(0, &mut buf).unwrap();
    assert!(
        buf == image[..size],
        "sector {sector}: a prefix of what SQLite wrote"
    );
    let seed = store.wal_index_seed().expect("every frame known");
    assert_eq!(
        seed.frames,
        frames_of(&image, size),
        "sector {sector}: wal-index seed"
    );
    assert_ne!(
        seed.frames.last().unwrap().db_pages,
        0,
        "ends at a commit frame"
    );
    assert_eq!(seed.last_cksum, frame_cksum(&image, size));
}

#[test]
fn commits_padded_to_512_byte_sectors() {
    // The sync point falls in frame headers and in pages.
    run(512, 70);
}

#[test]
fn commits_padded_to_4096_byte_sectors() {
    run(4096, 30);
}

#[test]
fn commits_padded_to_65536_byte_sectors() {
    run(65536, 8);
}
