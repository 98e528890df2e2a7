-- pmirror-fs catalog, version 4: the warnings of the run that recorded each snapshot (one per
-- line: a stale Release.gpg left out, an optional index missing upstream, files no checksum
-- list covers). `status`, status.json and the metrics show the published snapshot's; a later run
-- that finds the same ones prints them as "unchanged" instead of repeating every line.
ALTER TABLE snapshots ADD COLUMN warnings TEXT NOT NULL DEFAULT '';
