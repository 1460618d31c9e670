//! A read-only structural check of the manifest's LMDB data file
//! (`data.mdb`), run before LMDB maps it.
//!
//! LMDB does not checksum its pages. bop checksums every value it stores
//! (`meta_crc`, the table digests), but a flipped bit in LMDB's own B-tree
//! structure (a page header, a node offset, a child page number, a meta
//! page) can make LMDB read outside its pages, or fail one of its enabled
//! `assert`s, and take the whole process down with SIGSEGV, SIGBUS or
//! SIGABRT. This module reads the file with positional reads (never a map),
//! trusts no length or page number before bounds-checking it, visits every
//! page at most once, and rejects any structure LMDB could not walk safely,
//! naming the byte offset and what is wrong.
//!
//! It follows the definitions in `mdb.c` of the LMDB that `heed` 0.22 links
//! (`lmdb-master-sys` 0.2.6, LMDB 0.9.70, `MDB_DEVEL` 0 so `PAGEBASE` is 0
//! and `MAX_PAGESIZE` is 0x8000), on a 64-bit build: `pgno_t`, `txnid_t`
//! and `mdb_size_t` are 64 bits, and every field is in host byte order.
//!
//! # Layout checked (byte offsets)
//!
//! ```text
//! page header (MDB_page, PAGEHDRSZ = 16), at pgno * psize:
//!    0 mp_pgno  u64   the page's own number
//!    8 mp_pad   u16   (LEAF2 key size; unused here)
//!   10 mp_flags u16   P_BRANCH 0x01 | P_LEAF 0x02 | P_OVERFLOW 0x04 | P_META 0x08
//!   12 mp_lower u16   16 + 2 * number of nodes        (branch and leaf pages)
//!   14 mp_upper u16   start of the node area          (branch and leaf pages)
//!   12 mp_pages u32   pages in this overflow run      (overflow pages)
//!   16 mp_ptrs  u16[] node offsets within the page, in key order
//!
//! meta (MDB_meta), at offset 16 of pages 0 and 1; page 1 is at psize:
//!   16 mm_magic   u32 0xBEEFC0DE      20 mm_version u32 1
//!   24 mm_address ptr                 32 mm_mapsize u64
//!   40 mm_dbs[0]  MDB_db FREE_DBI     88 mm_dbs[1]  MDB_db MAIN_DBI
//!  136 mm_last_pg u64                144 mm_txnid   u64
//!  152 end: the bytes mdb_env_read_header reads from each meta page.
//!   mm_psize is mm_dbs[0].md_pad (offset 40), mm_flags mm_dbs[0].md_flags.
//!
//! database record (MDB_db, 48 bytes; also the value of a named database's
//! node in MAIN_DBI, flagged F_SUBDATA):
//!    0 md_pad u32   4 md_flags u16   6 md_depth u16
//!    8 md_branch_pages u64   16 md_leaf_pages u64   24 md_overflow_pages u64
//!   32 md_entries u64        40 md_root u64 (P_INVALID = !0: empty tree)
//!
//! node (MDB_node, NODESIZE = 8), at page offset mp_ptrs[i], 2-byte aligned:
//!    0 mn_lo u16   2 mn_hi u16   4 mn_flags u16   6 mn_ksize u16   8 key
//!   leaf:   data size = mn_lo | mn_hi << 16; the data follows the key, or,
//!           with F_BIGDATA, an 8-byte overflow page number does.
//!   branch: child pgno = mn_lo | mn_hi << 16 | mn_flags << 32; no data.
//!   A node takes EVEN(8 + ksize + in-node data size) bytes; the nodes of a
//!   page tile [mp_upper, psize) exactly.
//! ```
//!
//! # Rules
//!
//! * Meta pages: `mdb_env_read_header` reads 152 bytes of page 0, then of
//!   page 1 at page 0's `mm_psize`, and requires `P_META`, the magic and the
//!   version in both. Both must also agree on a power-of-two page size
//!   LMDB could have chosen (512..=0x8000): LMDB takes the page size from
//!   the newer meta without checking it. A meta in slot `s` holds a txnid of
//!   parity `s` (txn `t` writes meta `t & 1`; a new file has 0 in both), the
//!   two txnids are consecutive (each commit overwrites the older meta with
//!   the next txnid: a high bit flipped in either would otherwise make LMDB
//!   silently open the older snapshot), and LMDB's transactions use meta
//!   `T & 1` for the newest txnid `T` (`mdb_txn_renew0`): that meta is the
//!   one walked. The other meta's trees are not walked: they may
//!   legitimately point at reused pages. Its other fields (mapsize, last
//!   page, database records) are not used by LMDB when it is older.
//! * Database records: FREE_DBI is `MDB_INTEGERKEY` (plus the persistent
//!   environment flags `MDB_FIXEDMAP` / `MDB_NOSUBDIR`); a set
//!   `MDB_DUPSORT` there makes LMDB assert. Other databases may use
//!   `MDB_REVERSEKEY` or `MDB_INTEGERKEY`; the `MDB_DUP*` flags are refused
//!   (bop never uses them and they would need sub-page checks).
//! * Trees: every page number is >= 2, <= `mm_last_pg` and inside the file;
//!   each page is reached once (no cycles, no sharing); `mp_pgno` matches;
//!   branch pages above `md_depth`, leaves exactly at it (<= 32, LMDB's
//!   cursor stack); `mp_lower`/`mp_upper` and every node inside the page;
//!   branch pages hold >= 2 nodes (>= 1 in FREE_DBI, as LMDB's assertion
//!   allows), leaves >= 1; keys strictly increasing in the database's order
//!   and inside the range the parent separators give; leaf node flags are
//!   plain, `F_BIGDATA`, or (MAIN_DBI only) `F_SUBDATA` with a 48-byte
//!   record (`F_DUPDATA` makes LMDB dereference a missing sub-cursor);
//!   overflow runs are `P_OVERFLOW` pages long enough for their data; page
//!   and entry counts equal the record's.
//! * Free list (FREE_DBI values): 8-byte txnid keys no newer than the meta;
//!   each value a u64 count `n` then `n` page numbers (the value may be
//!   longer: LMDB reserves room), strictly descending, each in
//!   `2..=mm_last_pg`, none listed twice or also used by a tree.
//! * The file may be shorter than `mm_last_pg + 1` pages only by pages the
//!   free list holds (mdb.c: "the file may be shorter if the freeDB lists
//!   the final pages": loose pages are never written). Pages past
//!   `mm_last_pg`, pages not reachable from the newest meta, and the lock
//!   file are not read: an interrupted write transaction leaves garbage
//!   there that LMDB never reads either.

