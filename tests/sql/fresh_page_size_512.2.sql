PRAGMA page_size;
SELECT count(*), max(v) FROM t;
PRAGMA integrity_check;
