//! Opening the manifest: the structural check of `data.mdb`, the LMDB
//! environment, the tables, and the format version — a new store is
//! created, a version 2 store upgraded in place, a newer version or a
//! foreign LMDB environment refused (and left untouched).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, EnvOpenOptions, RwTxn};

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
        let format_err = |what: String| StorageError::Format {
            path: dir.to_path_buf(),
            what,
        };
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
        let map_size = config.map_size_bytes.max(1 << 20).next_multiple_of(1 << 20);
        // SAFETY: the store's exclusive process lock (LOCK file) guarantees
        // no other process maps this environment, and within the process the
        // store registry opens each environment once.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(map_size)
                .max_dbs(tables::STORE_TABLES.len() as u32 + 2 * (u32::from(DATABASES_MAX) + 1))
                .open(dir)
        }
        .map_err(&map_err)?;
        let mut wtxn = env.write_txn().map_err(&map_err)?;
        // A foreign LMDB environment is refused before anything is created
        // in it (dropping the transaction aborts it).
        if let Some(main) = env
            .open_database::<Bytes, Bytes>(&wtxn, None)
            .map_err(&map_err)?
        {
            for item in main.iter(&wtxn).map_err(&map_err)? {
                let (k, _) = item.map_err(&map_err)?;
                if !is_bop_table(k) {
                    return Err(format_err(format!(
                        "manifest holds LMDB table {:?}, which bop never creates: not a bop store",
                        String::from_utf8_lossy(k)
                    )));
                }
            }
        }
        let mut create_table = |name: &str| -> Result<Database<Bytes, Bytes>> {
            env.create_database(&mut wtxn, Some(name)).map_err(&map_err)
        };
        let meta = create_table("meta")?;
        let segments = create_table("segments")?;
        let changes = create_table("changes")?;
        let cursors = create_table("cursors")?;
        let journal = create_table("journal")?;
        let main = DbTables {
            chunks: create_table("chunks")?,
            pages: create_table("pages")?,
        };
        let mut upgraded_from = 0;
        // A manifest whose first transaction never committed (a crash while
        // the store was being created) is empty: create it now.
        let empty = meta.is_empty(&wtxn).map_err(&map_err)?;
        let put = |w: &mut RwTxn, k: &[u8], v: &[u8]| meta.put(w, k, v).map_err(&map_err);
        let put_log_keys = |w: &mut RwTxn| -> Result<()> {
            put(w, meta_key::NEXT_CHANGE_SEQ, &1u64.to_le_bytes())?;
            put(w, meta_key::NEXT_JOURNAL_ID, &1u64.to_le_bytes())?;
            for key in [
                meta_key::DIGEST_CHANGES,
                meta_key::DIGEST_CURSORS,
                meta_key::DIGEST_JOURNAL,
            ] {
                put(w, key, &Digest::default().encode())?;
            }
            Ok(())
        };
        match meta
            .get(&wtxn, meta_key::FORMAT_VERSION)
            .map_err(&map_err)?
        {
            None if create || empty => {
                put(
                    &mut wtxn,
                    meta_key::FORMAT_VERSION,
                    &FORMAT_VERSION.to_le_bytes(),
                )?;
                put(&mut wtxn, meta_key::PAGE_SIZE, &page_size.to_le_bytes())?;
                put(&mut wtxn, meta_key::DB_PAGES, &0u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_CHUNK_ID, &1u64.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_SEGMENT_ID, &1u64.to_le_bytes())?;
                put(
                    &mut wtxn,
                    meta_key::CHECKPOINT_LSN,
                    &Lsn::FIRST.0.to_le_bytes(),
                )?;
                put(&mut wtxn, meta_key::EPOCH, &0u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::NEXT_DB_ID, &1u32.to_le_bytes())?;
                put(&mut wtxn, meta_key::CLEAN_SHUTDOWN, &[1])?;
                for key in [
                    meta_key::DIGEST_SEGMENTS,
                    meta_key::DIGEST_CHUNKS,
                    meta_key::DIGEST_PAGES,
                ] {
                    put(&mut wtxn, key, &Digest::default().encode())?;
                }
                put_log_keys(&mut wtxn)?;
                seal_meta(&meta, &mut wtxn).map_err(&map_err)?;
            }
            None => {
                return Err(format_err(
                    "manifest has no format version: not a bop store".into(),
                ))
            }
            Some(v) => {
                let version = keys::decode_u32(v, dir)?;
                if version == UPGRADABLE_FROM {
                    // Format 2 lacks only the change log, cursors and
                    // journal: their tables were created above; add their
                    // meta keys. The meta checksum is verified first, so a
                    // damaged store is never resealed as a good one.
                    let stored = meta
                        .get(&wtxn, meta_key::META_CRC)
                        .map_err(&map_err)?
                        .map(|v| keys::decode_u32(v, dir))
                        .transpose()?;
                    let actual = meta_crc(&meta, &wtxn).map_err(&map_err)?;
                    if stored != Some(actual) {
                        return Err(StorageError::corrupt(
                            dir,
                            0,
                            "manifest meta checksum mismatch (format 2 store not upgraded)",
                        ));
                    }
                    put_log_keys(&mut wtxn)?;
                    put(
                        &mut wtxn,
                        meta_key::FORMAT_VERSION,
                        &FORMAT_VERSION.to_le_bytes(),
                    )?;
                    seal_meta(&meta, &mut wtxn).map_err(&map_err)?;
                    upgraded_from = version;
                    tracing::info!(path = %dir.display(), "manifest upgraded from format 2 to 3 (change log, cursors, journal)");
                } else if version > FORMAT_VERSION {
                    return Err(format_err(format!(
                        "store format version {version} is newer than this build reads ({FORMAT_VERSION}): use a newer bop"
                    )));
                } else if version != FORMAT_VERSION {
                    return Err(format_err(format!(
                        "store format version {version} is not supported (this build reads {UPGRADABLE_FROM} and {FORMAT_VERSION})"
                    )));
                }
            }
        }
        // An existing store's meta is not resealed here: `load` verifies it.
        wtxn.commit().map_err(&map_err)?;
        let m = Manifest {
            env,
            path: dir.to_path_buf(),
            meta,
            segments,
            changes,
            cursors,
            journal,
            tables: Mutex::new(HashMap::from([(DbId::MAIN, main)])),
            config,
            gate: RwLock::new(()),
            settled: Mutex::new(Vec::new()),
            counters: Counters::default(),
            replayed: Mutex::new(ReplayReport::default()),
            previous_clean: AtomicU8::new(0),
            upgraded_from: AtomicU32::new(upgraded_from),
            crashed: AtomicBool::new(false),
        };
        m.verify_log_tables()?;
        Ok(m)
    }
}
