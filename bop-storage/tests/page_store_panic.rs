//! A panic while the page store's lock is held (injected at every file
//! operation on the chunks of a checkpoint that spills, compacts, publishes
//! and deletes chunks) does not turn later calls into panics: reads return
//! the newest image (the pages written so far), statistics work, and every
//! later change is refused with a clear error that fails the store. The
//! reopened store holds exactly the image before or after the checkpoint,
//! verified, with no chunk file the manifest does not list, and goes on
//! working. See the poisoning policy in `page_store/mod.rs`.

mod crash_support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use bop_storage::io::sim::{Fault, FaultOp, SimFs};
use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};
use crash_support::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 16 * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Four full chunks of 16 pages, published; the store reopened.
fn setup(path: &Path, fs: &SimFs) -> (Arc<Store>, Model) {
    let store = Store::open_shared(path, &opts(fs)).unwrap();
    let pages: Model = (1..=64).map(|p| (p, p as u8)).collect();
    write_pages(&store, &pages).unwrap();
    store.db_sync().unwrap();
    drop(store);
    (Store::open_shared(path, &opts(fs)).unwrap(), pages)
}

/// 12 pages of each of the first two chunks rewritten: a spill at 16
/// pages, then a publish that compacts the two chunks and deletes them.
fn new_pages() -> Model {
    (1..=12)
        .chain(17..=28)
        .map(|p| (p, 0xc0 | p as u8))
        .collect()
}

/// Runs `f`; `Some(message)` if it panicked.
fn panicked<T>(f: impl FnOnce() -> T) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f)).err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Writes the new pages and publishes them, with a panic injected at the
/// `n`th file operation on the chunks. Returns the image the writes made
/// so far (what reads must return) and whether the panic fired.
fn step_with_panic(store: &Store, fs: &SimFs, before: &Model, n: u64) -> (Model, bool) {
    fs.inject(Fault {
        op: FaultOp::Any,
        nth: n,
        errno: SimFs::PANIC,
        path_contains: Some("chunks".into()),
        sticky: false,
    });
    let mut written = before.clone();
    for (&p, &fill) in &new_pages() {
        // A page is in the image once written, even when the spill it
        // starts panics.
        written.insert(p, fill);
        let r = catch_unwind(AssertUnwindSafe(|| {
            store.db_write(u64::from(p - 1) * PAGE as u64, &vec![fill; PAGE])
        }));
        match r {
            Ok(r) => r.unwrap(),
            Err(_) => return (written, true),
        }
    }
    match catch_unwind(AssertUnwindSafe(|| store.db_sync())) {
        Ok(r) => {
            r.unwrap();
            (written, false)
        }
        Err(_) => (written, true),
    }
}

/// After the panic: reads and statistics work, changes are refused.
fn check_after_panic(store: &Store, written: &Model, what: &str) {
    let got = panicked(|| read_pages(store));
    assert_eq!(got, None, "{what}: a read after the panic panicked");
    assert_eq!(
        &read_pages(store),
        written,
        "{what}: reads see the newest image"
    );
    assert_eq!(panicked(|| store.stats()), None, "{what}: stats panicked");
    let refused: [(&str, &dyn Fn() -> bop_storage::Result<()>); 3] = [
        ("write", &|| store.db_write(0, &vec![0x11; PAGE])),
        ("truncate", &|| store.db_truncate(PAGE as u64)),
        ("sync", &|| store.db_sync()),
    ];
    for (name, change) in refused {
        match catch_unwind(AssertUnwindSafe(change)) {
            Err(_) => panic!("{what}: a {name} after the panic panicked"),
            Ok(Ok(())) => panic!("{what}: a {name} after the panic was accepted"),
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("refuses writes") && msg.contains("panic"),
                    "{what}: {name}: {msg}"
                );
            }
        }
    }
    // Nothing changed by the refused calls.
    assert_eq!(&read_pages(store), written, "{what}: after the refusals");
}

#[test]
fn a_panic_holding_the_page_store_lock_fails_safe() {
    let root = scratch();
    let (mut ended_before, mut ended_after) = (0, 0);
    for n in 1.. {
        let what = format!("panic at chunk operation {n}");
        let path = root.path().join(format!("s{n}"));
        let fs = SimFs::new();
        let (store, before) = setup(&path, &fs);
        let mut after = before.clone();
        after.extend(new_pages());
        let (written, fired) = step_with_panic(&store, &fs, &before, n);
        fs.clear_faults();
        if !fired {
            assert_eq!(read_pages(&store), after, "{what}: no panic");
            assert!(n > 10, "only {n} chunk operations: {what}");
            break;
        }
        check_after_panic(&store, &written, &what);
        drop(store);
        let store = Store::open_shared(&path, &opts(&fs))
            .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
        let got = read_pages(&store);
        // The publish is one manifest transaction: all of it or none.
        if got == before {
            ended_before += 1;
        } else {
            assert_eq!(got, after, "{what}: neither before nor after");
            ended_after += 1;
        }
        store.verify().unwrap();
        assert_eq!(store.stats().pages.stray_chunks_removed, 0, "{what}");
        assert_no_leaks(&fs, &path, &store, &what);
        store.db_write(0, &vec![0xEE; PAGE]).unwrap();
        store.db_sync().unwrap();
        store.verify().unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }
    println!("ended before: {ended_before}, after: {ended_after}");
    assert!(
        ended_before > 0 && ended_after > 0,
        "{ended_before} {ended_after}"
    );
}
