//! `bop`: the command line of the bop storage engine.
//!
//! - `bop quickstart [DIR]`: creates a bop database through SQLite, runs a
//!   small workload, and prints what it did and where the data lives.
//! - `bop verify PATH`: opens the store (an ordinary open: it takes the
//!   store's lock, runs recovery and starts an epoch) and re-reads every
//!   page checksum and every log-record payload checksum of its main
//!   database.
//! - `bop changes PATH [--cursor NAME [--ack]] [--after SEQ] [--max N]`:
//!   prints the manifest's change log (after a sequence number, or what a
//!   cursor has not acknowledged; `--ack` acknowledges what was printed).
//! - `bop cursors PATH`: lists the change-log cursors and their lag.
//!
//! Like `verify`, these open the store (so they take its lock, which fails
//! while another process has the store open, and start an epoch, which the
//! change log records).

mod quickstart;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bop",
    version,
    about = "bop: SQLite on durable, checksummed storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a bop database through SQLite, run a small workload, print where the data lives.
    Quickstart {
        /// Directory to create the database in (default: a new temporary directory).
        dir: Option<PathBuf>,
        /// Rows to insert.
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
    },
    /// Open a store and verify its main database's page and log-record checksums.
    Verify {
        /// The store directory (the PATH of file:PATH?vfs=bop).
        path: PathBuf,
    },
    /// Print the manifest's change log.
    Changes {
        /// The store directory.
        path: PathBuf,
        /// Print what this cursor has not acknowledged yet.
        #[arg(long)]
        cursor: Option<String>,
        /// With --cursor: acknowledge the changes printed.
        #[arg(long, requires = "cursor")]
        ack: bool,
        /// Without --cursor: print changes after this sequence number.
        #[arg(long, default_value_t = 0, conflicts_with = "cursor")]
        after: u64,
        /// Most changes to print.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// List the change-log cursors with their acknowledged sequence number and lag.
    Cursors {
        /// The store directory.
        path: PathBuf,
    },
}

fn open_existing(
    path: &std::path::Path,
) -> Result<std::sync::Arc<bop_storage::Store>, Box<dyn std::error::Error>> {
    if !bop_storage::is_store(path) {
        return Err(format!("{} is not a bop store", path.display()).into());
    }
    let opts = bop_storage::StoreOptions {
        create: false,
        ..Default::default()
    };
    Ok(bop_storage::Store::open_shared(path, &opts)?)
}

fn changes(
    path: &std::path::Path,
    cursor: Option<&str>,
    ack: bool,
    after: u64,
    max: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_existing(path)?;
    let list = match cursor {
        Some(name) => store.read_changes(name, max)?,
        None => store.manifest().changes_after(after, max)?,
    };
    for (seq, change) in &list {
        println!("{seq}\t{change:?}");
    }
    let (first, last, len) = store.manifest().change_log_bounds()?;
    eprintln!(
        "{} printed; the log holds {len} (seq {first}..={last})",
        list.len()
    );
    if let (Some(name), true, Some((seq, _))) = (cursor, ack, list.last()) {
        store.ack_changes(name, *seq)?;
        eprintln!("cursor {name} acknowledged {seq}");
    }
    Ok(())
}

fn cursors(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_existing(path)?;
    for c in store.cursors()? {
        println!(
            "{}\tacked={}\tregistered_at={}\tlag={}{}",
            c.name,
            c.acked,
            c.registered_at,
            c.lag,
            if c.lagged { "\tLAGGED (resync)" } else { "" }
        );
    }
    Ok(())
}

fn verify(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    if !bop_storage::is_store(path) {
        return Err(format!("{} is not a bop store", path.display()).into());
    }
    let opts = bop_storage::StoreOptions {
        create: false,
        ..Default::default()
    };
    // Opening runs recovery (segment headers, the records of segments not
    // taken from an index file; a torn tail is cut); verify() then re-reads
    // every page checksum and the payload checksum of every log record of
    // the WAL image.
    let store = bop_storage::Store::open_shared(path, &opts)?;
    let report = store.verify()?;
    let stats = store.stats();
    println!(
        "ok: {} pages verified in {} chunks, {} log records verified in {} log segments ({} bytes of database)",
        report.pages_checked,
        stats.pages.chunks,
        report.records_checked,
        stats.log_segments,
        store.db_size()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart { dir, rows } => quickstart::run(dir, rows),
        Command::Verify { path } => verify(&path),
        Command::Changes {
            path,
            cursor,
            ack,
            after,
            max,
        } => changes(&path, cursor.as_deref(), ack, after, max),
        Command::Cursors { path } => cursors(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(detail) = bop_rusqlite::last_error() {
                eprintln!("detail: {detail}");
            }
            ExitCode::FAILURE
        }
    }
}
