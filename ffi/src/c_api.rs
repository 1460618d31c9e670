//! The C API declared in `include/bop.h`, for programs that link SQLite
//! themselves.

use std::ffi::{c_char, c_int, c_void};

use bop_frontend::sys::{SQLITE_ERROR, SQLITE_INTERNAL, SQLITE_MISUSE, SQLITE_OK};
use bop_frontend::{clear_last_error, guard, report};

use crate::errors;

/// `bop_sqlite_api` in `include/bop.h`: the SQLite functions bop's VFS
/// calls. A NULL member is rejected with `SQLITE_MISUSE`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BopSqliteApi {
    /// `sqlite3_vfs_find`
    pub vfs_find: Option<unsafe extern "C" fn(*const c_char) -> *mut c_void>,
    /// `sqlite3_vfs_register`
    pub vfs_register: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    /// `sqlite3_malloc`
    pub malloc: Option<unsafe extern "C" fn(c_int) -> *mut c_void>,
    /// `sqlite3_free`
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
    /// `sqlite3_uri_parameter`
    pub uri_parameter: Option<unsafe extern "C" fn(*const c_char, *const c_char) -> *const c_char>,
    /// `sqlite3_uri_key`
    pub uri_key: Option<unsafe extern "C" fn(*const c_char, c_int) -> *const c_char>,
    /// `sqlite3_log`
    pub log: Option<unsafe extern "C" fn(c_int, *const c_char, ...)>,
}

impl BopSqliteApi {
    fn to_vfs_api(self) -> Result<bop_vfs::SqliteApi, String> {
        fn need<T>(f: Option<T>, name: &str) -> Result<T, String> {
            f.ok_or_else(|| format!("bop_register_vfs: api->{name} is NULL"))
        }
        Ok(bop_vfs::SqliteApi {
            vfs_find: need(self.vfs_find, "vfs_find")?,
            vfs_register: need(self.vfs_register, "vfs_register")?,
            malloc: need(self.malloc, "malloc")?,
            free: need(self.free, "free")?,
            uri_parameter: need(self.uri_parameter, "uri_parameter")?,
            uri_key: need(self.uri_key, "uri_key")?,
            log: need(self.log, "log")?,
            // The C API's struct has no checkpointer functions (its layout
            // is fixed): the checkpoint policy is off for C programs that
            // register through it; SQLite's own autocheckpoint still runs.
            checkpoint: None,
        })
    }
}

/// Registers the VFS `bop` with the SQLite whose functions `api` holds.
/// Returns `SQLITE_OK`, `SQLITE_MISUSE` (NULL `api` or member), SQLite's
/// code if `sqlite3_vfs_register` fails, `SQLITE_ERROR` for other failures,
/// or `SQLITE_INTERNAL` after an internal panic; on failure
/// `bop_last_error()` says why.
///
/// # Safety
/// `api` is NULL or points to a `bop_sqlite_api` whose members are the
/// functions of one SQLite library that stays loaded for the rest of the
/// process.
#[no_mangle]
pub unsafe extern "C" fn bop_register_vfs(api: *const BopSqliteApi, make_default: c_int) -> c_int {
    guard("bop_register_vfs", SQLITE_INTERNAL, || {
        // SAFETY: forwarded contract.
        match unsafe { register_vfs(api, make_default != 0) } {
            Ok(()) => {
                clear_last_error();
                SQLITE_OK
            }
            Err((code, message)) => {
                report(code, &message);
                code
            }
        }
    })
}

/// The body of [`bop_register_vfs`]: an error is its code and message.
///
/// # Safety
/// As [`bop_register_vfs`].
unsafe fn register_vfs(
    api: *const BopSqliteApi,
    make_default: bool,
) -> Result<(), (c_int, String)> {
    // SAFETY: `api` is NULL or points to a valid bop_sqlite_api (caller's
    // contract); it is copied, not kept.
    let Some(api) = (unsafe { api.as_ref() }).copied() else {
        return Err((SQLITE_MISUSE, "bop_register_vfs: api is NULL".to_owned()));
    };
    let api = api.to_vfs_api().map_err(|m| (SQLITE_MISUSE, m))?;
    // SAFETY: the caller promises these are one SQLite's functions, valid
    // for the rest of the process.
    unsafe { bop_vfs::register(api, make_default) }.map_err(|e| {
        let code = match e {
            bop_vfs::RegisterError::Sqlite(code) if code != SQLITE_OK => code,
            _ => SQLITE_ERROR,
        };
        (code, e.to_string())
    })
}

/// The latest error message recorded by bop on the calling thread (by
/// `bop_register_vfs`, the extension entry points, or the VFS while SQLite
/// used it), or NULL if there is none; a successful `bop_register_vfs` or
/// extension init clears it. The string stays valid until the next call to
/// a `bop_*` function on this thread.
#[no_mangle]
pub extern "C" fn bop_last_error() -> *const c_char {
    guard("bop_last_error", std::ptr::null(), || {
        errors::to_returned_c_string(bop_frontend::last_error())
    })
}

/// bop's version, e.g. `"0.1.0"`: a static string.
#[no_mangle]
pub extern "C" fn bop_version() -> *const c_char {
    guard("bop_version", VERSION.as_ptr(), || VERSION.as_ptr())
}

const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
};
