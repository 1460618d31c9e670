//! URI parameters accepted by the `bop` VFS.

use bop_storage::io::{backend, IoMode};
use bop_storage::store_dir::{CLOSE_GRACE_DEFAULT_MS, CLOSE_GRACE_MAX_MS};
use bop_storage::{validate_page_size, StorageError, StoreOptions};

/// Documentation of every parameter, shown in errors and the README.
pub const PARAMS_DOC: &str = "\
page_size=N     page size in bytes for a new store: a power of two from 512 to 65536 (default 4096); \
an existing store must be opened with its own page size or none
max_txn_mb=N    largest transaction SQLite may build before commit, in MiB (1..=65536, default 1024); \
a larger one fails with SQLITE_FULL
log_segment_mb=N size of a preallocated segment file of the record log in MiB (1..=4096, default 8)
io=MODE         file I/O backend: std (buffered), direct (direct I/O for the record log's segments where the \
filesystem supports it, buffered elsewhere), direct-required (fail where it does not), uring (io_uring; std where \
unavailable); default: the BOP_IO environment variable, else direct. Applies when the store is first \
opened in the process
log_buffer_kb=N  bound of the record log's written-but-unsynced bytes in KiB (64..=1048576, default 4096); \
a background sync starts at half; a new write transaction waits for room, then gets SQLITE_BUSY
log_busy_ms=N   how long a new write transaction waits for room in that buffer before SQLITE_BUSY \
(0..=600000, default 2000)
log_sync_retries=N retries of a failed sync of the record log, each rewriting the unsynced bytes first, \
before the store refuses writes (0..=16, default 4). The log_* parameters apply when the store is first \
opened in the process; their older names wal_segment_mb, wal_buffer_kb, wal_busy_ms and wal_sync_retries \
are still accepted
cache_mb=N      bound of bop's page cache in MiB (0..=1048576, 0 = off; default: the BOP_CACHE_MB \
environment variable, else 64). The cache is one per process, shared by every database: the \
bound set by the last open that names it applies to all
close_grace_ms=N how long the store stays open in the process after its last connection closes, so that the next open is cheap (0..=1000, 0 = close at once; default 100). A lingering store keeps its lock: another process opening it waits up to 1000 ms more for it; at most 16 stores linger, and all close cleanly at process exit. Applies when the store is first opened in the process
create_parents=B create a new store's missing parent directories (1) or refuse to open it with \
SQLITE_CANTOPEN as SQLite does (0, the default)
ckpt_wal_mb=N   bop checkpoints the database in the background (a PASSIVE checkpoint on a connection \
of its own) once its WAL holds N MiB (0..=65536, 0 = never by size; default 16), whatever \
wal_autocheckpoint says
ckpt_age_s=N    ... or once the WAL's oldest frame is N seconds old (0..=86400, 0 = never by age; \
default 30)
ckpt_warn_s=N   warn (sqlite3_log, and a count in PRAGMA bop_stats) once background checkpoints have been \
incomplete for N seconds because a reader holds an old snapshot (0..=86400, default 10). The ckpt_* \
parameters apply when the database is first opened in the process";

/// Parameters SQLite itself interprets; bop leaves them alone.
const SQLITE_KEYS: &[&str] = &["vfs", "mode", "cache", "psow", "nolock", "immutable"];

/// Parsed bop parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub page_size: Option<u32>,
    pub max_txn_mb: Option<u64>,
    pub log_segment_mb: Option<u64>,
    pub io: Option<IoMode>,
    pub log_buffer_kb: Option<u64>,
    pub log_busy_ms: Option<u64>,
    pub log_sync_retries: Option<u64>,
    pub cache_mb: Option<u64>,
    pub ckpt_wal_mb: Option<u64>,
    pub ckpt_age_s: Option<u64>,
    pub ckpt_warn_s: Option<u64>,
    pub create_parents: bool,
    pub close_grace_ms: Option<u64>,
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, StorageError> {
    let n: u64 = value.trim().parse().map_err(|_| {
        StorageError::Config(format!("URI parameter {key}={value:?} is not a number"))
    })?;
    if !(min..=max).contains(&n) {
        return Err(StorageError::Config(format!(
            "URI parameter {key}={n} is out of range {min}..={max}"
        )));
    }
    Ok(n)
}

impl Params {
    /// Parses `(key, value)` pairs. Unknown keys are errors, so a misspelled
    /// parameter is never silently ignored.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Params, StorageError> {
        let mut p = Params::default();
        for (key, value) in pairs {
            match key {
                "page_size" => {
                    let n = number(key, value, 0, u64::from(u32::MAX))? as u32;
                    validate_page_size(n)?;
                    p.page_size = Some(n);
                }
                "max_txn_mb" => p.max_txn_mb = Some(number(key, value, 1, 65536)?),
                // The record log's parameters; the `wal_*` spellings are
                // their names before the record log had its own word, and
                // stay accepted.
                "log_segment_mb" | "wal_segment_mb" => {
                    p.log_segment_mb = Some(number(key, value, 1, 4096)?)
                }
                "log_buffer_kb" | "wal_buffer_kb" => {
                    p.log_buffer_kb = Some(number(key, value, 64, 1 << 20)?)
                }
                "log_busy_ms" | "wal_busy_ms" => {
                    p.log_busy_ms = Some(number(key, value, 0, 600_000)?)
                }
                "log_sync_retries" | "wal_sync_retries" => {
                    p.log_sync_retries = Some(number(key, value, 0, 16)?)
                }
                "cache_mb" => {
                    p.cache_mb = Some(number(key, value, 0, bop_storage::cache::CAPACITY_MB_MAX)?)
                }
                "io" => {
                    p.io = Some(value.parse().map_err(|e: StorageError| {
                        StorageError::Config(format!("URI parameter io={value:?}: {e}"))
                    })?)
                }
                "ckpt_wal_mb" => p.ckpt_wal_mb = Some(number(key, value, 0, 65536)?),
                "ckpt_age_s" => p.ckpt_age_s = Some(number(key, value, 0, 86400)?),
                "ckpt_warn_s" => p.ckpt_warn_s = Some(number(key, value, 0, 86400)?),
                "close_grace_ms" => {
                    p.close_grace_ms = Some(number(key, value, 0, CLOSE_GRACE_MAX_MS)?)
                }
                "create_parents" => p.create_parents = number(key, value, 0, 1)? == 1,
                k if SQLITE_KEYS.contains(&k) => {}
                k => {
                    return Err(StorageError::Config(format!(
                        "unknown URI parameter {k:?}; bop accepts:\n{PARAMS_DOC}"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// Applies the parameters to store options. Fails if the I/O backend
    /// cannot be set up.
    pub fn apply(&self, opts: &mut StoreOptions) -> Result<(), StorageError> {
        opts.page_size = self.page_size;
        opts.create_parents = self.create_parents;
        opts.close_grace_ms = self.close_grace_ms.unwrap_or(CLOSE_GRACE_DEFAULT_MS);
        if let Some(kb) = self.log_buffer_kb {
            opts.log.flush.unsynced_max_bytes = kb << 10;
        }
        if let Some(ms) = self.log_busy_ms {
            opts.log.flush.backpressure_wait_max_ms = ms;
        }
        if let Some(n) = self.log_sync_retries {
            opts.log.flush.retries_max = n as u32;
        }
        if let Some(mb) = self.max_txn_mb {
            opts.max_txn_bytes = mb << 20;
        }
        if let Some(mb) = self.log_segment_mb {
            opts.log.segment_bytes = mb << 20;
        }
        if let Some(mode) = self.io {
            opts.io = backend(mode)?;
        }
        Ok(())
    }

    /// The checkpoint policy these parameters ask for.
    pub(crate) fn checkpoint_config(&self) -> crate::checkpointer::CkptConfig {
        let mut c = crate::checkpointer::CkptConfig::default();
        if let Some(mb) = self.ckpt_wal_mb {
            c.wal_bytes_max = mb << 20;
        }
        if let Some(s) = self.ckpt_age_s {
            c.age_ms = s * 1000;
        }
        if let Some(s) = self.ckpt_warn_s {
            c.blocked_warn_ms = s * 1000;
        }
        c
    }

    /// Applies the process-wide parameters (the page cache bound): on every
    /// open that names them, not only the store's first.
    pub fn apply_process_wide(&self) {
        if let Some(mb) = self.cache_mb {
            bop_storage::cache::global().set_capacity(mb << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_rejects_bad() {
        let p =
            Params::parse([("page_size", "8192"), ("vfs", "bop"), ("max_txn_mb", "5")]).unwrap();
        assert_eq!(p.page_size, Some(8192));
        assert_eq!(p.max_txn_mb, Some(5));
        assert!(Params::parse([("page_size", "3000")]).is_err());
        assert!(Params::parse([("page_size", "abc")]).is_err());
        assert!(Params::parse([("max_txn_mb", "0")]).is_err());
        assert!(Params::parse([("pagesize", "4096")]).is_err());
    }

    #[test]
    fn create_parents_parses_applies_and_rejects_bad() {
        assert!(!Params::parse([]).unwrap().create_parents);
        let p = Params::parse([("create_parents", "1")]).unwrap();
        let mut opts = StoreOptions::default();
        assert!(!opts.create_parents);
        p.apply(&mut opts).unwrap();
        assert!(opts.create_parents);
        assert!(
            !Params::parse([("create_parents", "0")])
                .unwrap()
                .create_parents
        );
        assert!(Params::parse([("create_parents", "2")]).is_err());
        assert!(Params::parse([("create_parents", "yes")]).is_err());
        assert!(PARAMS_DOC.contains("create_parents=B"));
    }

    #[test]
    fn close_grace_ms_parses_applies_defaults_and_rejects_bad() {
        let mut opts = StoreOptions::default();
        Params::parse([("close_grace_ms", "0")])
            .unwrap()
            .apply(&mut opts)
            .unwrap();
        assert_eq!(opts.close_grace_ms, 0);
        Params::parse([("close_grace_ms", "1000")])
            .unwrap()
            .apply(&mut opts)
            .unwrap();
        assert_eq!(opts.close_grace_ms, 1000);
        Params::parse(std::iter::empty())
            .unwrap()
            .apply(&mut opts)
            .unwrap();
        assert_eq!(opts.close_grace_ms, CLOSE_GRACE_DEFAULT_MS);
        assert!(Params::parse([("close_grace_ms", "1001")]).is_err());
        assert!(Params::parse([("close_grace_ms", "x")]).is_err());
        assert!(PARAMS_DOC.contains("close_grace_ms=N"));
    }

    #[test]
    fn log_bounds_parse_apply_and_reject_bad() {
        let p = Params::parse([
            ("log_buffer_kb", "128"),
            ("log_busy_ms", "0"),
            ("log_sync_retries", "2"),
            ("log_segment_mb", "3"),
        ])
        .unwrap();
        let mut opts = StoreOptions::default();
        p.apply(&mut opts).unwrap();
        assert_eq!(opts.log.flush.unsynced_max_bytes, 128 << 10);
        assert_eq!(opts.log.flush.backpressure_wait_max_ms, 0);
        assert_eq!(opts.log.flush.retries_max, 2);
        assert_eq!(opts.log.segment_bytes, 3 << 20);
        assert!(Params::parse([("log_buffer_kb", "1")]).is_err());
        assert!(Params::parse([("log_sync_retries", "17")]).is_err());
        assert!(Params::parse([("log_busy_ms", "x")]).is_err());
    }

    #[test]
    fn older_wal_names_of_log_parameters_are_accepted() {
        let old = Params::parse([
            ("wal_buffer_kb", "128"),
            ("wal_busy_ms", "7"),
            ("wal_sync_retries", "2"),
            ("wal_segment_mb", "3"),
        ])
        .unwrap();
        let new = Params::parse([
            ("log_buffer_kb", "128"),
            ("log_busy_ms", "7"),
            ("log_sync_retries", "2"),
            ("log_segment_mb", "3"),
        ])
        .unwrap();
        assert_eq!(old, new);
        assert!(Params::parse([("wal_sync_retries", "17")]).is_err());
    }

    #[test]
    fn cache_mb_parses_applies_and_rejects_bad() {
        let p = Params::parse([("cache_mb", "0")]).unwrap();
        assert_eq!(p.cache_mb, Some(0));
        assert!(Params::parse([("cache_mb", "1048577")]).is_err());
        assert!(Params::parse([("cache_mb", "-1")]).is_err());
        let before = bop_storage::cache::global().stats().capacity_bytes;
        Params::parse([("cache_mb", "3")])
            .unwrap()
            .apply_process_wide();
        assert_eq!(bop_storage::cache::global().stats().capacity_bytes, 3 << 20);
        bop_storage::cache::global().set_capacity(before);
    }

    #[test]
    fn io_mode_parses_applies_and_rejects_bad() {
        use bop_storage::DirectMode;
        for (v, m, name) in [
            ("std", IoMode::Std, "std"),
            ("direct", IoMode::Direct(DirectMode::Optional), "direct"),
            (
                "direct-required",
                IoMode::Direct(DirectMode::Required),
                "direct",
            ),
            ("uring", IoMode::Uring, "uring"),
        ] {
            let p = Params::parse([("io", v)]).unwrap();
            assert_eq!(p.io, Some(m));
            let mut opts = StoreOptions::default();
            p.apply(&mut opts).unwrap();
            // Exactly the backend asked for: io_uring works where the suite
            // runs (a fallback to std would leave uring untested).
            assert_eq!(opts.io.name(), name, "io={v}");
        }
        for bad in ["", "io_uring", "DIRECT", "direct-optional"] {
            let e = Params::parse([("io", bad)]).unwrap_err();
            assert!(matches!(e, StorageError::Config(_)), "{e}");
            assert!(e.to_string().contains("direct-required"), "{e}");
        }
        assert!(PARAMS_DOC.contains("io=MODE"));
    }
}
