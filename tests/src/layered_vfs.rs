//! A test VFS layered over bop, as SQLite's test VFSes, crash simulators
//! and encryption or compression shims are: it opens every file through
//! bop, reports a sector size of its own and no
//! `SQLITE_IOCAP_POWERSAFE_OVERWRITE` (so SQLite pads each WAL commit to
//! the sector size: `sqlite3WalFrames` repeats the commit frame up to the
//! next sector boundary, and `walWriteToLog` syncs at that boundary, in
//! the middle of the last padding frame), and changes how writes reach bop
//! ([`Writes`]).
//!
//! What SQLite's own test VFSes do, read in SQLite 3.40.1's sources:
//! `test6.c` (the crash simulator) keeps every write in memory and writes
//! them down unchanged, in order, at the file's next xSync (or close)
//! without passing the sync down; only a simulated crash trashes whole
//! sectors, then exits. `test_devsym.c` passes writes through and reports
//! the configured sector size and device characteristics. Shims that
//! encrypt or compress by sector read and rewrite the whole sectors a
//! write touches: [`Writes::WholeSectors`].

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rusqlite::{ffi, Connection};

/// How writes reach bop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// As SQLite made them (`test_devsym.c`).
    AsIs,
    /// Widened to the whole sectors they touch: the sectors are read from
    /// bop, SQLite's bytes laid over them, and written back (committed
    /// bytes before the write included, unchanged). Not past the end of
    /// the write or of the file.
    WholeSectors,
    /// Kept in memory and written down in order at the file's next xSync
    /// or close; reads see them. xSync is not passed down, and SQLite's
    /// size hint (`SQLITE_FCNTL_SIZE_HINT`) becomes a truncate that grows
    /// the file, held with the writes (`test6.c`: `cfFileControl`).
    UntilSync,
}

/// One registered layered VFS.
pub struct Layered {
    pub name: CString,
    sector_size: c_int,
    writes: Writes,
    base: *mut ffi::sqlite3_vfs,
    /// With [`Writes::WholeSectors`]: the next widened write changes the
    /// first byte it rewrites before SQLite's own (a broken shim).
    pub corrupt_next_rewrite: AtomicBool,
}

// SAFETY: `base` points at bop's registered VFS, which lives for the whole
// process and is only read; the rest is immutable or atomic.
unsafe impl Sync for Layered {}
// SAFETY: as for Sync.
unsafe impl Send for Layered {}

#[repr(C)]
struct LayeredFile {
    base: ffi::sqlite3_file,
    vfs: *const Layered,
    real: *mut ffi::sqlite3_file,
    held: *mut Vec<Held>,
}

/// What [`Writes::UntilSync`] holds until the next sync.
enum Held {
    /// Bytes to write at an offset.
    Write(i64, Vec<u8>),
    /// A truncate that grows the file to this size (a size hint).
    Grow(i64),
}

impl Held {
    /// Where the file ends once this is written down.
    fn end(&self) -> i64 {
        match self {
            Held::Write(off, data) => off + data.len() as i64,
            Held::Grow(size) => *size,
        }
    }
}

/// Where bop's file starts inside ours (8-byte aligned).
const REAL_AT: usize = std::mem::size_of::<LayeredFile>().div_ceil(8) * 8;

/// Registers a VFS named `name` over bop (not the default) and returns it;
/// it lives for the rest of the process.
pub fn register(name: &str, sector_size: c_int, writes: Writes) -> &'static Layered {
    crate::register();
    let bop = CString::new("bop").expect("no NUL");
    // SAFETY: a NUL-terminated name; SQLite returns a registered VFS or null.
    let base = unsafe { ffi::sqlite3_vfs_find(bop.as_ptr()) };
    assert!(!base.is_null(), "the bop VFS is registered");
    let layered: &'static Layered = Box::leak(Box::new(Layered {
        name: CString::new(name).expect("no NUL"),
        sector_size,
        writes,
        base,
        corrupt_next_rewrite: AtomicBool::new(false),
    }));
    // SAFETY: `base` is bop's registered VFS (non-null, checked above).
    let (sz, mx) = unsafe { ((*base).szOsFile, (*base).mxPathname) };
    let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: REAL_AT as c_int + sz,
        mxPathname: mx,
        pNext: ptr::null_mut(),
        zName: layered.name.as_ptr(),
        pAppData: layered as *const Layered as *mut c_void,
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
    }));
    // SAFETY: `vfs` is leaked, so it lives for the process as SQLite needs.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    assert_eq!(rc, ffi::SQLITE_OK, "registering {name}");
    layered
}

