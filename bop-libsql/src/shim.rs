//! The FFI shim, the top layer of bop-libsql: all of its `unsafe` and
//! `extern "C"` items. Nothing else in the crate imports this file.
//!
//! - libSQL's WAL manager and WAL methods: each `extern "C"` function runs
//!   its body in bop-frontend's panic guard (nothing unwinds into C; a
//!   panic in a method that writes also fails the store), checks its
//!   pointers and calls the safe [`VirtualWal`] trait (`virtual_wal.rs`);
//! - registration of the `bop` VFS in libSQL's bundled SQLite;
//! - [`Connection`] / [`Statement`]: a small safe wrapper of `sqlite3 *`;
//! - the C API (`include/bop_libsql.h`).
//!
//! Errors become SQLite codes only through [`Error::code_at`] (`report`),
//! whose engine errors go through bop-frontend's one mapping.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use bop_frontend::{guard, report_code, Op};
use libsql_ffi as ffi;

use crate::error::{Error, Result};
use crate::types::{OpenFlags, Value};
use crate::virtual_wal::{self, BopWal, CheckpointMode, CheckpointPage, Page, VirtualWal};

const OK: c_int = ffi::SQLITE_OK;

// ----- errors and panics -----

/// Reports an error returned during `op` (the thread's last error;
/// `sqlite3_log` unless SQLite's busy handler retries it) and returns its
/// code.
fn report(e: &Error, op: Op) -> c_int {
    let code = e.code_at(op);
    report_code(code, &e.to_string(), op);
    code
}

fn code_of(r: Result<()>, op: Op) -> c_int {
    match r {
        Ok(()) => OK,
        Err(e) => report(&e, op),
    }
}

/// # Safety
/// `p` must be the `pData` that [`m_open`] handed libSQL (a leaked `Box<W>`)
/// and not yet closed. libSQL calls a connection's WAL methods one at a time
/// (under the connection's mutex), so no other reference is live.
unsafe fn wal<'a, W>(p: *mut ffi::wal_impl) -> &'a mut W {
    // SAFETY: per the contract.
    unsafe { &mut *(p as *mut W) }
}

/// Runs `body` on the WAL `p` in the panic guard for a method that may
/// change the store: a panic also fails the store (see
/// `bop_frontend::guard_write`).
///
/// # Safety
/// As [`wal`].
unsafe fn guard_write<W: VirtualWal>(
    what: &str,
    p: *mut ffi::wal_impl,
    on_panic: c_int,
    body: impl FnOnce(&mut W) -> c_int,
) -> c_int {
    bop_frontend::guard_write(
        what,
        on_panic,
        // SAFETY: per the contract; the body's reference has unwound when
        // this runs.
        |msg| unsafe { wal::<W>(p) }.fail(msg.to_owned()),
        // SAFETY: per the contract.
        || body(unsafe { wal::<W>(p) }),
    )
}

/// # Safety
/// `p` must be null or a NUL-terminated string.
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

// ----- initialization: libSQL and the bop VFS -----

unsafe extern "C" fn vfs_find(name: *const c_char) -> *mut c_void {
    // SAFETY: forwarded to libSQL with bop-vfs's argument.
    guard("sqlite3_vfs_find", null_mut(), || unsafe {
        ffi::sqlite3_vfs_find(name).cast()
    })
}

unsafe extern "C" fn vfs_register(vfs: *mut c_void, make_default: c_int) -> c_int {
    // SAFETY: bop-vfs passes its process-lifetime sqlite3_vfs.
    guard("sqlite3_vfs_register", ffi::SQLITE_INTERNAL, || unsafe {
        ffi::sqlite3_vfs_register(vfs.cast(), make_default)
    })
}

/// `sqlite3_open_v2` for bop's background checkpointer: a libSQL
/// connection with bop's virtual WAL (a default libSQL connection would run
/// `wal.c` beside the virtual WAL on the same store).
unsafe extern "C" fn ckpt_open(
    name: *const c_char,
    db: *mut *mut c_void,
    flags: c_int,
    vfs: *const c_char,
) -> c_int {
    // SAFETY: the checkpointer's NUL-terminated URI and out pointer.
    guard(
        "sqlite3_open_v2 (checkpointer)",
        ffi::SQLITE_INTERNAL,
        || unsafe { ffi::libsql_open_v3(name, db.cast(), flags, vfs, wal_manager()) },
    )
}

unsafe extern "C" fn ckpt_close(db: *mut c_void) -> c_int {
    // SAFETY: a handle from ckpt_open, closed once.
    guard(
        "sqlite3_close (checkpointer)",
        ffi::SQLITE_INTERNAL,
        || unsafe { ffi::sqlite3_close(db.cast()) },
    )
}

unsafe extern "C" fn ckpt_exec(
    db: *mut c_void,
    sql: *const c_char,
    _callback: *mut c_void,
    arg: *mut c_void,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: a handle from ckpt_open and NUL-terminated SQL; the
    // checkpointer passes no callback.
    guard(
        "sqlite3_exec (checkpointer)",
        ffi::SQLITE_INTERNAL,
        || unsafe { ffi::sqlite3_exec(db.cast(), sql, None, arg, err) },
    )
}

