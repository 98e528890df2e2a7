-- pmirror-fs catalog, version 3: a mirror's pin. `snapshot publish` of a snapshot that is not the
-- mirror's newest pins the mirror to it: pinned_at is when (NULL: not pinned), and the snapshot
-- it is pinned to is always the published one (mirrors.published). A sync of a pinned mirror
-- records new snapshots but does not publish them; publishing the mirror's newest snapshot or
-- `snapshot unpin` clears the pin.
ALTER TABLE mirrors ADD COLUMN pinned_at INTEGER;
