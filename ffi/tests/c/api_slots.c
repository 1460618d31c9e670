/*
 * api_slots.c: prints the 0-based pointer-slot index of each
 * sqlite3_api_routines field libbop.so reads, as "name=index" lines.
 * ffi/tests/c_api.rs compares them with ffi/src/api_slots.rs.
 */
#include <stddef.h>
#include <stdio.h>
#include <sqlite3ext.h>

#define SLOT(field) \
    printf(#field "=%zu\n", offsetof(sqlite3_api_routines, field) / sizeof(void *))

int main(void)
{
    SLOT(free);
    SLOT(libversion_number);
    SLOT(malloc);
    SLOT(vfs_find);
    SLOT(vfs_register);
    SLOT(log);
    SLOT(uri_parameter);
    SLOT(uri_key);
    SLOT(open_v2);
    SLOT(close);
    SLOT(exec);
    SLOT(wal_checkpoint_v2);
    return 0;
}