unsafe extern "C" fn ckpt_wal_checkpoint(
    db: *mut c_void,
    name: *const c_char,
    mode: c_int,
    log: *mut c_int,
    ckpt: *mut c_int,
) -> c_int {
    // SAFETY: a handle from ckpt_open; the out pointers are the caller's.
    guard(
        "sqlite3_wal_checkpoint_v2 (checkpointer)",
        ffi::SQLITE_INTERNAL,
        || unsafe { ffi::sqlite3_wal_checkpoint_v2(db.cast(), name, mode, log, ckpt) },
    )
}

/// Initializes libSQL and registers the `bop` VFS in it (once per process).
pub(crate) fn init() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: may be called any number of times; required before
        // libsql_open_v3 (the WAL manager allocates through SQLite).
        let rc = unsafe { ffi::sqlite3_initialize() };
        if rc != OK {
            return Err(format!("sqlite3_initialize failed with code {rc}"));
        }
        // SAFETY: sqlite3_log of the libSQL linked into this binary.
        unsafe { bop_frontend::install_log_sink(ffi::sqlite3_log) };
        let api = bop_vfs::SqliteApi {
            vfs_find,
            vfs_register,
            malloc: ffi::sqlite3_malloc,
            free: ffi::sqlite3_free,
            uri_parameter: ffi::sqlite3_uri_parameter,
            uri_key: ffi::sqlite3_uri_key,
            log: ffi::sqlite3_log,
            // bop's background checkpointer (size and age policy) opens its
            // connections with bop's virtual WAL too.
            checkpoint: Some(bop_vfs::CheckpointApi {
                open_v2: ckpt_open,
                close: ckpt_close,
                exec: ckpt_exec,
                wal_checkpoint_v2: ckpt_wal_checkpoint,
            }),
        };
        // SAFETY: the functions of the libSQL linked into this binary,
        // valid for the whole process.
        unsafe { bop_vfs::register(api, false) }.map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Error::CantOpen)
}

// ----- the WAL manager -----

fn wal_manager() -> ffi::libsql_wal_manager {
    ffi::libsql_wal_manager {
        // No shared memory: the index is in process memory (virtual_wal.rs).
        bUsesShm: 0,
        xOpen: Some(m_open),
        xClose: Some(m_close::<BopWal>),
        xLogDestroy: Some(m_log_destroy),
        xLogExists: Some(m_log_exists),
        xDestroy: Some(m_destroy),
        pData: null_mut(),
    }
}

unsafe extern "C" fn m_open(
    _data: *mut ffi::wal_manager_impl,
    _vfs: *mut ffi::sqlite3_vfs,
    _db_file: *mut ffi::sqlite3_file,
    _no_shm_mode: c_int,
    _max_size: std::ffi::c_longlong,
    name: *const c_char,
    out: *mut ffi::libsql_wal,
) -> c_int {
    guard("xOpen (WAL manager)", ffi::SQLITE_CANTOPEN, || {
        // SAFETY: libSQL passes the database's NUL-terminated file name.
        let Some(path) = (unsafe { cstr(name) }) else {
            return report(
                &Error::CantOpen("the database has no file name".into()),
                Op::Open,
            );
        };
        match virtual_wal::open(Path::new(path)) {
            Ok(w) => {
                let p = Box::into_raw(Box::new(w));
                // SAFETY: `out` is libSQL's zeroed libsql_wal to fill.
                unsafe {
                    (*out).methods = methods::<BopWal>();
                    (*out).pData = p.cast();
                }
                OK
            }
            Err(e) => report(&e, Op::Open),
        }
    })
}

unsafe extern "C" fn m_close<W: VirtualWal>(
    _data: *mut ffi::wal_manager_impl,
    p: *mut ffi::wal_impl,
    _db: *mut ffi::sqlite3,
    _sync_flags: c_int,
    _n_buf: c_int,
    _buf: *mut c_uchar,
) -> c_int {
    guard("xClose (WAL manager)", ffi::SQLITE_IOERR, || {
        if p.is_null() {
            return OK;
        }
        // SAFETY: `p` is the Box m_open leaked; libSQL closes it once.
        let w = unsafe { Box::from_raw(p as *mut W) };
        code_of(w.close(), Op::Other)
    })
}

unsafe extern "C" fn m_log_destroy(
    _data: *mut ffi::wal_manager_impl,
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
) -> c_int {
    // The WAL image is part of the store; it is never deleted from outside.
    guard("xLogDestroy", ffi::SQLITE_INTERNAL, || OK)
}

unsafe extern "C" fn m_log_exists(
    _data: *mut ffi::wal_manager_impl,
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    exists: *mut c_int,
) -> c_int {
    guard("xLogExists", ffi::SQLITE_IOERR, || {
        // SAFETY: NUL-terminated name from libSQL.
        let path = unsafe { cstr(name) };
        let e = path
            .and_then(|p| bop_vfs::open_store(Path::new(p)))
            .is_some_and(|s| s.wal_image_size() > 0);
        // SAFETY: `exists` is writable.
        unsafe { *exists = c_int::from(e) };
        OK
    })
}

unsafe extern "C" fn m_destroy(_data: *mut ffi::wal_manager_impl) {
    guard("xDestroy (WAL manager)", (), || ())
}

// ----- the WAL methods -----

