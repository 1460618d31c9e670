//! The FFI shim: every `extern "C"` function SQLite calls. Each one checks
//! its pointers, catches panics (nothing unwinds into C) and calls safe code
//! in `vfs.rs` / `file.rs`. All of bop-vfs's `unsafe` is in this file.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::errors::{report, to_code, Op};
use crate::file::{BopFile, MainFile, PragmaOutcome, WalFile};
use crate::sys::*;
use crate::uri::Params;
use crate::vfs::{self, NameKind};
use crate::{RegisterError, SqliteApi};

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

pub fn api() -> Option<&'static SqliteApi> {
    GLOBALS.get().map(|g| &g.api)
}

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

use bop_storage::error::panic_message;

/// Runs `f`, turning a panic into `on_panic` (after reporting it).
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            report(
                SQLITE_INTERNAL,
                &format!("bop: internal error (panic): {msg}"),
            );
            on_panic
        }
    }
}

/// Like [`guard`] for a method that may change the file's store: a panic
/// there also puts the store in the failed state (it refuses writes until
/// reopened, when recovery starts from what is durable), because a write
/// path interrupted half-way must not be continued.
///
/// # Safety
/// `f` must be a `RawFile` opened by `x_open` with a live state.
unsafe fn guard_write(
    f: *mut sqlite3_file,
    on_panic: c_int,
    body: impl FnOnce(&mut BopFile) -> c_int,
) -> c_int {
    guard(on_panic, || {
        // SAFETY: per the contract.
        let file = unsafe { state(f) };
        match catch_unwind(AssertUnwindSafe(|| body(&mut *file))) {
            Ok(v) => v,
            Err(payload) => {
                let msg = format!(
                    "bop: internal error (panic): {}",
                    panic_message(payload.as_ref())
                );
                file.store().fail(msg.clone());
                report(on_panic, &msg);
                on_panic
            }
        }
    })
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
/// error code. Called only by the checkpointer thread, never from inside a
/// VFS method.
pub(crate) fn passive_checkpoint(uri: &std::ffi::CStr) -> Result<(i32, i32), c_int> {
    let Some(api) = api().and_then(|a| a.checkpoint) else {
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
    guard(SQLITE_CANTOPEN, || {
        let g = globals();
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
                        report(
                            SQLITE_CANTOPEN,
                            &format!(
                                "bop: {} uses WAL only; a rollback journal cannot be opened",
                                base.display()
                            ),
                        );
                        return SQLITE_CANTOPEN;
                    }
                }
            }
            // Temporary and other files: the default VFS opens them in place.
            // SAFETY: `szOsFile` covers the default VFS's file size; the
            // arguments are SQLite's own.
            return unsafe {
                ((*g.default_vfs).xOpen.expect("xOpen"))(
                    g.default_vfs,
                    name,
                    file,
                    flags,
                    out_flags,
                )
            };
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
                    db.store.wal_image_mark_open();
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
    })
}

