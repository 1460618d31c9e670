//! The FFI shim, the top layer of bop-vfs: every `extern "C"` function
//! SQLite calls, and registration. Each function runs its body in
//! bop-frontend's panic guard (nothing unwinds into C), checks its pointers
//! and calls safe code in `file.rs` / `vfs.rs`. Nothing else in the crate
//! imports this file. All of bop-vfs's `unsafe` is here.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::size_of;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::{Mutex, OnceLock};

use bop_frontend::sys::*;
use bop_frontend::{guard, report, to_code, Op};

use crate::api::{RegisterError, SqliteApi, VFS_NAME};
use crate::checkpointer;
use crate::file::{BopFile, JournalFile, MainFile, PragmaOutcome, WalFile};
use crate::uri::Params;
use crate::vfs::{self, NameKind};

/// Process-wide state fixed at registration.
struct Globals {
    api: SqliteApi,
    /// The default VFS when bop was registered: temporary files go there.
    default_vfs: *mut sqlite3_vfs,
    /// bop's own `sqlite3_vfs`, leaked: it must outlive every connection.
    vfs: *mut sqlite3_vfs,
}

// SAFETY: the pointers refer to process-lifetime VFS objects that SQLite
// itself shares between threads; Globals never mutates through them.
unsafe impl Send for Globals {}
// SAFETY: as above; all access is read-only.
unsafe impl Sync for Globals {}

static GLOBALS: OnceLock<Globals> = OnceLock::new();

fn globals() -> &'static Globals {
    GLOBALS.get().expect("bop VFS used before registration")
}

/// Our `sqlite3_file`: SQLite allocates `szOsFile` bytes and we place this
/// at the start. Temporary files are opened by the default VFS directly in
/// the same memory (`szOsFile` is the larger of the two sizes).
#[repr(C)]
struct RawFile {
    base: sqlite3_file,
    state: *mut BopFile,
}

static IO_METHODS: sqlite3_io_methods = sqlite3_io_methods {
    iVersion: 2,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};

/// Runs `body` on the state of the file `f` in the panic guard for a
/// method that may change the file's store: a panic also fails the store
/// (see `bop_frontend::guard_write`).
///
/// # Safety
/// `f` must be a `RawFile` opened by `x_open` with a live state.
unsafe fn guard_write(
    what: &str,
    f: *mut sqlite3_file,
    on_panic: c_int,
    body: impl FnOnce(&mut BopFile) -> c_int,
) -> c_int {
    bop_frontend::guard_write(
        what,
        on_panic,
        // SAFETY: per the contract; the body's reference to the state is
        // gone (it unwound) when this runs.
        |msg| unsafe { state(f) }.store().fail(msg.to_owned()),
        // SAFETY: per the contract.
        || body(unsafe { state(f) }),
    )
}

/// # Safety
/// `f` must be a `RawFile` opened by `x_open` with a live state.
unsafe fn state<'a>(f: *mut sqlite3_file) -> &'a mut BopFile {
    // SAFETY: per the contract, `f` points at a RawFile whose `state` is a
    // leaked Box<BopFile>; SQLite serializes calls on one file handle.
    unsafe { &mut *(*(f as *mut RawFile)).state }
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

/// Copies `s` into memory from sqlite3_malloc (SQLite frees it).
fn sqlite_string(s: &str) -> *mut c_char {
    let api = &globals().api;
    let bytes = s.as_bytes();
    // SAFETY: plain allocation through SQLite's allocator.
    let p = unsafe { (api.malloc)((bytes.len() + 1) as c_int) } as *mut u8;
    if !p.is_null() {
        // SAFETY: `p` has room for len + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            *p.add(bytes.len()) = 0;
        }
    }
    p.cast()
}