fn methods<W: VirtualWal>() -> ffi::libsql_wal_methods {
    ffi::libsql_wal_methods {
        iVersion: 2,
        xLimit: Some(x_limit),
        xBeginReadTransaction: Some(x_begin_read::<W>),
        xEndReadTransaction: Some(x_end_read::<W>),
        xFindFrame: Some(x_find_frame::<W>),
        xReadFrame: Some(x_read_frame::<W>),
        xReadFrameRaw: Some(x_read_frame_raw::<W>),
        xDbsize: Some(x_dbsize::<W>),
        xBeginWriteTransaction: Some(x_begin_write::<W>),
        xEndWriteTransaction: Some(x_end_write::<W>),
        xUndo: Some(x_undo::<W>),
        xSavepoint: Some(x_savepoint::<W>),
        xSavepointUndo: Some(x_savepoint_undo::<W>),
        xFrameCount: Some(x_frame_count::<W>),
        xFrames: Some(x_frames::<W>),
        xCheckpoint: Some(x_checkpoint::<W>),
        xCallback: Some(x_callback::<W>),
        xExclusiveMode: Some(x_exclusive_mode::<W>),
        xHeapMemory: Some(x_heap_memory),
        xSnapshotGet: Some(x_snapshot_get),
        xSnapshotOpen: Some(x_snapshot_open),
        xSnapshotRecover: Some(x_snapshot_recover),
        xSnapshotCheck: Some(x_snapshot_check),
        xSnapshotUnlock: Some(x_snapshot_unlock),
        xFramesize: Some(x_framesize::<W>),
        xFile: Some(x_file),
        xWriteLock: Some(x_write_lock),
        xDb: Some(x_db),
        xSavepointForget: Some(x_savepoint_forget),
    }
}

unsafe extern "C" fn x_limit(_p: *mut ffi::wal_impl, _limit: std::ffi::c_longlong) {
    // journal_size_limit: bop reclaims WAL space itself (restart after a
    // complete checkpoint).
    guard("xLimit", (), || ())
}

unsafe extern "C" fn x_begin_read<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    changed: *mut c_int,
) -> c_int {
    guard("xBeginReadTransaction", ffi::SQLITE_IOERR, || {
        // SAFETY: pData from m_open.
        match unsafe { wal::<W>(p) }.begin_read() {
            Ok(c) => {
                // SAFETY: `changed` is writable.
                unsafe { *changed = c_int::from(c) };
                OK
            }
            Err(e) => report(&e, Op::Read),
        }
    })
}

unsafe extern "C" fn x_end_read<W: VirtualWal>(p: *mut ffi::wal_impl) {
    guard("xEndReadTransaction", (), || {
        // SAFETY: pData from m_open.
        unsafe { wal::<W>(p) }.end_read()
    })
}

unsafe extern "C" fn x_find_frame<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    pgno: c_uint,
    out: *mut c_uint,
) -> c_int {
    guard("xFindFrame", ffi::SQLITE_IOERR, || {
        // SAFETY: pData from m_open.
        match unsafe { wal::<W>(p) }.find_frame(pgno) {
            Ok(f) => {
                // SAFETY: `out` is writable.
                unsafe { *out = f };
                OK
            }
            Err(e) => report(&e, Op::Read),
        }
    })
}

unsafe extern "C" fn x_read_frame<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    frame: c_uint,
    n: c_int,
    out: *mut c_uchar,
) -> c_int {
    guard("xReadFrame", ffi::SQLITE_IOERR_READ, || {
        // SAFETY: libSQL passes a writable buffer of `n` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(out, n.max(0) as usize) };
        // SAFETY: pData from m_open.
        code_of(unsafe { wal::<W>(p) }.read_frame(frame, buf), Op::Read)
    })
}

unsafe extern "C" fn x_read_frame_raw<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    frame: c_uint,
    n: c_int,
    out: *mut c_uchar,
) -> c_int {
    guard("xReadFrameRaw", ffi::SQLITE_IOERR_READ, || {
        // SAFETY: libSQL passes a writable buffer of `n` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(out, n.max(0) as usize) };
        // SAFETY: pData from m_open.
        code_of(unsafe { wal::<W>(p) }.read_frame_raw(frame, buf), Op::Read)
    })
}

unsafe extern "C" fn x_dbsize<W: VirtualWal>(p: *mut ffi::wal_impl) -> c_uint {
    // SAFETY: pData from m_open.
    guard("xDbsize", 0, || unsafe { wal::<W>(p) }.db_size())
}

unsafe extern "C" fn x_begin_write<W: VirtualWal>(p: *mut ffi::wal_impl) -> c_int {
    // SAFETY: pData from m_open.
    unsafe {
        guard_write::<W>("xBeginWriteTransaction", p, ffi::SQLITE_IOERR, |w| {
            code_of(w.begin_write(), Op::Write)
        })
    }
}

unsafe extern "C" fn x_end_write<W: VirtualWal>(p: *mut ffi::wal_impl) -> c_int {
    // SAFETY: pData from m_open.
    unsafe {
        guard_write::<W>("xEndWriteTransaction", p, ffi::SQLITE_IOERR, |w| {
            code_of(w.end_write(), Op::Write)
        })
    }
}

type UndoFn = unsafe extern "C" fn(*mut c_void, c_uint) -> c_int;

unsafe extern "C" fn x_undo<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    undo: Option<UndoFn>,
    ctx: *mut c_void,
) -> c_int {
    let mut cb = |pgno: u32| -> Result<()> {
        let Some(f) = undo else {
            return Ok(());
        };
        // SAFETY: the pager's callback with the context it gave us.
        let rc = unsafe { f(ctx, pgno) };
        if rc == OK {
            Ok(())
        } else {
            Err(Error::Sqlite {
                code: rc,
                message: format!("the pager's undo of page {pgno} failed"),
            })
        }
    };
    // SAFETY: pData from m_open.
    unsafe {
        guard_write::<W>("xUndo", p, ffi::SQLITE_IOERR, |w| {
            code_of(w.undo(&mut cb), Op::Write)
        })
    }
}

