//! SQLite's WAL file format, byte for byte as `wal.c` writes and checks it
//! (sqlite.org/walformat.html): the 32-byte WAL header, 24-byte frame
//! headers, salts and the cumulative checksum. bop-libsql writes these bytes
//! into the store's SQLite WAL image, so a store written through libSQL is a
//! store SQLite's own WAL recovery accepts (the VFS front end), and the
//! reverse: [`parse_image`] reads an image written by stock SQLite.

use crate::error::{Error, Result};

// SQLite's WAL constants and checksum have one definition, in the engine
// (`bop_storage::wal_format`), which reads the same bytes at recovery.
pub use bop_storage::wal_format::{
    checksum, SQLITE_FRAME_HEADER_LEN as FRAME_HEADER_LEN, SQLITE_WAL_HEADER_LEN as WAL_HEADER_LEN,
    SQLITE_WAL_MAGIC as WAL_MAGIC, SQLITE_WAL_VERSION as WAL_VERSION,
};

/// Byte offset of frame `frame` (1-based) in the WAL image.
pub fn frame_offset(frame: u32, page_size: u32) -> u64 {
    WAL_HEADER_LEN + u64::from(frame - 1) * (FRAME_HEADER_LEN + u64::from(page_size))
}

/// Size of a WAL image holding `frames` frames (0 frames: no header either).
pub fn image_len(frames: u32, page_size: u32) -> u64 {
    if frames == 0 {
        0
    } else {
        frame_offset(frames + 1, page_size)
    }
}

/// What a WAL header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalHeader {
    /// Checksum words are big-endian (magic bit 0).
    pub big: bool,
    pub page_size: u32,
    /// Checkpoint sequence number.
    pub ckpt_seq: u32,
    /// Salt-1 and salt-2 as raw bytes (copied into every frame header).
    pub salt: [u8; 8],
    /// The header's checksum: the seed of the first frame's checksum.
    pub cksum: [u32; 2],
}

impl WalHeader {
    /// A header as `walFrames` writes it (little-endian checksums, the
    /// native order of the platforms bop runs on, and SQLite's choice there).
    pub fn new(page_size: u32, ckpt_seq: u32, salt: [u8; 8]) -> WalHeader {
        let mut h = WalHeader {
            big: false,
            page_size,
            ckpt_seq,
            salt,
            cksum: [0, 0],
        };
        h.cksum = checksum(h.big, &h.encode()[..24], [0, 0]);
        h
    }

    /// The header of the generation after this one (`walRestartHdr`):
    /// sequence + 1, salt-1 + 1, a new salt-2.
    pub fn restart(&self, salt2: [u8; 4]) -> WalHeader {
        let s1 = u32::from_be_bytes([self.salt[0], self.salt[1], self.salt[2], self.salt[3]])
            .wrapping_add(1);
        let mut salt = [0u8; 8];
        salt[..4].copy_from_slice(&s1.to_be_bytes());
        salt[4..].copy_from_slice(&salt2);
        WalHeader::new(self.page_size, self.ckpt_seq.wrapping_add(1), salt)
    }

    pub fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&(WAL_MAGIC | u32::from(self.big)).to_be_bytes());
        b[4..8].copy_from_slice(&WAL_VERSION.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.ckpt_seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.salt);
        b[24..28].copy_from_slice(&self.cksum[0].to_be_bytes());
        b[28..32].copy_from_slice(&self.cksum[1].to_be_bytes());
        b
    }

    /// Checks and decodes a header (`walIndexRecover`'s checks).
    pub fn decode(b: &[u8; 32]) -> Result<WalHeader> {
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let magic = be(0);
        if magic & !1 != WAL_MAGIC {
            return Err(Error::Corrupt(format!("WAL header magic {magic:#x}")));
        }
        if be(4) != WAL_VERSION {
            return Err(Error::Corrupt(format!("WAL format version {}", be(4))));
        }
        let big = magic & 1 == 1;
        let cksum = checksum(big, &b[..24], [0, 0]);
        if cksum != [be(24), be(28)] {
            return Err(Error::Corrupt("WAL header checksum mismatch".into()));
        }
        let mut salt = [0u8; 8];
        salt.copy_from_slice(&b[16..24]);
        Ok(WalHeader {
            big,
            page_size: be(8),
            ckpt_seq: be(12),
            salt,
            cksum,
        })
    }
}

/// Encodes a frame header (`walEncodeFrame`) and returns the new running
/// checksum.
pub fn encode_frame_header(
    hdr: &WalHeader,
    pgno: u32,
    n_truncate: u32,
    page: &[u8],
    prev: [u32; 2],
    out: &mut [u8],
) -> [u32; 2] {
    out[0..4].copy_from_slice(&pgno.to_be_bytes());
    out[4..8].copy_from_slice(&n_truncate.to_be_bytes());
    out[8..16].copy_from_slice(&hdr.salt);
    let c = checksum(hdr.big, &out[..8], prev);
    let c = checksum(hdr.big, page, c);
    out[16..20].copy_from_slice(&c[0].to_be_bytes());
    out[20..24].copy_from_slice(&c[1].to_be_bytes());
    c
}

/// A WAL image as SQLite's recovery sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedImage {
    pub header: Option<WalHeader>,
    /// Page number of each valid committed frame (index 0: frame 1).
    pub frames: Vec<u32>,
    /// Database size in pages after the last commit.
    pub n_page: u32,
    /// Running checksum after the last committed frame.
    pub cksum: [u32; 2],
    /// Number of commits found.
    pub commits: u64,
}

