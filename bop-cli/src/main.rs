//! `bop`: the command line of the bop storage engine.
//!
//! - `bop quickstart [DIR]`: creates a bop database through SQLite, runs a
//!   small workload, and prints what it did and where the data lives.
//! - `bop inspect PATH`: prints a store's manifest summary.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart { dir, rows } => quickstart::run(dir, rows),
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
