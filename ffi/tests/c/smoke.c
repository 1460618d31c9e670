/*
 * smoke.c: a C program that links the system SQLite and libbop.so, the way
 * include/bop.h tells users to. Run by ffi/tests/c_api.rs.
 *
 * usage: smoke DB_PATH
 * Prints "key=value" lines, then "done"; on failure prints "FAIL: ..." to
 * stderr and exits 1.
 */
#include <sqlite3.h>
#include <bop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 1000

static void fail(sqlite3 *db, const char *what)
{
    const char *bop_err = bop_last_error();
    fprintf(stderr, "FAIL: %s: sqlite: %s; bop: %s\n", what,
            db ? sqlite3_errmsg(db) : "(no connection)",
            bop_err ? bop_err : "(none)");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "FAIL: exec %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        fail(db, sql);
    }
}

/* First column of the first row of `sql`, as text (copied to `out`). */
static void query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *stmt = NULL;
    const unsigned char *text;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) fail(db, sql);
    if (sqlite3_step(stmt) != SQLITE_ROW) fail(db, sql);
    text = sqlite3_column_text(stmt, 0);
    snprintf(out, cap, "%s", text ? (const char *)text : "NULL");
    if (sqlite3_finalize(stmt) != SQLITE_OK) fail(db, sql);
}

static sqlite3 *open_bop(const char *uri)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(uri, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                             NULL);
    if (rc != SQLITE_OK) fail(db, "sqlite3_open_v2");
    return db;
}

int main(int argc, char **argv)
{
    char uri[4096], buf[256];
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    sqlite3_vfs *dflt;
    int i, rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DB_PATH\n", argv[0]);
        return 2;
    }
    snprintf(uri, sizeof uri, "file:%s?vfs=bop", argv[1]);

    printf("bop_version=%s\n", bop_version());
    printf("sqlite_version=%s\n", sqlite3_libversion());

    rc = bop_register(0);
    printf("register=%d\n", rc);
    if (rc != SQLITE_OK) fail(NULL, "bop_register");
    printf("vfs_found=%d\n", sqlite3_vfs_find("bop") != NULL);
    dflt = sqlite3_vfs_find(NULL);
    printf("default_vfs=%s\n", dflt ? dflt->zName : "NULL");

    /* First connection: create and fill in one transaction. */
    db = open_bop(uri);
    query_text(db, "PRAGMA journal_mode=WAL", buf, sizeof buf);
    printf("set_journal_mode=%s\n", buf);
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    exec(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "INSERT INTO t(id, v) VALUES (?1, ?2)", -1, &ins, NULL) != SQLITE_OK)
        fail(db, "prepare insert");
    for (i = 1; i <= ROWS; i++) {
        char v[64];
        snprintf(v, sizeof v, "row-%d", i);
        sqlite3_bind_int(ins, 1, i);
        sqlite3_bind_text(ins, 2, v, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) fail(db, "insert");
        sqlite3_reset(ins);
    }
    if (sqlite3_finalize(ins) != SQLITE_OK) fail(db, "finalize insert");
    exec(db, "COMMIT");
    if (sqlite3_close(db) != SQLITE_OK) fail(db, "close");

    /* Second connection: everything is still there. */
    db = open_bop(uri);
    query_text(db, "SELECT count(*) FROM t", buf, sizeof buf);
    printf("count=%s\n", buf);
    query_text(db, "SELECT sum(id) FROM t", buf, sizeof buf);
    printf("sum=%s\n", buf);
    query_text(db, "SELECT v FROM t WHERE id = 500", buf, sizeof buf);
    printf("row500=%s\n", buf);
    query_text(db, "PRAGMA journal_mode", buf, sizeof buf);
    printf("journal_mode=%s\n", buf);
    query_text(db, "PRAGMA integrity_check", buf, sizeof buf);
    printf("integrity_check=%s\n", buf);
    if (sqlite3_close(db) != SQLITE_OK) fail(db, "close");

    /* A VFS error reaches bop_last_error(): bop refuses unknown URI
     * parameters, naming them. */
    {
        char bad[4200];
        const char *last;
        char *nl;
        snprintf(bad, sizeof bad, "%s&bop_no_such_param=1", uri);
        db = NULL;
        rc = sqlite3_open_v2(bad, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
        printf("bad_param_open_failed=%d\n", rc != SQLITE_OK);
        sqlite3_close(db);
        last = bop_last_error();
        snprintf(buf, sizeof buf, "%s", last ? last : "(null)");
        while ((nl = strchr(buf, '\n')) != NULL) *nl = ' ';
        printf("bad_param_error=%s\n", buf);
    }

    /* Registering again is harmless. */
    rc = bop_register(0);
    printf("register_again=%d\n", rc);
    if (rc != SQLITE_OK) fail(NULL, "bop_register again");

    printf("done\n");
    return 0;
}