use std::cmp::Ordering;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Result, StorageError};

// --- MDB_page ---------------------------------------------------------------

const PAGEHDRSZ: usize = 16;
const PG_PGNO: usize = 0;
const PG_FLAGS: usize = 10;
const PG_LOWER: usize = 12;
const PG_UPPER: usize = 14;
const PG_PAGES: usize = 12;
const PG_PTRS: usize = 16;
const _: () = assert!(PG_PGNO + 8 + 2 == PG_FLAGS);
const _: () = assert!(PG_FLAGS + 2 == PG_LOWER && PG_LOWER + 2 == PG_UPPER);
const _: () = assert!(PG_UPPER + 2 == PAGEHDRSZ && PG_PAGES + 4 == PAGEHDRSZ);
const _: () = assert!(PG_PTRS == PAGEHDRSZ);

const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;

// --- MDB_db -----------------------------------------------------------------

const MD_PAD: usize = 0;
const MD_FLAGS: usize = 4;
const MD_DEPTH: usize = 6;
const MD_BRANCH_PAGES: usize = 8;
const MD_LEAF_PAGES: usize = 16;
const MD_OVERFLOW_PAGES: usize = 24;
const MD_ENTRIES: usize = 32;
const MD_ROOT: usize = 40;
const DB_SIZE: usize = 48;
const _: () = assert!(MD_PAD + 4 == MD_FLAGS && MD_FLAGS + 2 == MD_DEPTH);
const _: () = assert!(MD_DEPTH + 2 == MD_BRANCH_PAGES && MD_BRANCH_PAGES + 8 == MD_LEAF_PAGES);
const _: () = assert!(MD_LEAF_PAGES + 8 == MD_OVERFLOW_PAGES);
const _: () = assert!(MD_OVERFLOW_PAGES + 8 == MD_ENTRIES && MD_ENTRIES + 8 == MD_ROOT);
const _: () = assert!(MD_ROOT + 8 == DB_SIZE);

// --- MDB_meta (offsets within its page) --------------------------------------

const MM_MAGIC: usize = PAGEHDRSZ;
const MM_VERSION: usize = MM_MAGIC + 4;
const MM_ADDRESS: usize = MM_VERSION + 4;
const MM_MAPSIZE: usize = MM_ADDRESS + 8;
const MM_DBS: usize = MM_MAPSIZE + 8;
const MM_LAST_PG: usize = MM_DBS + 2 * DB_SIZE;
const MM_TXNID: usize = MM_LAST_PG + 8;
/// `sizeof(MDB_metabuf)`: what `mdb_env_read_header` reads of each meta.
const META_END: usize = MM_TXNID + 8;
/// `mm_psize` is `mm_dbs[FREE_DBI].md_pad`; `mm_flags` its `md_flags`.
const MM_PSIZE: usize = MM_DBS + MD_PAD;
const MM_FLAGS: usize = MM_DBS + MD_FLAGS;
const _: () = assert!(MM_DBS == 40 && MM_LAST_PG == 136 && META_END == 152);
const _: () = assert!(MM_PSIZE == 40 && MM_FLAGS == 44);

const MDB_MAGIC: u32 = 0xBEEF_C0DE;
const MDB_DATA_VERSION: u32 = 1;
const NUM_METAS: u64 = 2;
const P_INVALID: u64 = u64::MAX;
const MIN_PAGESIZE: u32 = 512;
/// `MAX_PAGESIZE` with `PAGEBASE` 0: `mp_upper` must fit in 16 bits.
const MAX_PAGESIZE: u32 = 0x8000;
/// `CURSOR_STACK`: LMDB cannot descend deeper than this.
const CURSOR_STACK: u16 = 32;
const FREE_DBI: usize = 0;
const MAIN_DBI: usize = 1;

// --- database and environment flags (lmdb.h) --------------------------------

const MDB_REVERSEKEY: u16 = 0x02;
const MDB_DUPSORT: u16 = 0x04;
const MDB_INTEGERKEY: u16 = 0x08;
const MDB_DUPFIXED: u16 = 0x10;
const MDB_INTEGERDUP: u16 = 0x20;
const MDB_REVERSEDUP: u16 = 0x40;
const DUP_FLAGS: u16 = MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP | MDB_REVERSEDUP;
/// `PERSISTENT_FLAGS & VALID_FLAGS`: what a database record can hold.
const DB_FLAGS: u16 = MDB_REVERSEKEY | MDB_INTEGERKEY | DUP_FLAGS;
const MDB_FIXEDMAP: u16 = 0x01;
const MDB_NOSUBDIR: u16 = 0x4000;

// --- MDB_node ---------------------------------------------------------------

const MN_LO: usize = 0;
const MN_HI: usize = 2;
const MN_FLAGS: usize = 4;
const MN_KSIZE: usize = 6;
const NODESIZE: usize = 8;
const _: () = assert!(MN_LO + 2 == MN_HI && MN_HI + 2 == MN_FLAGS);
const _: () = assert!(MN_FLAGS + 2 == MN_KSIZE && MN_KSIZE + 2 == NODESIZE);

