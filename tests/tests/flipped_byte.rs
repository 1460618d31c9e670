//! A flipped byte in a page chunk: reading the damaged page must fail with
//! an I/O or corruption error, never return different data, and bop's last
//! error should name the chunk file.

use bop_tests::crashdata::mix;
use bop_tests::{close, open, tempdir, walk};
use rusqlite::{Connection, ErrorCode};

const ROWS: i64 = 3000;

fn value(i: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(504);
    let mut h = mix(i as u64);
    while v.len() < 500 {
        h = mix(h);
        v.extend_from_slice(&h.to_le_bytes());
    }
    v.truncate(500);
    v
}

/// Reads every row, checking each returned value; returns the number of
/// rows read or the error that stopped the scan.
fn scan(conn: &Connection) -> rusqlite::Result<i64> {
    let mut stmt = conn.prepare("SELECT id, v FROM t ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let v: Vec<u8> = r.get(1)?;
        n += 1;
        assert_eq!(id, n, "rows skipped or reordered instead of an error");
        assert!(
            v == value(id),
            "row {id} returned different data instead of an error"
        );
    }
    Ok(n)
}

#[test]
fn flipped_byte_in_a_chunk_is_an_error() {
    let dir = tempdir();
    let store = dir.path().join("flip.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 1..=ROWS {
        conn.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            rusqlite::params![i, value(i)],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(scan(&conn).unwrap(), ROWS);
    close(conn);

    // Closed cleanly: the pages are in chunks. Pick the largest chunk.
    let chunk = walk(&store)
        .into_iter()
        .filter(|e| !e.is_dir && e.rel.starts_with("chunks"))
        .map(|e| store.join(e.rel))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a cleanly closed store has page chunks");
    let mut img = std::fs::read(&chunk).unwrap();
    assert_eq!(&img[..8], b"BOPCHUNK");
    let page_size = u32::from_le_bytes(img[12..16].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(img[24..28].try_into().unwrap()) as usize;
    assert!(count > 0, "chunk with no pages");
    let data_offset = (64 + 8 * count).div_ceil(4096) * 4096;
    assert_eq!(img.len(), data_offset + count * page_size, "chunk layout");
    let slot = count / 2;
    let pgno = u32::from_le_bytes(img[64 + 8 * slot..68 + 8 * slot].try_into().unwrap());
    let at = data_offset + slot * page_size + page_size / 2 + 3;
    assert!(at >= 4096);
    img[at] ^= 0x40;
    std::fs::write(&chunk, &img).unwrap();
    let name = chunk.file_name().unwrap().to_str().unwrap().to_string();
    println!("flipped byte {at} of {name} (slot {slot}, page {pgno} of {count})");

    for attempt in 0..2 {
        let result = bop_tests::try_open_with(&store, &[]).and_then(|c| {
            let r = scan(&c);
            drop(c);
            r
        });
        let err = match result {
            Ok(n) => panic!(
                "attempt {attempt}: read {n} rows without an error although page {pgno} was damaged"
            ),
            Err(e) => e,
        };
        let last = bop_rusqlite::last_error();
        println!("attempt {attempt}: {err} / last_error {last:?}");
        assert!(
            matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::SystemIoFailure | ErrorCode::DatabaseCorrupt)
            ),
            "attempt {attempt}: expected SQLITE_IOERR or SQLITE_CORRUPT, got {err}"
        );
        if let Some(msg) = last {
            assert!(
                msg.contains(&name),
                "bop's last error should name the chunk file {name}: {msg}"
            );
        }
    }
}
