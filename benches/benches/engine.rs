//! criterion micro-benchmarks of the commit path, bop against stock SQLite
//! on the same bundled SQLite.

use bop_benches::{open, single_row_commits, Engine};
use criterion::{criterion_group, criterion_main, Criterion};

fn commits(c: &mut Criterion) {
    for sync in ["FULL", "NORMAL"] {
        for engine in [Engine::Stock, Engine::Bop] {
            let dir = tempfile::tempdir().expect("tempdir");
            let conn = open(engine, dir.path(), "b.db", sync);
            let mut key = 1i64;
            c.bench_function(
                &format!("single-row commit {sync} {}", engine.name()),
                |b| {
                    b.iter(|| {
                        single_row_commits(&conn, key, 1);
                        key += 1;
                    })
                },
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = commits
}
criterion_main!(benches);
