//! Overflow pages: blobs of 100 KB..2 MB read back byte-exact, replaced,
//! deleted, and still exact after reopening.

use bop_tests::{assert_integrity, close, open, tempdir};
use rand::{Rng, RngCore, SeedableRng};

fn blob(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let len = rng.random_range(100_000..=2_000_000);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

#[test]
fn large_blobs_round_trip() {
    let seed: u64 = rand::rng().random();
    println!("overflow seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let store = dir.path().join("blobs.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        .unwrap();
    let mut blobs: Vec<Option<Vec<u8>>> = Vec::new();
    // Sizes at the edges first, then random ones.
    for len in [100_000usize, 2_000_000] {
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        blobs.push(Some(v));
    }
    for _ in 0..10 {
        blobs.push(Some(blob(&mut rng)));
    }
    for (i, b) in blobs.iter().enumerate() {
        conn.execute(
            "INSERT INTO b(id, data) VALUES (?1, ?2)",
            rusqlite::params![i as i64, b.as_ref().unwrap()],
        )
        .unwrap();
    }
    let check = |conn: &rusqlite::Connection, blobs: &[Option<Vec<u8>>], when: &str| {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n as usize,
            blobs.iter().flatten().count(),
            "{when}: row count"
        );
        for (i, b) in blobs.iter().enumerate() {
            let got: Option<Vec<u8>> = match conn.query_row(
                "SELECT data FROM b WHERE id = ?1",
                [i as i64],
                |r| r.get(0),
            ) {
                Ok(v) => Some(v),
                Err(rusqlite::Error::QueryReturnedNoRows) => None,
                Err(e) => panic!("{when}: reading blob {i}: {e}"),
            };
            match (b, got) {
                (Some(b), Some(g)) => {
                    assert_eq!(g.len(), b.len(), "{when}: blob {i} length");
                    assert!(g == *b, "{when}: blob {i} differs");
                }
                (None, None) => {}
                (b, g) => panic!(
                    "{when}: blob {i}: expected present={}, got present={}",
                    b.is_some(),
                    g.is_some()
                ),
            }
        }
    };
    check(&conn, &blobs, "after insert");

    // Replace some blobs with blobs of other sizes, delete others, in one
    // transaction; freed overflow pages get reused.
    conn.execute_batch("BEGIN").unwrap();
    for i in [1usize, 4, 7] {
        let b = blob(&mut rng);
        conn.execute(
            "UPDATE b SET data = ?2 WHERE id = ?1",
            rusqlite::params![i as i64, b],
        )
        .unwrap();
        blobs[i] = Some(b);
    }
    for i in [0usize, 5] {
        conn.execute("DELETE FROM b WHERE id = ?1", [i as i64])
            .unwrap();
        blobs[i] = None;
    }
    let b = blob(&mut rng);
    conn.execute(
        "INSERT INTO b(id, data) VALUES (?1, ?2)",
        rusqlite::params![blobs.len() as i64, b],
    )
    .unwrap();
    blobs.push(Some(b));
    conn.execute_batch("COMMIT").unwrap();
    check(&conn, &blobs, "after update");
    assert_integrity(&conn);
    close(conn);

    let conn = open(&store);
    check(&conn, &blobs, "after reopen");
    assert_integrity(&conn);
    close(conn);
}
