CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
INSERT INTO t SELECT x, zeroblob(500) FROM c;
DELETE FROM t WHERE id > 1000;
SELECT count(*), sum(id) FROM t;
SELECT freelist_count > 0 FROM pragma_freelist_count;
VACUUM;
SELECT freelist_count FROM pragma_freelist_count;
SELECT count(*), sum(id), sum(length(v)) FROM t;
PRAGMA journal_mode;
PRAGMA integrity_check;
