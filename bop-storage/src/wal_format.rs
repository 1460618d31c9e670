//! SQLite's WAL format, as far as bop reads it: the 32-byte WAL header and
//! the 24-byte frame headers inside the payloads of log records
//! (sqlite.org/fileformat.html, "The Write-Ahead Log"). bop never changes
//! these bytes; it reads them to know, per frame, which page it holds and
//! whether it commits, so a wal-index can be handed to SQLite without
//! SQLite reading the whole WAL again (`bop-vfs/src/wal_index.rs`).
//!
//! A module of its own at the bottom of the crate: the record log's segment
//! index (`log/segment_index.rs`) and recovery store what it reads, and the
//! WAL image (`wal_image/`) keeps it per commit.
//!
//! ```text
//! WAL header (big-endian u32s)        frame header (big-endian u32s)
//!  0 magic 0x377f0682 | bigEndCksum    0 page number
//!  4 format version 3007000            4 database size in pages after a
//!  8 page size                           commit (0: not a commit frame)
//! 12 checkpoint sequence              8 salt-1, 12 salt-2 (as the header)
//! 16 salt-1, 20 salt-2               16 checksum-1, 20 checksum-2
//! 24 checksum-1, 28 checksum-2          (cumulative, through this frame)
//! ```

/// SQLite's WAL header and frame header sizes.
pub const SQLITE_WAL_HEADER_LEN: u64 = 32;
pub const SQLITE_FRAME_HEADER_LEN: u64 = 24;
pub const SQLITE_WAL_MAGIC: u32 = 0x377f_0682;
pub const SQLITE_WAL_VERSION: u32 = 3_007_000;

const HDR_OFF_MAGIC: usize = 0;
const HDR_OFF_VERSION: usize = 4;
const HDR_OFF_PAGE_SIZE: usize = 8;
const HDR_OFF_SALT: usize = 16;
const HDR_OFF_CKSUM: usize = 24;
const FRAME_OFF_PGNO: usize = 0;
const FRAME_OFF_DB_PAGES: usize = 4;
const FRAME_OFF_SALT: usize = 8;
const FRAME_OFF_CKSUM: usize = 16;
const _: () = assert!(HDR_OFF_CKSUM + 8 == SQLITE_WAL_HEADER_LEN as usize);
const _: () = assert!(FRAME_OFF_CKSUM + 8 == SQLITE_FRAME_HEADER_LEN as usize);

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// One frame as a wal-index needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub pgno: u32,
    /// Database size in pages after this frame when it commits, else 0.
    pub db_pages: u32,
}

/// The frames of one log record (one committed transaction or more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFrames {
    /// The WAL header, when the record starts the image (offset 0).
    pub header: Option<[u8; SQLITE_WAL_HEADER_LEN as usize]>,
    pub frames: Vec<FrameInfo>,
    /// The cumulative checksum in the record's last frame header, which
    /// is a commit frame.
    pub last_cksum: [u32; 2],
}

/// The page size a WAL header states, if the header is one SQLite would
/// accept (magic, version, power-of-two page size, header checksum).
pub fn header_page_size(h: &[u8; SQLITE_WAL_HEADER_LEN as usize]) -> Option<u32> {
    let magic = be32(h, HDR_OFF_MAGIC);
    let page_size = be32(h, HDR_OFF_PAGE_SIZE);
    if magic & !1 != SQLITE_WAL_MAGIC
        || be32(h, HDR_OFF_VERSION) != SQLITE_WAL_VERSION
        || !page_size.is_power_of_two()
        || !(512..=65536).contains(&page_size)
    {
        return None;
    }
    let big_endian = magic & 1 == 1;
    let ck = checksum(big_endian, &h[..HDR_OFF_CKSUM], [0, 0]);
    (ck == [be32(h, HDR_OFF_CKSUM), be32(h, HDR_OFF_CKSUM + 4)]).then_some(page_size)
}

/// The salts of a WAL header, as the raw bytes SQLite copies.
pub fn header_salt(h: &[u8; SQLITE_WAL_HEADER_LEN as usize]) -> [u8; 8] {
    h[HDR_OFF_SALT..HDR_OFF_SALT + 8]
        .try_into()
        .expect("8 bytes")
}

/// `walChecksumBytes`: SQLite's Fletcher-like sum over `data` (a multiple
/// of 8 bytes) in 32-bit words, read big-endian when `big_endian` (the WAL
/// header's magic has bit 0 set) and little-endian otherwise. The one copy
/// in the workspace: bop-libsql's WAL writer and the VFS's wal-index use it.
pub fn checksum(big_endian: bool, data: &[u8], init: [u32; 2]) -> [u32; 2] {
    debug_assert!(data.len().is_multiple_of(8));
    let (mut s1, mut s2) = (init[0], init[1]);
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (be32(pair, 0), be32(pair, 4))
        } else {
            (
                u32::from_le_bytes(pair[..4].try_into().expect("4")),
                u32::from_le_bytes(pair[4..].try_into().expect("4")),
            )
        };
        s1 = s1.wrapping_add(a).wrapping_add(s2);
        s2 = s2.wrapping_add(b).wrapping_add(s1);
    }
    [s1, s2]
}

