PRAGMA page_size=65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
PRAGMA journal_mode=wal;
PRAGMA page_size;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
INSERT INTO t SELECT x, zeroblob(3000) FROM c;
PRAGMA page_count;
PRAGMA integrity_check;
