//! Regenerates the seed corpus under `corpus/<target>/`:
//! `cargo test --release --test gen_corpus -- --ignored`
//! (existing files of the same name are overwritten; others are left).

#[test]
#[ignore = "writes corpus files; run on purpose"]
fn generate_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in bop_fuzz::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
