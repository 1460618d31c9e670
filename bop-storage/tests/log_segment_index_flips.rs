//! A segment index with any byte flipped is never trusted: the store opens,
//! reads the sealed segment instead, and serves every committed page
//! right. (An index lies about where records are; trusting a damaged one
//! could serve the wrong bytes.)

mod common;

use bop_storage::{Store, StoreOptions};
use common::*;

const TXNS: usize = 40;
const PAGES: u32 = 8;
const SEGMENT_BYTES: u64 = 1 << 20;

fn fill(txn: usize, page: u32) -> u8 {
    (txn as u32 * 11 + page) as u8
}

fn opts() -> StoreOptions {
    let mut o = StoreOptions::default();
    o.log.segment_bytes = SEGMENT_BYTES;
    o
}

#[test]
fn a_flipped_byte_in_a_segment_index_is_never_trusted() {
    let root = tempfile::tempdir().unwrap();
    let template = root.path().join("template.db");
    let mut firsts = Vec::new();
    {
        let store = Store::open_shared(&template, &opts()).unwrap();
        let mut f = 1;
        for t in 0..TXNS {
            firsts.push(f);
            let pages: Vec<(u32, u8)> = (1..=PAGES).map(|p| (p, fill(t, p))).collect();
            f = write_txn(&store, f, &pages, PAGES);
            store.wal_image_sync().unwrap();
        }
        store.halt();
    }
    let idx = wal_files(&template, "idx");
    assert_eq!(idx.len(), 1, "one sealed segment, one index");
    let good = std::fs::read(&idx[0]).unwrap();
    let idx_name = idx[0].file_name().unwrap().to_owned();

    // The intact index is used (so the flips below test the checks, not a
    // setup where the index never counts).
    {
        let copy = root.path().join("intact.db");
        copy_dir(&template, &copy);
        let store = Store::open_shared(&copy, &opts()).unwrap();
        assert_eq!(store.stats().log.segments_indexed_at_open, 1);
        store.halt();
    }

    // Every byte (the index is under a kilobyte here).
    let n = good.len();
    assert!(n < 4096, "index of {n} bytes: the sweep would be slow");
    for (k, i) in (0..n).enumerate() {
        let copy = root.path().join(format!("flip-{k}.db"));
        copy_dir(&template, &copy);
        let mut bad = good.clone();
        bad[i] ^= 1 << (k % 8);
        std::fs::write(copy.join("wal").join(&idx_name), &bad).unwrap();
        let store = Store::open_shared(&copy, &opts())
            .unwrap_or_else(|e| panic!("byte {i} of {n} flipped: open failed: {e}"));
        assert_eq!(
            store.stats().log.segments_indexed_at_open,
            0,
            "byte {i} of {n} flipped: the index was trusted"
        );
        for (t, first) in firsts.iter().enumerate() {
            for p in [1, PAGES] {
                let got = read_frame(&store, first + u64::from(p) - 1);
                assert_eq!(
                    got,
                    vec![fill(t, p); PAGE as usize],
                    "byte {i} flipped: txn {t} page {p}"
                );
            }
        }
        store.halt();
        drop(store);
        std::fs::remove_dir_all(&copy).unwrap();
    }
}
