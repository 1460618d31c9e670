//! Opening the manifest ([`Manifest::open_with`]), in steps: the
//! structural check of `data.mdb` (`lmdb_check.rs`), the LMDB environment
//! ([`open_env`]), a foreign environment refused and left untouched
//! ([`refuse_foreign_tables`]), the tables ([`create_tables`]), and the
//! format version ([`init_or_upgrade_meta`]): a new store is created, a
//! version 2 store upgraded in place, a newer version refused. Last, the
//! change log, cursor and journal tables are verified.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RwTxn};

use super::digest::Digest;
use super::keys::{self, meta_crc, meta_key, seal_meta};
use super::lmdb_check;
use super::stats::Counters;
use super::tables::{self, DATABASES_MAX, FORMAT_VERSION};
use super::{DbTables, Manifest, ManifestConfig, ReplayReport};
use crate::error::{Result, StorageError};
use crate::types::{DbId, Lsn};

/// Oldest format version this build upgrades in place.
const UPGRADABLE_FROM: u32 = 2;

/// Whether an LMDB table name is one bop creates.
fn is_bop_table(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name);
    if tables::STORE_TABLES.contains(&name.as_ref()) {
        return true;
    }
    ["chunks", "pages"].iter().any(|base| {
        name == *base
            || name
                .strip_prefix(base)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|n| n.parse::<u16>().is_ok())
    })
}

impl Manifest {
    /// Opens the manifest at `dir` with the default configuration,
    /// creating it with `page_size` if `create`.
    pub fn open(dir: &Path, create: bool, page_size: u32) -> Result<Manifest> {
        Self::open_with(dir, create, page_size, ManifestConfig::default())
    }

    /// Opens the manifest at `dir`, creating it with `page_size` if
    /// `create`; upgrades a version 2 store in place; refuses a newer or
    /// foreign one.
    pub fn open_with(
        dir: &Path,
        create: bool,
        page_size: u32,
        config: ManifestConfig,
    ) -> Result<Manifest> {
        let map_err = keys::heed_err(dir);
        if config.change_log_max_entries == 0 {
            return Err(StorageError::Config(
                "change_log_max_entries must be at least 1".into(),
            ));
        }
        if create {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io("mkdir", dir, e))?;
        }
        // LMDB trusts its B-tree structure: check it before LMDB maps it.
        let data = dir.join("data.mdb");
        if data.exists() {
            lmdb_check::check(&data)?;
        }
        let env = open_env(dir, &config)?;
        let mut wtxn = env.write_txn().map_err(&map_err)?;
        // A foreign LMDB environment is refused before anything is created
        // in it (dropping the transaction aborts it).
        refuse_foreign_tables(&env, &wtxn, dir)?;
        let t = create_tables(&env, &mut wtxn, dir)?;
        let upgraded_from = init_or_upgrade_meta(t.meta, &mut wtxn, dir, create, page_size)?;
        // An existing store's meta is not resealed here: `load` verifies it.
        wtxn.commit().map_err(&map_err)?;
        let m = Manifest {
            env,
            path: dir.to_path_buf(),
            meta: t.meta,
            segments: t.segments,
            changes: t.changes,
            cursors: t.cursors,
            journal: t.journal,
            tables: Mutex::new(HashMap::from([(DbId::MAIN, t.main)])),
            config,
            gate: RwLock::new(()),
            settled: Mutex::new(Vec::new()),
            counters: Counters::default(),
            replayed: Mutex::new(ReplayReport::default()),
            previous_clean: AtomicU8::new(0),
            pending_epoch: Mutex::new(None),
            epoch_pending: AtomicBool::new(false),
            upgraded_from: AtomicU32::new(upgraded_from),
            crashed: AtomicBool::new(false),
        };
        m.verify_change_log_tables()?;
        Ok(m)
    }
}

