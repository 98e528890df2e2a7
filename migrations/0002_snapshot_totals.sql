-- pmirror-fs catalog, version 2: each snapshot's file count and byte total, stored when it is
-- recorded. `status`, status.json and `snapshot list` show them for every snapshot; summing the
-- entries each time took half a second per million entries (at every mount start and run).
ALTER TABLE snapshots ADD COLUMN files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE snapshots SET
    files = (SELECT COUNT(*) FROM entries e WHERE e.snapshot_id = snapshots.id),
    bytes = (SELECT COALESCE(SUM(o.size), 0) FROM entries e JOIN objects o ON o.id = e.object_id
             WHERE e.snapshot_id = snapshots.id);
