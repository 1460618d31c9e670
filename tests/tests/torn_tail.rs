//! A torn tail: committed transactions are left in the WAL (the writer is
//! SIGKILLed with autocheckpoint off), then the last log record is damaged
//! on disk. Reopening must give the state after the last whole commit
//! before it: every earlier transaction, none of the torn one.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bop_tests::crashdata::verify;
use bop_tests::{assert_integrity, close, open, tempdir, Child};

const MAX_ROWS: u64 = 40;
const SEGMENT_HEADER_LEN: u64 = 4096;
const RECORD_HEADER_LEN: u64 = 48;

/// A log record found on disk.
#[derive(Debug, Clone)]
struct Record {
    file: PathBuf,
    offset: u64,
    lsn: u64,
    payload_len: u64,
}

/// Scans every segment: records start at 4096, back to back, each a
/// 48-byte header (magic `BOPR`, LSN at 8, payload length at 32) and its
/// payload; zeros end the written part.
fn records(store: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(store.join("wal")).unwrap() {
        let file = e.unwrap().path();
        if file.extension().and_then(|x| x.to_str()) != Some("seg") {
            continue;
        }
        let img = std::fs::read(&file).unwrap();
        let mut off = SEGMENT_HEADER_LEN as usize;
        while off + RECORD_HEADER_LEN as usize <= img.len() && &img[off..off + 4] == b"BOPR" {
            let h = &img[off..off + RECORD_HEADER_LEN as usize];
            let lsn = u64::from_le_bytes(h[8..16].try_into().unwrap());
            let payload_len = u64::from(u32::from_le_bytes(h[32..36].try_into().unwrap()));
            out.push(Record {
                file: file.clone(),
                offset: off as u64,
                lsn,
                payload_len,
            });
            off += (RECORD_HEADER_LEN + payload_len) as usize;
        }
    }
    out.sort_by_key(|r| r.lsn);
    out
}

/// How the writer fills the WAL before the damage.
#[derive(Clone, Copy)]
struct Shape {
    txns: u64,
    /// KiB of padding per transaction (0: none).
    pad_kb: u64,
}

const SMALL: Shape = Shape { txns: 6, pad_kb: 0 };
/// 4 transactions of ~5 MiB: with 16 MiB segments the fourth is the first
/// record of the second segment.
const NEW_SEGMENT: Shape = Shape {
    txns: 4,
    pad_kb: 5 * 1024,
};

/// Runs the writer for `shape.txns` transactions (plus the tables'
/// creation when the store is new) and SIGKILLs it, so its commits stay in
/// the WAL.
fn write_and_kill(store: &Path, shape: Shape) {
    let txns = shape.txns.to_string();
    let pad = shape.pad_kb.to_string();
    let args = [
        store.as_os_str(),
        OsStr::new("--max-rows"),
        OsStr::new("40"),
        OsStr::new("--txns"),
        OsStr::new(&txns),
        OsStr::new("--autocheckpoint"),
        OsStr::new("0"),
        OsStr::new("--pad-kb"),
        OsStr::new(&pad),
    ];
    let mut child = Child::spawn(env!("CARGO_BIN_EXE_crash_writer"), &args);
    let done = child.wait_line("done", Duration::from_secs(60));
    let err = child.stderr();
    let lines = child.kill9();
    assert!(done, "the writer did not finish: {lines:?} {err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

enum Damage {
    /// Zeros over the second half of the payload (a torn write into a
    /// preallocated, zero-filled segment).
    ZeroPayloadTail,
    /// Garbage over the last bytes of the payload.
    GarbagePayloadTail,
    /// The file cut in the middle of the payload.
    Truncate,
    /// One byte of the record header changed.
    Header,
}

fn torn_tail(damage: Damage, shape: Shape) {
    let txns = shape.txns;
    let dir = tempdir();
    let store = dir.path().join("torn.db");
    write_and_kill(&store, shape);

    // Baseline on a copy: all the transactions are there.
    let copy = dir.path().join("copy.db");
    copy_dir(&store, &copy);
    let c = open(&copy);
    assert_eq!(verify(&c, MAX_ROWS, 1), txns, "before the damage");
    close(c);

    let recs = records(&store);
    // One per transaction: the tables' creation, a new database's first
    // write, is not in the WAL.
    assert!(
        recs.len() as u64 >= txns,
        "expected at least {txns} log records ({txns} transactions), found {recs:?}"
    );
    let last = recs.last().unwrap().clone();
    println!("damaging {last:?}");
    if shape.pad_kb > 0 {
        let in_last_segment = recs.iter().filter(|r| r.file == last.file).count();
        assert_eq!(
            in_last_segment, 1,
            "the last record should be alone in a new segment: {recs:?}"
        );
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last.file)
        .unwrap();
    let payload = last.offset + RECORD_HEADER_LEN;
    match damage {
        Damage::ZeroPayloadTail => {
            let half = last.payload_len / 2;
            f.write_all_at(
                &vec![0u8; (last.payload_len - half) as usize],
                payload + half,
            )
            .unwrap();
        }
        Damage::GarbagePayloadTail => {
            let n = last.payload_len.min(64);
            f.write_all_at(&vec![0xa5u8; n as usize], payload + last.payload_len - n)
                .unwrap();
        }
        Damage::Truncate => {
            f.set_len(payload + last.payload_len / 2).unwrap();
        }
        Damage::Header => {
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, last.offset + 24).unwrap();
            f.write_all_at(&[b[0] ^ 0x10], last.offset + 24).unwrap();
        }
    }
    f.sync_all().unwrap();
    drop(f);

    let c = open(&store);
    let k = verify(&c, MAX_ROWS, 1);
    assert_eq!(
        k,
        txns - 1,
        "after tearing the last record: transactions 1..={} expected",
        txns - 1
    );
    assert_integrity(&c);
    close(c);

    // The store goes on: the writer continues at the lost id (rewriting the lost
    // transaction) and everything verifies.
    write_and_kill(&store, shape);
    let c = open(&store);
    assert_eq!(verify(&c, MAX_ROWS, 1), 2 * txns - 1);
    assert_integrity(&c);
    close(c);
    let c = open(&store);
    assert_eq!(
        verify(&c, MAX_ROWS, 1),
        2 * txns - 1,
        "after a clean reopen"
    );
    close(c);
}

#[test]
fn zeroed_tail_of_last_record() {
    torn_tail(Damage::ZeroPayloadTail, SMALL);
}

#[test]
fn garbage_tail_of_last_record() {
    torn_tail(Damage::GarbagePayloadTail, SMALL);
}

#[test]
fn segment_cut_inside_last_record() {
    torn_tail(Damage::Truncate, SMALL);
}

#[test]
fn damaged_header_of_last_record() {
    torn_tail(Damage::Header, SMALL);
}

#[test]
fn zeroed_tail_of_first_record_in_new_segment() {
    torn_tail(Damage::ZeroPayloadTail, NEW_SEGMENT);
}

#[test]
fn damaged_header_of_first_record_in_new_segment() {
    torn_tail(Damage::Header, NEW_SEGMENT);
}
