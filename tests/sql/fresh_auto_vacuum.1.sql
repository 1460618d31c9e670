PRAGMA auto_vacuum=full;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
PRAGMA journal_mode=wal;
PRAGMA auto_vacuum;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
INSERT INTO t SELECT x, zeroblob(1000) FROM c;
PRAGMA page_count;
DELETE FROM t WHERE id > 100;
PRAGMA freelist_count;
PRAGMA page_count;
PRAGMA integrity_check;
