PRAGMA page_size;
PRAGMA journal_mode;
SELECT count(*), sum(length(v)) FROM t;
PRAGMA page_size=4096;
VACUUM;
PRAGMA page_size;
PRAGMA integrity_check;