unsafe extern "C" fn x_savepoint<W: VirtualWal>(p: *mut ffi::wal_impl, data: *mut c_uint) {
    guard("xSavepoint", (), || {
        // SAFETY: pData from m_open.
        let d = unsafe { wal::<W>(p) }.savepoint();
        // SAFETY: `data` is WAL_SAVEPOINT_NDATA (4) writable words.
        unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), data, 4) };
    })
}

unsafe extern "C" fn x_savepoint_undo<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    data: *mut c_uint,
) -> c_int {
    // SAFETY: pData from m_open; `data` is 4 words written by x_savepoint.
    unsafe {
        guard_write::<W>("xSavepointUndo", p, ffi::SQLITE_IOERR, |w| {
            let d = &mut *(data as *mut [u32; 4]);
            code_of(w.savepoint_undo(d), Op::Write)
        })
    }
}

unsafe extern "C" fn x_frame_count<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    _locked: c_int,
    out: *mut c_uint,
) -> c_int {
    guard("xFrameCount", ffi::SQLITE_IOERR, || {
        // SAFETY: pData from m_open; `out` is writable.
        unsafe { *out = wal::<W>(p).frame_count() };
        OK
    })
}

unsafe extern "C" fn x_frames<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    page_size: c_int,
    list: *mut ffi::libsql_pghdr,
    n_truncate: c_uint,
    is_commit: c_int,
    sync_flags: c_int,
    n_frames: *mut c_int,
) -> c_int {
    // SAFETY: pData from m_open.
    unsafe {
        guard_write::<W>("xFrames", p, ffi::SQLITE_IOERR_WRITE, |w| {
            let ps = page_size.max(0) as usize;
            let mut pages = Vec::new();
            let mut cur = list;
            while !cur.is_null() {
                // SAFETY: the pager's dirty list: valid headers linked by
                // pDirty, each with `page_size` bytes of page data.
                let h = &*cur;
                pages.push(Page {
                    pgno: h.pgno,
                    data: std::slice::from_raw_parts(h.pData as *const u8, ps),
                });
                cur = h.pDirty;
            }
            let before = w.frame_count();
            let sync = sync_flags & 0x03 != 0;
            let rc = code_of(
                w.frames(page_size as u32, &pages, n_truncate, is_commit != 0, sync),
                Op::Write,
            );
            if !n_frames.is_null() {
                // SAFETY: non-null out-parameter.
                *n_frames = if rc == OK && is_commit != 0 {
                    w.frame_count().saturating_sub(before) as c_int
                } else {
                    0
                };
            }
            rc
        })
    }
}

type BusyFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type CkptCb =
    unsafe extern "C" fn(*mut c_void, c_int, *const c_uchar, c_int, c_int, c_int) -> c_int;

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn x_checkpoint<W: VirtualWal>(
    p: *mut ffi::wal_impl,
    _db: *mut ffi::sqlite3,
    mode: c_int,
    busy: Option<BusyFn>,
    busy_arg: *mut c_void,
    _sync_flags: c_int,
    _n_buf: c_int,
    _buf: *mut c_uchar,
    pn_log: *mut c_int,
    pn_ckpt: *mut c_int,
    cb: Option<CkptCb>,
    cb_data: *mut c_void,
) -> c_int {
    let mode = match mode {
        ffi::SQLITE_CHECKPOINT_FULL => CheckpointMode::Full,
        ffi::SQLITE_CHECKPOINT_RESTART => CheckpointMode::Restart,
        ffi::SQLITE_CHECKPOINT_TRUNCATE => CheckpointMode::Truncate,
        _ => CheckpointMode::Passive,
    };
    let mut busy_fn = || {
        // SAFETY: SQLite's busy handler with its argument.
        busy.is_some_and(|f| unsafe { f(busy_arg) } != 0)
    };
    let mut page_fn = |safe: u32, page: Option<CheckpointPage<'_>>| -> Result<()> {
        let Some(f) = cb else {
            return Ok(());
        };
        // SAFETY: libSQL's checkpoint callback with its data; the page
        // pointer is valid for the call.
        let rc = unsafe {
            match page {
                Some(pg) => f(
                    cb_data,
                    safe as c_int,
                    pg.page.as_ptr(),
                    pg.page.len() as c_int,
                    pg.pgno as c_int,
                    pg.frame as c_int,
                ),
                None => f(cb_data, safe as c_int, null(), 0, 0, 0),
            }
        };
        if rc == OK {
            Ok(())
        } else {
            Err(Error::Sqlite {
                code: rc,
                message: "the checkpoint callback failed".into(),
            })
        }
    };
    // SAFETY: pData from m_open.
    unsafe {
        guard_write::<W>("xCheckpoint", p, ffi::SQLITE_IOERR, |w| {
            let on_page: Option<&mut virtual_wal::CheckpointCallback<'_>> = if cb.is_some() {
                Some(&mut page_fn)
            } else {
                None
            };
            match w.checkpoint(mode, &mut busy_fn, on_page) {
                Ok(o) => {
                    // SAFETY: out-parameters, written when non-null.
                    if !pn_log.is_null() {
                        *pn_log = o.log_frames as c_int;
                    }
                    if !pn_ckpt.is_null() {
                        *pn_ckpt = o.checkpointed as c_int;
                    }
                    if o.busy {
                        ffi::SQLITE_BUSY
                    } else {
                        OK
                    }
                }
                Err(e) => report(&e, Op::Other),
            }
        })
    }
}

