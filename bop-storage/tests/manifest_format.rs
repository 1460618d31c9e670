//! Format version 3 on open: a version 2 store (a fixture written by the
//! version 2 code, `fixtures/v2_store.tar.gz`) is upgraded in place and
//! keeps every page and log record; a newer version and a foreign LMDB
//! environment are refused with a clear error and left untouched.

mod common;

use std::path::Path;

use bop_storage::{StorageError, Store, StoreOptions};
use common::read_frame;
use heed::types::Bytes;
use heed::{Database, EnvOpenOptions};

fn env_at(dir: &Path) -> heed::Env {
    // SAFETY: the environment is opened once in this test process, while
    // no store has it open (the store was dropped or never opened).
    unsafe { EnvOpenOptions::new().max_dbs(16).open(dir) }.unwrap()
}

fn read_page(store: &Store, p: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    store.db_read(u64::from(p - 1) * 4096, &mut buf).unwrap();
    buf
}

#[test]
fn a_version_2_store_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2_store.tar.gz");
    let ok = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    let path = dir.path().join("v2.db");
    let opts = StoreOptions {
        create: false,
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    let m = store.stats().manifest;
    assert_eq!((m.format_version, m.upgraded_from), (3, 2), "{m:?}");
    assert!(m.previous_shutdown_clean, "the fixture was closed cleanly");
    // What version 2 wrote is all there.
    for p in 1..=5u32 {
        assert_eq!(read_page(&store, p), vec![p as u8; 4096], "page {p}");
    }
    assert_eq!(store.stats().wal_image_frames, 2);
    assert_eq!(read_frame(&store, 1), vec![0x22; 4096]);
    assert_eq!(read_frame(&store, 2), vec![0x66; 4096]);
    store.verify().unwrap();
    let other = Store::open_db_shared(&path, Some("other"), &opts).unwrap();
    assert_eq!(read_page(&other, 2), vec![0x77; 4096]);
    drop(other);
    // The change log starts empty: the upgrade is not a change, and the
    // open's epoch begins with its first change (the lazy epoch).
    let log = store.manifest().changes_after(0, 10).unwrap();
    assert_eq!(log.len(), 0, "{log:?}");
    store.register_cursor("c").unwrap();
    store.db_write(0, &vec![9; 4096]).unwrap();
    store.db_sync().unwrap();
    // Registering the cursor is the open's first change: the epoch begins
    // in that commit, logged before it, so the cursor sees it, then the
    // publish.
    let seen = store.read_changes("c", 10).unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        matches!(
            seen[0].1,
            bop_storage::manifest::Change::EpochBegun {
                previous_clean: true,
                ..
            }
        ),
        "{seen:?}"
    );
    assert!(
        matches!(seen[1].1, bop_storage::manifest::Change::Published { .. }),
        "{seen:?}"
    );
    drop(store);
    // Reopened: already version 3.
    let store = Store::open_shared(&path, &opts).unwrap();
    assert_eq!(store.stats().manifest.upgraded_from, 0);
    assert_eq!(read_page(&store, 1), vec![9; 4096]);
    store.verify().unwrap();
}

#[test]
fn a_newer_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(Store::open_shared(&path, &StoreOptions::default()).unwrap());
    let mdir = path.join("manifest");
    {
        let env = env_at(&mdir);
        let mut w = env.write_txn().unwrap();
        let meta: Database<Bytes, Bytes> = env.open_database(&w, Some("meta")).unwrap().unwrap();
        meta.put(&mut w, b"format_version", &4u32.to_le_bytes())
            .unwrap();
        w.commit().unwrap();
        env.prepare_for_closing().wait();
    }
    let before = std::fs::read(mdir.join("data.mdb")).unwrap();
    match Store::open_shared(&path, &StoreOptions::default()) {
        Err(e @ StorageError::Format { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("version 4 is newer"), "{msg}");
        }
        r => panic!("expected a format error, got {r:?}"),
    }
    assert_eq!(std::fs::read(mdir.join("data.mdb")).unwrap(), before);
}

#[test]
fn a_foreign_lmdb_environment_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign");
    let mdir = path.join("manifest");
    std::fs::create_dir_all(&mdir).unwrap();
    {
        let env = env_at(&mdir);
        let mut w = env.write_txn().unwrap();
        let users: Database<Bytes, Bytes> = env.create_database(&mut w, Some("users")).unwrap();
        users.put(&mut w, b"alice", b"1").unwrap();
        w.commit().unwrap();
        env.prepare_for_closing().wait();
    }
    let before = std::fs::read(mdir.join("data.mdb")).unwrap();
    assert!(
        bop_storage::is_store(&path),
        "it looks like one from outside"
    );
    match Store::open_shared(&path, &StoreOptions::default()) {
        Err(e @ StorageError::Format { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("\"users\"") && msg.contains("not a bop store"),
                "{msg}"
            );
        }
        r => panic!("expected a format error, got {r:?}"),
    }
    assert_eq!(std::fs::read(mdir.join("data.mdb")).unwrap(), before);
}