/// What checking one frame of a generation needs from its WAL header: the
/// salts every frame repeats, the byte order of the checksums, and the
/// header's own checksum (what the first frame's checksum continues).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCheck {
    pub frame_len: u64,
    salt: [u8; 8],
    big_endian: bool,
    header_cksum: [u32; 2],
}

impl FrameCheck {
    /// The check of the generation whose header is `h`, if SQLite would
    /// accept that header.
    pub fn from_header(h: &[u8; SQLITE_WAL_HEADER_LEN as usize]) -> Option<FrameCheck> {
        let page_size = header_page_size(h)?;
        Some(FrameCheck {
            frame_len: SQLITE_FRAME_HEADER_LEN + u64::from(page_size),
            salt: header_salt(h),
            big_endian: be32(h, HDR_OFF_MAGIC) & 1 == 1,
            header_cksum: [be32(h, HDR_OFF_CKSUM), be32(h, HDR_OFF_CKSUM + 4)],
        })
    }

    /// The checksum the first frame after the header continues.
    pub fn header_cksum(&self) -> [u32; 2] {
        self.header_cksum
    }

    /// Whether `frame` (one whole frame) is a commit frame SQLite's own
    /// recovery accepts after a frame whose cumulative checksum is `prev`:
    /// this generation's salts, a page number, a non-zero database size,
    /// and a checksum over its first 8 header bytes and page that
    /// continues `prev`. A frame whose bytes are not all written yet (a
    /// write split at a sync point, stale bytes behind it) fails.
    pub fn is_valid_commit(&self, frame: &[u8], prev: [u32; 2]) -> bool {
        if frame.len() as u64 != self.frame_len
            || frame[FRAME_OFF_SALT..FRAME_OFF_SALT + 8] != self.salt
            || be32(frame, FRAME_OFF_PGNO) == 0
            || be32(frame, FRAME_OFF_DB_PAGES) == 0
        {
            return false;
        }
        let ck = checksum(self.big_endian, &frame[..8], prev);
        let ck = checksum(
            self.big_endian,
            &frame[SQLITE_FRAME_HEADER_LEN as usize..],
            ck,
        );
        ck == frame_cksum(frame)
    }
}

/// The cumulative checksum stored in a frame header.
pub fn frame_cksum(frame_header: &[u8]) -> [u32; 2] {
    [
        be32(frame_header, FRAME_OFF_CKSUM),
        be32(frame_header, FRAME_OFF_CKSUM + 4),
    ]
}

/// Per-database state of a scan over records in log order: the frame size
/// and salts of the current image generation.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenerationState {
    frame_len: Option<u64>,
    salt: [u8; 8],
    check: Option<FrameCheck>,
}

impl GenerationState {
    /// Continues a generation whose header is `h` (checked when read).
    pub fn resume(&mut self, h: &[u8; SQLITE_WAL_HEADER_LEN as usize]) {
        if let Some(page_size) = header_page_size(h) {
            self.frame_len = Some(SQLITE_FRAME_HEADER_LEN + u64::from(page_size));
            self.salt = header_salt(h);
            self.check = FrameCheck::from_header(h);
        }
    }

    /// The frame check of the current generation, when its header was read.
    pub fn check(&self) -> Option<FrameCheck> {
        self.check
    }
}

