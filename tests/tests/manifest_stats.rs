//! `PRAGMA bop_stats` reports the manifest: the change log grows with
//! checkpoints, the clean-shutdown marker of the previous open, the format
//! version, journal and map counters, and each cursor's lag.

use bop_tests::{close, open, tempdir};
use rusqlite::Connection;

fn stats(c: &Connection) -> String {
    c.query_row("PRAGMA bop_stats", [], |r| r.get(0)).unwrap()
}

fn stat(s: &str, key: &str) -> u64 {
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in {s}"))
        .parse()
        .unwrap()
}

#[test]
fn bop_stats_reports_the_change_log_cursors_and_last_shutdown() {
    let dir = tempdir();
    let path = dir.path().join("m.bop");
    let c = open(&path);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        .unwrap();
    let s = stats(&c);
    assert_eq!(stat(&s, "manifest_format"), 3, "{s}");
    let before = stat(&s, "change_last_seq");
    // More than a checkpoint's sync leaves unpublished (1 MiB): it
    // publishes.
    c.execute_batch("INSERT INTO t VALUES (zeroblob(2097152))")
        .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let s = stats(&c);
    assert!(
        stat(&s, "change_last_seq") > before,
        "a publish is logged: {s}"
    );
    // At most the database's chunk-id reservation, kept for the next
    // checkpoints, and the deletion of the chunks this publish emptied,
    // settled by the next sync of the chunks directory (the next publish
    // of a chunk, or the close).
    assert!(stat(&s, "journal_pending") <= 2, "{s}");
    assert!(stat(&s, "manifest_map_bytes") > 0, "{s}");
    close(c);

    // Reopened after a clean close; a cursor's lag shows.
    let store = bop_storage::Store::open_shared(&path, &Default::default()).unwrap();
    store.register_cursor("replica").unwrap();
    drop(store);
    let c = open(&path);
    c.execute_batch("INSERT INTO t VALUES (zeroblob(2097152))")
        .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let s = stats(&c);
    assert_eq!(stat(&s, "previous_shutdown_clean"), 1, "{s}");
    // The clean close settled every deletion: nothing was replayed.
    assert_eq!(stat(&s, "journal_replayed"), 0, "{s}");
    assert_eq!(stat(&s, "cursors"), 1, "{s}");
    assert!(stat(&s, "cursor.replica.lag") >= 1, "{s}");
    assert_eq!(stat(&s, "cursors_lagged"), 0, "{s}");
    close(c);
}