/// The layered VFS with `sector_size` and `writes`, registered on first
/// use (named `layered-<sector>-<writes>`).
pub fn vfs(sector_size: c_int, writes: Writes) -> &'static Layered {
    type Registry = HashMap<(c_int, String), &'static Layered>;
    static ALL: Mutex<Option<Registry>> = Mutex::new(None);
    let mut all = ALL.lock().unwrap_or_else(|p| p.into_inner());
    all.get_or_insert_with(HashMap::new)
        .entry((sector_size, format!("{writes:?}")))
        .or_insert_with(|| {
            register(
                &format!("layered-{sector_size}-{writes:?}"),
                sector_size,
                writes,
            )
        })
}

/// Opens the store at `path` through `v`, with `synchronous=FULL` (the
/// commits SQLite pads).
pub fn open(path: &Path, v: &Layered) -> Connection {
    let uri = format!(
        "file:{}?vfs={}",
        path.display(),
        v.name.to_str().expect("ASCII name")
    );
    let c = Connection::open_with_flags(&uri, crate::flags())
        .unwrap_or_else(|e| panic!("opening {uri}: {e} ({:?})", bop_rusqlite::last_error()));
    c.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous=FULL");
    c
}

fn layered(vfs: *mut ffi::sqlite3_vfs) -> &'static Layered {
    // SAFETY: every VFS built by `register` has a leaked `Layered` as pAppData.
    unsafe { &*((*vfs).pAppData as *const Layered) }
}

fn base(vfs: *mut ffi::sqlite3_vfs) -> &'static ffi::sqlite3_vfs {
    // SAFETY: `base` is bop's registered VFS, alive for the process.
    unsafe { &*layered(vfs).base }
}

fn file<'a>(f: *mut ffi::sqlite3_file) -> &'a mut LayeredFile {
    // SAFETY: SQLite hands our methods the file `x_open` initialised.
    unsafe { &mut *(f as *mut LayeredFile) }
}

fn real_methods(f: &LayeredFile) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: `real` was opened by bop, whose methods outlive the file.
    unsafe { &*(*f.real).pMethods }
}

