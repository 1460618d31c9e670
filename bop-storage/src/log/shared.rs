//! The record log of a store, shared by all its databases.
//!
//! Every database of a store appends its commits to the one record log,
//! each record tagged with its database id. So commits of different databases
//! that meet share a sync: while one sync runs, commits of every database
//! are written behind it and the next sync covers them all (group commit
//! across databases, `flush.rs`).
//!
//! Each database has its own *base*, recorded in the manifest: the LSN
//! below which its records are obsolete (checkpointed into its page store);
//! recovery ignores its records below it. A segment is dropped only once
//! no database needs a record in it, so a database that does not
//! checkpoint keeps the record log from shrinking (`log_base_min` in the
//! stats).
//!
//! Invariants:
//! 1. `needs` has an entry for every database of the store, opened or not:
//!    the lowest LSN of a record that database still needs (`None`: none;
//!    a database without records never holds the record log back).
//! 2. `recovered` holds, for each database not open in this process, the
//!    records recovery found for it at or above its base.
//!
//! Lock order: a database's image lock (`Store::image`, see `store.rs`),
//! then the record log's lock (`SharedLog::inner`), then the flush
//! controller's lock (`Flusher::st`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::flush::Flusher;
use super::record::RecordLoc;
use super::record_log::{LogStats, RecordLog};
use super::recovery::RecoveredRecord;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::types::{DbId, Lsn};

#[derive(Debug)]
struct Inner {
    log: RecordLog,
    needs: BTreeMap<DbId, Option<Lsn>>,
    recovered: HashMap<DbId, Vec<RecoveredRecord>>,
}

#[derive(Debug)]
pub struct SharedLog {
    inner: Mutex<Inner>,
    flusher: Arc<Flusher>,
}

impl SharedLog {
    /// Wraps a recovered record log: splits its records by database,
    /// keeping each database's records at or above its base.
    pub fn new(
        log: RecordLog,
        records: Vec<RecoveredRecord>,
        bases: Vec<(DbId, Lsn)>,
    ) -> SharedLog {
        let bases: BTreeMap<DbId, Lsn> = bases.into_iter().collect();
        let mut needs: BTreeMap<DbId, Option<Lsn>> = bases.keys().map(|d| (*d, None)).collect();
        let mut recovered: HashMap<DbId, Vec<RecoveredRecord>> = HashMap::new();
        for r in records {
            match bases.get(&r.db) {
                Some(base) if r.loc.lsn >= *base => {
                    let need = needs.entry(r.db).or_default();
                    *need = Some(need.map_or(r.loc.lsn, |n| n.min(r.loc.lsn)));
                    recovered.entry(r.db).or_default().push(r)
                }
                Some(_) => {}
                None => tracing::warn!(
                    db = r.db.0,
                    lsn = r.loc.lsn.0,
                    "log record of an unknown database ignored"
                ),
            }
        }
        let flusher = log.flusher().clone();
        SharedLog {
            inner: Mutex::new(Inner {
                log,
                needs,
                recovered,
            }),
            flusher,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn flusher(&self) -> &Arc<Flusher> {
        &self.flusher
    }

    /// Takes the recovered records of `db` (once, when it opens).
    pub fn take_recovered(&self, db: DbId) -> Vec<RecoveredRecord> {
        self.lock().recovered.remove(&db).unwrap_or_default()
    }

    /// Keeps the records of the WAL image of a database that closes while
    /// the store stays open (invariant 2), for its next open.
    pub fn give_back(&self, db: DbId, records: Vec<RecoveredRecord>) {
        if !records.is_empty() {
            self.lock().recovered.insert(db, records);
        }
    }

    /// The next LSN: the base of a database created now.
    pub fn next_lsn(&self) -> Lsn {
        self.lock().log.next_lsn()
    }

    /// Adds a database created now (invariant 1).
    pub fn add_database(&self, db: DbId) {
        self.lock().needs.insert(db, None);
    }

    /// Appends one record of database `db` (see [`RecordLog::append`]).
    pub fn append(
        &self,
        manifest: &Manifest,
        db: DbId,
        buf: &mut [u8],
        wal_offset: u64,
        defer_write: bool,
        frames: Option<&crate::wal_format::RecordFrames>,
    ) -> Result<RecordLoc> {
        let mut g = self.lock();
        let loc = g
            .log
            .append(manifest, db, buf, wal_offset, defer_write, frames)?;
        let need = g.needs.entry(db).or_default();
        if need.is_none() {
            *need = Some(loc.lsn);
        }
        Ok(loc)
    }

    /// Moves `db`'s base: its records below `base` are obsolete (`has_records`:
    /// whether it has a record at `base`; `recorded`: the manifest holds the
    /// new base already). Drops the segments no database needs any more.
    pub fn set_base(
        &self,
        manifest: &Manifest,
        db: DbId,
        base: Lsn,
        has_records: bool,
        recorded: bool,
    ) -> Result<()> {
        let mut g = self.lock();
        let old = g.needs.insert(db, has_records.then_some(base));
        let next = g.log.next_lsn();
        let min = g.needs.values().flatten().copied().min().unwrap_or(next);
        let r = g.log.drop_before(manifest, (db, base), min, recorded);
        if r.is_err() {
            // Not recorded: keep what was needed so nothing goes early.
            g.needs.insert(db, old.flatten());
        }
        r
    }

    pub fn written_lsn(&self) -> Lsn {
        self.flusher.written_lsn()
    }

    pub fn durable_lsn(&self) -> Lsn {
        self.flusher.durable_lsn()
    }

    /// Ends the log cleanly and syncs it (a clean shutdown), then deletes
    /// the spare segments (space a closed store need not hold; a failure to
    /// delete one is logged, not an error: the next open adopts it).
    pub fn close(&self) -> Result<()> {
        let mut g = self.lock();
        g.log.mark_end()?;
        g.log.sync()?;
        if let Err(e) = g.log.drop_spares() {
            tracing::warn!(error = %e, "could not delete a spare log segment at close");
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.lock().log.segment_count()
    }

    pub fn next_lsn_and_stats(&self) -> (Lsn, LogStats) {
        let g = self.lock();
        (g.log.next_lsn(), g.log.stats())
    }

    /// The oldest record some database still needs (the next LSN if none).
    pub fn min_base(&self) -> Lsn {
        let g = self.lock();
        g.needs
            .values()
            .flatten()
            .copied()
            .min()
            .unwrap_or_else(|| g.log.next_lsn())
    }
}