/// Opens the LMDB environment at `dir` with the configured map size.
fn open_env(dir: &Path, config: &ManifestConfig) -> Result<Env> {
    let map_size = config.map_size_bytes.max(1 << 20).next_multiple_of(1 << 20);
    // SAFETY: the store's exclusive process lock (LOCK file) guarantees
    // no other process maps this environment, and within the process the
    // store registry opens each environment once.
    unsafe {
        EnvOpenOptions::new()
            .map_size(map_size)
            .max_dbs(tables::STORE_TABLES.len() as u32 + 2 * (u32::from(DATABASES_MAX) + 1))
            .open(dir)
    }
    .map_err(keys::heed_err(dir))
}

/// Refuses an environment holding a table bop never creates: not a store.
fn refuse_foreign_tables(env: &Env, wtxn: &RwTxn, dir: &Path) -> Result<()> {
    let map_err = keys::heed_err(dir);
    let Some(main) = env
        .open_database::<Bytes, Bytes>(wtxn, None)
        .map_err(&map_err)?
    else {
        return Ok(());
    };
    for item in main.iter(wtxn).map_err(&map_err)? {
        let (k, _) = item.map_err(&map_err)?;
        if !is_bop_table(k) {
            return Err(format_err(
                dir,
                format!(
                    "manifest holds LMDB table {:?}, which bop never creates: not a bop store",
                    String::from_utf8_lossy(k)
                ),
            ));
        }
    }
    Ok(())
}

/// The store's tables and the main database's, as `create_tables` opens
/// them.
struct StoreTableHandles {
    meta: Database<Bytes, Bytes>,
    segments: Database<Bytes, Bytes>,
    changes: Database<Bytes, Bytes>,
    cursors: Database<Bytes, Bytes>,
    journal: Database<Bytes, Bytes>,
    main: DbTables,
}

/// Opens the store's tables and the main database's, creating those that
/// do not exist yet.
fn create_tables(env: &Env, wtxn: &mut RwTxn, dir: &Path) -> Result<StoreTableHandles> {
    let map_err = keys::heed_err(dir);
    let mut create_table = |name: &str| -> Result<Database<Bytes, Bytes>> {
        env.create_database(wtxn, Some(name)).map_err(&map_err)
    };
    Ok(StoreTableHandles {
        meta: create_table("meta")?,
        segments: create_table("segments")?,
        changes: create_table("changes")?,
        cursors: create_table("cursors")?,
        journal: create_table("journal")?,
        main: DbTables {
            chunks: create_table("chunks")?,
            pages: create_table("pages")?,
        },
    })
}

/// Writes the `meta` of a new store (or of one whose first transaction
/// never committed: a crash while the store was being created leaves an
/// empty manifest), upgrades a version 2 store in place, or refuses an
/// unknown version. Returns the version upgraded from (0: none).
fn init_or_upgrade_meta(
    meta: Database<Bytes, Bytes>,
    wtxn: &mut RwTxn,
    dir: &Path,
    create: bool,
    page_size: u32,
) -> Result<u32> {
    let map_err = keys::heed_err(dir);
    let empty = meta.is_empty(wtxn).map_err(&map_err)?;
    let version = match meta.get(wtxn, meta_key::FORMAT_VERSION).map_err(&map_err)? {
        None if create || empty => {
            init_meta(meta, wtxn, dir, page_size)?;
            return Ok(0);
        }
        None => {
            return Err(format_err(
                dir,
                "manifest has no format version: not a bop store".into(),
            ))
        }
        Some(v) => keys::decode_u32(v, dir)?,
    };
    if version == UPGRADABLE_FROM {
        upgrade_from_2(meta, wtxn, dir)?;
        return Ok(version);
    }
    if version > FORMAT_VERSION {
        return Err(format_err(
            dir,
            format!(
                "store format version {version} is newer than this build reads ({FORMAT_VERSION}): use a newer bop"
            ),
        ));
    }
    if version != FORMAT_VERSION {
        return Err(format_err(
            dir,
            format!(
                "store format version {version} is not supported (this build reads {UPGRADABLE_FROM} and {FORMAT_VERSION})"
            ),
        ));
    }
    Ok(0)
}