/// Reads a whole WAL image of `size` bytes through `read` and validates it
/// as `walIndexRecover` does: header, salts, page numbers and the checksum
/// chain; frames after the last commit frame are not part of the image.
/// bop's images only ever hold whole committed transactions, so bytes past
/// the last valid commit mean damage: they are reported, not ignored.
pub fn parse_image(
    size: u64,
    page_size: u32,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<()>,
) -> Result<ParsedImage> {
    let mut out = ParsedImage::default();
    if size == 0 {
        return Ok(out);
    }
    if size < WAL_HEADER_LEN {
        return Err(Error::Corrupt(format!("WAL image of {size} bytes")));
    }
    let mut hb = [0u8; 32];
    read(0, &mut hb)?;
    let hdr = WalHeader::decode(&hb)?;
    if hdr.page_size != page_size {
        return Err(Error::Corrupt(format!(
            "WAL page size {} differs from the database's {page_size}",
            hdr.page_size
        )));
    }
    out.header = Some(hdr);
    let frame_len = (FRAME_HEADER_LEN + u64::from(page_size)) as usize;
    let mut buf = vec![0u8; frame_len];
    let mut ck = hdr.cksum;
    let mut pending: Vec<u32> = Vec::new();
    let mut off = WAL_HEADER_LEN;
    let mut end = WAL_HEADER_LEN;
    out.cksum = hdr.cksum;
    while off + frame_len as u64 <= size {
        read(off, &mut buf)?;
        let be = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let (pgno, n_truncate) = (be(0), be(4));
        if pgno == 0 || buf[8..16] != hdr.salt {
            break;
        }
        let c = checksum(hdr.big, &buf[..8], ck);
        let c = checksum(hdr.big, &buf[24..], c);
        if c != [be(16), be(20)] {
            break;
        }
        ck = c;
        pending.push(pgno);
        off += frame_len as u64;
        if n_truncate != 0 {
            out.frames.append(&mut pending);
            out.n_page = n_truncate;
            out.cksum = ck;
            out.commits += 1;
            end = off;
        }
    }
    if end != size {
        return Err(Error::Corrupt(format!(
            "the WAL image is {size} bytes but its committed frames end at {end}"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_restart() {
        let h = WalHeader::new(4096, 0, *b"abcdefgh");
        assert_eq!(WalHeader::decode(&h.encode()).unwrap(), h);
        let r = h.restart(*b"WXYZ");
        assert_eq!(r.ckpt_seq, 1);
        assert_eq!(&r.salt[..4], b"abce");
        assert_eq!(WalHeader::decode(&r.encode()).unwrap(), r);
    }

    /// A commit padded to a sector by SQLite's VFS front end (a VFS without
    /// power-safe overwrite): the commit frame repeated, each copy a valid
    /// commit frame. The image parses whole; the padding frames count as
    /// frames of the last commit.
    #[test]
    fn parse_accepts_commits_padded_to_a_sector() {
        let ps = 512u32;
        let h = WalHeader::new(ps, 0, *b"saltsalt");
        let mut img = h.encode().to_vec();
        let mut ck = h.cksum;
        for (pgno, nt) in [(1u32, 0u32), (2, 2), (2, 2), (2, 2), (1, 2), (1, 2)] {
            let page = vec![pgno as u8; ps as usize];
            let mut fh = [0u8; 24];
            ck = encode_frame_header(&h, pgno, nt, &page, ck, &mut fh);
            img.extend_from_slice(&fh);
            img.extend_from_slice(&page);
        }
        let p = parse_image(img.len() as u64, ps, |off, b| {
            b.copy_from_slice(&img[off as usize..off as usize + b.len()]);
            Ok(())
        })
        .unwrap();
        assert_eq!(p.frames, vec![1, 2, 2, 2, 1, 1]);
        assert_eq!((p.n_page, p.commits, p.cksum), (2, 5, ck));
    }

    #[test]
    fn parse_accepts_committed_frames_only() {
        let ps = 512u32;
        let h = WalHeader::new(ps, 0, *b"saltsalt");
        let mut img = h.encode().to_vec();
        let mut ck = h.cksum;
        for (pgno, nt) in [(1u32, 0u32), (2, 2)] {
            let page = vec![pgno as u8; ps as usize];
            let mut fh = [0u8; 24];
            ck = encode_frame_header(&h, pgno, nt, &page, ck, &mut fh);
            img.extend_from_slice(&fh);
            img.extend_from_slice(&page);
        }
        let read = |img: &Vec<u8>| {
            let img = img.clone();
            move |off: u64, b: &mut [u8]| {
                b.copy_from_slice(&img[off as usize..off as usize + b.len()]);
                Ok(())
            }
        };
        let p = parse_image(img.len() as u64, ps, read(&img)).unwrap();
        assert_eq!(p.frames, vec![1, 2]);
        assert_eq!(p.n_page, 2);
        assert_eq!(p.cksum, ck);
        // A flipped byte in a page breaks the chain: reported.
        let mut bad = img.clone();
        bad[32 + 24 + 7] ^= 1;
        assert!(parse_image(bad.len() as u64, ps, read(&bad)).is_err());
    }
}