unsafe extern "C" fn x_callback<W: VirtualWal>(p: *mut ffi::wal_impl) -> c_int {
    guard("xCallback", 0, || {
        // SAFETY: pData from m_open.
        unsafe { wal::<W>(p) }.callback() as c_int
    })
}

unsafe extern "C" fn x_exclusive_mode<W: VirtualWal>(p: *mut ffi::wal_impl, op: c_int) -> c_int {
    guard("xExclusiveMode", 0, || {
        // SAFETY: pData from m_open.
        unsafe { wal::<W>(p) }.exclusive_mode(op)
    })
}

unsafe extern "C" fn x_heap_memory(_p: *mut ffi::wal_impl) -> c_int {
    guard("xHeapMemory", 0, || 0)
}

// Snapshots (sqlite3_snapshot_*) are not supported.

unsafe extern "C" fn x_snapshot_get(
    _p: *mut ffi::wal_impl,
    _s: *mut *mut ffi::sqlite3_snapshot,
) -> c_int {
    guard("xSnapshotGet", ffi::SQLITE_ERROR, || ffi::SQLITE_ERROR)
}

unsafe extern "C" fn x_snapshot_open(_p: *mut ffi::wal_impl, _s: *mut ffi::sqlite3_snapshot) {
    guard("xSnapshotOpen", (), || ())
}

unsafe extern "C" fn x_snapshot_recover(_p: *mut ffi::wal_impl) -> c_int {
    guard("xSnapshotRecover", ffi::SQLITE_ERROR, || ffi::SQLITE_ERROR)
}

unsafe extern "C" fn x_snapshot_check(_p: *mut c_void, _s: *mut ffi::sqlite3_snapshot) -> c_int {
    guard("xSnapshotCheck", ffi::SQLITE_ERROR, || ffi::SQLITE_ERROR)
}

unsafe extern "C" fn x_snapshot_unlock(_p: *mut ffi::wal_impl) {
    guard("xSnapshotUnlock", (), || ())
}

unsafe extern "C" fn x_framesize<W: VirtualWal>(p: *mut ffi::wal_impl) -> c_int {
    guard("xFramesize", 0, || {
        // SAFETY: pData from m_open.
        unsafe { wal::<W>(p) }.page_size() as c_int
    })
}

unsafe extern "C" fn x_file(_p: *mut ffi::wal_impl) -> *mut ffi::sqlite3_file {
    // There is no WAL file: the WAL image is part of the store.
    guard("xFile", null_mut(), null_mut)
}

unsafe extern "C" fn x_write_lock(_p: *mut ffi::wal_impl, _lock: c_int) -> c_int {
    guard("xWriteLock", ffi::SQLITE_INTERNAL, || OK)
}

unsafe extern "C" fn x_db(_p: *mut ffi::wal_impl, _db: *mut ffi::sqlite3) {
    guard("xDb", (), || ())
}

unsafe extern "C" fn x_savepoint_forget(_p: *mut ffi::wal_impl, _data: *mut c_uint) {
    guard("xSavepointForget", (), || ())
}

// ----- connections -----

/// A libSQL connection whose WAL is bop's (`sqlite3 *` underneath).
#[derive(Debug)]
pub struct Connection {
    db: *mut ffi::sqlite3,
}

// SAFETY: libSQL is built thread-safe (serialized mode): a connection may
// be used from another thread, one call at a time (`&self` methods go
// through SQLite's own connection mutex).
unsafe impl Send for Connection {}

