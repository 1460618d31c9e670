//! The loadable-extension entry points: `sqlite3 .load libbop`,
//! `sqlite3_load_extension(db, "libbop", NULL, &err)`, Python's
//! `Connection.load_extension`.

use std::ffi::{c_char, c_void};

use bop_frontend::sys::{SQLITE_ERROR, SQLITE_OK_LOAD_PERMANENTLY};
use bop_frontend::{catch, clear_last_error, guard, report};

use crate::api_routines::{ApiRoutines, MallocFn};
use crate::errors;

/// The entry point SQLite derives from the file name `libbop.so`.
///
/// Registers the VFS `bop` (not as the default) with the loading SQLite and
/// returns `SQLITE_OK_LOAD_PERMANENTLY`, so the library is never unloaded
/// (the registered VFS must outlive every connection). On failure returns
/// `SQLITE_ERROR` and sets `*pz_err_msg` to a message allocated with the
/// loading SQLite's `sqlite3_malloc`.
///
/// # Safety
/// Called by SQLite: `p_api` is NULL or its `sqlite3_api_routines`;
/// `pz_err_msg` is NULL or points to a writable `char *`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bop_init(
    db: *mut c_void,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { init("sqlite3_bop_init", db, pz_err_msg, p_api) }
}

/// The generic entry point SQLite tries first; the same as
/// [`sqlite3_bop_init`].
///
/// # Safety
/// As for [`sqlite3_bop_init`].
#[no_mangle]
pub unsafe extern "C" fn sqlite3_extension_init(
    db: *mut c_void,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { init("sqlite3_extension_init", db, pz_err_msg, p_api) }
}

/// # Safety
/// As for [`sqlite3_bop_init`].
unsafe fn init(
    what: &str,
    _db: *mut c_void,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> i32 {
    guard(what, SQLITE_ERROR, || {
        // SAFETY: `p_api` is NULL or the loading SQLite's api routines, and
        // that SQLite stays loaded while it runs this extension.
        let Some(routines) = (unsafe { ApiRoutines::new(p_api) }) else {
            // Nothing to allocate a message with: SQLite reports its own.
            report(
                SQLITE_ERROR,
                "bop: extension init called without sqlite3_api_routines",
            );
            return SQLITE_ERROR;
        };
        // A panic's message goes to `*pz_err_msg` too.
        let outcome = catch(what, || {
            let api = routines.sqlite_api()?;
            // SAFETY: every pointer in `api` was read from the api routines
            // of the SQLite loading this extension; returning
            // SQLITE_OK_LOAD_PERMANENTLY keeps that SQLite's use of them
            // valid for the rest of the process.
            unsafe { bop_vfs::register(api, false) }.map_err(|e| e.to_string())
        })
        .and_then(|r| r);
        match outcome {
            Ok(()) => {
                clear_last_error();
                SQLITE_OK_LOAD_PERMANENTLY
            }
            Err(message) => {
                // SAFETY: `pz_err_msg` is NULL or writable (caller's
                // contract); the malloc comes from the same SQLite that will
                // sqlite3_free the message.
                unsafe { write_err_msg(pz_err_msg, routines.malloc(), &message) };
                report(SQLITE_ERROR, &message);
                SQLITE_ERROR
            }
        }
    })
}

/// Stores a copy of `message`, allocated with `malloc`, in `*pz_err_msg`.
/// Does nothing if either is missing or the allocation fails.
///
/// # Safety
/// `pz_err_msg` is NULL or points to a writable `char *`; `malloc` is the
/// `sqlite3_malloc` of the SQLite that frees the message.
unsafe fn write_err_msg(pz_err_msg: *mut *mut c_char, malloc: Option<MallocFn>, message: &str) {
    let (Some(malloc), false) = (malloc, pz_err_msg.is_null()) else {
        return;
    };
    let bytes = errors::c_string_lossy(message.to_owned()).into_bytes_with_nul();
    let Ok(len) = i32::try_from(bytes.len()) else {
        return;
    };
    // SAFETY: sqlite3_malloc takes any positive size and returns NULL or a
    // block of at least `len` bytes.
    let dst = unsafe { malloc(len) }.cast::<u8>();
    if dst.is_null() {
        return;
    }
    // SAFETY: `dst` has room for `len` bytes and cannot overlap `bytes`, a
    // fresh Rust allocation; `pz_err_msg` is non-null and writable.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        *pz_err_msg = dst.cast();
    }
}
