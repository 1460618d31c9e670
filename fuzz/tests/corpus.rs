//! Stable-Rust replay: every file of `corpus/<target>/` (the committed seeds
//! plus anything a fuzzing run added) and of `artifacts/<target>/`
//! (reproducers of past crashes, if any) goes through its target.
//! `cargo test --release` in `fuzz/`; needs no nightly and no libFuzzer run.

use std::path::Path;

#[test]
fn replay_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for (name, target) in bop_fuzz::TARGETS {
        let mut n = 0;
        for sub in ["corpus", "artifacts"] {
            let Ok(dir) = std::fs::read_dir(root.join(sub).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                eprintln!("{name}: {}", f.display());
                target(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no corpus for {name}");
        total += n;
    }
    eprintln!("{total} inputs replayed");
}

#[test]
fn seeds_pass() {
    for (target, name, bytes) in bop_fuzz::seeds::all() {
        let f = bop_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .unwrap()
            .1;
        eprintln!("{target}/{name}");
        f(&bytes);
    }
}
