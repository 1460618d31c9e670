//! Crash test: a child commits transactions with `synchronous=FULL` and
//! acknowledges each after COMMIT returns; it is killed with SIGKILL at a
//! random moment; the store, reopened here, must hold every acknowledged
//! transaction, only complete and correct transactions, ids forming a
//! prefix, and pass `PRAGMA integrity_check`. Repeated on one store, the
//! writer's behaviour rotating through six variants: plain commits;
//! `wal_checkpoint(PASSIVE)` every 3 commits; `wal_autocheckpoint=64`;
//! `wal_checkpoint(TRUNCATE)` every 2 commits; `cache_size=10` (frames
//! spilled before COMMIT); closing and reopening the store every 3 commits
//! (kills inside shutdown and recovery).
//!
//! `BOP_CRASH_ITERATIONS` (default 50) and `BOP_CRASH_SEED` (default
//! random, printed) control the run.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use bop_tests::crashdata::verify;
use bop_tests::{assert_integrity, close, open, tempdir, Child};
use rand::{Rng, SeedableRng};

const MAX_ROWS: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let iterations = env_u64("BOP_CRASH_ITERATIONS").unwrap_or(50);
    let seed = env_u64("BOP_CRASH_SEED").unwrap_or_else(|| rand::rng().random());
    println!("crash test: seed {seed} (BOP_CRASH_SEED={seed} to repeat), {iterations} iterations");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let store = dir.path().join("crash.db");
    let started = Instant::now();
    let mut k = 0u64; // transactions verified present after the last reopen
    let mut total_acks = 0u64;
    let mut killed_in_checkpoint_runs = 0u64;

    for it in 0..iterations {
        let mut args: Vec<String> = vec![
            store.to_str().unwrap().into(),
            "--max-rows".into(),
            MAX_ROWS.to_string(),
        ];
        let variant = it % 6;
        match variant {
            1 => args.extend(
                ["--checkpoint-every", "3", "--checkpoint-mode", "PASSIVE"].map(String::from),
            ),
            2 => args.extend(["--autocheckpoint", "64"].map(String::from)),
            3 => args.extend(
                ["--checkpoint-every", "2", "--checkpoint-mode", "TRUNCATE"].map(String::from),
            ),
            4 => args.extend(["--cache-size", "10"].map(String::from)),
            5 => args.extend(["--reopen-every", "3"].map(String::from)),
            _ => {}
        }
        let delay = Duration::from_millis(rng.random_range(0..=300));
        let os_args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let mut child = Child::spawn(env!("CARGO_BIN_EXE_crash_writer"), &os_args);
        std::thread::sleep(delay);
        if let Some(status) = child.exited() {
            std::thread::sleep(Duration::from_millis(200)); // let the stderr pipe drain
            let stderr = child.stderr();
            let lines = child.kill9();
            panic!(
                "iteration {it} (seed {seed}): the writer exited by itself ({status}) before the kill; \
                 stdout {lines:?}; stderr {stderr}"
            );
        }
        let stderr_probe = child.stderr();
        let lines = child.kill9();
        let mut last_ack = None;
        for l in &lines {
            if let Some(n) = l.strip_prefix("ack ") {
                let n: u64 = n.parse().unwrap();
                if let Some(prev) = last_ack {
                    assert_eq!(n, prev + 1, "iteration {it}: acks out of order");
                }
                last_ack = Some(n);
            } else if let Some(s) = l.strip_prefix("start ") {
                let s: u64 = s.parse().unwrap();
                assert_eq!(
                    s,
                    k + 1,
                    "iteration {it}: the writer found {} transactions, {k} were verified",
                    s - 1
                );
            } else {
                panic!("iteration {it}: unexpected writer output {l:?}");
            }
        }
        assert!(
            stderr_probe.is_empty(),
            "iteration {it}: writer stderr: {stderr_probe}"
        );
        let acked = last_ack.unwrap_or(k);
        total_acks += last_ack.map_or(0, |a| a - k);
        if variant != 0 && variant != 4 {
            killed_in_checkpoint_runs += 1;
        }

        let conn = open(&store);
        // Full content check every 10 iterations and at the end; otherwise
        // the contents of the transactions new since the last check.
        let full = it % 10 == 9 || it + 1 == iterations;
        let content_from = if full { 1 } else { k + 1 };
        let now = verify(&conn, MAX_ROWS, content_from);
        assert!(
            now >= acked,
            "iteration {it} (seed {seed}, delay {delay:?}): transaction {acked} was acknowledged but only 1..={now} are present"
        );
        assert!(
            now <= acked + 1,
            "iteration {it} (seed {seed}): transactions 1..={now} present, but only {acked} acknowledged and the writer commits one at a time"
        );
        assert!(
            now >= k,
            "iteration {it}: transactions vanished ({k} -> {now})"
        );
        assert_integrity(&conn);
        close(conn);
        k = now;
        if (it + 1) % 100 == 0 {
            println!(
                "crash test: {} kills so far, {k} transactions, {:?}",
                it + 1,
                started.elapsed()
            );
        }
    }
    println!(
        "crash test: {iterations} kills, {k} transactions, {total_acks} acks, {} checkpointing runs, {:?}",
        killed_in_checkpoint_runs,
        started.elapsed()
    );
    assert!(
        total_acks > 0,
        "no transaction was ever acknowledged: the kills all landed too early"
    );
}