/// Opens `path` with libSQL, the `bop` VFS and bop's virtual WAL; returns
/// the raw handle (the caller owns it).
fn open_raw(path: &CStr, flags: c_int) -> Result<*mut ffi::sqlite3> {
    init()?;
    let mut db = null_mut();
    // What bop reports while libSQL opens (the VFS's reason) joins the error.
    bop_frontend::clear_last_error();
    // SAFETY: valid NUL-terminated strings; `db` receives the handle.
    let rc = unsafe {
        ffi::libsql_open_v3(
            path.as_ptr(),
            &mut db,
            flags,
            c"bop".as_ptr(),
            wal_manager(),
        )
    };
    if rc != OK {
        let message = format!(
            "open {}: {}{}",
            path.to_string_lossy(),
            errmsg(db),
            bop_frontend::last_error()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
        // SAFETY: closing a (possibly null) handle from a failed open.
        unsafe { ffi::sqlite3_close_v2(db) };
        return Err(Error::Sqlite { code: rc, message });
    }
    // SAFETY: an open handle.
    unsafe {
        ffi::sqlite3_extended_result_codes(db, 1);
        ffi::sqlite3_busy_timeout(db, 5000);
    }
    Ok(db)
}

fn errmsg(db: *mut ffi::sqlite3) -> String {
    if db.is_null() {
        return "out of memory".into();
    }
    // SAFETY: an open handle; the message lives until the next call on it.
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

impl Connection {
    pub(crate) fn open(path: &Path, flags: OpenFlags) -> Result<Connection> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Misuse("path contains NUL".into()))?;
        Ok(Connection {
            db: open_raw(&c, flags.0)?,
        })
    }

    /// Opens `path` as a plain SQLite database file with libSQL's own WAL
    /// (`wal.c`) and the default VFS — not bop. For side-by-side
    /// comparisons (`compare-libsql`).
    pub fn open_libsql_default_wal(path: &Path) -> Result<Connection> {
        init()?;
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Misuse("path contains NUL".into()))?;
        let mut db = null_mut();
        // SAFETY: a NUL-terminated path; `db` receives the handle.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                null(),
            )
        };
        if rc != OK {
            let message = errmsg(db);
            // SAFETY: closing the handle of a failed open.
            unsafe { ffi::sqlite3_close_v2(db) };
            return Err(Error::Sqlite { code: rc, message });
        }
        let conn = Connection { db };
        conn.execute_batch("PRAGMA journal_mode=WAL")?;
        Ok(conn)
    }

    /// The `sqlite3 *` handle, for calls this wrapper does not offer. It
    /// belongs to libSQL's bundled SQLite: pass it only to `libsql_ffi`.
    pub fn raw(&self) -> *mut ffi::sqlite3 {
        self.db
    }

    fn error(&self, rc: c_int) -> Error {
        // SAFETY: an open handle.
        let code = unsafe { ffi::sqlite3_extended_errcode(self.db) };
        Error::Sqlite {
            code: if code != OK { code } else { rc },
            message: errmsg(self.db),
        }
    }

    /// Runs one or more statements without parameters or results.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        let c = CString::new(sql).map_err(|_| Error::Misuse("SQL contains NUL".into()))?;
        let mut err: *mut c_char = null_mut();
        // SAFETY: an open handle and a NUL-terminated string; `err`
        // receives a message SQLite allocated.
        let rc = unsafe { ffi::sqlite3_exec(self.db, c.as_ptr(), None, null_mut(), &mut err) };
        if rc == OK {
            return Ok(());
        }
        let message = if err.is_null() {
            errmsg(self.db)
        } else {
            // SAFETY: a NUL-terminated message from sqlite3_malloc.
            let m = unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: freed once, with SQLite's allocator.
            unsafe { ffi::sqlite3_free(err.cast()) };
            m
        };
        // SAFETY: an open handle.
        let code = unsafe { ffi::sqlite3_extended_errcode(self.db) };
        Err(Error::Sqlite {
            code: if code != OK { code } else { rc },
            message,
        })
    }

    /// Prepares one statement.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let mut stmt = null_mut();
        // SAFETY: an open handle; the SQL is passed with its length.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                &mut stmt,
                null_mut(),
            )
        };
        if rc != OK {
            return Err(self.error(rc));
        }
        if stmt.is_null() {
            return Err(Error::Misuse(format!("no statement in {sql:?}")));
        }
        Ok(Statement {
            stmt,
            conn: self,
            _p: PhantomData,
        })
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE (`sqlite3_changes`).
    pub fn changes(&self) -> i64 {
        // SAFETY: an open handle.
        i64::from(unsafe { ffi::sqlite3_changes(self.db) })
    }

    /// `sqlite3_last_insert_rowid`.
    pub fn last_insert_rowid(&self) -> i64 {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db) }
    }

    /// Whether the connection is outside an explicit transaction.
    pub fn is_autocommit(&self) -> bool {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    fn check(&self, rc: c_int) -> Result<()> {
        if rc == OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// libSQL's frame-level WAL API (used by its replication): the number
    /// of frames in the WAL (`libsql_wal_frame_count`).
    pub fn wal_frame_count(&self) -> Result<u32> {
        let mut n: c_uint = 0;
        // SAFETY: an open handle and a writable counter.
        let rc = unsafe { ffi::libsql_wal_frame_count(self.db, &mut n) };
        self.check(rc)?;
        Ok(n)
    }

    /// Frame `frame` (1-based) as SQLite WAL bytes: the 24-byte frame
    /// header and the page (`libsql_wal_get_frame`); `buf` is 24 + page
    /// size bytes.
    pub fn wal_get_frame(&self, frame: u32, buf: &mut [u8]) -> Result<()> {
        // SAFETY: an open handle; `buf` is writable for its length.
        let rc = unsafe {
            ffi::libsql_wal_get_frame(self.db, frame, buf.as_mut_ptr().cast(), buf.len() as c_uint)
        };
        self.check(rc)
    }

    /// Starts inserting frames (`libsql_wal_insert_begin`): takes the
    /// write lock.
    ///
    /// A new, empty database is put in WAL mode first: it is not until its
    /// first write (as a new SQLite file), and libSQL would otherwise
    /// accept the frames with no WAL to put them in.
    pub fn wal_insert_begin(&self) -> Result<()> {
        if self.query_i64("PRAGMA page_count")? == 0 {
            self.execute_batch("PRAGMA journal_mode=WAL")?;
        }
        // SAFETY: an open handle.
        let rc = unsafe { ffi::libsql_wal_insert_begin(self.db) };
        self.check(rc)
    }

    /// Inserts frame `frame` (`libsql_wal_insert_frame`); a frame whose
    /// header has a non-zero database size commits. A frame number already
    /// present is compared instead: returns `Ok(true)` if it differs.
    pub fn wal_insert_frame(&self, frame: u32, buf: &[u8]) -> Result<bool> {
        let mut conflict: c_int = 0;
        // SAFETY: an open handle; libSQL only reads `buf` (its pointer is
        // typed mutable in the C API).
        let rc = unsafe {
            ffi::libsql_wal_insert_frame(
                self.db,
                frame,
                buf.as_ptr() as *mut c_void,
                buf.len() as c_uint,
                &mut conflict,
            )
        };
        if conflict != 0 {
            return Ok(true);
        }
        self.check(rc)?;
        Ok(false)
    }

    /// Ends inserting frames (`libsql_wal_insert_end`).
    pub fn wal_insert_end(&self) -> Result<()> {
        // SAFETY: an open handle.
        let rc = unsafe { ffi::libsql_wal_insert_end(self.db) };
        self.check(rc)
    }

    /// Runs every statement of `sql` in order and returns their rows as
    /// the sqlite3 shell prints them in its default list mode: each column
    /// as text (NULL empty), separated by `|`, one row per line (nothing
    /// for a row without columns). Stops at the first error.
    pub fn run_script(&self, sql: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = sql.as_bytes();
        while !rest.is_empty() {
            let mut stmt = null_mut();
            let mut tail: *const c_char = null();
            // SAFETY: an open handle; the SQL is passed with its length and
            // `tail` points into it.
            let rc = unsafe {
                ffi::sqlite3_prepare_v2(
                    self.db,
                    rest.as_ptr().cast(),
                    rest.len() as c_int,
                    &mut stmt,
                    &mut tail,
                )
            };
            if rc != OK {
                return Err(self.error(rc));
            }
            let used = if tail.is_null() {
                rest.len()
            } else {
                (tail as usize) - (rest.as_ptr() as usize)
            };
            rest = &rest[used.min(rest.len())..];
            if stmt.is_null() {
                // Only whitespace or comments were left.
                if used == 0 {
                    break;
                }
                continue;
            }
            let st = Statement {
                stmt,
                conn: self,
                _p: PhantomData,
            };
            loop {
                // SAFETY: a live statement.
                match unsafe { ffi::sqlite3_step(st.stmt) } {
                    ffi::SQLITE_ROW => {
                        // SAFETY: a live statement on a row.
                        let n = unsafe { ffi::sqlite3_column_count(st.stmt) };
                        if n == 0 {
                            // A row without columns (PRAGMA incremental_vacuum's
                            // steps): the shell prints nothing for it.
                            continue;
                        }
                        for i in 0..n {
                            if i > 0 {
                                out.push('|');
                            }
                            // SAFETY: as above; the text is copied at once.
                            unsafe {
                                let p = ffi::sqlite3_column_text(st.stmt, i);
                                let len = ffi::sqlite3_column_bytes(st.stmt, i).max(0) as usize;
                                if !p.is_null() {
                                    out.push_str(&String::from_utf8_lossy(
                                        std::slice::from_raw_parts(p, len),
                                    ));
                                }
                            }
                        }
                        out.push('\n');
                    }
                    ffi::SQLITE_DONE => break,
                    rc => return Err(self.error(rc)),
                }
            }
        }
        Ok(out)
    }

    /// Runs one statement with `params`; returns the number of changed rows.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// Runs one statement with `params` and returns every row.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        self.prepare(sql)?.query(params)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: our handle; statements borrow the connection, so none is
        // left. close_v2 defers if SQLite still holds something.
        let rc = unsafe { ffi::sqlite3_close_v2(self.db) };
        if rc != OK {
            tracing::warn!(rc, "closing a bop-libsql connection failed");
        }
    }
}

