//! Reading SQLite's own functions out of the `sqlite3_api_routines` table a
//! loading SQLite hands to an extension's init function.
//!
//! The table is an array of function pointers in a fixed, append-only order
//! (see [`crate::api_slots`]). Reading it directly, instead of through a
//! bindings crate, keeps `libbop.so` free of undefined `sqlite3_*` symbols
//! and working with any SQLite >= 3.31.

use std::ffi::{c_char, c_int, c_void};

use crate::api_slots;

/// `sqlite3_malloc`'s type.
pub(crate) type MallocFn = unsafe extern "C" fn(c_int) -> *mut c_void;

/// A non-null pointer to a `sqlite3_api_routines` table.
pub(crate) struct ApiRoutines {
    slots: *const *const c_void,
}

/// Reads slot `$index` of `$routines` as `Option<$ty>` (a null slot is `None`).
macro_rules! slot {
    ($routines:expr, $index:expr, $ty:ty) => {{
        let routines: &ApiRoutines = $routines;
        // SAFETY: `ApiRoutines::new`'s contract: `slots` points to a live
        // sqlite3_api_routines table, which holds `$index` (callers check the
        // SQLite version first for slots newer than 3.6). Each slot is a
        // function pointer or NULL, and `Option<unsafe extern "C" fn ..>` has
        // the layout of a nullable pointer.
        unsafe { routines.slots.add($index).cast::<Option<$ty>>().read() }
    }};
}

impl ApiRoutines {
    /// Wraps `p_api`, or returns `None` if it is NULL.
    ///
    /// # Safety
    /// A non-null `p_api` must point to the `sqlite3_api_routines` table of a
    /// SQLite library that stays loaded while the returned value (and any
    /// function read from it) is used.
    pub(crate) unsafe fn new(p_api: *const c_void) -> Option<Self> {
        (!p_api.is_null()).then(|| Self {
            slots: p_api.cast(),
        })
    }

    /// `sqlite3_malloc`, if the table has it (every SQLite 3 release does).
    pub(crate) fn malloc(&self) -> Option<MallocFn> {
        slot!(self, api_slots::MALLOC, MallocFn)
    }

    /// `sqlite3_libversion_number()` of the loading SQLite.
    pub(crate) fn libversion_number(&self) -> Result<c_int, String> {
        let f = slot!(
            self,
            api_slots::LIBVERSION_NUMBER,
            unsafe extern "C" fn() -> c_int
        )
        .ok_or_else(|| null_slot("libversion_number"))?;
        // SAFETY: a SQLite function taking no arguments; SQLite is loaded
        // (contract of `new`).
        Ok(unsafe { f() })
    }

    /// The functions bop-vfs needs, checked for the minimum SQLite version
    /// and for NULL slots.
    pub(crate) fn sqlite_api(&self) -> Result<bop_vfs::SqliteApi, String> {
        let version = self.libversion_number()?;
        if version < api_slots::MIN_SQLITE_VERSION_NUMBER {
            return Err(format!(
                "bop: SQLite {} is too old; bop needs SQLite {} or newer",
                version_string(version),
                version_string(api_slots::MIN_SQLITE_VERSION_NUMBER),
            ));
        }
        Ok(bop_vfs::SqliteApi {
            vfs_find: slot!(
                self,
                api_slots::VFS_FIND,
                unsafe extern "C" fn(*const c_char) -> *mut c_void
            )
            .ok_or_else(|| null_slot("vfs_find"))?,
            vfs_register: slot!(
                self,
                api_slots::VFS_REGISTER,
                unsafe extern "C" fn(*mut c_void, c_int) -> c_int
            )
            .ok_or_else(|| null_slot("vfs_register"))?,
            malloc: self.malloc().ok_or_else(|| null_slot("malloc"))?,
            free: slot!(self, api_slots::FREE, unsafe extern "C" fn(*mut c_void))
                .ok_or_else(|| null_slot("free"))?,
            uri_parameter: slot!(
                self,
                api_slots::URI_PARAMETER,
                unsafe extern "C" fn(*const c_char, *const c_char) -> *const c_char
            )
            .ok_or_else(|| null_slot("uri_parameter"))?,
            uri_key: slot!(
                self,
                api_slots::URI_KEY,
                unsafe extern "C" fn(*const c_char, c_int) -> *const c_char
            )
            .ok_or_else(|| null_slot("uri_key"))?,
            log: slot!(
                self,
                api_slots::LOG,
                unsafe extern "C" fn(c_int, *const c_char, ...)
            )
            .ok_or_else(|| null_slot("log"))?,
            checkpoint: self.checkpoint_api(),
        })
    }

    /// The checkpointer's functions, if SQLite has them all.
    fn checkpoint_api(&self) -> Option<bop_vfs::CheckpointApi> {
        Some(bop_vfs::CheckpointApi {
            open_v2: slot!(
                self,
                api_slots::OPEN_V2,
                unsafe extern "C" fn(
                    *const c_char,
                    *mut *mut c_void,
                    c_int,
                    *const c_char,
                ) -> c_int
            )?,
            close: slot!(
                self,
                api_slots::CLOSE,
                unsafe extern "C" fn(*mut c_void) -> c_int
            )?,
            exec: slot!(
                self,
                api_slots::EXEC,
                unsafe extern "C" fn(
                    *mut c_void,
                    *const c_char,
                    *mut c_void,
                    *mut c_void,
                    *mut *mut c_char,
                ) -> c_int
            )?,
            wal_checkpoint_v2: slot!(
                self,
                api_slots::WAL_CHECKPOINT_V2,
                unsafe extern "C" fn(
                    *mut c_void,
                    *const c_char,
                    c_int,
                    *mut c_int,
                    *mut c_int,
                ) -> c_int
            )?,
        })
    }
}

fn null_slot(field: &str) -> String {
    format!("bop: sqlite3_api_routines.{field} is NULL in the loading SQLite")
}

/// `3031000` -> `"3.31.0"`.
pub(crate) fn version_string(n: c_int) -> String {
    format!("{}.{}.{}", n / 1_000_000, n / 1000 % 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::version_string;

    #[test]
    fn formats_version_numbers() {
        assert_eq!(version_string(3_040_001), "3.40.1");
        assert_eq!(version_string(3_031_000), "3.31.0");
    }
}
