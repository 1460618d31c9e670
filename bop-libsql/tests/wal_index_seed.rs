//! After a crash, libSQL's virtual WAL over bop builds its frame index
//! from the frame list the store recovered (`wal::image_from_seed`)
//! instead of reading and checksumming the whole WAL image: the result is
//! exactly what reading it gives, the data is all there, and frames
//! committed afterwards continue SQLite's checksum chain (reading the
//! whole image again accepts every one of them).

mod common;
use bop_libsql::Value;
use common::conn;

fn store_of(path: &std::path::Path) -> std::sync::Arc<bop_storage::Store> {
    let full = std::fs::canonicalize(path).unwrap();
    bop_vfs::open_store(&full).expect("open through the VFS")
}

fn insert(c: &bop_libsql::Connection, from: i64, txns: i64) {
    for t in from..from + txns {
        c.execute_batch("BEGIN").unwrap();
        for i in 0..20 {
            c.execute(
                "INSERT INTO t VALUES (?, randomblob(500))",
                &[Value::Integer(t * 100 + i)],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
}

fn crash(path: &std::path::Path, c: bop_libsql::Connection) {
    assert!(bop_vfs::testing::halt(path));
    drop(c);
}

#[test]
fn the_index_comes_from_the_stores_frame_list_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let c = conn(&path);
    c.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    insert(&c, 0, 200);
    crash(&path, c);

    let c = conn(&path);
    let store = store_of(&path);
    let ps = store.page_size();
    let seeded =
        bop_libsql::virtual_wal::image_from_seed(&store, ps).expect("a frame list after recovery");
    let read = bop_libsql::virtual_wal::read_image(&store, ps).unwrap();
    assert!(read.frames.len() > 500, "{} frames", read.frames.len());
    assert_eq!(seeded, read);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 200 * 20);

    // Commits on top of the seeded index; the whole image, read and
    // checksummed from the start, must accept them all.
    insert(&c, 200, 30);
    let read = bop_libsql::virtual_wal::read_image(&store, ps).unwrap();
    assert_eq!(
        bop_libsql::virtual_wal::image_from_seed(&store, ps),
        Some(read)
    );
    drop(store);
    crash(&path, c);
    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 230 * 20);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}
