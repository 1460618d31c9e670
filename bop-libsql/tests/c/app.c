/* C use of libbop_libsql.so (tests/c_api.rs builds and runs it). */
#include <stdio.h>
#include <string.h>
#include "bop_libsql.h"

static int print_row(void *arg, int n, char **v, char **names) {
    (void)arg; (void)names;
    for (int i = 0; i < n; i++) printf("%s%s", i ? "|" : "", v[i] ? v[i] : "");
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    sqlite3 *db;
    if (bop_libsql_open(argv[1], &db) != 0) {
        fprintf(stderr, "open: %s\n", bop_libsql_last_error());
        return 1;
    }
    char *err = NULL;
    const char *sql =
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS t(a INTEGER PRIMARY KEY, b TEXT);"
        "INSERT INTO t(b) VALUES ('from C');"
        "SELECT count(*), max(b) FROM t;"
        "PRAGMA journal_mode;";
    if (bop_libsql_exec(db, sql, print_row, NULL, &err) != 0) {
        fprintf(stderr, "exec: %s\n", err ? err : bop_libsql_errmsg(db));
        bop_libsql_free(err);
        return 1;
    }
    /* An error comes back as a code and a message. */
    if (bop_libsql_exec(db, "SELECT * FROM missing", NULL, NULL, &err) == 0) return 1;
    printf("error: %s\n", err);
    bop_libsql_free(err);
    return bop_libsql_close(db);
}