fn held<'a>(f: &LayeredFile) -> &'a mut Vec<Held> {
    // SAFETY: `held` is the Box `x_open` leaked, freed only in `x_close`.
    unsafe { &mut *f.held }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let b = base(vfs);
    // SAFETY: SQLite gives us szOsFile bytes at `f`: REAL_AT for ours, the
    // rest for bop's file.
    let real = unsafe { (f as *mut u8).add(REAL_AT) as *mut ffi::sqlite3_file };
    let lf = file(f);
    lf.base.pMethods = ptr::null();
    let Some(open) = b.xOpen else {
        return ffi::SQLITE_ERROR;
    };
    // SAFETY: bop's xOpen with its own VFS pointer and the memory it sized.
    let rc = unsafe { open(layered(vfs).base, name, real, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    lf.vfs = layered(vfs);
    lf.real = real;
    lf.held = Box::into_raw(Box::default());
    lf.base.pMethods = &IO_METHODS;
    ffi::SQLITE_OK
}

/// Writes down what [`Writes::UntilSync`] holds, in order.
fn write_down(f: &LayeredFile) -> c_int {
    let m = real_methods(f);
    for h in held(f).drain(..) {
        let rc = match h {
            // SAFETY: bop's xWrite on its own open file, with a valid buffer.
            Held::Write(off, data) => unsafe {
                m.xWrite.expect("xWrite")(f.real, data.as_ptr().cast(), data.len() as c_int, off)
            },
            // SAFETY: bop's xTruncate on its own open file.
            Held::Grow(size) => unsafe { m.xTruncate.expect("xTruncate")(f.real, size) },
        };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    ffi::SQLITE_OK
}

fn real_size(f: &LayeredFile) -> Result<i64, c_int> {
    let mut size = 0;
    // SAFETY: bop's xFileSize on its own open file.
    let rc = unsafe { real_methods(f).xFileSize.expect("xFileSize")(f.real, &mut size) };
    if rc == ffi::SQLITE_OK {
        Ok(size)
    } else {
        Err(rc)
    }
}

fn real_read(f: &LayeredFile, buf: &mut [u8], off: i64) -> c_int {
    // SAFETY: bop's xRead on its own open file into `buf`.
    unsafe {
        real_methods(f).xRead.expect("xRead")(
            f.real,
            buf.as_mut_ptr().cast(),
            buf.len() as c_int,
            off,
        )
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    let lf = file(f);
    let rc = write_down(lf);
    // SAFETY: bop's xClose on its own open file, called once.
    let rc2 = unsafe { real_methods(lf).xClose.expect("xClose")(lf.real) };
    // SAFETY: `held` is the Box `x_open` leaked; nothing uses it after this.
    drop(unsafe { Box::from_raw(lf.held) });
    lf.base.pMethods = ptr::null();
    if rc != ffi::SQLITE_OK {
        rc
    } else {
        rc2
    }
}

unsafe extern "C" fn x_read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let lf = file(f);
    // SAFETY: SQLite hands a buffer of `amt` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, amt as usize) };
    let rc = real_read(lf, out, off);
    if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_IOERR_SHORT_READ {
        return rc;
    }
    if held(lf).is_empty() {
        return rc;
    }
    let end = off + i64::from(amt);
    for h in held(lf).iter() {
        let Held::Write(w, data) = h else { continue };
        let (from, to) = (off.max(*w), end.min(*w + data.len() as i64));
        if from < to {
            out[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&data[(from - w) as usize..(to - w) as usize]);
        }
    }
    let mut size = 0;
    // SAFETY: our own xFileSize on this file.
    unsafe { x_file_size(f, &mut size) };
    if end > size {
        ffi::SQLITE_IOERR_SHORT_READ
    } else {
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let lf = file(f);
    // SAFETY: SQLite hands `amt` readable bytes.
    let data = unsafe { std::slice::from_raw_parts(buf as *const u8, amt as usize) };
    // SAFETY: `vfs` is a leaked `Layered`.
    let vfs = unsafe { &*lf.vfs };
    match vfs.writes {
        Writes::UntilSync => {
            held(lf).push(Held::Write(off, data.to_vec()));
            ffi::SQLITE_OK
        }
        Writes::AsIs => {
            // SAFETY: bop's xWrite on its own open file with SQLite's buffer.
            unsafe { real_methods(lf).xWrite.expect("xWrite")(lf.real, buf, amt, off) }
        }
        Writes::WholeSectors => write_whole_sectors(lf, vfs, data, off),
    }
}

fn write_whole_sectors(lf: &LayeredFile, vfs: &Layered, data: &[u8], off: i64) -> c_int {
    let ss = i64::from(vfs.sector_size);
    let size = match real_size(lf) {
        Ok(s) => s,
        Err(rc) => return rc,
    };
    let end = off + data.len() as i64;
    let start = off / ss * ss;
    let region_end = ((end + ss - 1) / ss * ss).min(size.max(end));
    let mut region = vec![0u8; (region_end - start) as usize];
    let rc = real_read(lf, &mut region, start);
    if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_IOERR_SHORT_READ {
        return rc;
    }
    let at = (off - start) as usize;
    region[at..at + data.len()].copy_from_slice(data);
    if at > 0 && vfs.corrupt_next_rewrite.swap(false, Ordering::SeqCst) {
        region[0] ^= 0x5a;
    }
    // SAFETY: bop's xWrite on its own open file with our buffer.
    unsafe {
        real_methods(lf).xWrite.expect("xWrite")(
            lf.real,
            region.as_ptr().cast(),
            region.len() as c_int,
            start,
        )
    }
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let lf = file(f);
    let rc = write_down(lf);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // SAFETY: bop's xTruncate on its own open file.
    unsafe { real_methods(lf).xTruncate.expect("xTruncate")(lf.real, size) }
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let lf = file(f);
    // SAFETY: `vfs` is a leaked `Layered`.
    if unsafe { &*lf.vfs }.writes == Writes::UntilSync {
        return write_down(lf);
    }
    // SAFETY: bop's xSync on its own open file.
    unsafe { real_methods(lf).xSync.expect("xSync")(lf.real, flags) }
}

unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, out: *mut i64) -> c_int {
    let lf = file(f);
    let size = match real_size(lf) {
        Ok(s) => s,
        Err(rc) => return rc,
    };
    let held_end = held(lf).iter().map(Held::end).max().unwrap_or(0);
    // SAFETY: SQLite hands a valid out pointer.
    unsafe { *out = size.max(held_end) };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xLock.expect("xLock")(lf.real, l) }
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xUnlock.expect("xUnlock")(lf.real, l) }
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe {
        real_methods(lf)
            .xCheckReservedLock
            .expect("xCheckReservedLock")(lf.real, out)
    }
}

unsafe extern "C" fn x_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let lf = file(f);
    // SAFETY: `vfs` is a leaked `Layered`.
    if op == ffi::SQLITE_FCNTL_SIZE_HINT && unsafe { &*lf.vfs }.writes == Writes::UntilSync {
        // SAFETY: SQLite passes an i64 with SQLITE_FCNTL_SIZE_HINT.
        let want = unsafe { *(arg as *const i64) };
        let mut size = 0;
        // SAFETY: our own xFileSize on this file.
        let rc = unsafe { x_file_size(f, &mut size) };
        if rc == ffi::SQLITE_OK && want > size {
            held(lf).push(Held::Grow(want));
        }
        return rc;
    }
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xFileControl.expect("xFileControl")(lf.real, op, arg) }
}

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `vfs` is a leaked `Layered`.
    unsafe { &*file(f).vfs }.sector_size
}

