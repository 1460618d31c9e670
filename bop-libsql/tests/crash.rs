//! SIGKILL crash test: a child process commits under synchronous=FULL and
//! prints the id of every commit that returned; the parent kills it at
//! random moments (mid-commit, mid-spill, mid-checkpoint) and checks after
//! each kill that every acknowledged id is in the reopened store.

mod common;
use rand::Rng;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills per run (`BOP_LIBSQL_CRASH_KILLS` for a long mode).
fn kills() -> usize {
    std::env::var("BOP_LIBSQL_CRASH_KILLS")
        .ok()
        .map_or(50, |v| v.parse().unwrap())
}

#[test]
fn sigkill_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut rng = rand::rng();
    let mut acked = BTreeSet::new();
    let start = Instant::now();
    let kills = kills();
    for round in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bop-libsql-crash-child"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            let mut ready = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    ready = true;
                } else if let Some(id) = line.strip_prefix("ack ") {
                    ids.push(id.parse::<i64>().unwrap());
                }
            }
            (ready, ids)
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
        // Child::kill sends SIGKILL on Unix.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let (ready, ids) = reader.join().unwrap();
        if !ready {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            // Killed before it finished opening: fine, unless it failed.
            assert!(
                err.is_empty(),
                "round {round}: child failed: {err} ({status})"
            );
        }
        acked.extend(ids);

        // The check closes the store at once (no close grace): the next
        // child would otherwise wait for the lingering store's lock and
        // spend its short life before the kill opening.
        let c = common::conn(Path::new(&format!(
            "file:{}?close_grace_ms=0",
            path.display()
        )));
        let present: BTreeSet<i64> = c
            .query("SELECT id FROM t", &[])
            .map(|rows| rows.iter().map(|r| r[0].as_i64().unwrap()).collect())
            .unwrap_or_default();
        let missing: Vec<_> = acked.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged ids missing after SIGKILL: {missing:?}"
        );
        if round % 10 == 9 {
            assert_eq!(
                c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
                Some("ok")
            );
        }
    }
    assert!(
        acked.len() > 500,
        "only {} commits acknowledged",
        acked.len()
    );
    eprintln!(
        "{kills} kills, {} acknowledged commits, {:.1} s",
        acked.len(),
        start.elapsed().as_secs_f64()
    );
}
