/*
 * entry_points.c: drives libbop.so's entry points directly, with
 * hand-made sqlite3_api_routines tables and bop_sqlite_api structs, to
 * check the success and error contracts. Needs no working database.
 * Run by ffi/tests/c_api.rs; prints "key=value" lines, then "done".
 */
#include <sqlite3.h>
#define SQLITE_CORE 1 /* the sqlite3_api_routines type without the macros */
#include <sqlite3ext.h>
#include <bop.h>

#include <stdio.h>
#include <string.h>

int sqlite3_bop_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);
int sqlite3_extension_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

static int old_version(void) { return 3030000; }

static void routines(sqlite3_api_routines *r)
{
    memset(r, 0, sizeof *r);
    r->libversion_number = sqlite3_libversion_number;
    r->malloc = sqlite3_malloc;
    r->free = sqlite3_free;
    r->vfs_find = sqlite3_vfs_find;
    r->vfs_register = sqlite3_vfs_register;
    r->log = sqlite3_log;
    r->uri_parameter = sqlite3_uri_parameter;
    r->uri_key = sqlite3_uri_key;
}

static void show(const char *key, int rc, char *err)
{
    const char *last = bop_last_error();
    printf("%s.rc=%d\n", key, rc);
    printf("%s.err=%s\n", key, err ? err : "(null)");
    printf("%s.last_error=%s\n", key, last ? last : "(null)");
    sqlite3_free(err);
}

int main(void)
{
    sqlite3_api_routines r;
    bop_sqlite_api api;
    char *err;
    int rc;
    sqlite3_vfs *v;

    printf("version=%s\n", bop_version());

    /* C API misuse. */
    rc = bop_register_vfs(NULL, 0);
    show("null_api", rc, NULL);
    api.vfs_find = sqlite3_vfs_find;
    api.vfs_register = sqlite3_vfs_register;
    api.malloc = sqlite3_malloc;
    api.free = sqlite3_free;
    api.uri_parameter = sqlite3_uri_parameter;
    api.uri_key = sqlite3_uri_key;
    api.log = NULL;
    rc = bop_register_vfs(&api, 0);
    show("null_log", rc, NULL);

    /* Extension entry point without api routines. */
    err = NULL;
    rc = sqlite3_bop_init(NULL, &err, NULL);
    show("init_null_routines", rc, err);

    /* An SQLite older than 3.31. */
    routines(&r);
    r.libversion_number = old_version;
    err = NULL;
    rc = sqlite3_bop_init(NULL, &err, &r);
    show("init_old_sqlite", rc, err);

    /* A NULL slot. */
    routines(&r);
    r.uri_key = NULL;
    err = NULL;
    rc = sqlite3_bop_init(NULL, &err, &r);
    show("init_null_slot", rc, err);

    /* A NULL pzErrMsg is tolerated. */
    rc = sqlite3_bop_init(NULL, NULL, &r);
    printf("init_null_errmsg.rc=%d\n", rc);

    printf("registered_before=%d\n", sqlite3_vfs_find("bop") != NULL);

    /* Success, through both entry points (the second is a no-op). */
    routines(&r);
    err = NULL;
    rc = sqlite3_bop_init(NULL, &err, &r);
    show("init_ok", rc, err);
    err = NULL;
    rc = sqlite3_extension_init(NULL, &err, &r);
    show("extension_init_ok", rc, err);
    printf("registered_after=%d\n", sqlite3_vfs_find("bop") != NULL);
    v = sqlite3_vfs_find(NULL);
    printf("default_after_init=%s\n", v ? v->zName : "NULL");

    /* The C API on top: registered already; now as the default. */
    rc = bop_register(0);
    show("register", rc, NULL);
    rc = bop_register(1);
    show("register_default", rc, NULL);
    v = sqlite3_vfs_find(NULL);
    printf("default_after_register_default=%s\n", v ? v->zName : "NULL");

    printf("done\n");
    return 0;
}
