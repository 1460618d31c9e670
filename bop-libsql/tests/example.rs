//! The README's Rust example (`examples/quickstart.rs`), compiled into this
//! test and run twice on one store.

#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn quickstart_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(quickstart::run(d).unwrap(), 1);
    assert_eq!(quickstart::run(d).unwrap(), 2);
}
