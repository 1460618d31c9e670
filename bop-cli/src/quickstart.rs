//! The quickstart: the README's first command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};

type Error = Box<dyn std::error::Error>;

fn open(path: &Path) -> Result<Connection, Error> {
    let uri = format!("file:{}?vfs=bop", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI;
    Ok(Connection::open_with_flags(uri, flags)?)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                // Allocated bytes, not the apparent size of preallocated files.
                use std::os::unix::fs::MetadataExt;
                e.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
            }
        })
        .sum()
}

pub fn run(dir: Option<PathBuf>, rows: u32) -> Result<(), Error> {
    bop_rusqlite::register()?;
    let (_tmp, dir) = match dir {
        Some(d) => (None, d),
        None => {
            let base = std::env::temp_dir().join(format!("bop-quickstart-{}", std::process::id()));
            (Some(()), base)
        }
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("quickstart.db");
    println!("bop quickstart");
    println!("  database: file:{}?vfs=bop", path.display());

    let conn = open(&path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS accounts_owner ON accounts(owner);",
    )?;
    let start = Instant::now();
    let tx = conn.unchecked_transaction()?;
    {
        let mut ins = tx.prepare("INSERT INTO accounts(owner, balance) VALUES (?1, ?2)")?;
        for i in 0..rows {
            ins.execute(params![
                format!("owner-{:06}", i % 5000),
                i64::from(i % 1000)
            ])?;
        }
    }
    tx.commit()?;
    let load = start.elapsed();
    println!(
        "  inserted {rows} rows in one transaction in {:.1} ms (journal_mode={mode})",
        load.as_secs_f64() * 1e3
    );

    let start = Instant::now();
    let commits = 200;
    for i in 0..commits {
        conn.execute(
            "UPDATE accounts SET balance = balance + 1 WHERE id = ?1",
            params![i64::from(i) % i64::from(rows.max(1)) + 1],
        )?;
    }
    let el = start.elapsed();
    println!(
        "  {commits} single-row durable commits (synchronous=FULL): {:.0} commits/s",
        f64::from(commits) / el.as_secs_f64()
    );
    let (count, total): (i64, i64) =
        conn.query_row("SELECT count(*), total(balance) FROM accounts", [], |r| {
            Ok((r.get(0)?, r.get::<_, f64>(1)? as i64))
        })?;
    let top: String = conn.query_row(
        "SELECT owner FROM accounts GROUP BY owner ORDER BY sum(balance) DESC, owner LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    println!("  query: {count} rows, total balance {total}, richest owner {top}");
    let stats: String = conn.query_row("PRAGMA bop_stats", [], |r| r.get(0))?;
    println!("  bop_stats: {stats}");
    drop(conn);

    let conn = open(&path)?;
    let again: i64 = conn.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    drop(conn);
    println!("  reopened: {again} rows, integrity_check={check}");

    println!(
        "  where the data lives ({} bytes on disk):",
        dir_size(&path)
    );
    for sub in ["manifest", "wal", "chunks"] {
        let p = path.join(sub);
        let files = std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0);
        let what = match sub {
            "manifest" => "LMDB manifest: databases, log segments, page chunks, page index",
            "wal" => "record log segments: one checksummed record per committed transaction",
            _ => "page chunks: checksummed pages moved here by checkpoints",
        };
        println!(
            "    {:<60} {files:>3} files  {what}",
            p.display().to_string()
        );
    }
    println!(
        "  no plain SQLite file or -wal file was written: {} is a directory",
        path.display()
    );
    Ok(())
}