/// Opens a connection of bop's own to the database `uri` (a `file:` URI
/// naming the VFS bop), runs a PASSIVE checkpoint on it and closes it.
/// Returns the frames in the WAL and the frames checkpointed, or SQLite's
/// error code. The checkpointer's [`checkpointer::Runner`]: called only by
/// its thread, never from inside a VFS method.
fn passive_checkpoint(uri: &CStr) -> Result<(i32, i32), c_int> {
    let Some(api) = GLOBALS.get().and_then(|g| g.api.checkpoint) else {
        return Err(SQLITE_MISUSE);
    };
    let mut db: *mut c_void = std::ptr::null_mut();
    // SAFETY: `uri` is a NUL-terminated string and `db` a valid out pointer;
    // `open_v2` is sqlite3_open_v2 (registration contract).
    let rc = unsafe {
        (api.open_v2)(
            uri.as_ptr(),
            &mut db,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
            std::ptr::null(),
        )
    };
    if rc != SQLITE_OK {
        if !db.is_null() {
            // SAFETY: a handle sqlite3_open_v2 returned (even on error).
            unsafe { (api.close)(db) };
        }
        return Err(rc);
    }
    // A fresh connection is not in WAL mode until it reads the database.
    // SAFETY: `db` is open; the SQL is NUL-terminated; no callback, no
    // error message out pointer.
    let rc = unsafe {
        (api.exec)(
            db,
            c"PRAGMA schema_version".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc != SQLITE_OK {
        // SAFETY: the connection opened above.
        unsafe { (api.close)(db) };
        return Err(rc);
    }
    let (mut log, mut ckpt) = (-1, -1);
    // SAFETY: `db` is an open connection with no statements; NULL names
    // every attached database; the out pointers are valid.
    let rc = unsafe {
        (api.wal_checkpoint_v2)(
            db,
            std::ptr::null(),
            SQLITE_CHECKPOINT_PASSIVE,
            &mut log,
            &mut ckpt,
        )
    };
    // SAFETY: the connection opened above, with no statements left.
    unsafe { (api.close)(db) };
    match rc {
        // -1: the database is not in WAL mode (cannot be for bop).
        SQLITE_OK if log >= 0 => Ok((log, ckpt)),
        SQLITE_OK => Err(SQLITE_MISUSE),
        rc => Err(rc),
    }
}

/// Serializes registration: no caller returns before the VFS is registered.
static REGISTER: Mutex<bool> = Mutex::new(false);

/// Registers the VFS (see `crate::register`).
///
/// # Safety
/// As `crate::register`.
pub(crate) unsafe fn register(api: SqliteApi, make_default: bool) -> Result<(), RegisterError> {
    let mut registered = REGISTER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(g) = GLOBALS.get() {
        if make_default || !*registered {
            // SAFETY: (re-)registering our own process-lifetime VFS.
            let rc = unsafe { (g.api.vfs_register)(g.vfs.cast(), c_int::from(make_default)) };
            if rc != SQLITE_OK {
                return Err(RegisterError::Sqlite(rc));
            }
            *registered = true;
        }
        return Ok(());
    }
    // SAFETY: `vfs_find` is sqlite3_vfs_find per the caller's contract.
    let default_vfs = unsafe { (api.vfs_find)(std::ptr::null()) } as *mut sqlite3_vfs;
    if default_vfs.is_null() {
        return Err(RegisterError::NoDefaultVfs);
    }
    // SAFETY: the default VFS is a valid, process-lifetime object.
    let (default_sz, default_path) =
        unsafe { ((*default_vfs).szOsFile, (*default_vfs).mxPathname) };
    let vfs = Box::leak(Box::new(sqlite3_vfs {
        iVersion: 2,
        szOsFile: default_sz.max(size_of::<RawFile>() as c_int),
        mxPathname: default_path.max(1024),
        pNext: std::ptr::null_mut(),
        zName: c"bop".as_ptr(),
        pAppData: std::ptr::null_mut(),
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        xDlOpen: Some(x_dl_open),
        xDlError: Some(x_dl_error),
        xDlSym: Some(x_dl_sym),
        xDlClose: Some(x_dl_close),
        xRandomness: Some(x_randomness),
        xSleep: Some(x_sleep),
        xCurrentTime: Some(x_current_time),
        xGetLastError: Some(x_get_last_error),
        xCurrentTimeInt64: Some(x_current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    })) as *mut sqlite3_vfs;
    let g = Globals {
        api,
        default_vfs,
        vfs,
    };
    // Globals first: SQLite may call the VFS as soon as it is registered.
    if GLOBALS.set(g).is_err() {
        unreachable!("GLOBALS is only set under the REGISTER lock");
    }
    // The SQLite that uses the VFS is where errors are logged.
    // SAFETY: `log` is sqlite3_log of the SQLite that will use the VFS,
    // valid for the rest of the process (the caller's contract).
    unsafe { bop_frontend::install_log_sink(api.log) };
    if api.checkpoint.is_some() {
        checkpointer::install_runner(passive_checkpoint);
    }
    // SAFETY: `vfs` is leaked and so lives for the process.
    let rc = unsafe { (api.vfs_register)(vfs.cast(), c_int::from(make_default)) };
    if rc != SQLITE_OK {
        return Err(RegisterError::Sqlite(rc));
    }
    *registered = true;
    Ok(())
}

/// Reads every URI parameter of a filename SQLite passed to xOpen.
///
/// # Safety
/// `name` must be a filename SQLite passed to xOpen.
unsafe fn uri_pairs(name: *const c_char) -> Vec<(String, String)> {
    let api = &globals().api;
    let mut out = Vec::new();
    for i in 0.. {
        // SAFETY: `name` came from SQLite's xOpen; uri_key returns NULL past the end.
        let key = unsafe { (api.uri_key)(name, i) };
        if key.is_null() {
            break;
        }
        // SAFETY: `key` is a NUL-terminated parameter name owned by SQLite.
        let k = unsafe { CStr::from_ptr(key) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above; the value is NUL-terminated.
        let v = unsafe { (api.uri_parameter)(name, key) };
        let v = if v.is_null() {
            String::new()
        } else {
            // SAFETY: non-null NUL-terminated value owned by SQLite.
            unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned()
        };
        out.push((k, v));
    }
    out
}

unsafe extern "C" fn x_open(
    _vfs: *mut sqlite3_vfs,
    name: *const c_char,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    guard("xOpen", SQLITE_CANTOPEN, || {
        // SAFETY: SQLite hands us `szOsFile` writable bytes at `file`.
        unsafe { (*file).pMethods = std::ptr::null() };
        let is_main = flags & SQLITE_OPEN_MAIN_DB != 0;
        let is_wal = flags & SQLITE_OPEN_WAL != 0;
        // SAFETY: `name` is null or a NUL-terminated string from SQLite.
        let path = unsafe { cstr(name) };
        if !is_main && !is_wal {
            if flags & SQLITE_OPEN_MAIN_JOURNAL != 0 {
                if let Some(p) = path {
                    if let NameKind::Journal(base) = vfs::classify(p) {
                        return open_journal(&base, file, flags, out_flags);
                    }
                }
            }
            // Temporary and other files: the default VFS opens them in place.
            let (d, open) = default_method("xOpen", |v| v.xOpen);
            // SAFETY: `szOsFile` covers the default VFS's file size; the
            // arguments are SQLite's own.
            return unsafe { open(d, name, file, flags, out_flags) };
        }
        let Some(path) = path else {
            report(SQLITE_CANTOPEN, "bop: a bop database needs a file name");
            return SQLITE_CANTOPEN;
        };
        let state = if is_main {
            // SAFETY: `name` came from SQLite's xOpen for the main database.
            let pairs = unsafe { uri_pairs(name) };
            let params = match Params::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(p) => p,
                Err(e) => return to_code(&e, Op::Open),
            };
            match vfs::open_main(Path::new(path), &params, flags & SQLITE_OPEN_CREATE != 0) {
                Ok(db) => BopFile::Main(MainFile::new(db)),
                Err(e) => return to_code(&e, Op::Open),
            }
        } else {
            let base = path.strip_suffix("-wal").unwrap_or(path);
            match vfs::find_open(Path::new(base)) {
                Some(db) => {
                    if let Err(e) = db.store.wal_image_mark_open() {
                        return to_code(&e, Op::Open);
                    }
                    BopFile::Wal(WalFile { db })
                }
                None => {
                    report(
                        SQLITE_CANTOPEN,
                        &format!("bop: {path}: its database is not open"),
                    );
                    return SQLITE_CANTOPEN;
                }
            }
        };
        // SAFETY: as SQLite's xOpen arguments.
        unsafe { install(state, file, flags, out_flags) }
    })
}

/// Makes `file` a bop file with `state`.
///
/// # Safety
/// `file` has `szOsFile` writable bytes; `out_flags` is null or writable.
unsafe fn install(
    state: BopFile,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let raw = file as *mut RawFile;
    // SAFETY: `file` has at least size_of::<RawFile>() bytes (szOsFile).
    unsafe {
        (*raw).state = Box::into_raw(Box::new(state));
        (*raw).base.pMethods = &IO_METHODS;
        if !out_flags.is_null() {
            *out_flags = flags;
        }
    }
    SQLITE_OK
}

/// Opens the rollback journal of the bop database `base` (SQLite's first
/// write transaction on a new database runs in rollback mode): in memory
/// (`file.rs`).
fn open_journal(
    base: &Path,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(db) = vfs::find_open(base) else {
        report(
            SQLITE_CANTOPEN,
            &format!("bop: {}-journal: its database is not open", base.display()),
        );
        return SQLITE_CANTOPEN;
    };
    // SAFETY: SQLite's xOpen arguments, passed on by x_open.
    unsafe {
        install(
            BopFile::Journal(JournalFile::new(db)),
            file,
            flags,
            out_flags,
        )
    }
}

unsafe extern "C" fn x_close(f: *mut sqlite3_file) -> c_int {
    guard("xClose", SQLITE_IOERR, || {
        let raw = f as *mut RawFile;
        // SAFETY: opened by x_open; after this the handle is gone.
        unsafe {
            drop(Box::from_raw((*raw).state));
            (*raw).state = std::ptr::null_mut();
            (*raw).base.pMethods = std::ptr::null();
        }
        SQLITE_OK
    })
}

unsafe extern "C" fn x_read(
    f: *mut sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: sqlite3_int64,
) -> c_int {
    guard("xRead", SQLITE_IOERR_READ, || {
        // SAFETY: SQLite passes a writable buffer of `amt` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, amt as usize) };
        // SAFETY: file opened by x_open.
        unsafe { state(f) }.read(buf, off as u64)
    })
}

unsafe extern "C" fn x_write(
    f: *mut sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: sqlite3_int64,
) -> c_int {
    // SAFETY: file opened by x_open.
    unsafe {
        guard_write("xWrite", f, SQLITE_IOERR_WRITE, |file| {
            // SAFETY: SQLite passes a readable buffer of `amt` bytes.
            let data = std::slice::from_raw_parts(buf as *const u8, amt as usize);
            file.write(data, off as u64)
        })
    }
}

unsafe extern "C" fn x_truncate(f: *mut sqlite3_file, size: sqlite3_int64) -> c_int {
    // SAFETY: file opened by x_open.
    unsafe {
        guard_write("xTruncate", f, SQLITE_IOERR_TRUNCATE, |file| {
            file.truncate(size as u64)
        })
    }
}

unsafe extern "C" fn x_sync(f: *mut sqlite3_file, _flags: c_int) -> c_int {
    // SAFETY: file opened by x_open.
    unsafe { guard_write("xSync", f, SQLITE_IOERR_FSYNC, |file| file.sync()) }
}

unsafe extern "C" fn x_file_size(f: *mut sqlite3_file, out: *mut sqlite3_int64) -> c_int {
    guard("xFileSize", SQLITE_IOERR, || {
        // SAFETY: file opened by x_open; `out` is writable.
        unsafe { *out = state(f).size() as sqlite3_int64 };
        SQLITE_OK
    })
}

unsafe extern "C" fn x_lock(f: *mut sqlite3_file, level: c_int) -> c_int {
    // SAFETY: file opened by x_open.
    guard("xLock", SQLITE_IOERR, || unsafe { state(f) }.lock(level))
}

unsafe extern "C" fn x_unlock(f: *mut sqlite3_file, level: c_int) -> c_int {
    guard("xUnlock", SQLITE_IOERR, || {
        // SAFETY: file opened by x_open.
        unsafe { state(f) }.unlock(level)
    })
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut sqlite3_file, out: *mut c_int) -> c_int {
    guard("xCheckReservedLock", SQLITE_IOERR, || {
        // SAFETY: file opened by x_open; `out` is writable.
        unsafe { *out = c_int::from(state(f).check_reserved()) };
        SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(f: *mut sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: file opened by x_open (COMMIT_PHASETWO seals: a write path).
    // SAFETY: `arg` is what SQLite passed with `op`.
    unsafe {
        guard_write("xFileControl", f, SQLITE_IOERR, |file| {
            file_control(file, op, arg)
        })
    }
}

/// # Safety
/// `arg` must be what SQLite passes with `op` (see sqlite3.h).
unsafe fn file_control(file: &mut BopFile, op: c_int, arg: *mut c_void) -> c_int {
    match op {
        SQLITE_FCNTL_VFSNAME => {
            // SAFETY: for VFSNAME, `arg` is a `char **` SQLite frees.
            unsafe { *(arg as *mut *mut c_char) = sqlite_string(VFS_NAME) };
            SQLITE_OK
        }
        SQLITE_FCNTL_COMMIT_PHASETWO => match file {
            // Sent after every commit, in every locking mode (with
            // locking_mode=EXCLUSIVE SQLite never releases the shm write
            // lock, so this is where the commit is sealed).
            BopFile::Main(main) => main.commit_phase_two(),
            BopFile::Wal(_) | BopFile::Journal(_) => SQLITE_NOTFOUND,
        },
        SQLITE_FCNTL_PRAGMA => {
            let BopFile::Main(main) = file else {
                return SQLITE_NOTFOUND;
            };
            let args = arg as *mut *mut c_char;
            // SAFETY: for PRAGMA, `arg` is `char *[3]`: out, name, value.
            let (name, value) = unsafe { (cstr(*args.add(1)), cstr(*args.add(2))) };
            let Some(name) = name else {
                return SQLITE_NOTFOUND;
            };
            match main.pragma(name, value) {
                PragmaOutcome::NotFound => SQLITE_NOTFOUND,
                PragmaOutcome::Answer(text) => {
                    if let Some(t) = text {
                        // SAFETY: slot 0 receives a string SQLite frees.
                        unsafe { *args = sqlite_string(&t) };
                    }
                    SQLITE_OK
                }
                PragmaOutcome::Refuse(msg) => {
                    report(SQLITE_ERROR, &msg);
                    // SAFETY: slot 0 receives the error message SQLite frees.
                    unsafe { *args = sqlite_string(&msg) };
                    SQLITE_ERROR
                }
            }
        }
        _ => SQLITE_NOTFOUND,
    }
}

unsafe extern "C" fn x_sector_size(_f: *mut sqlite3_file) -> c_int {
    guard("xSectorSize", 4096, || 4096)
}

unsafe extern "C" fn x_device_characteristics(f: *mut sqlite3_file) -> c_int {
    guard("xDeviceCharacteristics", 0, || {
        // SAFETY: file opened by x_open.
        unsafe { state(f) }.device_characteristics()
    })
}

unsafe extern "C" fn x_shm_map(
    f: *mut sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    guard("xShmMap", SQLITE_IOERR_SHMMAP, || {
        // SAFETY: file opened by x_open.
        let BopFile::Main(main) = (unsafe { state(f) }) else {
            return SQLITE_IOERR_SHMMAP;
        };
        match main.db.shm.map(region as usize, size as usize, extend != 0) {
            Ok(p) => {
                // SAFETY: `out` is writable.
                unsafe { *out = p };
                SQLITE_OK
            }
            Err(rc) => rc,
        }
    })
}

unsafe extern "C" fn x_shm_lock(
    f: *mut sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: file opened by x_open. Releasing the write lock seals the
    // transaction: a write path.
    unsafe {
        guard_write("xShmLock", f, SQLITE_IOERR, |file| match file {
            BopFile::Main(main) => main.shm_lock(offset as usize, n as usize, flags),
            BopFile::Wal(_) | BopFile::Journal(_) => SQLITE_IOERR,
        })
    }
}

unsafe extern "C" fn x_shm_barrier(_f: *mut sqlite3_file) {
    guard("xShmBarrier", (), || {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst)
    })
}

unsafe extern "C" fn x_shm_unmap(f: *mut sqlite3_file, _delete: c_int) -> c_int {
    guard("xShmUnmap", SQLITE_IOERR, || {
        // SAFETY: file opened by x_open.
        if let BopFile::Main(main) = unsafe { state(f) } {
            // Regions stay mapped while any connection to the database is
            // open; they are freed with the last handle.
            main.db.shm.release_all(main.id, &mut main.shm);
        }
        SQLITE_OK
    })
}

unsafe extern "C" fn x_delete(
    _vfs: *mut sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    guard("xDelete", SQLITE_IOERR_DELETE, || {
        // SAFETY: NUL-terminated name from SQLite.
        let Some(path) = (unsafe { cstr(name) }) else {
            return SQLITE_IOERR_DELETE;
        };
        match vfs::classify(path) {
            NameKind::Wal(base) => match vfs::find_open(&base) {
                Some(db) => db
                    .store
                    .wal_image_delete()
                    .map_or_else(|e| to_code(&e, Op::Delete), |_| SQLITE_OK),
                None => SQLITE_OK,
            },
            NameKind::Journal(_) => SQLITE_OK,
            NameKind::Store => {
                report(
                    SQLITE_IOERR_DELETE,
                    &format!("bop: refusing to delete store {path}"),
                );
                SQLITE_IOERR_DELETE
            }
            NameKind::Other => {
                let (d, delete) = default_method("xDelete", |v| v.xDelete);
                // SAFETY: default VFS with SQLite's own arguments.
                unsafe { delete(d, name, sync_dir) }
            }
        }
    })
}

unsafe extern "C" fn x_access(
    _vfs: *mut sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    guard("xAccess", SQLITE_IOERR, || {
        // SAFETY: NUL-terminated name from SQLite.
        let Some(path) = (unsafe { cstr(name) }) else {
            return SQLITE_IOERR;
        };
        let answer = match vfs::classify(path) {
            NameKind::Wal(base) => {
                vfs::find_open(&base).is_some_and(|db| db.store.wal_image_exists())
            }
            NameKind::Journal(_) => false,
            NameKind::Store => true,
            NameKind::Other => {
                let (d, access) = default_method("xAccess", |v| v.xAccess);
                // SAFETY: default VFS with SQLite's own arguments.
                return unsafe { access(d, name, flags, out) };
            }
        };
        // SAFETY: `out` is writable.
        unsafe { *out = c_int::from(answer) };
        SQLITE_OK
    })
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    guard("xFullPathname", SQLITE_CANTOPEN_FULLPATH, || {
        // SAFETY: NUL-terminated name from SQLite.
        let Some(path) = (unsafe { cstr(name) }) else {
            return SQLITE_CANTOPEN_FULLPATH;
        };
        let full = match vfs::full_pathname(path) {
            Ok(p) => p,
            Err(_) => return SQLITE_CANTOPEN_FULLPATH,
        };
        let bytes = full.as_os_str().as_encoded_bytes();
        if bytes.len() + 1 > n_out as usize {
            return SQLITE_CANTOPEN_FULLPATH;
        }
        // SAFETY: `out` has `n_out` bytes, checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out as *mut u8, bytes.len());
            *out.add(bytes.len()) = 0;
        }
        SQLITE_OK
    })
}

// The remaining VFS methods are the default VFS's.

thread_local! {
    /// Set by `bop_vfs::testing::panic_in_next_pass_through`.
    static PANIC_IN_NEXT_PASS_THROUGH: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn panic_in_next_pass_through() {
    PANIC_IN_NEXT_PASS_THROUGH.with(|p| p.set(true));
}

/// The default VFS and its method `name` (read by `pick`), for a method bop
/// passes through. Panics, inside the caller's guard, if the default VFS
/// lacks the method (or a test asked for a panic).
fn default_method<F>(
    name: &str,
    pick: impl FnOnce(&sqlite3_vfs) -> Option<F>,
) -> (*mut sqlite3_vfs, F) {
    if PANIC_IN_NEXT_PASS_THROUGH.with(|p| p.replace(false)) {
        panic!("bop: test panic in the pass-through {name}");
    }
    let d = globals().default_vfs;
    // SAFETY: the default VFS is a valid, process-lifetime object.
    let f = pick(unsafe { &*d }).unwrap_or_else(|| panic!("bop: the default VFS has no {name}"));
    (d, f)
}

unsafe extern "C" fn x_dl_open(_vfs: *mut sqlite3_vfs, name: *const c_char) -> *mut c_void {
    guard("xDlOpen", null_mut(), || {
        let (d, f) = default_method("xDlOpen", |v| v.xDlOpen);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, name) }
    })
}

unsafe extern "C" fn x_dl_error(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) {
    guard("xDlError", (), || {
        let (d, f) = default_method("xDlError", |v| v.xDlError);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, n, out) }
    })
}

unsafe extern "C" fn x_dl_sym(
    _vfs: *mut sqlite3_vfs,
    h: *mut c_void,
    sym: *const c_char,
) -> Option<unsafe extern "C" fn()> {
    guard("xDlSym", None, || {
        let (d, f) = default_method("xDlSym", |v| v.xDlSym);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, h, sym) }
    })
}

