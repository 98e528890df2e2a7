-- pmirror-fs catalog, version 6: what the front page shows beyond status.json ([web]).
-- runs: the last 50 runs of each mirror/tree, recorded by a trigger whenever a run ends
-- (mirrors.last_ended is set): its start and end, whether it succeeded, and what it fetched.
CREATE TABLE runs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    mirror_id TEXT    NOT NULL,
    started   INTEGER,
    ended     INTEGER NOT NULL,
    ok        INTEGER NOT NULL,
    bytes     INTEGER,
    files     INTEGER
);
CREATE INDEX runs_mirror ON runs(mirror_id, id);
CREATE TRIGGER runs_record AFTER UPDATE OF last_ended ON mirrors
WHEN NEW.last_ended IS NOT NULL
BEGIN
    INSERT INTO runs (mirror_id, started, ended, ok, bytes, files)
    VALUES (NEW.id, NEW.last_started, NEW.last_ended, NEW.state = 'success',
            CASE WHEN NEW.state = 'success' THEN NEW.last_bytes_fetched END,
            CASE WHEN NEW.state = 'success' THEN NEW.last_objects_fetched END);
    DELETE FROM runs WHERE mirror_id = NEW.id AND id <= (
        SELECT id FROM runs WHERE mirror_id = NEW.id ORDER BY id DESC LIMIT 1 OFFSET 50);
END;
CREATE TRIGGER runs_forget AFTER DELETE ON mirrors
BEGIN
    DELETE FROM runs WHERE mirror_id = OLD.id;
END;
-- snapshot_changes: what a snapshot changed against the one before it (`snapshot diff`'s JSON,
-- computed by the sync that recorded it); gone with its snapshot.
CREATE TABLE snapshot_changes (
    snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
    from_name   TEXT NOT NULL,
    diff        TEXT NOT NULL
);
