-- pmirror-fs catalog, version 1.
-- objects: every pool object ever recorded (id is stable and never reused: AUTOINCREMENT).
CREATE TABLE objects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256     BLOB    NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    mtime      INTEGER NOT NULL,           -- upstream Last-Modified when first recorded (unix s)
    created_at INTEGER NOT NULL
);

-- mirrors and trees (kind), with the published pointer and the last run's outcome.
CREATE TABLE mirrors (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('mirror', 'tree')),
    view               TEXT NOT NULL,
    upstream           TEXT NOT NULL,
    published          INTEGER REFERENCES snapshots(id),
    release_mtime      INTEGER,            -- highest Release/InRelease mtime ever served (never goes back)
    state              TEXT NOT NULL DEFAULT 'new',   -- new | syncing | success | failed
    last_started       INTEGER,
    last_ended         INTEGER,
    last_success       INTEGER,
    last_error         TEXT,
    last_bytes_fetched INTEGER,
    last_objects_fetched INTEGER
);

CREATE TABLE snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mirror_id     TEXT    NOT NULL REFERENCES mirrors(id),
    name          TEXT    NOT NULL,        -- YYYY-MM-DDTHH:MM:SSZ
    created_at    INTEGER NOT NULL,
    superseded_at INTEGER,                 -- when it stopped being the published snapshot
    release_sha256 BLOB,                   -- InRelease/Release digest, for no-op detection
    release_last_modified INTEGER,         -- its Last-Modified, for If-Modified-Since
    UNIQUE (mirror_id, name)
);

-- path (relative to the mirror's view root) -> object, per snapshot.
CREATE TABLE entries (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    path        TEXT    NOT NULL,
    object_id   INTEGER NOT NULL REFERENCES objects(id),
    kind        INTEGER NOT NULL,          -- 0 release, 1 index, 2 package, 3 tree file
    PRIMARY KEY (snapshot_id, path)
) WITHOUT ROWID;
CREATE INDEX entries_object ON entries(object_id);

-- by-hash names other than SHA256 (which is the object's own digest) of index entries.
CREATE TABLE index_hashes (
    snapshot_id INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    algo        TEXT    NOT NULL,          -- MD5Sum | SHA1 | SHA512
    digest      TEXT    NOT NULL,
    PRIMARY KEY (snapshot_id, path, algo)
) WITHOUT ROWID;

-- publish generation: bumped by every publish; the mount daemon polls it.
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 0);
