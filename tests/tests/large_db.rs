//! A database larger than 1 GiB: SQLite never uses the page at the 1 GiB
//! offset (the lock-byte page), and pages past it must be stored and read
//! back like any other.

use bop_tests::crashdata::mix;
use bop_tests::{assert_integrity, close, open, tempdir};

const BLOB: usize = 64 * 1024;
const ROWS: i64 = 17_500; // 17,500 x 64 KiB = 1.07 GiB of blobs
const PER_TXN: i64 = 1_500;

fn blob(id: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(BLOB);
    let mut h = mix(id as u64);
    while v.len() < BLOB {
        h = mix(h);
        v.extend_from_slice(&h.to_le_bytes());
    }
    v
}

fn verify_all(conn: &rusqlite::Connection) {
    let mut stmt = conn.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0;
    while let Some(r) = rows.next().unwrap() {
        n += 1;
        let id: i64 = r.get(0).unwrap();
        assert_eq!(id, n);
        let v: Vec<u8> = r.get(1).unwrap();
        assert!(v == blob(id), "blob {id} differs");
    }
    assert_eq!(n, ROWS);
}

#[test]
fn database_over_one_gib() {
    let t = std::time::Instant::now();
    let dir = tempdir();
    let store = dir.path().join("big.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .unwrap();
    {
        let mut ins = conn
            .prepare("INSERT INTO t(id, v) VALUES (?1, ?2)")
            .unwrap();
        let mut id = 1;
        while id <= ROWS {
            conn.execute_batch("BEGIN").unwrap();
            for i in id..(id + PER_TXN).min(ROWS + 1) {
                ins.execute(rusqlite::params![i, blob(i)]).unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
            id += PER_TXN;
        }
    }
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert!(
        pages * page_size > 1 << 30,
        "the database is only {} bytes",
        pages * page_size
    );
    println!("wrote {} bytes in {:?}", pages * page_size, t.elapsed());
    verify_all(&conn);
    close(conn);

    let conn = open(&store);
    verify_all(&conn);
    assert_integrity(&conn);
    close(conn);
    println!("done in {:?}", t.elapsed());
}
