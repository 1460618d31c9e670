PRAGMA page_size;
SELECT count(*), sum(length(v)) FROM t;
PRAGMA integrity_check;
