SELECT count(*), max(id) FROM notes;
SELECT body FROM notes WHERE id = 2501;
PRAGMA integrity_check;
