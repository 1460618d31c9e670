PRAGMA journal_mode;
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX notes_body ON notes(body);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2500)
INSERT INTO notes SELECT x, 'note ' || x FROM c;
COMMIT;
PRAGMA user_version = 3;
SELECT count(*) FROM notes;
