//! Property test of the WAL image parser (`bop_libsql::format::parse_image`,
//! which reads an image SQLite or libSQL wrote): for any valid image cut or
//! damaged anywhere, it never panics, and it accepts the bytes only when
//! they are the whole image or the image cut exactly after a commit; then
//! it reports exactly that commit's frames. Damage is never read as data.

use bop_libsql::format::{encode_frame_header, parse_image, WalHeader};
use proptest::prelude::*;

const PAGE: u32 = 512;
const FRAME: usize = 24 + PAGE as usize;

/// A valid image of `commits` (each a list of page numbers; the last frame
/// of each carries the database size), and where each commit ends.
fn image(commits: &[Vec<u32>], salt: [u8; 8]) -> (Vec<u8>, Vec<usize>) {
    let h = WalHeader::new(PAGE, 3, salt);
    let mut img = h.encode().to_vec();
    let mut ck = h.cksum;
    let mut ends = Vec::new();
    for (c, pages) in commits.iter().enumerate() {
        for (i, &pgno) in pages.iter().enumerate() {
            let page: Vec<u8> = (0..PAGE)
                .map(|b| (b as usize * 7 + c + pgno as usize) as u8)
                .collect();
            let size = if i + 1 == pages.len() {
                100 + c as u32
            } else {
                0
            };
            let mut fh = [0u8; 24];
            ck = encode_frame_header(&h, pgno, size, &page, ck, &mut fh);
            img.extend_from_slice(&fh);
            img.extend_from_slice(&page);
        }
        ends.push(img.len());
    }
    (img, ends)
}

fn parse(img: &[u8]) -> bop_libsql::Result<bop_libsql::format::ParsedImage> {
    parse_image(img.len() as u64, PAGE, |off, b| {
        b.copy_from_slice(&img[off as usize..off as usize + b.len()]);
        Ok(())
    })
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Cut { at: usize },
    Append { bytes: Vec<u8> },
    Zero { at: usize, len: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        proptest::collection::vec(any::<u8>(), 1..(2 * FRAME))
            .prop_map(|bytes| Damage::Append { bytes }),
        (any::<usize>(), 1usize..FRAME).prop_map(|(at, len)| Damage::Zero { at, len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_are_refused_or_read_as_a_commit_prefix(
        commits in proptest::collection::vec(proptest::collection::vec(1u32..50, 1..5), 1..6),
        salt in any::<[u8; 8]>(),
        d in damage(),
    ) {
        let (good, ends) = image(&commits, salt);
        let whole = parse(&good).expect("the undamaged image parses");
        let all: Vec<u32> = commits.iter().flatten().copied().collect();
        prop_assert_eq!(&whole.frames, &all);
        prop_assert_eq!(whole.commits, commits.len() as u64);

        let mut bad = good.clone();
        match &d {
            Damage::Flip { at, bit } => {
                let i = at % bad.len();
                bad[i] ^= 1 << bit;
            }
            Damage::Cut { at } => bad.truncate(at % bad.len()),
            Damage::Append { bytes } => bad.extend_from_slice(bytes),
            Damage::Zero { at, len } => {
                let i = at % bad.len();
                let n = (*len).min(bad.len() - i);
                let before = bad[i..i + n].to_vec();
                bad[i..i + n].fill(0);
                // Zeroing zeros changes nothing: not damage.
                prop_assume!(before.iter().any(|&b| b != 0));
            }
        }
        match parse(&bad) {
            Err(_) => {}
            Ok(p) => {
                // Accepted: an empty image, or exactly the first k commits.
                if bad.is_empty() {
                    prop_assert!(p.frames.is_empty());
                } else {
                    // Commit boundaries: the header alone (no commit), then
                    // the end of each commit.
                    let k = std::iter::once(32)
                        .chain(ends.iter().copied())
                        .position(|e| e == bad.len());
                    prop_assert!(
                        k.is_some() && bad[..] == good[..bad.len()],
                        "{:?} accepted: {} bytes, commit ends {:?}", d, bad.len(), ends
                    );
                    let k = k.unwrap();
                    let want: Vec<u32> = commits[..k].iter().flatten().copied().collect();
                    prop_assert_eq!(p.frames, want);
                    prop_assert_eq!(p.commits, k as u64);
                    if k > 0 {
                        prop_assert_eq!(p.n_page, 100 + k as u32 - 1);
                    }
                }
            }
        }
    }
}
