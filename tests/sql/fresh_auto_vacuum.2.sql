PRAGMA auto_vacuum;
PRAGMA page_count;
SELECT count(*) FROM t;
PRAGMA integrity_check;
