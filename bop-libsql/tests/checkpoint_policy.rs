//! bop's background checkpoint policy (`ckpt_wal_mb`, bop-vfs's
//! checkpointer) reaches stores opened through libSQL: with libSQL's
//! autocheckpoint off, the checkpointer's own connection (opened with bop's
//! virtual WAL) copies the WAL into the page store and the WAL restarts, so
//! it stays short; nothing is lost across close and reopen.

mod common;
use bop_libsql::{OpenFlags, Value};
use common::stat;
use std::time::Duration;

#[test]
fn background_checkpoints_keep_the_libsql_wal_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.db");
    let uri = format!("file:{}?ckpt_wal_mb=1&ckpt_age_s=0", path.display());
    let c = bop_libsql::open(&uri, OpenFlags::default()).unwrap();
    c.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();
    let mut ins = c
        .prepare("INSERT INTO t VALUES (?, randomblob(3000))")
        .unwrap();
    let mut wal_max = 0;
    let mut k = 0;
    for _ in 0..30 {
        for _ in 0..64 {
            ins.execute(&[Value::Integer(k)]).unwrap();
            k += 1;
        }
        wal_max = wal_max.max(stat(&c, "wal_image_bytes"));
        std::thread::sleep(Duration::from_millis(40));
    }
    drop(ins);
    assert!(
        stat(&c, "ckpt_complete") >= 1,
        "no background checkpoint completed"
    );
    assert!(
        wal_max < 4 << 20,
        "the WAL grew to {wal_max} bytes (policy 1 MiB, bursts of ~200 KiB)"
    );
    assert!(stat(&c, "generations") >= 2, "the WAL restarted");
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    drop(c);
    let c = common::conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), k);
}