/// A prepared statement.
#[derive(Debug)]
pub struct Statement<'c> {
    stmt: *mut ffi::sqlite3_stmt,
    conn: &'c Connection,
    _p: PhantomData<*mut ()>,
}

impl Statement<'_> {
    fn bind(&mut self, params: &[Value]) -> Result<()> {
        // SAFETY: a live statement.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
        for (i, v) in params.iter().enumerate() {
            let idx = i as c_int + 1;
            // SAFETY: a live statement; text and blobs are copied by SQLite
            // (SQLITE_TRANSIENT).
            let rc = unsafe {
                match v {
                    Value::Null => ffi::sqlite3_bind_null(self.stmt, idx),
                    Value::Integer(n) => ffi::sqlite3_bind_int64(self.stmt, idx, *n),
                    Value::Real(x) => ffi::sqlite3_bind_double(self.stmt, idx, *x),
                    Value::Text(s) => ffi::sqlite3_bind_text(
                        self.stmt,
                        idx,
                        s.as_ptr().cast(),
                        s.len() as c_int,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                    Value::Blob(b) => ffi::sqlite3_bind_blob(
                        self.stmt,
                        idx,
                        b.as_ptr().cast(),
                        b.len() as c_int,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            if rc != OK {
                return Err(self.conn.error(rc));
            }
        }
        Ok(())
    }

    fn column(&self, i: c_int) -> Value {
        // SAFETY: a statement positioned on a row; pointers returned by
        // SQLite are valid until the next step, and copied here.
        unsafe {
            match ffi::sqlite3_column_type(self.stmt, i) {
                ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_column_int64(self.stmt, i)),
                ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(self.stmt, i)),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(self.stmt, i);
                    let n = ffi::sqlite3_column_bytes(self.stmt, i).max(0) as usize;
                    if p.is_null() {
                        Value::Text(String::new())
                    } else {
                        Value::Text(
                            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned(),
                        )
                    }
                }
                ffi::SQLITE_BLOB => {
                    let p = ffi::sqlite3_column_blob(self.stmt, i) as *const u8;
                    let n = ffi::sqlite3_column_bytes(self.stmt, i).max(0) as usize;
                    if p.is_null() {
                        Value::Blob(Vec::new())
                    } else {
                        Value::Blob(std::slice::from_raw_parts(p, n).to_vec())
                    }
                }
                _ => Value::Null,
            }
        }
    }

    /// Binds `params` and runs the statement to its end; returns the number
    /// of rows changed.
    pub fn execute(&mut self, params: &[Value]) -> Result<usize> {
        self.bind(params)?;
        loop {
            // SAFETY: a live, bound statement.
            match unsafe { ffi::sqlite3_step(self.stmt) } {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break,
                rc => {
                    let e = self.conn.error(rc);
                    // SAFETY: a live statement.
                    unsafe { ffi::sqlite3_reset(self.stmt) };
                    return Err(e);
                }
            }
        }
        // SAFETY: live statement and handle.
        let n = unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_changes(self.conn.db)
        };
        Ok(n.max(0) as usize)
    }

    /// Binds `params` and returns every row.
    pub fn query(&mut self, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        self.bind(params)?;
        let mut rows = Vec::new();
        loop {
            // SAFETY: a live, bound statement.
            match unsafe { ffi::sqlite3_step(self.stmt) } {
                ffi::SQLITE_ROW => {
                    // SAFETY: a live statement.
                    let n = unsafe { ffi::sqlite3_column_count(self.stmt) };
                    rows.push((0..n).map(|i| self.column(i)).collect());
                }
                ffi::SQLITE_DONE => break,
                rc => {
                    let e = self.conn.error(rc);
                    // SAFETY: a live statement.
                    unsafe { ffi::sqlite3_reset(self.stmt) };
                    return Err(e);
                }
            }
        }
        // SAFETY: a live statement.
        unsafe { ffi::sqlite3_reset(self.stmt) };
        Ok(rows)
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: our statement, finalized once.
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}

