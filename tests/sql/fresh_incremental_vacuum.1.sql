PRAGMA auto_vacuum=incremental;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
PRAGMA journal_mode=wal;
PRAGMA auto_vacuum;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
INSERT INTO t SELECT x, zeroblob(1000) FROM c;
DELETE FROM t WHERE id > 100;
PRAGMA freelist_count;
PRAGMA incremental_vacuum(10);
PRAGMA freelist_count;
PRAGMA page_count;
