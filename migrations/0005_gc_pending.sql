-- pmirror-fs catalog, version 5: gc on a shared store waits before it deletes.
-- gc_pending: when gc first found an object no snapshot references. On a shared store gc deletes
-- it only once that is [store] gc-delay ago (a serving node may still show it in an older view).
-- A new reference (an entry inserted: a sync, an import) takes it off the list, so an object
-- unreferenced again later waits the whole delay again.
CREATE TABLE gc_pending (
    object_id INTEGER PRIMARY KEY REFERENCES objects(id) ON DELETE CASCADE,
    since     INTEGER NOT NULL
);
CREATE TRIGGER gc_pending_referenced AFTER INSERT ON entries
BEGIN
    DELETE FROM gc_pending WHERE object_id = NEW.object_id;
END;