const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;

/// Size of a page number stored in place of F_BIGDATA data.
const PGNO_SIZE: usize = 8;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// What a structural check saw, for logging and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub page_size: u32,
    pub txnid: u64,
    pub last_pg: u64,
    pub file_pages: u64,
    /// Pages of every B-tree (branch, leaf and overflow).
    pub tree_pages: u64,
    /// Page numbers the free list holds.
    pub free_pages: u64,
    /// Named databases found in MAIN_DBI.
    pub databases: u64,
    /// Entries in the named databases.
    pub entries: u64,
    /// Depth of the deepest named database.
    pub max_depth: u16,
}

/// Checks the LMDB data file at `path`; see the module documentation.
pub(crate) fn check(path: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    let report = check_report(path)?;
    tracing::debug!(
        path = %path.display(),
        page_size = report.page_size,
        txnid = report.txnid,
        last_pg = report.last_pg,
        file_pages = report.file_pages,
        tree_pages = report.tree_pages,
        free_pages = report.free_pages,
        databases = report.databases,
        entries = report.entries,
        max_depth = report.max_depth,
        elapsed_us = started.elapsed().as_micros() as u64,
        "LMDB structure checked"
    );
    Ok(())
}

/// [`check`], returning what it saw. The steps: the two meta pages
/// ([`read_metas`]), which one is newest ([`newest_txnid`]) and its fields
/// ([`check_newest_meta`]), every tree it reaches ([`Walker::walk_trees`]),
/// and the free list ([`Walker::check_free_list`]).
pub(crate) fn check_report(path: &Path) -> Result<Report> {
    if !cfg!(target_pointer_width = "64") {
        // The layout above is the 64-bit one (64-bit pgno_t and pointers).
        return Ok(Report::default());
    }
    let file = File::open(path).map_err(|e| StorageError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?
        .len();
    if len == 0 {
        // LMDB treats an empty file as a new environment (a crash between
        // creating data.mdb and writing its meta pages).
        return Ok(Report::default());
    }
    let (metas, psize) = read_metas(&file, path, len)?;
    let newest = newest_txnid(&metas, psize, path)?;
    let slot = (newest & 1) as usize;
    let meta = &metas[slot];
    let meta_off = slot as u64 * psize;
    let last_pg = u64_at(meta, MM_LAST_PG);
    let file_pages = len / psize;
    check_newest_meta(meta, slot, meta_off, path)?;
    let mut w = Walker::new(&file, path, psize, file_pages, last_pg, newest);
    let trees = w.walk_trees(meta, meta_off)?;
    let free_pages = w.check_free_list(slot, meta_off)?;
    Ok(Report {
        page_size: psize as u32,
        txnid: newest,
        last_pg,
        file_pages,
        tree_pages: w.tree_pages,
        free_pages,
        databases: trees.databases,
        entries: trees.entries,
        max_depth: trees.max_depth,
    })
}

/// Reads both meta pages as `mdb_env_read_header` does and checks what it
/// requires of them, and that they agree on a possible page size. Returns
/// them and the page size.
fn read_metas(file: &File, path: &Path, len: u64) -> Result<([[u8; META_END]; 2], u64)> {
    let corrupt = |off: u64, what: String| StorageError::corrupt(path, off, what);
    let mut metas = [[0u8; META_END]; 2];
    let mut psize = 0u64;
    for (slot, buf) in metas.iter_mut().enumerate() {
        let base = slot as u64 * psize;
        if len < base + META_END as u64 {
            return Err(corrupt(
                base,
                format!("LMDB file is {len} bytes: too short for meta page {slot}"),
            ));
        }
        file.read_exact_at(buf, base)
            .map_err(|e| StorageError::io("read", path, e))?;
        let flags = u16_at(buf, PG_FLAGS);
        if flags & P_META == 0 {
            return Err(corrupt(
                base + PG_FLAGS as u64,
                format!("LMDB meta page {slot} lacks P_META (flags {flags:#x})"),
            ));
        }
        let magic = u32_at(buf, MM_MAGIC);
        if magic != MDB_MAGIC {
            return Err(corrupt(
                base + MM_MAGIC as u64,
                format!("LMDB meta page {slot}: bad magic {magic:#x}"),
            ));
        }
        let version = u32_at(buf, MM_VERSION);
        if version != MDB_DATA_VERSION {
            return Err(corrupt(
                base + MM_VERSION as u64,
                format!(
                    "LMDB meta page {slot}: data version {version}, expected {MDB_DATA_VERSION}"
                ),
            ));
        }
        let ps = u32_at(buf, MM_PSIZE);
        if !(ps.is_power_of_two() && (MIN_PAGESIZE..=MAX_PAGESIZE).contains(&ps)) {
            return Err(corrupt(
                base + MM_PSIZE as u64,
                format!("LMDB meta page {slot}: impossible page size {ps}"),
            ));
        }
        if slot == 0 {
            psize = u64::from(ps);
        } else if u64::from(ps) != psize {
            return Err(corrupt(
                base + MM_PSIZE as u64,
                format!("LMDB meta pages disagree on the page size ({psize} and {ps})"),
            ));
        }
    }
    Ok((metas, psize))
}

/// The newest txnid of the two metas, once each is of its slot's parity
/// and the two are consecutive.
fn newest_txnid(metas: &[[u8; META_END]; 2], psize: u64, path: &Path) -> Result<u64> {
    let corrupt = |off: u64, what: String| StorageError::corrupt(path, off, what);
    let txnids = [u64_at(&metas[0], MM_TXNID), u64_at(&metas[1], MM_TXNID)];
    for (slot, &t) in txnids.iter().enumerate() {
        if t != 0 && t & 1 != slot as u64 {
            return Err(corrupt(
                slot as u64 * psize + MM_TXNID as u64,
                format!("LMDB meta page {slot} holds txnid {t}, of the other meta page's parity"),
            ));
        }
    }
    let newest = txnids[0].max(txnids[1]);
    let slot = (newest & 1) as usize;
    if txnids[0].abs_diff(txnids[1]) != 1 && newest != 0 {
        // Each commit overwrites the older meta with the next txnid: a gap
        // means a damaged txnid, which could make LMDB open an old snapshot.
        return Err(corrupt(
            slot as u64 * psize + MM_TXNID as u64,
            format!(
                "LMDB meta pages hold txnids {} and {}, not consecutive",
                txnids[0], txnids[1]
            ),
        ));
    }
    Ok(newest)
}

/// Checks the newest meta's last page and environment flags.
fn check_newest_meta(meta: &[u8], slot: usize, meta_off: u64, path: &Path) -> Result<()> {
    let last_pg = u64_at(meta, MM_LAST_PG);
    if last_pg < NUM_METAS - 1 {
        return Err(StorageError::corrupt(
            path,
            meta_off + MM_LAST_PG as u64,
            format!("LMDB meta page {slot}: last page {last_pg} is a meta page"),
        ));
    }
    let env_flags = u16_at(meta, MM_FLAGS);
    if env_flags & !(MDB_FIXEDMAP | MDB_NOSUBDIR) != MDB_INTEGERKEY {
        return Err(StorageError::corrupt(
            path,
            meta_off + MM_FLAGS as u64,
            format!("LMDB meta page {slot}: free-list database flags {env_flags:#x}"),
        ));
    }
    Ok(())
}

/// What [`Walker::walk_trees`] found in the named databases.
struct Trees {
    databases: u64,
    entries: u64,
    max_depth: u16,
}

#[derive(Clone, Copy, Debug)]
struct DbRec {
    /// Byte offset of the record in the file, for messages.
    at: u64,
    flags: u16,
    depth: u16,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    entries: u64,
    root: u64,
}

impl DbRec {
    fn parse(b: &[u8], at: u64) -> DbRec {
        DbRec {
            at,
            flags: u16_at(b, MD_FLAGS),
            depth: u16_at(b, MD_DEPTH),
            branch_pages: u64_at(b, MD_BRANCH_PAGES),
            leaf_pages: u64_at(b, MD_LEAF_PAGES),
            overflow_pages: u64_at(b, MD_OVERFLOW_PAGES),
            entries: u64_at(b, MD_ENTRIES),
            root: u64_at(b, MD_ROOT),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Free,
    Main,
    Sub,
}

/// A database's key order (`mdb_default_cmp`; FREE_DBI: `mdb_cmp_long`).
#[derive(Clone, Copy)]
enum Order {
    /// `mdb_cmp_memn`: bytes, then length.
    Bytes,
    /// `mdb_cmp_memnr`: bytes from the end, then length.
    Reverse,
    /// `mdb_cmp_cint` / `mdb_cmp_long`: unsigned native integers of 4 or 8
    /// bytes, all keys of one size.
    Integer,
}

impl Order {
    fn compare(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            Order::Bytes => a.cmp(b),
            Order::Reverse => a.iter().rev().cmp(b.iter().rev()),
            // Sizes are checked equal (4 or 8) before comparing.
            Order::Integer => {
                let v = |k: &[u8]| match k.len() {
                    4 => u64::from(u32_at(k, 0)),
                    8 => u64_at(k, 0),
                    _ => 0,
                };
                v(a).cmp(&v(b))
            }
        }
    }
}

struct DbCtx<'n> {
    name: &'n str,
    kind: Kind,
    rec: DbRec,
    order: Order,
    /// Key size of an MDB_INTEGERKEY database, once seen.
    int_ksize: Option<usize>,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    entries: u64,
    /// Named databases found (MAIN_DBI only): name and record.
    subdbs: Vec<(Vec<u8>, DbRec)>,
}

impl<'n> DbCtx<'n> {
    fn new(name: &'n str, kind: Kind, rec: DbRec) -> DbCtx<'n> {
        let order = if rec.flags & MDB_REVERSEKEY != 0 {
            Order::Reverse
        } else if rec.flags & MDB_INTEGERKEY != 0 {
            Order::Integer
        } else {
            Order::Bytes
        };
        DbCtx {
            name,
            kind,
            rec,
            order,
            int_ksize: if kind == Kind::Free { Some(8) } else { None },
            branch_pages: 0,
            leaf_pages: 0,
            overflow_pages: 0,
            entries: 0,
            subdbs: Vec::new(),
        }
    }
}

/// One node of a branch or leaf page, bounds-checked.
struct Node {
    /// Offset of the node in its page.
    at: usize,
    flags: u16,
    /// mn_lo | mn_hi << 16: data size (leaf) or low pgno bits (branch).
    lohi: u64,
    key: std::ops::Range<usize>,
    /// In-node data (leaf pages).
    data: std::ops::Range<usize>,
}

/// A branch or leaf page with its nodes read and checked.
struct Parsed<'p> {
    pgno: u64,
    page: &'p [u8],
    nodes: Vec<Node>,
}

struct Walker<'a> {
    file: &'a File,
    path: &'a Path,
    psize: usize,
    file_pages: u64,
    last_pg: u64,
    txnid: u64,
    /// Pages below `limit` (the file's pages up to `last_pg`) can be used
    /// by trees; `seen` marks those already reached.
    limit: u64,
    seen: Vec<u64>,
    /// One page buffer per tree level.
    bufs: Vec<Vec<u8>>,
    ovbuf: Vec<u8>,
    free: Vec<u64>,
    tree_pages: u64,
}

