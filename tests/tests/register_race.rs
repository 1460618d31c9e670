//! The process's first registrations race: no caller may return before the
//! VFS is registered (each thread's open right after must find it).

use std::sync::{Arc, Barrier};

use rusqlite::Connection;

#[test]
fn concurrent_first_registration_never_returns_early() {
    let dir = bop_tests::tempdir();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = barrier.clone();
            let path = dir.path().join(format!("db{i}"));
            std::thread::spawn(move || {
                barrier.wait();
                bop_rusqlite::register().expect("register");
                let c = Connection::open_with_flags(bop_tests::uri(&path, &[]), bop_tests::flags())
                    .expect("the VFS is registered once register() returns");
                c.execute_batch("CREATE TABLE t(a)").unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
