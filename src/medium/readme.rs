//! The README.txt a medium carries: what it is and what to do with it on the offline side.

use super::plan::MediumPlan;
use crate::config::MediumConfig;

/// The README for `medium` holding what `plan` picks (no timestamps: an unchanged medium
/// rewrites nothing).
pub fn text(medium: &MediumConfig, plan: &MediumPlan, deb: Option<&str>) -> String {
    let mut snapshots = String::new();
    for c in &plan.chosen {
        let mark = if c.publish { "  (published)" } else { "" };
        snapshots += &format!("  {}/{}  {} files{mark}\n", c.row.mirror_id, c.row.name, c.row.files);
    }
    let install = match deb {
        Some(name) => format!("  apt install ./{name}        (from this medium's root)\n"),
        None => "  (no pmirror-fs .deb is on this medium: install pmirror-fs from your own copy)\n".to_owned(),
    };
    format!(
        "pmirror-fs medium {id}\n\
         =====================\n\n\
         This is an offline copy of apt repositories and file trees, written by pmirror-fs {version}.\n\
         Every file was verified against its publisher's signature before it was copied; the keys\n\
         are in keys/. It holds:\n\n\
         {snapshots}\n\
         On the offline side, with the medium mounted at /media/medium:\n\n\
         1. Install pmirror-fs:\n\
         {install}\n\
         2. Either serve the medium directly (read-only; nothing is written to it):\n\n\
         \x20 pmirror-fs mount --store /media/medium /srv/pmirror-fs\n\n\
         \x20  or copy it into the local store (verified), so the next medium only adds:\n\n\
         \x20 pmirror-fs medium import /media/medium\n\
         \x20 pmirror-fs mount /srv/pmirror-fs\n\n\
         3. Serve /srv/pmirror-fs with nginx (the package ships the site), then write the hosts'\n\
         \x20  apt sources and keys:\n\n\
         \x20 pmirror-fs medium sources /media/medium --base-url http://mirror.example -o /tmp/apt\n\n\
         \x20  Copy /tmp/apt/*.sources to /etc/apt/sources.list.d/ and /tmp/apt/*.asc|*.gpg to\n\
         \x20  /etc/apt/keyrings/ on each host.\n\n\
         Check the medium at any time: pmirror-fs verify --store /media/medium\n\
         Proxmox subscription keys cannot be carried: offline subscriptions need Proxmox's shop.\n",
        id = medium.id,
        version = env!("CARGO_PKG_VERSION"),
    )
}