/// Reads the frames of a log record whose payload starts at `wal_offset`
/// of the WAL image. `None` when the record does not have the shape
/// SQLite's own recovery would accept without question (then bop leaves
/// the wal-index to SQLite): no usable header for its generation, a frame
/// not on a frame boundary, a salt that differs from the header's, or a
/// last frame that does not commit.
pub fn parse_record(
    gen: &mut GenerationState,
    wal_offset: u64,
    payload: &[u8],
) -> Option<RecordFrames> {
    let mut body = payload;
    let mut at = wal_offset;
    let mut header = None;
    if wal_offset == 0 {
        *gen = GenerationState::default();
        let h: [u8; SQLITE_WAL_HEADER_LEN as usize] = payload
            .get(..SQLITE_WAL_HEADER_LEN as usize)?
            .try_into()
            .ok()?;
        let page_size = header_page_size(&h)?;
        gen.frame_len = Some(SQLITE_FRAME_HEADER_LEN + u64::from(page_size));
        gen.salt = header_salt(&h);
        gen.check = FrameCheck::from_header(&h);
        header = Some(h);
        body = &payload[SQLITE_WAL_HEADER_LEN as usize..];
        at = SQLITE_WAL_HEADER_LEN;
    }
    let frame_len = gen.frame_len?;
    if at < SQLITE_WAL_HEADER_LEN
        || !(at - SQLITE_WAL_HEADER_LEN).is_multiple_of(frame_len)
        || body.is_empty()
        || !(body.len() as u64).is_multiple_of(frame_len)
    {
        return None;
    }
    let mut frames = Vec::with_capacity((body.len() as u64 / frame_len) as usize);
    let mut last_cksum = [0, 0];
    for f in body.chunks_exact(frame_len as usize) {
        if f[FRAME_OFF_SALT..FRAME_OFF_SALT + 8] != gen.salt {
            return None;
        }
        let pgno = be32(f, FRAME_OFF_PGNO);
        if pgno == 0 {
            return None;
        }
        frames.push(FrameInfo {
            pgno,
            db_pages: be32(f, FRAME_OFF_DB_PAGES),
        });
        last_cksum = [be32(f, FRAME_OFF_CKSUM), be32(f, FRAME_OFF_CKSUM + 4)];
    }
    if frames.last()?.db_pages == 0 {
        return None;
    }
    Some(RecordFrames {
        header,
        frames,
        last_cksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAL image the way SQLite does: header, then frames with
    /// cumulative checksums over the frame header's first 8 bytes and the page.
    pub fn image(page_size: u32, pages: &[(u32, u32)]) -> Vec<u8> {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&(SQLITE_WAL_MAGIC).to_be_bytes());
        h[4..8].copy_from_slice(&SQLITE_WAL_VERSION.to_be_bytes());
        h[8..12].copy_from_slice(&page_size.to_be_bytes());
        h[16..24].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut ck = checksum(false, &h[..24], [0, 0]);
        h[24..28].copy_from_slice(&ck[0].to_be_bytes());
        h[28..32].copy_from_slice(&ck[1].to_be_bytes());
        let mut out = h.to_vec();
        for &(pgno, db_pages) in pages {
            let mut f = vec![0u8; 24 + page_size as usize];
            f[0..4].copy_from_slice(&pgno.to_be_bytes());
            f[4..8].copy_from_slice(&db_pages.to_be_bytes());
            f[8..16].copy_from_slice(&h[16..24]);
            f[24] = pgno as u8;
            ck = checksum(false, &f[..8], ck);
            ck = checksum(false, &f[24..], ck);
            f[16..20].copy_from_slice(&ck[0].to_be_bytes());
            f[20..24].copy_from_slice(&ck[1].to_be_bytes());
            out.extend_from_slice(&f);
        }
        out
    }

    #[test]
    fn parses_records_of_one_generation() {
        let img = image(512, &[(1, 0), (2, 3), (3, 0), (1, 3)]);
        let fl = 24 + 512;
        let mut gen = GenerationState::default();
        let first = parse_record(&mut gen, 0, &img[..32 + 2 * fl]).unwrap();
        assert!(first.header.is_some());
        assert_eq!(
            first.frames,
            vec![
                FrameInfo {
                    pgno: 1,
                    db_pages: 0
                },
                FrameInfo {
                    pgno: 2,
                    db_pages: 3
                }
            ]
        );
        let second = parse_record(&mut gen, (32 + 2 * fl) as u64, &img[32 + 2 * fl..]).unwrap();
        assert_eq!(second.header, None);
        assert_eq!(second.frames.len(), 2);
        let tail = &img[img.len() - fl..];
        assert_eq!(
            second.last_cksum,
            [be32(tail, 16), be32(tail, 20)],
            "the last frame's cumulative checksum"
        );
    }

    #[test]
    fn refuses_what_sqlite_would_question() {
        let img = image(512, &[(1, 0), (2, 3)]);
        let fl = 24 + 512;
        // No header seen for this generation.
        assert!(parse_record(&mut GenerationState::default(), 32, &img[32..]).is_none());
        // A record that does not end with a commit frame.
        let mut gen = GenerationState::default();
        assert!(parse_record(&mut gen, 0, &img[..32 + fl]).is_none());
        // A bad header checksum.
        let mut bad = img.clone();
        bad[27] ^= 1;
        assert!(parse_record(&mut GenerationState::default(), 0, &bad).is_none());
        // A frame with another generation's salt.
        let mut bad = img.clone();
        bad[32 + fl + 9] ^= 1;
        assert!(parse_record(&mut GenerationState::default(), 0, &bad).is_none());
        // Not on a frame boundary.
        let mut gen = GenerationState::default();
        parse_record(&mut gen, 0, &img).unwrap();
        assert!(parse_record(&mut gen, img.len() as u64 + 8, &img[32..]).is_none());
    }
}
