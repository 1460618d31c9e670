/*
 * The init hook of bop's testfixture: SQLite calls it at the end of every
 * sqlite3_initialize() (built with -DSQLITE_EXTRA_INIT=bop_testfixture_init).
 *
 * With BOP_TESTFIXTURE=bop in the environment it makes bop the default VFS
 * of testfixture's own SQLite, through bop_register_vfs() of libbop.so; any
 * other value, or none, leaves SQLite stock (the unix VFS is the default), so
 * that one build runs the suite both ways. Tests that shut SQLite down and
 * initialize it again (sqlite3_shutdown, then any call) come through here
 * again: sqlite3_os_init() has just made "unix" the default again, and
 * bop_register_vfs() makes bop the default once more.
 *
 * If bop cannot be registered, the hook prints why and fails
 * sqlite3_initialize(), so a run that asked for bop never silently runs on
 * stock SQLite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"
#include "bop.h"

int bop_testfixture_init(const char *unused)
{
    const char *mode = getenv("BOP_TESTFIXTURE");
    int rc;

    (void)unused;
    if (mode == NULL || strcmp(mode, "bop") != 0) {
        return SQLITE_OK;
    }
    rc = bop_register(1);
    if (rc != SQLITE_OK) {
        const char *why = bop_last_error();
        fprintf(stderr, "bop_testfixture_init: bop_register_vfs failed (%d): %s\n",
                rc, why ? why : "no detail");
        return rc;
    }
    return SQLITE_OK;
}
