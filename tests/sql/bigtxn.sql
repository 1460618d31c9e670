CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000)
INSERT INTO t SELECT x, printf('row%05d', x) FROM c;
COMMIT;
SELECT count(*), sum(id), min(v), max(v) FROM t;
SELECT v FROM t WHERE id = 5000;
SELECT count(*) FROM t WHERE v LIKE '%7';
PRAGMA integrity_check;
