//! A 10,000-row transaction, committed and visible to another connection.

use bop_tests::{assert_integrity, close, open, tempdir};

#[test]
fn ten_thousand_rows_in_one_transaction() {
    let dir = tempdir();
    let store = dir.path().join("big.db");
    let mut conn = open(&store);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
        .unwrap();
    let reader = open(&store);
    {
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO t(id, a, b) VALUES (?1, ?2, ?3)")
                .unwrap();
            for i in 1..=10_000i64 {
                ins.execute(rusqlite::params![
                    i,
                    i * i,
                    format!("row-{i}-{}", "x".repeat((i % 50) as usize))
                ])
                .unwrap();
            }
        }
        // Not visible to the other connection before commit.
        let before: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(before, 0);
        tx.commit().unwrap();
    }
    let (n, s, l): (i64, i64, i64) = reader
        .query_row("SELECT count(*), sum(a), sum(length(b)) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let exp_sum: i64 = (1..=10_000i64).map(|i| i * i).sum();
    let exp_len: i64 = (1..=10_000i64)
        .map(|i| format!("row-{i}-").len() as i64 + i % 50)
        .sum();
    assert_eq!((n, s, l), (10_000, exp_sum, exp_len));
    let b: String = reader
        .query_row("SELECT b FROM t WHERE id = 4321", [], |r| r.get(0))
        .unwrap();
    assert_eq!(b, format!("row-4321-{}", "x".repeat(4321 % 50)));
    assert_integrity(&reader);
    close(reader);
    close(conn);

    let conn = open(&store);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10_000);
    assert_integrity(&conn);
    close(conn);
}
