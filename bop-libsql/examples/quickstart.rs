//! libSQL on bop from Rust: `cargo run --release -p bop-libsql --example
//! quickstart [DIR]`. `tests/example.rs` compiles this file into a test and
//! runs it.

use bop_libsql::{open, OpenFlags, Value};

/// Opens (or creates) the store `DIR/app.db`, adds a note, returns how many
/// notes it holds.
pub fn run(dir: &str) -> Result<i64, bop_libsql::Error> {
    let path = format!("{dir}/app.db");
    // A bop store (a directory), opened by libSQL with bop's virtual WAL.
    let conn = open(&path, OpenFlags::default())?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT);",
    )?;
    conn.execute(
        "INSERT INTO notes(body) VALUES (?)",
        &[Value::from("hello, bop")],
    )?;
    // A second connection in the same process shares the store and WAL.
    let reader = open(&path, OpenFlags::default())?;
    reader.query_i64("SELECT count(*) FROM notes")
}

#[allow(dead_code)]
fn main() -> Result<(), bop_libsql::Error> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("bop-libsql-quickstart-{}", std::process::id()))
            .display()
            .to_string()
    });
    let n = run(&dir)?;
    println!("{dir}/app.db: {n} note(s)");
    Ok(())
}