unsafe extern "C" fn x_dl_close(_vfs: *mut sqlite3_vfs, h: *mut c_void) {
    guard("xDlClose", (), || {
        let (d, f) = default_method("xDlClose", |v| v.xDlClose);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, h) }
    })
}

unsafe extern "C" fn x_randomness(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // On a panic: no bytes of randomness.
    guard("xRandomness", 0, || {
        let (d, f) = default_method("xRandomness", |v| v.xRandomness);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, n, out) }
    })
}

unsafe extern "C" fn x_sleep(_vfs: *mut sqlite3_vfs, micros: c_int) -> c_int {
    // On a panic: slept 0 microseconds.
    guard("xSleep", 0, || {
        let (d, f) = default_method("xSleep", |v| v.xSleep);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, micros) }
    })
}

unsafe extern "C" fn x_current_time(_vfs: *mut sqlite3_vfs, out: *mut f64) -> c_int {
    guard("xCurrentTime", SQLITE_ERROR, || {
        let (d, f) = default_method("xCurrentTime", |v| v.xCurrentTime);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, out) }
    })
}

unsafe extern "C" fn x_get_last_error(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    guard("xGetLastError", SQLITE_ERROR, || {
        let (d, f) = default_method("xGetLastError", |v| v.xGetLastError);
        // SAFETY: default VFS with SQLite's own arguments.
        unsafe { f(d, n, out) }
    })
}

unsafe extern "C" fn x_current_time_int64(
    _vfs: *mut sqlite3_vfs,
    out: *mut sqlite3_int64,
) -> c_int {
    guard("xCurrentTimeInt64", SQLITE_ERROR, || {
        // Version >= 2 VFSes (the unix VFS is version 3) have it.
        let (d, int64) = default_method("xCurrentTimeInt64", |v| Some(v.xCurrentTimeInt64));
        if let Some(f) = int64 {
            // SAFETY: default VFS with SQLite's own arguments.
            return unsafe { f(d, out) };
        }
        let (d, f) = default_method("xCurrentTime", |v| v.xCurrentTime);
        let mut days = 0f64;
        // SAFETY: default VFS; `days` is a valid out pointer.
        let rc = unsafe { f(d, &mut days) };
        // SAFETY: `out` is SQLite's writable out pointer.
        unsafe { *out = (days * 86_400_000.0) as sqlite3_int64 };
        rc
    })
}
