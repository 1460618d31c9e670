PRAGMA page_size=512;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
CREATE INDEX t_v ON t(v);
PRAGMA journal_mode=wal;
PRAGMA page_size;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
INSERT INTO t SELECT x, printf('%08d-%s', x, hex(zeroblob(40))) FROM c;
PRAGMA page_count;
PRAGMA integrity_check;
