//! The man pages' per-command text: examples and exit statuses (read by `man.rs`).

/// (command the example belongs to, command line, what it does). Each page shows its command's;
/// pmirror-fs(1) shows them all. A unit test parses every line with the clap definitions.
pub(super) const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "config add",
        "pmirror-fs config add --preset pve:bookworm:no-subscription",
        "Start a configuration (or extend it) with Proxmox VE's no-subscription repository.",
    ),
    (
        "config add",
        "pmirror-fs config add --preset debian:bookworm-security",
        "Add Debian's security suite (the Debian base of an air-gapped cluster: debian:bookworm, \
         debian:bookworm-updates, debian:bookworm-security).",
    ),
    ("config add", "pmirror-fs config add --list", "List every preset with its source line."),
    ("config check", "pmirror-fs config check", "Validate the configuration and read every key file."),
    ("config show", "pmirror-fs config show", "Print the configuration with every default filled in."),
    (
        "config import",
        "pmirror-fs config import /etc/proxmox-offline-mirror.cfg -o /etc/pmirror-fs/config.toml",
        "Convert a proxmox-offline-mirror configuration.",
    ),
    ("sync", "pmirror-fs sync --dry-run", "Print what a sync would download and reuse; change nothing."),
    ("sync", "pmirror-fs sync", "Sync every mirror and tree and publish the new snapshots at once."),
    ("sync", "pmirror-fs sync --verify pve_bookworm", "Sync one mirror, re-hashing what it reuses from the pool."),
    (
        "mount",
        "pmirror-fs mount /srv/pmirror-fs",
        "Serve the published view read-only; as root, readable by nginx's workers (--private: root only).",
    ),
    ("status", "pmirror-fs status", "Last run, published snapshot and last error of every mirror."),
    ("snapshot list", "pmirror-fs snapshot list pve_bookworm", "The mirror's retained snapshots."),
    (
        "snapshot diff",
        "pmirror-fs snapshot diff pve_bookworm 2024-05-01T10:00:00Z 2024-05-02T10:00:00Z",
        "Packages added, removed and changed between two snapshots.",
    ),
    (
        "snapshot publish",
        "pmirror-fs snapshot publish pve_bookworm 2024-05-01T10:00:00Z",
        "Roll back to an older snapshot (this pins the mirror to it).",
    ),
    ("snapshot unpin", "pmirror-fs snapshot unpin pve_bookworm", "Let the next sync publish upstream's newest again."),
    (
        "snapshot forget",
        "pmirror-fs snapshot forget old_mirror",
        "Delete the snapshots of a mirror removed from the config (`gc` then frees its objects).",
    ),
    ("gc", "pmirror-fs gc --dry-run", "What garbage collection would delete from the pool."),
    ("verify", "pmirror-fs verify", "Re-hash every pool object; exit 1 on damage."),
    ("verify", "pmirror-fs verify --store /media/usb1", "Re-hash an offline medium, writing nothing to it."),
    (
        "mount",
        "pmirror-fs mount --store /media/usb1 /srv/pmirror-fs",
        "Serve an offline medium as it is (read-only: nothing is written to it).",
    ),
    ("medium diff", "pmirror-fs medium diff usb1", "What a medium sync would add and remove; writes nothing."),
    (
        "medium sync",
        "pmirror-fs medium sync usb1",
        "Write medium usb1: exactly the snapshots its [[medium]] picks, incrementally and atomically.",
    ),
    ("medium status", "pmirror-fs medium status /media/usb1", "What a medium holds, when it was written, its size."),
    (
        "medium import",
        "pmirror-fs medium import /media/usb1",
        "On the offline side: copy the medium's snapshots into the store, verified, and publish them.",
    ),
    (
        "medium sources",
        "pmirror-fs medium sources /media/usb1 --base-url http://mirror.example -o /tmp/apt",
        "Write a deb822 .sources file and the key for each apt mirror, for the cluster's hosts.",
    ),
    ("gen man", "pmirror-fs gen man --dir /tmp/man", "Write these pages (man -l /tmp/man/pmirror-fs.1)."),
];

/// (command the status belongs to, "" for every command; status; meaning).
pub(super) const EXIT_STATUS: &[(&str, &str, &str)] = &[
    ("", "0", "Success."),
    ("config add", "0", "Also when every preset was present already (nothing written)."),
    ("", "1", "An error, printed as one line on stderr: pmirror-fs: what: why."),
    (
        "sync",
        "1",
        "A mirror or tree failed, or cannot run as configured (a key file missing: the others are synced and \
         published), or the publish was refused (a path conflict between mirrors; nothing changed).",
    ),
    ("verify", "1", "A referenced pool object is damaged or missing (each is listed with its snapshots and paths)."),
    (
        "medium sync",
        "1",
        "The medium is not mounted, is another medium, is too full, or a store object is damaged; the medium \
         still holds its previous state.",
    ),
    (
        "medium import",
        "1",
        "An object on the medium is damaged or missing (nothing was imported), or the store is locked.",
    ),
    ("config check", "1", "The configuration does not load, or a key file holds no keyring sync can read."),
    ("config add", "1", "The guided setup was declined at the end (nothing written)."),
    (
        "mount",
        "1",
        "Mounting failed (the parent that detaches exits with it), or the mount was unmounted from outside.",
    ),
    ("", "2", "A usage error: an unknown command or option, a missing or invalid argument."),
    (
        "",
        "141",
        "Killed by SIGPIPE (128 + 13) because the reader of stdout went away, as cat(1) is in a pipe into \
         head(1); never the mount daemon.",
    ),
];

/// What each table is, in the order of the page.
pub(super) const TABLES: &[(&str, &str, &str)] = &[
    ("store", "[store]", "Where the data lives."),
    ("sync", "[sync]", "How syncs download, and how long snapshots stay."),
    (
        "mount",
        "[mount]",
        "How the mount keeps each connection on one snapshot generation across a switch, and its local read cache.",
    ),
    ("web", "[web]", "The front page the mount serves (/index.html); none without this table."),
    ("subscription", "[[subscription]]", "Proxmox enterprise credentials (keep the file mode 0600)."),
    ("mirror", "[[mirror]]", "One suite of an apt repository, synced into snapshots."),
    ("tree", "[[tree]]", "A plain file tree, checked against its checksum lists."),
    ("alias", "[[alias]]", "A second path for part of the view."),
    (
        "medium",
        "[[medium]]",
        "An offline medium for an air-gapped cluster, and what goes on it: `medium sync ID` writes it, \
         `medium status|diff ID` show it; on the offline side `mount --store`, `medium import` and `medium \
         sources` read it.",
    ),
];
