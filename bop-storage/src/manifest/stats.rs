//! Counters of the manifest and the stats it reports through
//! `Store::stats()` and `PRAGMA bop_stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::cursors::{self, CursorInfo};
use super::tables::FORMAT_VERSION;
use super::Manifest;
use crate::error::Result;

/// Counters of the manifest, and what the change log, cursors and journal
/// hold now.
#[derive(Clone, Debug, Default)]
pub struct ManifestStats {
    pub format_version: u32,
    /// The version the store was upgraded from at this open (0: none).
    pub upgraded_from: u32,
    /// Whether the open before this one ended with a clean shutdown.
    pub previous_shutdown_clean: bool,
    pub change_log_entries: u64,
    /// First and last sequence number in the change log (0 when empty).
    pub change_first_seq: u64,
    pub change_last_seq: u64,
    /// Since this open: changes appended, entries truncated.
    pub changes_appended: u64,
    pub changes_truncated: u64,
    pub cursors: Vec<CursorInfo>,
    /// Cursors marked lagged now, and times a cursor was marked since open.
    pub cursors_lagged: u64,
    pub cursor_lag_events: u64,
    /// Intents whose work is not done yet.
    pub journal_pending: u64,
    /// Since this open: intents written, intents settled (work done).
    pub journal_written: u64,
    pub journal_settled: u64,
    /// At this open: intents replayed, files they removed.
    pub journal_replayed: u64,
    pub journal_files_removed: u64,
    pub map_size_bytes: u64,
    pub map_grows: u64,
    /// Since this open: write transactions committed (each one sync of
    /// the manifest).
    pub commits: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) changes_appended: AtomicU64,
    pub(super) changes_truncated: AtomicU64,
    pub(super) cursor_lag_events: AtomicU64,
    pub(super) journal_written: AtomicU64,
    pub(super) journal_settled: AtomicU64,
    pub(super) map_grows: AtomicU64,
    pub(super) commits: AtomicU64,
    /// Test hook: the commit (counted from the injection) that "crashes".
    pub(super) crash_at_commit: AtomicU64,
    pub(super) commits_since_injection: AtomicU64,
}

impl Manifest {
    /// Counters and the state of the change log, cursors and journal.
    pub fn stats(&self) -> Result<ManifestStats> {
        let me = self.map_err();
        let (bounds, cursors, journal_pending) = self.read(|rtxn| {
            let bounds = self.bounds_in(rtxn)?;
            let cursors: Vec<CursorInfo> = cursors::all(self.cursors, rtxn, &self.path)?
                .iter()
                .map(|(n, s)| cursors::info(n, s, bounds.1))
                .collect();
            Ok((bounds, cursors, self.journal.len(rtxn).map_err(&me)?))
        })?;
        let c = &self.counters;
        let replayed = *self.replayed.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ManifestStats {
            format_version: FORMAT_VERSION,
            upgraded_from: self.upgraded_from.load(Ordering::Relaxed),
            previous_shutdown_clean: self.previous_clean.load(Ordering::Relaxed) == 1,
            change_log_entries: bounds.2,
            change_first_seq: bounds.0,
            change_last_seq: bounds.1,
            changes_appended: c.changes_appended.load(Ordering::Relaxed),
            changes_truncated: c.changes_truncated.load(Ordering::Relaxed),
            cursors_lagged: cursors.iter().filter(|c| c.lagged).count() as u64,
            cursors,
            cursor_lag_events: c.cursor_lag_events.load(Ordering::Relaxed),
            // Intents whose work is done wait for the next write to go.
            journal_pending:
                journal_pending.saturating_sub(
                    self.settled.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
                ),
            journal_written: c.journal_written.load(Ordering::Relaxed),
            journal_settled: c.journal_settled.load(Ordering::Relaxed),
            journal_replayed: replayed.intents,
            journal_files_removed: replayed.files_removed,
            map_size_bytes: self.env.info().map_size as u64,
            map_grows: c.map_grows.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
        })
    }
}