unsafe extern "C" fn x_device_characteristics(_f: *mut ffi::sqlite3_file) -> c_int {
    // Not SQLITE_IOCAP_POWERSAFE_OVERWRITE: SQLite pads WAL commits.
    0
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xShmMap.expect("xShmMap")(lf.real, region, size, extend, out) }
}

unsafe extern "C" fn x_shm_lock(
    f: *mut ffi::sqlite3_file,
    off: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xShmLock.expect("xShmLock")(lf.real, off, n, flags) }
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xShmBarrier.expect("xShmBarrier")(lf.real) }
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let lf = file(f);
    // SAFETY: bop's method on its own open file.
    unsafe { real_methods(lf).xShmUnmap.expect("xShmUnmap")(lf.real, delete) }
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
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

// The VFS-level methods: bop's, called with bop's VFS pointer.

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync: c_int,
) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xDelete.expect("xDelete")(layered(vfs).base, name, sync) }
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xAccess.expect("xAccess")(layered(vfs).base, name, flags, out) }
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xFullPathname.expect("xFullPathname")(layered(vfs).base, name, n, out) }
}

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xDlOpen.expect("xDlOpen")(layered(vfs).base, name) }
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xDlError.expect("xDlError")(layered(vfs).base, n, out) }
}

unsafe extern "C" fn x_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    h: *mut c_void,
    sym: *const c_char,
) -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)> {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xDlSym.expect("xDlSym")(layered(vfs).base, h, sym) }
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, h: *mut c_void) {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xDlClose.expect("xDlClose")(layered(vfs).base, h) }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xRandomness.expect("xRandomness")(layered(vfs).base, n, out) }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, us: c_int) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xSleep.expect("xSleep")(layered(vfs).base, us) }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xCurrentTime.expect("xCurrentTime")(layered(vfs).base, out) }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xGetLastError.expect("xGetLastError")(layered(vfs).base, n, out) }
}

unsafe extern "C" fn x_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    // SAFETY: bop's method with its own VFS pointer and SQLite's arguments.
    unsafe { base(vfs).xCurrentTimeInt64.expect("xCurrentTimeInt64")(layered(vfs).base, out) }
}
