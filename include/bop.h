/*
 * bop.h - C API of libbop.so, the bop storage engine for SQLite.
 *
 * libbop.so provides a SQLite VFS named "bop". Databases opened through it
 * (e.g. "file:/path/app.db?vfs=bop" with SQLITE_OPEN_URI) run in WAL mode
 * over bop's storage engine.
 *
 * There are two ways to use it:
 *
 * 1. As a loadable extension, with no header at all: the sqlite3 shell's
 *    `.load /path/libbop`, sqlite3_load_extension(db, "/path/libbop", 0,
 *    &err), or Python's Connection.load_extension("/path/libbop"). The
 *    entry points are sqlite3_bop_init and sqlite3_extension_init. They
 *    register the VFS (not as the default) and return
 *    SQLITE_OK_LOAD_PERMANENTLY, so the library stays loaded for the life
 *    of the process. Load it on one connection, then open the databases
 *    that use "vfs=bop" (a database opened before the load cannot use it).
 *    Needs SQLite >= 3.31.0.
 *
 * 2. From a C program that links SQLite itself: include <sqlite3.h>, then
 *    this header, call bop_register(0) once at startup, and link with
 *    -lbop -lsqlite3:
 *
 *        #include <sqlite3.h>
 *        #include <bop.h>
 *
 *        if (bop_register(0) != SQLITE_OK) {
 *            fprintf(stderr, "bop: %s\n", bop_last_error());
 *        }
 *        sqlite3_open_v2("file:app.db?vfs=bop", &db,
 *            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
 *            NULL);
 *
 * All functions are thread-safe. No function of this library lets a Rust
 * panic unwind into C: an internal failure becomes an SQLite error code.
 */
#ifndef BOP_H
#define BOP_H

#ifdef __cplusplus
extern "C" {
#endif

struct sqlite3_vfs;

/*
 * The SQLite functions bop's VFS calls, all from the one SQLite library
 * that will open databases through the VFS. bop_register() fills it from
 * the program's own SQLite; fill it yourself only to register with another
 * copy of SQLite (one loaded with dlopen, for instance). Every member must
 * be non-NULL and stay valid for the rest of the process.
 */
typedef struct bop_sqlite_api {
    /* sqlite3_vfs_find */
    struct sqlite3_vfs *(*vfs_find)(const char *zVfsName);
    /* sqlite3_vfs_register */
    int (*vfs_register)(struct sqlite3_vfs *pVfs, int makeDflt);
    /* sqlite3_malloc: strings bop hands to SQLite are allocated with it */
    void *(*malloc)(int nByte);
    /* sqlite3_free */
    void (*free)(void *p);
    /* sqlite3_uri_parameter */
    const char *(*uri_parameter)(const char *zFilename, const char *zParam);
    /* sqlite3_uri_key (SQLite >= 3.31.0) */
    const char *(*uri_key)(const char *zFilename, int N);
    /* sqlite3_log: where bop reports the details behind an error code */
    void (*log)(int iErrCode, const char *zFormat, ...);
} bop_sqlite_api;

/*
 * Registers the VFS "bop" with the SQLite whose functions `api` holds, as
 * the default VFS if `make_default` is non-zero. The struct is copied; it
 * need not outlive the call (the functions it points to must).
 *
 * The VFS is registered once per process; later calls return SQLITE_OK and
 * only make it the default if `make_default` is non-zero.
 *
 * Returns SQLITE_OK (0) on success; SQLITE_MISUSE (21) if `api` or one of
 * its members is NULL; the error code of sqlite3_vfs_register if that
 * fails; SQLITE_ERROR (1) for other failures; SQLITE_INTERNAL (2) after an
 * internal error (a caught panic). On failure bop_last_error() says why.
 */
int bop_register_vfs(const bop_sqlite_api *api, int make_default);

/*
 * The latest error message bop recorded on the calling thread: by
 * bop_register_vfs, by the extension entry points, or by the VFS while
 * SQLite used it (SQLite's own message, from sqlite3_errmsg(), is often
 * less precise). NULL if there is none; a successful bop_register_vfs or
 * extension init clears it.
 *
 * The string belongs to bop; it stays valid until the next call to a bop_*
 * function on the same thread. Copy it to keep it.
 */
const char *bop_last_error(void);

/*
 * bop's version, such as "0.1.0". A static string; never NULL.
 */
const char *bop_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

/*
 * bop_register: registers the VFS "bop" with the SQLite this program links
 * (sqlite3.h must be included before this header). Same argument, result
 * and effect as bop_register_vfs().
 *
 * Define BOP_NO_REGISTER_HELPER before including this header to leave it
 * out (and use bop.h without sqlite3.h).
 */
#ifndef BOP_NO_REGISTER_HELPER
#ifndef SQLITE_VERSION_NUMBER
#error "include <sqlite3.h> before <bop.h>"
#endif
#if SQLITE_VERSION_NUMBER < 3031000
#error "bop needs SQLite 3.31.0 or newer (sqlite3_uri_key)"
#endif

static inline int bop_register(int make_default)
{
    bop_sqlite_api api;
    api.vfs_find = sqlite3_vfs_find;
    api.vfs_register = sqlite3_vfs_register;
    api.malloc = sqlite3_malloc;
    api.free = sqlite3_free;
    api.uri_parameter = sqlite3_uri_parameter;
    api.uri_key = sqlite3_uri_key;
    api.log = sqlite3_log;
    return bop_register_vfs(&api, make_default);
}
#endif /* BOP_NO_REGISTER_HELPER */

#endif /* BOP_H */
