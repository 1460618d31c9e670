PRAGMA auto_vacuum;
PRAGMA freelist_count;
PRAGMA incremental_vacuum;
PRAGMA freelist_count;
PRAGMA page_count;
SELECT count(*) FROM t;
PRAGMA integrity_check;