/// The `meta` of a new store, sealed.
fn init_meta(
    meta: Database<Bytes, Bytes>,
    wtxn: &mut RwTxn,
    dir: &Path,
    page_size: u32,
) -> Result<()> {
    let put = |w: &mut RwTxn, k: &[u8], v: &[u8]| meta.put(w, k, v).map_err(keys::heed_err(dir));
    put(
        wtxn,
        meta_key::FORMAT_VERSION,
        &FORMAT_VERSION.to_le_bytes(),
    )?;
    put(wtxn, meta_key::PAGE_SIZE, &page_size.to_le_bytes())?;
    put(wtxn, meta_key::DB_PAGES, &0u32.to_le_bytes())?;
    put(wtxn, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes())?;
    put(wtxn, meta_key::NEXT_SEGMENT_ID, &1u64.to_le_bytes())?;
    put(wtxn, meta_key::CHECKPOINT_LSN, &Lsn::FIRST.0.to_le_bytes())?;
    put(wtxn, meta_key::EPOCH, &0u32.to_le_bytes())?;
    put(wtxn, meta_key::NEXT_DB_ID, &1u32.to_le_bytes())?;
    put(wtxn, meta_key::CLEAN_SHUTDOWN, &[1])?;
    for key in [
        meta_key::DIGEST_SEGMENTS,
        meta_key::DIGEST_CHUNKS,
        meta_key::DIGEST_PAGES,
    ] {
        put(wtxn, key, &Digest::default().encode())?;
    }
    put_change_log_keys(meta, wtxn, dir)?;
    seal_meta(&meta, wtxn).map_err(keys::heed_err(dir))
}

/// Format 2 lacks only the change log, cursors and journal: their tables
/// were created by `create_tables`; this adds their meta keys. The meta
/// checksum is verified first, so a damaged store is never resealed as a
/// good one.
fn upgrade_from_2(meta: Database<Bytes, Bytes>, wtxn: &mut RwTxn, dir: &Path) -> Result<()> {
    let map_err = keys::heed_err(dir);
    let stored = meta
        .get(wtxn, meta_key::META_CRC)
        .map_err(&map_err)?
        .map(|v| keys::decode_u32(v, dir))
        .transpose()?;
    let actual = meta_crc(&meta, wtxn).map_err(&map_err)?;
    if stored != Some(actual) {
        return Err(StorageError::corrupt(
            dir,
            0,
            "manifest meta checksum mismatch (format 2 store not upgraded)",
        ));
    }
    put_change_log_keys(meta, wtxn, dir)?;
    meta.put(
        wtxn,
        meta_key::FORMAT_VERSION,
        &FORMAT_VERSION.to_le_bytes(),
    )
    .map_err(&map_err)?;
    seal_meta(&meta, wtxn).map_err(&map_err)?;
    tracing::info!(path = %dir.display(), "manifest upgraded from format 2 to 3 (change log, cursors, journal)");
    Ok(())
}

/// The meta keys of the change log, the cursors and the journal (format
/// 3): the next sequence number and journal id, and empty digests.
fn put_change_log_keys(meta: Database<Bytes, Bytes>, wtxn: &mut RwTxn, dir: &Path) -> Result<()> {
    let put = |w: &mut RwTxn, k: &[u8], v: &[u8]| meta.put(w, k, v).map_err(keys::heed_err(dir));
    put(wtxn, meta_key::NEXT_CHANGE_SEQ, &1u64.to_le_bytes())?;
    put(wtxn, meta_key::NEXT_JOURNAL_ID, &1u64.to_le_bytes())?;
    for key in [
        meta_key::DIGEST_CHANGES,
        meta_key::DIGEST_CURSORS,
        meta_key::DIGEST_JOURNAL,
    ] {
        put(wtxn, key, &Digest::default().encode())?;
    }
    Ok(())
}

fn format_err(dir: &Path, what: String) -> StorageError {
    StorageError::Format {
        path: dir.to_path_buf(),
        what,
    }
}