impl<'a> Walker<'a> {
    fn new(
        file: &'a File,
        path: &'a Path,
        psize: u64,
        file_pages: u64,
        last_pg: u64,
        txnid: u64,
    ) -> Walker<'a> {
        let limit = file_pages.min(last_pg.saturating_add(1));
        Walker {
            file,
            path,
            psize: psize as usize,
            file_pages,
            last_pg,
            txnid,
            limit,
            seen: vec![0u64; limit.div_ceil(64) as usize],
            bufs: Vec::new(),
            free: Vec::new(),
            tree_pages: 0,
            ovbuf: Vec::new(),
        }
    }
}

impl Walker<'_> {
    /// Walks every tree the newest meta reaches: FREE_DBI, MAIN_DBI, and
    /// each named database MAIN_DBI lists.
    fn walk_trees(&mut self, meta: &[u8], meta_off: u64) -> Result<Trees> {
        let free_at = MM_DBS + FREE_DBI * DB_SIZE;
        let free_rec = DbRec::parse(&meta[free_at..free_at + DB_SIZE], meta_off + free_at as u64);
        let main_at = MM_DBS + MAIN_DBI * DB_SIZE;
        let main_rec = DbRec::parse(&meta[main_at..main_at + DB_SIZE], meta_off + main_at as u64);

        let mut free_db = DbCtx::new("(free list)", Kind::Free, free_rec);
        free_db.order = Order::Integer;
        self.walk_db(&mut free_db)?;

        let mut main_db = DbCtx::new("(main)", Kind::Main, main_rec);
        self.check_db_flags(&main_db)?;
        self.walk_db(&mut main_db)?;

        let subdbs = std::mem::take(&mut main_db.subdbs);
        let mut entries = 0u64;
        let mut max_depth = 0u16;
        for (name, rec) in &subdbs {
            let name = String::from_utf8_lossy(name);
            let mut db = DbCtx::new(&name, Kind::Sub, *rec);
            self.check_db_flags(&db)?;
            self.walk_db(&mut db)?;
            entries += rec.entries;
            max_depth = max_depth.max(rec.depth);
        }
        Ok(Trees {
            databases: subdbs.len() as u64,
            entries,
            max_depth,
        })
    }

    /// The free list, after the trees: no page twice, none also in a tree,
    /// and it covers any part of [0, last_pg] the file does not hold.
    /// Returns how many pages it holds.
    fn check_free_list(&mut self, slot: usize, meta_off: u64) -> Result<u64> {
        let psize = self.psize as u64;
        let (last_pg, file_pages) = (self.last_pg, self.file_pages);
        let mut free = std::mem::take(&mut self.free);
        free.sort_unstable();
        if let Some(p) = free.windows(2).find(|p| p[0] == p[1]) {
            return Err(self.corrupt(
                p[0] * psize,
                format!("LMDB free list holds page {} twice", p[0]),
            ));
        }
        if let Some(&p) = free.iter().find(|&&p| p < self.limit && self.is_seen(p)) {
            return Err(self.corrupt(p * psize, format!("LMDB page {p} is both free and in use")));
        }
        if last_pg >= file_pages {
            let tail = free.len() - free.partition_point(|&p| p < file_pages);
            if tail as u64 != last_pg - file_pages + 1 {
                return Err(self.corrupt(
                    meta_off + MM_LAST_PG as u64,
                    format!(
                        "LMDB meta page {slot}: last page {last_pg} is past the end of the file \
                         ({file_pages} pages) and the free list does not hold the missing pages"
                    ),
                ));
            }
        }
        Ok(free.len() as u64)
    }

    fn corrupt(&self, off: u64, what: String) -> StorageError {
        StorageError::corrupt(self.path, off, what)
    }

    fn page_off(&self, pgno: u64) -> u64 {
        pgno * self.psize as u64
    }

    fn is_seen(&self, p: u64) -> bool {
        self.seen[(p / 64) as usize] & (1 << (p % 64)) != 0
    }

    /// Claims `count` pages from `pgno` for a tree, referenced from byte
    /// `from` of the file.
    fn claim(&mut self, db: &str, pgno: u64, count: u64, from: u64) -> Result<()> {
        let end = pgno.checked_add(count);
        if pgno < NUM_METAS {
            return Err(self.corrupt(
                from,
                format!("LMDB database {db}: reference to meta page {pgno}"),
            ));
        }
        match end {
            Some(end) if end <= self.limit => {}
            _ => {
                return Err(self.corrupt(
                    from,
                    format!(
                        "LMDB database {db}: page {pgno} (+{count}) is past the last page {} \
                         or the end of the file ({} pages)",
                        self.last_pg, self.file_pages
                    ),
                ))
            }
        }
        for p in pgno..pgno + count {
            if self.is_seen(p) {
                return Err(self.corrupt(
                    from,
                    format!("LMDB database {db}: page {p} is reached twice"),
                ));
            }
            self.seen[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.tree_pages += count;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| StorageError::io("read", self.path, e))
    }

    fn check_db_flags(&self, db: &DbCtx) -> Result<()> {
        let f = db.rec.flags;
        let at = db.rec.at + MD_FLAGS as u64;
        if f & !DB_FLAGS != 0 || f & MDB_REVERSEKEY != 0 && f & MDB_INTEGERKEY != 0 {
            return Err(self.corrupt(
                at,
                format!("LMDB database {}: impossible flags {f:#x}", db.name),
            ));
        }
        if f & DUP_FLAGS != 0 {
            return Err(self.corrupt(
                at,
                format!(
                    "LMDB database {}: duplicate-key flags {f:#x} (bop never sets them)",
                    db.name
                ),
            ));
        }
        Ok(())
    }

    fn walk_db(&mut self, db: &mut DbCtx) -> Result<()> {
        let rec = db.rec;
        if rec.root == P_INVALID {
            if rec.depth != 0
                || rec.branch_pages != 0
                || rec.leaf_pages != 0
                || rec.overflow_pages != 0
                || rec.entries != 0
            {
                return Err(self.corrupt(
                    rec.at,
                    format!("LMDB database {}: empty tree with nonzero counts", db.name),
                ));
            }
            return Ok(());
        }
        if rec.depth == 0 || rec.depth > CURSOR_STACK {
            return Err(self.corrupt(
                rec.at + MD_DEPTH as u64,
                format!("LMDB database {}: impossible depth {}", db.name, rec.depth),
            ));
        }
        if self.bufs.len() < usize::from(rec.depth) + 1 {
            self.bufs.resize_with(usize::from(rec.depth) + 1, Vec::new);
        }
        self.walk(db, rec.root, 1, None, None, rec.at + MD_ROOT as u64)?;
        let counts = [
            (
                "branch pages",
                MD_BRANCH_PAGES,
                rec.branch_pages,
                db.branch_pages,
            ),
            ("leaf pages", MD_LEAF_PAGES, rec.leaf_pages, db.leaf_pages),
            (
                "overflow pages",
                MD_OVERFLOW_PAGES,
                rec.overflow_pages,
                db.overflow_pages,
            ),
            ("entries", MD_ENTRIES, rec.entries, db.entries),
        ];
        for (what, off, recorded, found) in counts {
            if recorded != found {
                return Err(self.corrupt(
                    rec.at + off as u64,
                    format!(
                        "LMDB database {}: records {recorded} {what}, the tree has {found}",
                        db.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads and checks node `i` of the branch or leaf page in `page`.
    fn node(&self, db: &DbCtx, pgno: u64, page: &[u8], upper: usize, i: usize) -> Result<Node> {
        let psize = self.psize;
        let base = self.page_off(pgno);
        let ptr_at = PG_PTRS + 2 * i;
        let at = usize::from(u16_at(page, ptr_at));
        if at < upper || !at.is_multiple_of(2) || at + NODESIZE > psize {
            return Err(self.corrupt(
                base + ptr_at as u64,
                format!(
                    "LMDB database {}: page {pgno} node {i} at offset {at} is outside \
                     the node area [{upper}, {psize})",
                    db.name
                ),
            ));
        }
        let flags = u16_at(page, at + MN_FLAGS);
        let lohi = u64::from(u16_at(page, at + MN_LO)) | u64::from(u16_at(page, at + MN_HI)) << 16;
        let ksize = usize::from(u16_at(page, at + MN_KSIZE));
        let key = at + NODESIZE..at + NODESIZE + ksize;
        let is_leaf = u16_at(page, PG_FLAGS) == P_LEAF;
        let dsize = if !is_leaf {
            0
        } else if flags & F_BIGDATA != 0 {
            PGNO_SIZE
        } else {
            lohi as usize
        };
        let end = key.end + dsize;
        if end > psize {
            return Err(self.corrupt(
                base + at as u64,
                format!(
                    "LMDB database {}: page {pgno} node {i} ({ksize}-byte key, {dsize} bytes \
                     of data at offset {at}) runs past the page",
                    db.name
                ),
            ));
        }
        Ok(Node {
            at,
            flags,
            lohi,
            key: key.clone(),
            data: key.end..end,
        })
    }

    /// Checks that `key` is in order: after `prev`, inside `[lo, hi)`.
    #[allow(clippy::too_many_arguments)]
    fn check_key(
        &self,
        db: &mut DbCtx,
        pgno: u64,
        i: usize,
        key: &[u8],
        prev: Option<&[u8]>,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        node_at: usize,
    ) -> Result<()> {
        let off = self.page_off(pgno) + node_at as u64;
        if matches!(db.order, Order::Integer) {
            let want = *db.int_ksize.get_or_insert(key.len());
            if key.len() != want || !(want == 4 || want == 8) {
                return Err(self.corrupt(
                    off + MN_KSIZE as u64,
                    format!(
                        "LMDB database {}: page {pgno} node {i}: integer key of {} bytes \
                         (expected {want}, 4 or 8)",
                        db.name,
                        key.len()
                    ),
                ));
            }
        }
        let order = db.order;
        let bad = |what: &str| {
            self.corrupt(
                off,
                format!(
                    "LMDB database {}: page {pgno} node {i}: key out of order ({what})",
                    db.name
                ),
            )
        };
        if let Some(p) = prev {
            if order.compare(p, key) != Ordering::Less {
                return Err(bad("not after the previous key"));
            }
        }
        if let Some(lo) = lo {
            if order.compare(key, lo) == Ordering::Less {
                return Err(bad("before its parent's separator"));
            }
        }
        if let Some(hi) = hi {
            if order.compare(key, hi) != Ordering::Less {
                return Err(bad("not before the next separator"));
            }
        }
        Ok(())
    }

    fn walk(
        &mut self,
        db: &mut DbCtx,
        pgno: u64,
        level: u16,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        from: u64,
    ) -> Result<()> {
        self.claim(db.name, pgno, 1, from)?;
        let psize = self.psize;
        let base = self.page_off(pgno);
        let mut page = std::mem::take(&mut self.bufs[usize::from(level)]);
        page.resize(psize, 0);
        self.read_at(&mut page, base)?;
        let result = self.walk_page(db, pgno, level, lo, hi, &page);
        self.bufs[usize::from(level)] = page;
        result
    }

    /// Checks the page `pgno` read into `page`, at `level` of `db`'s tree,
    /// whose keys must lie in `[lo, hi)`, and walks its children.
    fn walk_page(
        &mut self,
        db: &mut DbCtx,
        pgno: u64,
        level: u16,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        page: &[u8],
    ) -> Result<()> {
        let (leaf_level, upper, nkeys) = self.check_page_header(db, pgno, level, page)?;
        let p = Parsed {
            pgno,
            page,
            nodes: self.page_nodes(db, pgno, page, upper, nkeys)?,
        };
        if leaf_level {
            self.walk_leaf(db, &p, lo, hi)
        } else {
            self.walk_branch(db, &p, level, lo, hi)
        }
    }

    /// Checks a branch or leaf page's header: its own number, the flags
    /// its level wants, its free-space bounds, its node count. Returns
    /// whether it is a leaf, `mp_upper`, and the number of nodes.
    fn check_page_header(
        &self,
        db: &DbCtx,
        pgno: u64,
        level: u16,
        page: &[u8],
    ) -> Result<(bool, usize, usize)> {
        let psize = self.psize;
        let base = self.page_off(pgno);
        let name = db.name;
        let hdr_pgno = u64_at(page, PG_PGNO);
        if hdr_pgno != pgno {
            return Err(self.corrupt(
                base + PG_PGNO as u64,
                format!("LMDB database {name}: page {pgno} says it is page {hdr_pgno}"),
            ));
        }
        let flags = u16_at(page, PG_FLAGS);
        let leaf_level = level == db.rec.depth;
        let want = if leaf_level { P_LEAF } else { P_BRANCH };
        if flags != want {
            return Err(self.corrupt(
                base + PG_FLAGS as u64,
                format!(
                    "LMDB database {name}: page {pgno} at level {level} of {} has flags {flags:#x}, \
                     expected {}",
                    db.rec.depth,
                    if leaf_level { "a leaf" } else { "a branch" }
                ),
            ));
        }
        let lower = usize::from(u16_at(page, PG_LOWER));
        let upper = usize::from(u16_at(page, PG_UPPER));
        if lower < PAGEHDRSZ || !lower.is_multiple_of(2) || lower > upper || upper > psize {
            return Err(self.corrupt(
                base + PG_LOWER as u64,
                format!(
                    "LMDB database {name}: page {pgno}: bad free-space bounds lower {lower}, \
                     upper {upper} (page size {psize})"
                ),
            ));
        }
        let nkeys = (lower - PAGEHDRSZ) / 2;
        let min_keys = match (leaf_level, db.kind) {
            (true, _) => 1,
            (false, Kind::Free) => 1,
            (false, _) => 2,
        };
        if nkeys < min_keys {
            return Err(self.corrupt(
                base + PG_LOWER as u64,
                format!("LMDB database {name}: page {pgno} holds {nkeys} nodes"),
            ));
        }
        Ok((leaf_level, upper, nkeys))
    }

    /// Reads and checks the `nkeys` nodes of a page, and that they tile
    /// `[upper, psize)` exactly: no overlap, no gap.
    fn page_nodes(
        &self,
        db: &DbCtx,
        pgno: u64,
        page: &[u8],
        upper: usize,
        nkeys: usize,
    ) -> Result<Vec<Node>> {
        let psize = self.psize;
        let base = self.page_off(pgno);
        let name = db.name;
        let mut nodes = Vec::with_capacity(nkeys);
        for i in 0..nkeys {
            nodes.push(self.node(db, pgno, page, upper, i)?);
        }
        let mut spans: Vec<(usize, usize)> = nodes
            .iter()
            .map(|n| (n.at, (n.data.end + 1) & !1))
            .collect();
        spans.sort_unstable();
        let mut pos = upper;
        for &(start, end) in &spans {
            if start != pos {
                return Err(self.corrupt(
                    base + pos as u64,
                    format!(
                        "LMDB database {name}: page {pgno}: nodes overlap or leave a gap at offset {pos}"
                    ),
                ));
            }
            pos = end;
        }
        if pos != psize {
            return Err(self.corrupt(
                base + PG_UPPER as u64,
                format!(
                    "LMDB database {name}: page {pgno}: nodes end at {pos}, not at the page end"
                ),
            ));
        }
        Ok(nodes)
    }

    /// A branch page: its separators in order, then each child walked
    /// with the range its separators give.
    fn walk_branch(
        &mut self,
        db: &mut DbCtx,
        p: &Parsed,
        level: u16,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<()> {
        let (pgno, page, nodes) = (p.pgno, p.page, &p.nodes);
        let base = self.page_off(pgno);
        db.branch_pages += 1;
        // Separators: key i (i >= 1) bounds child i below and child
        // i - 1 above; key 0 is never compared by LMDB.
        for i in 1..nodes.len() {
            let prev = (i > 1).then(|| &page[nodes[i - 1].key.clone()]);
            let key = &page[nodes[i].key.clone()];
            self.check_key(db, pgno, i, key, prev, lo, hi, nodes[i].at)?;
        }
        for (i, n) in nodes.iter().enumerate() {
            let child = n.lohi | u64::from(n.flags) << 32;
            let clo = if i == 0 {
                lo
            } else {
                Some(&page[n.key.clone()])
            };
            let chi = match nodes.get(i + 1) {
                Some(next) => Some(&page[next.key.clone()]),
                None => hi,
            };
            self.walk(db, child, level + 1, clo, chi, base + n.at as u64)?;
        }
        Ok(())
    }

    /// A leaf page: keys in order, node flags the database allows, and
    /// each value ([`Walker::leaf_value`]).
    fn walk_leaf(
        &mut self,
        db: &mut DbCtx,
        p: &Parsed,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<()> {
        let (pgno, page, nodes) = (p.pgno, p.page, &p.nodes);
        let base = self.page_off(pgno);
        let name = db.name;
        db.leaf_pages += 1;
        for (i, n) in nodes.iter().enumerate() {
            let key = &page[n.key.clone()];
            let prev = (i > 0).then(|| &page[nodes[i - 1].key.clone()]);
            self.check_key(db, pgno, i, key, prev, lo, hi, n.at)?;
            let node_off = base + n.at as u64;
            let allowed = match db.kind {
                Kind::Main => n.flags == 0 || n.flags == F_BIGDATA || n.flags == F_SUBDATA,
                Kind::Free | Kind::Sub => n.flags == 0 || n.flags == F_BIGDATA,
            };
            if !allowed {
                return Err(self.corrupt(
                    node_off + MN_FLAGS as u64,
                    format!(
                        "LMDB database {name}: page {pgno} node {i}: node flags {:#x}{}",
                        n.flags,
                        if n.flags & F_DUPDATA != 0 {
                            " (duplicate data in a database without MDB_DUPSORT)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            db.entries += 1;
            self.leaf_value(db, p, i, key)?;
        }
        Ok(())
    }

    /// The value of leaf node `i` with key `key`: an overflow run checked
    /// (and, in FREE_DBI, its free-list record), an in-node free-list
    /// record, or a named database's record in MAIN_DBI.
    fn leaf_value(&mut self, db: &mut DbCtx, p: &Parsed, i: usize, key: &[u8]) -> Result<()> {
        let (pgno, page) = (p.pgno, p.page);
        let n = &p.nodes[i];
        let base = self.page_off(pgno);
        let node_off = base + n.at as u64;
        let data = &page[n.data.clone()];
        if n.flags == F_BIGDATA {
            let ov = u64_at(data, 0);
            let dsize = n.lohi;
            let ovdata = self.overflow(db, ov, dsize, node_off + (n.data.start - n.at) as u64)?;
            if db.kind == Kind::Free {
                self.free_list(pgno, i, key, &ovdata, node_off)?;
            }
            self.ovbuf = ovdata;
        } else if db.kind == Kind::Free {
            self.free_list(pgno, i, key, data, node_off)?;
        } else if n.flags == F_SUBDATA {
            if data.len() != DB_SIZE {
                return Err(self.corrupt(
                    node_off,
                    format!(
                        "LMDB database {}: page {pgno} node {i}: a named database \
                         record of {} bytes, expected {DB_SIZE}",
                        db.name,
                        data.len()
                    ),
                ));
            }
            let at = base + n.data.start as u64;
            db.subdbs.push((key.to_vec(), DbRec::parse(data, at)));
        }
        Ok(())
    }

    /// Checks the overflow run at `ov` holding `dsize` bytes; returns the
    /// data for FREE_DBI (whose values LMDB reads), nothing otherwise.
    fn overflow(&mut self, db: &mut DbCtx, ov: u64, dsize: u64, from: u64) -> Result<Vec<u8>> {
        let psize = self.psize as u64;
        // Only the header page is read before claiming the run.
        if ov < NUM_METAS || ov >= self.limit {
            return Err(self.corrupt(
                from,
                format!(
                    "LMDB database {}: overflow page {ov} is outside the file's pages",
                    db.name
                ),
            ));
        }
        let mut hdr = [0u8; PAGEHDRSZ];
        self.read_at(&mut hdr, ov * psize)?;
        let hdr_pgno = u64_at(&hdr, PG_PGNO);
        let flags = u16_at(&hdr, PG_FLAGS);
        let pages = u64::from(u32_at(&hdr, PG_PAGES));
        if hdr_pgno != ov || flags != P_OVERFLOW {
            return Err(self.corrupt(
                ov * psize,
                format!(
                    "LMDB database {}: page {ov} is not an overflow page (header says page \
                     {hdr_pgno}, flags {flags:#x})",
                    db.name
                ),
            ));
        }
        // OVPAGES(dsize, psize)
        let need = (PAGEHDRSZ as u64 - 1 + dsize) / psize + 1;
        if pages < need {
            return Err(self.corrupt(
                ov * psize + PG_PAGES as u64,
                format!(
                    "LMDB database {}: overflow run at page {ov} has {pages} pages, its \
                     {dsize} bytes need {need}",
                    db.name
                ),
            ));
        }
        self.claim(db.name, ov, pages, ov * psize + PG_PAGES as u64)?;
        db.overflow_pages += pages;
        let mut buf = std::mem::take(&mut self.ovbuf);
        if db.kind == Kind::Free {
            // Within the claimed run, hence within the file.
            buf.resize(dsize as usize, 0);
            self.read_at(&mut buf, ov * psize + PAGEHDRSZ as u64)?;
        } else {
            buf.clear();
        }
        Ok(buf)
    }

    /// Checks one free-list record: a txnid key and an IDL of free pages.
    fn free_list(
        &mut self,
        pgno: u64,
        i: usize,
        key: &[u8],
        data: &[u8],
        node_off: u64,
    ) -> Result<()> {
        // The key size was checked (8) with the key order.
        let txnid = u64_at(key, 0);
        if txnid > self.txnid {
            return Err(self.corrupt(
                node_off + NODESIZE as u64,
                format!(
                    "LMDB free list: page {pgno} node {i}: record of txn {txnid}, newer than the \
                     meta's txn {}",
                    self.txnid
                ),
            ));
        }
        let path = self.path;
        let bad = |what: String| {
            StorageError::corrupt(
                path,
                node_off,
                format!("LMDB free list: page {pgno} node {i} (txn {txnid}): {what}"),
            )
        };
        if data.len() < 8 || !data.len().is_multiple_of(8) {
            return Err(bad(format!("a page list of {} bytes", data.len())));
        }
        let n = u64_at(data, 0);
        if n > (data.len() / 8 - 1) as u64 {
            return Err(bad(format!("lists {n} pages in {} bytes", data.len())));
        }
        let mut prev = u64::MAX;
        for j in 1..=n as usize {
            let p = u64_at(data, 8 * j);
            if p >= prev {
                return Err(bad(format!(
                    "page list not strictly descending at entry {j}"
                )));
            }
            if p < NUM_METAS || p > self.last_pg {
                return Err(bad(format!(
                    "free page {p} is outside 2..={}",
                    self.last_pg
                )));
            }
            prev = p;
            self.free.push(p);
        }
        Ok(())
    }
}
