-- pmirror-fs catalog, version 7: the files the config puts into the published view ([web]: the
-- front page's pages and the apt mirrors' keys), by path with the sha256 of the bytes the
-- view was built with, as the last publish wrote them. A sync publishes again when the config
-- asks for other files (an entry or [web] added, a key changed), and the pages link only to
-- pages the served view has.
CREATE TABLE published_web (
    path   TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL
);