unsafe extern "C" fn x_close(f: *mut sqlite3_file) -> c_int {
    guard(SQLITE_IOERR, || {
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
    guard(SQLITE_IOERR_READ, || {
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
    // SAFETY: SQLite passes a readable buffer of `amt` bytes.
    let data = unsafe { std::slice::from_raw_parts(buf as *const u8, amt as usize) };
    // SAFETY: file opened by x_open.
    unsafe { guard_write(f, SQLITE_IOERR_WRITE, |file| file.write(data, off as u64)) }
}

unsafe extern "C" fn x_truncate(f: *mut sqlite3_file, size: sqlite3_int64) -> c_int {
    // SAFETY: file opened by x_open.
    unsafe { guard_write(f, SQLITE_IOERR_TRUNCATE, |file| file.truncate(size as u64)) }
}

unsafe extern "C" fn x_sync(f: *mut sqlite3_file, _flags: c_int) -> c_int {
    // SAFETY: file opened by x_open.
    unsafe { guard_write(f, SQLITE_IOERR_FSYNC, |file| file.sync()) }
}

unsafe extern "C" fn x_file_size(f: *mut sqlite3_file, out: *mut sqlite3_int64) -> c_int {
    guard(SQLITE_IOERR, || {
        // SAFETY: file opened by x_open; `out` is writable.
        unsafe { *out = state(f).size() as sqlite3_int64 };
        SQLITE_OK
    })
}

unsafe extern "C" fn x_lock(f: *mut sqlite3_file, level: c_int) -> c_int {
    // SAFETY: file opened by x_open.
    guard(SQLITE_IOERR, || unsafe { state(f) }.lock(level))
}

unsafe extern "C" fn x_unlock(f: *mut sqlite3_file, level: c_int) -> c_int {
    // SAFETY: file opened by x_open.
    guard(SQLITE_IOERR, || unsafe { state(f) }.unlock(level))
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut sqlite3_file, out: *mut c_int) -> c_int {
    guard(SQLITE_IOERR, || {
        // SAFETY: file opened by x_open; `out` is writable.
        unsafe { *out = c_int::from(state(f).check_reserved()) };
        SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(f: *mut sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: file opened by x_open (COMMIT_PHASETWO seals: a write path).
    // SAFETY: `arg` is what SQLite passed with `op`.
    unsafe { guard_write(f, SQLITE_IOERR, |file| file_control(file, op, arg)) }
}

/// # Safety
/// `arg` must be what SQLite passes with `op` (see sqlite3.h).
unsafe fn file_control(file: &mut BopFile, op: c_int, arg: *mut c_void) -> c_int {
    match op {
        SQLITE_FCNTL_VFSNAME => {
            // SAFETY: for VFSNAME, `arg` is a `char **` SQLite frees.
            unsafe { *(arg as *mut *mut c_char) = sqlite_string(crate::VFS_NAME) };
            SQLITE_OK
        }
        SQLITE_FCNTL_COMMIT_PHASETWO => match file {
            // Sent after every commit, in every locking mode (with
            // locking_mode=EXCLUSIVE SQLite never releases the shm write
            // lock, so this is where the commit is sealed).
            BopFile::Main(main) => main.commit_phase_two(),
            BopFile::Wal(_) => SQLITE_NOTFOUND,
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
    4096
}

unsafe extern "C" fn x_device_characteristics(f: *mut sqlite3_file) -> c_int {
    // SAFETY: file opened by x_open.
    guard(0, || unsafe { state(f) }.device_characteristics())
}

unsafe extern "C" fn x_shm_map(
    f: *mut sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    guard(SQLITE_IOERR_SHMMAP, || {
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
        guard_write(f, SQLITE_IOERR, |file| match file {
            BopFile::Main(main) => main.shm_lock(offset as usize, n as usize, flags),
            BopFile::Wal(_) => SQLITE_IOERR,
        })
    }
}

unsafe extern "C" fn x_shm_barrier(_f: *mut sqlite3_file) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

unsafe extern "C" fn x_shm_unmap(f: *mut sqlite3_file, _delete: c_int) -> c_int {
    guard(SQLITE_IOERR, || {
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
    guard(SQLITE_IOERR_DELETE, || {
        let g = globals();
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
            // SAFETY: default VFS with SQLite's own arguments.
            NameKind::Other => unsafe {
                ((*g.default_vfs).xDelete.expect("xDelete"))(g.default_vfs, name, sync_dir)
            },
        }
    })
}

unsafe extern "C" fn x_access(
    _vfs: *mut sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    guard(SQLITE_IOERR, || {
        let g = globals();
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
                // SAFETY: default VFS with SQLite's own arguments.
                return unsafe {
                    ((*g.default_vfs).xAccess.expect("xAccess"))(g.default_vfs, name, flags, out)
                };
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
    guard(SQLITE_CANTOPEN_FULLPATH, || {
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

unsafe extern "C" fn x_dl_open(_vfs: *mut sqlite3_vfs, name: *const c_char) -> *mut c_void {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xDlOpen.expect("xDlOpen"))(g.default_vfs, name) }
}

unsafe extern "C" fn x_dl_error(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xDlError.expect("xDlError"))(g.default_vfs, n, out) }
}

unsafe extern "C" fn x_dl_sym(
    _vfs: *mut sqlite3_vfs,
    h: *mut c_void,
    sym: *const c_char,
) -> Option<unsafe extern "C" fn()> {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xDlSym.expect("xDlSym"))(g.default_vfs, h, sym) }
}

unsafe extern "C" fn x_dl_close(_vfs: *mut sqlite3_vfs, h: *mut c_void) {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xDlClose.expect("xDlClose"))(g.default_vfs, h) }
}

unsafe extern "C" fn x_randomness(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xRandomness.expect("xRandomness"))(g.default_vfs, n, out) }
}

unsafe extern "C" fn x_sleep(_vfs: *mut sqlite3_vfs, micros: c_int) -> c_int {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xSleep.expect("xSleep"))(g.default_vfs, micros) }
}

unsafe extern "C" fn x_current_time(_vfs: *mut sqlite3_vfs, out: *mut f64) -> c_int {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xCurrentTime.expect("xCurrentTime"))(g.default_vfs, out) }
}

unsafe extern "C" fn x_get_last_error(_vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments.
    unsafe { ((*g.default_vfs).xGetLastError.expect("xGetLastError"))(g.default_vfs, n, out) }
}

unsafe extern "C" fn x_current_time_int64(
    _vfs: *mut sqlite3_vfs,
    out: *mut sqlite3_int64,
) -> c_int {
    let g = globals();
    // SAFETY: default VFS with SQLite's own arguments; version >= 2 VFSes
    // (the unix VFS is version 3) provide xCurrentTimeInt64.
    unsafe {
        match (*g.default_vfs).xCurrentTimeInt64 {
            Some(f) => f(g.default_vfs, out),
            None => {
                let mut d = 0f64;
                let rc =
                    ((*g.default_vfs).xCurrentTime.expect("xCurrentTime"))(g.default_vfs, &mut d);
                *out = (d * 86_400_000.0) as sqlite3_int64;
                rc
            }
        }
    }
}
