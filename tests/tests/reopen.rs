//! Close every connection, reopen: everything is there.

use bop_tests::{assert_integrity, close, open, tempdir};
use rusqlite::Connection;

fn state(conn: &Connection) -> Vec<(String, i64, String)> {
    conn.prepare("SELECT k, n, v FROM kv ORDER BY k")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempdir();
    let store = dir.path().join("re.db");
    let mut expect = Vec::new();
    {
        let a = open(&store);
        let b = open(&store);
        a.execute_batch(
            "CREATE TABLE kv(k TEXT PRIMARY KEY, n INTEGER, v TEXT);
             CREATE INDEX kv_n ON kv(n);
             CREATE TABLE other(x);
             INSERT INTO other VALUES (42);
             PRAGMA user_version = 7;",
        )
        .unwrap();
        for i in 0..3000i64 {
            let c = if i % 2 == 0 { &a } else { &b };
            c.execute(
                "INSERT INTO kv VALUES (?1, ?2, ?3)",
                rusqlite::params![format!("key{i:05}"), i * 3, format!("value {i}")],
            )
            .unwrap();
            expect.push((format!("key{i:05}"), i * 3, format!("value {i}")));
        }
        b.execute("DELETE FROM kv WHERE n % 9 = 0", []).unwrap();
        expect.retain(|e| e.1 % 9 != 0);
        assert_eq!(state(&a), expect);
        close(a);
        close(b);
    }
    bop_tests::assert_store_layout(&store);
    for round in 0..3 {
        let c = open(&store);
        assert_eq!(state(&c), expect, "round {round}");
        let uv: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(uv, 7);
        let x: i64 = c
            .query_row("SELECT x FROM other", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42);
        let via_index: i64 = c
            .query_row(
                "SELECT count(*) FROM kv WHERE n BETWEEN 300 AND 600",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            via_index as usize,
            expect.iter().filter(|e| (300..=600).contains(&e.1)).count()
        );
        assert_eq!(bop_tests::journal_mode(&c), "wal");
        assert_integrity(&c);
        // Each round writes a little more.
        let k = format!("round{round}");
        c.execute("INSERT INTO kv VALUES (?1, -1, 'r')", [&k])
            .unwrap();
        expect.push((k, -1, "r".into()));
        expect.sort();
        close(c);
    }
    let c = open(&store);
    assert_eq!(state(&c), expect);
    close(c);
}