// ----- the C API (include/bop_libsql.h) -----

thread_local! {
    static LAST_ERROR_C: RefCell<CString> = RefCell::new(CString::default());
}

/// Opens the bop store `path` with libSQL and bop's virtual WAL
/// (read-write, created if missing, `file:` URIs accepted).
///
/// # Safety
/// `path` is a NUL-terminated string; `db` is writable.
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_open(path: *const c_char, db: *mut *mut ffi::sqlite3) -> c_int {
    // SAFETY: forwarded contract.
    guard("bop_libsql_open", ffi::SQLITE_CANTOPEN, || unsafe {
        bop_libsql_open_v2(path, db, OpenFlags::default().0)
    })
}

/// [`bop_libsql_open`] with SQLite's `SQLITE_OPEN_*` flags.
///
/// # Safety
/// `path` is a NUL-terminated string; `db` is writable.
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_open_v2(
    path: *const c_char,
    db: *mut *mut ffi::sqlite3,
    flags: c_int,
) -> c_int {
    guard("bop_libsql_open_v2", ffi::SQLITE_CANTOPEN, || {
        if path.is_null() || db.is_null() {
            return report(
                &Error::Misuse("bop_libsql_open: null argument".into()),
                Op::Open,
            );
        }
        // SAFETY: `db` is writable.
        unsafe { *db = null_mut() };
        // SAFETY: NUL-terminated per the contract.
        let p = unsafe { CStr::from_ptr(path) };
        match open_raw(p, flags) {
            Ok(h) => {
                // SAFETY: `db` is writable.
                unsafe { *db = h };
                OK
            }
            Err(e) => report(&e, Op::Open),
        }
    })
}

/// `sqlite3_exec` of the libSQL inside this library.
///
/// # Safety
/// As `sqlite3_exec`; `db` comes from [`bop_libsql_open`].
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_exec(
    db: *mut ffi::sqlite3,
    sql: *const c_char,
    callback: ffi::sqlite3_callback,
    arg: *mut c_void,
    errmsg: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    guard("bop_libsql_exec", ffi::SQLITE_INTERNAL, || unsafe {
        ffi::sqlite3_exec(db, sql, callback, arg, errmsg)
    })
}

/// `sqlite3_errmsg` of the libSQL inside this library.
///
/// # Safety
/// `db` comes from [`bop_libsql_open`].
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_errmsg(db: *mut ffi::sqlite3) -> *const c_char {
    // SAFETY: forwarded contract.
    guard("bop_libsql_errmsg", null(), || unsafe {
        ffi::sqlite3_errmsg(db)
    })
}

/// `sqlite3_free` (for messages from [`bop_libsql_exec`]).
///
/// # Safety
/// `p` is null or was allocated by SQLite.
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    guard("bop_libsql_free", (), || unsafe { ffi::sqlite3_free(p) })
}

/// Closes a connection from [`bop_libsql_open`].
///
/// # Safety
/// `db` comes from [`bop_libsql_open`] and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn bop_libsql_close(db: *mut ffi::sqlite3) -> c_int {
    // SAFETY: forwarded contract.
    guard("bop_libsql_close", ffi::SQLITE_INTERNAL, || unsafe {
        ffi::sqlite3_close_v2(db)
    })
}

/// The detailed message behind the last error bop-libsql returned on this
/// thread ("" if none); valid until the next call on this thread.
#[no_mangle]
pub extern "C" fn bop_libsql_last_error() -> *const c_char {
    guard("bop_libsql_last_error", null(), || {
        let msg = bop_frontend::last_error().unwrap_or_default();
        LAST_ERROR_C.with(|c| {
            *c.borrow_mut() = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            c.borrow().as_ptr()
        })
    })
}
