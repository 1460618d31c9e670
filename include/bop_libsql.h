/*
 * bop_libsql.h - C API of libbop_libsql.so: libSQL with bop as its storage
 * engine (bop's page store for the database; the store's WAL image, kept
 * in bop's record log, as libSQL's virtual WAL).
 *
 * The library contains its own copy of libSQL (SQLite 3.47 with libSQL's
 * extensions); its sqlite3_* symbols are not exported. A connection from
 * bop_libsql_open belongs to that copy, so use it only with the functions
 * below: never pass it to the sqlite3_* functions of another SQLite.
 *
 *     #include "bop_libsql.h"
 *
 *     sqlite3 *db;
 *     if (bop_libsql_open("/tmp/x/app.db", &db) != 0) {
 *         fprintf(stderr, "%s\n", bop_libsql_last_error());
 *         return 1;
 *     }
 *     char *err = NULL;
 *     if (bop_libsql_exec(db, "CREATE TABLE IF NOT EXISTS t(a)", NULL, NULL, &err) != 0) {
 *         fprintf(stderr, "%s\n", err);
 *         bop_libsql_free(err);
 *     }
 *     bop_libsql_close(db);
 *
 *     cc app.c -Iinclude -Ltarget/release -lbop_libsql -Wl,-rpath,$PWD/target/release
 *
 * Return codes are SQLite's (0 = SQLITE_OK, 5 = SQLITE_BUSY, ...).
 */
#ifndef BOP_LIBSQL_H
#define BOP_LIBSQL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqlite3 sqlite3;

/* Row callback of bop_libsql_exec (as sqlite3_exec's). */
typedef int (*bop_libsql_callback)(void *arg, int ncol, char **values, char **names);

/* Opens (creating it if missing) the bop store at `path` (a directory, or
 * a "file:" URI with bop's parameters) read-write. */
int bop_libsql_open(const char *path, sqlite3 **db);

/* As bop_libsql_open with SQLITE_OPEN_* flags (READWRITE 0x2, CREATE 0x4,
 * URI 0x40, READONLY 0x1). */
int bop_libsql_open_v2(const char *path, sqlite3 **db, int flags);

/* sqlite3_exec of the bundled libSQL; *errmsg is freed with
 * bop_libsql_free. */
int bop_libsql_exec(sqlite3 *db, const char *sql, bop_libsql_callback cb,
                    void *arg, char **errmsg);

/* sqlite3_errmsg of the bundled libSQL. */
const char *bop_libsql_errmsg(sqlite3 *db);

/* sqlite3_free of the bundled libSQL. */
void bop_libsql_free(void *p);

/* sqlite3_close_v2 of the bundled libSQL. */
int bop_libsql_close(sqlite3 *db);

/* The detailed message behind the last error bop returned on this thread
 * ("" if none); valid until the next call on this thread. */
const char *bop_libsql_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* BOP_LIBSQL_H */
