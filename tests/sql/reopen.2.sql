PRAGMA journal_mode;
PRAGMA user_version;
SELECT count(*), sum(id) FROM notes;
SELECT body FROM notes WHERE id = 1234;
SELECT id FROM notes WHERE body = 'note 2500';
INSERT INTO notes(body) VALUES ('after reopen');
SELECT max(id), body FROM notes;
PRAGMA integrity_check;
