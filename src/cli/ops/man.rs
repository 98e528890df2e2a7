//! `gen man`: pmirror-fs(1) and one page per subcommand from the clap definitions (clap_mangen's
//! sections), with what `--help` cannot say added before VERSION — EXIT STATUS, ENVIRONMENT,
//! FILES, EXAMPLES, SEE ALSO — and pmirror-fs.toml(5), the configuration reference. The
//! reference's `[store]` and `[sync]` defaults are read from the empty configuration as it
//! loads, so they cannot drift from the code.

use crate::config::Config;
use anyhow::Context as _;
use std::io::Write;
use std::path::Path;

/// The packaged configuration file (`config::resolve_path`'s default).
const CONFIG_FILE: &str = "/etc/pmirror-fs/config.toml";
/// Where the config reference page is installed from (`gen man --dir`).
pub const CONFIG_PAGE: &str = "pmirror-fs.toml.5";

use super::man_text::{EXAMPLES, EXIT_STATUS, TABLES};

/// One key of the configuration file: (table, key, default, meaning). A default of `None` is
/// read from the empty configuration ([`defaults`]).
type Key = (&'static str, &'static str, Option<&'static str>, &'static str);

const KEYS: &[Key] = &[
    ("store", "dir", None, "The store: pool/ (objects by sha256), catalog.db, views/ and tmp/ (on one filesystem)."),
    ("store", "fsync", None, "Flush every object and directory to disk before the catalog references it."),
    (
        "store",
        "metrics-textfile",
        Some("unset: none"),
        "After each sync, write Prometheus metrics to this file (node_exporter's textfile collector).",
    ),
    (
        "store",
        "shared",
        None,
        "The store is on a filesystem several hosts mount (CephFS): one writer at a time cluster-wide (the lock \
         names its host and pid), mount daemons read only views/ (the pointer, view images, status.json) and pool \
         objects, never catalog.db, and write nothing. See docs/cluster.md.",
    ),
    (
        "store",
        "gc-delay",
        None,
        "On a shared store, gc deletes an object only once no snapshot has referenced it for this long, and a \
         superseded view image stays as long: serving nodes may still serve an older view (at least [mount] \
         pin-lifetime + 5s).",
    ),
    (
        "sync",
        "concurrency",
        None,
        "Requests in flight to one host at the start (at least 1). A host that answers in HTTP/2 (https) gets up \
         to 100 streams on each of 4 connections; over plain http they grow up to max-concurrency while transfers \
         wait on round trips (a far upstream), not bandwidth.",
    ),
    (
        "sync",
        "max-concurrency",
        None,
        "How many connections plain-http downloads to one host may grow to while latency-bound (at least \
         concurrency): each time as many transfers in a row as there are connections took longer (and at least \
         25 ms) to answer than to arrive, by half again.",
    ),
    (
        "sync",
        "ca-file",
        Some("unset: the built-in web roots"),
        "PEM certificates also trusted for https upstreams (a private upstream, a TLS-inspecting proxy).",
    ),
    ("sync", "retries", None, "Further attempts after a transient failure (connection, timeout, 5xx), with backoff."),
    (
        "sync",
        "keep",
        None,
        "Snapshots retained per mirror (at least 1); the published one and those in the grace window stay anyway.",
    ),
    (
        "sync",
        "grace",
        None,
        "How long a superseded snapshot's by-hash indices and package files stay visible, for clients that read \
         its index. A duration: 90s, 30m, 48h, 1d12h.",
    ),
    ("sync", "timeout", None, "Per-request connect and idle timeout (more than 0s)."),
    (
        "sync",
        "rate-limit",
        Some("unset: no limit"),
        "Bytes per second a sync takes from the network, all its connections together (\"20M\": K, M, G count \
         1024, as wget and curl do).",
    ),
    (
        "sync",
        "slow-rate",
        Some("unset: only timeout ends a stalled transfer"),
        "A transfer that receives less than this many bytes per second (\"10K\") for slow-time is abandoned and \
         retried like any transient failure (waiting on rate-limit does not count).",
    ),
    ("sync", "slow-time", Some("30s (with slow-rate)"), "How long a transfer may stay below slow-rate."),
    (
        "sync",
        "proxy",
        Some("unset: http_proxy, https_proxy, all_proxy and no_proxy from the environment"),
        "The HTTP proxy every request goes through (\"http://user:password@proxy:3128\"; https through CONNECT); \
         no_proxy still applies. Its password is masked in every output.",
    ),
    (
        "sync",
        "max-shrink",
        None,
        "A new snapshot with more than this share fewer packages (a tree: files) or bytes than the published one \
         is recorded, not published, and its run fails with the reason (\"0%\" to \"100%\"; 100% never holds \
         one back); `sync --allow-shrink` or `snapshot publish` publishes it.",
    ),
    (
        "mount",
        "pin-idle",
        None,
        "A token under .pin/ (one per nginx connection: the shipped site opens index paths there) not looked up \
         for this long is forgotten; its next lookup sees the newest view (at least 5s).",
    ),
    (
        "mount",
        "pin-lifetime",
        None,
        "A token is forgotten this long after it was pinned, however busy: no connection is served an older view \
         than this (at least 5s; keep it below [sync] grace, which keeps the package files of superseded snapshots).",
    ),
    (
        "mount",
        "cache-dir",
        Some("unset: none"),
        "A local directory (not inside the store) where the mount copies each object on its first open, verified \
         while copied, and serves it from then on (passthrough); for a store on a shared filesystem.",
    ),
    (
        "mount",
        "cache-size",
        Some("10G"),
        "The most bytes cache-dir holds; the least recently opened objects go first. An object larger than this is \
         served from the pool.",
    ),
    (
        "web",
        "base-url",
        Some("http://mirror.example.org"),
        "With a [web] table the mount serves a front page (/index.html, /status/<id>.html): the mirrors' states, \
         snapshots, what changed, and client snippets whose URIs start with this URL (the site as clients reach it). \
         Without [web], no page.",
    ),
    ("web", "title", Some("pmirror-fs mirror"), "The front page's heading and title."),
    ("web", "notice", Some("unset: none"), "One line shown at the top of the front page (maintenance, a new host name)."),
    (
        "subscription",
        "key",
        Some("required"),
        "A Proxmox subscription key; its prefix is the product: pve<sockets><level>-, pbs<level>-, pmg<level>-, pom-.",
    ),
    ("subscription", "server-id", Some("required"), "The server ID the key is registered to."),
    ("mirror", "id", Some("required"), "Letters, digits, _ . -; names snapshots/<id>/ and the catalog rows."),
    (
        "mirror",
        "repository",
        Some("required"),
        "An apt source line: deb URL SUITE COMPONENT... (one suite; several components).",
    ),
    ("mirror", "architectures", Some("required"), "Debian architectures, and all for Architecture: all packages."),
    (
        "mirror",
        "key",
        Some("required"),
        "Release key file: a binary or armored key or keyring (Debian: /usr/share/keyrings/debian-archive-keyring.gpg).",
    ),
    ("mirror", "verify", Some("false"), "Re-hash the pool objects this mirror reuses at every sync."),
    ("mirror", "ignore-errors", Some("false"), "A package that fails to download is a warning, not a failure."),
    (
        "mirror",
        "view",
        Some("the URL's path"),
        "Where the repository appears in the mount; suites of one URL share it (debian/dists/bookworm, \
         debian/dists/bookworm-updates).",
    ),
    ("mirror", "skip-packages", Some("[]"), "Globs on package names to leave out (\"*-dbgsym\")."),
    ("mirror", "skip-sections", Some("[]"), "Sections whose packages to leave out (\"debug\")."),
    (
        "mirror",
        "sources",
        Some("[]"),
        "More base URLs serving the same repository (\"http://mirror-a/debian/pve\"), tried after the repository's \
         own. The newest InRelease that verifies (by Date, not older than the published snapshot's) is the run's; \
         a source with an older or another one serves no metadata that run; every file is fetched by its verified \
         hash from whichever source answers (one 4x slower per connection takes none while a faster one can; \
         failing over on errors, timeouts, 5xx, 404 and bad bytes); one that \
         served a bad file is not asked again that run; each is named in the run's warnings.",
    ),
    (
        "mirror",
        "use-subscription",
        Some("unset: none"),
        "pve, pbs, pmg or pom: send that product's first subscription key to this upstream's origin only.",
    ),
    ("tree", "id", Some("required"), "As a mirror's id."),
    ("tree", "url", Some("required"), "An http(s) directory with autoindex listings (ISO images, CT templates)."),
    ("tree", "view", Some("the URL's path"), "Where the tree appears in the mount."),
    ("tree", "include", Some("[]: every file"), "Globs on paths below url (* also matches /)."),
    ("tree", "exclude", Some("[]"), "Globs on paths below url skipped even when included."),
    (
        "tree",
        "key",
        Some("unset: no signature check"),
        "Key file: every checksum list's detached signature (SHA256SUMS.asc, aplinfo) must verify with it.",
    ),
    ("tree", "use-subscription", Some("unset: none"), "As a mirror's."),
    (
        "tree",
        "sources",
        Some("[]"),
        "More base URLs serving the same tree, tried in order after url: listings and checksum lists from the \
         first that answers, files held to those lists from whichever answers.",
    ),
    ("alias", "path", Some("required"), "A path in the mount that shows another one (it may not hide a view)."),
    ("alias", "target", Some("required"), "The path it shows: inside a mirror's or tree's view, or snapshots/."),
    ("medium", "id", Some("required"), "Letters, digits, _ . -; the medium's marker file names it."),
    ("medium", "path", Some("required"), "Where the medium is mounted (absolute): a USB stick or disk, exFAT included."),
    ("medium", "mirrors", Some("required"), "Ids of the mirrors and trees it carries."),
    (
        "medium",
        "newest",
        Some("unset: the published snapshot of each"),
        "Carry the newest N snapshots of each mirror and tree (at least 1).",
    ),
    (
        "medium",
        "snapshots",
        Some("unset: the published snapshot of each"),
        "Carry these snapshots, as \"mirror/snapshot\" (not with newest).",
    ),
];

/// What `config add` writes for pve:bookworm, debian:bookworm, debian:bookworm-updates and
/// debian:bookworm-security (without its comments).
const AIR_GAPPED_EXAMPLE: &str = r#"[store]
dir = "/var/lib/pmirror-fs"

[[mirror]]
id = "pve_bookworm"
repository = "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription"
architectures = ["amd64", "all"]
key = "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"

[[mirror]]
id = "debian_bookworm"
repository = "deb http://deb.debian.org/debian bookworm main contrib non-free-firmware"
architectures = ["amd64", "all"]
key = "/usr/share/keyrings/debian-archive-keyring.gpg"

[[mirror]]
id = "debian_bookworm_updates"
repository = "deb http://deb.debian.org/debian bookworm-updates main contrib non-free-firmware"
architectures = ["amd64", "all"]
key = "/usr/share/keyrings/debian-archive-keyring.gpg"

[[mirror]]
id = "debian_bookworm_security"
repository = "deb http://deb.debian.org/debian-security bookworm-security main contrib non-free-firmware"
architectures = ["amd64", "all"]
key = "/usr/share/keyrings/debian-archive-keyring.gpg"
"#;

/// `gen man` without `--dir`: pmirror-fs(1) on stdout.
pub fn print_main(cli: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    command_page(&cli, "", &mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// `gen man --dir DIR`: `pmirror-fs.1`, `pmirror-fs-SUB.1` for each subcommand (recursively,
/// not `help`) and [`CONFIG_PAGE`].
pub fn write_pages(mut cli: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // After `Command::build`, a subcommand's display name is `pmirror-fs-sync`: the page's NAME.
    cli.build();
    write_command_pages(&cli, "", dir)?;
    let file = dir.join(CONFIG_PAGE);
    std::fs::write(&file, config_page()?).with_context(|| format!("writing {}", file.display()))
}

fn write_command_pages(cmd: &clap::Command, words: &str, dir: &Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    command_page(cmd, words, &mut bytes)?;
    let file = dir.join(format!("{}.1", page_name(words)));
    std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let words = if words.is_empty() { sub.get_name().to_owned() } else { format!("{words} {}", sub.get_name()) };
        write_command_pages(sub, &words, dir)?;
    }
    Ok(())
}

/// `pmirror-fs` for the top level (`words` empty), `pmirror-fs-snapshot-list` for a command.
fn page_name(words: &str) -> String {
    std::iter::once("pmirror-fs").chain(words.split_whitespace()).collect::<Vec<_>>().join("-")
}

/// clap_mangen's sections, then ours, then VERSION last.
fn command_page(cmd: &clap::Command, words: &str, w: &mut Vec<u8>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page_name(words).to_uppercase())
        .source(format!("pmirror-fs {}", env!("CARGO_PKG_VERSION")));
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    w.extend_from_slice(extra_sections(words).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Whether an entry for `entry_cmd` belongs on the page of `words` ("" = pmirror-fs(1), which
/// shows every entry): the command itself or one below it (`config` shows `config add`'s).
fn belongs(entry_cmd: &str, words: &str) -> bool {
    words.is_empty() || entry_cmd.is_empty() || entry_cmd == words || entry_cmd.starts_with(&format!("{words} "))
}

fn extra_sections(words: &str) -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (cmd, status, meaning) in EXIT_STATUS.iter().filter(|(cmd, ..)| belongs(cmd, words)) {
        let label = if cmd.is_empty() || !words.is_empty() { status.to_string() } else { format!("{status} ({cmd})") };
        roff.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(&label), escape(meaning)));
    }
    roff.push_str(".SH ENVIRONMENT\n");
    roff.push_str(".TP\n\\fBPMIRROR_FS_CONFIG\\fR\nThe configuration file when \\fB\\-\\-config\\fR is not given.\n");
    roff.push_str(
        ".TP\n\\fBPMIRROR_FS_LOG\\fR\nLog filter for stderr (journald under systemd), default \\fBwarn\\fR; \
         \\fBinfo\\fR or \\fBdebug\\fR for detail, per module as \\fBpmirror_fs::sync=debug\\fR.\n",
    );
    roff.push_str(&files_section());
    let examples: Vec<_> = EXAMPLES.iter().filter(|(cmd, ..)| belongs(cmd, words)).collect();
    if !examples.is_empty() {
        roff.push_str(".SH EXAMPLES\n");
        for (_, line, what) in examples {
            roff.push_str(&format!("{}\n.PP\n.RS 4\n.EX\n{}\n.EE\n.RE\n.PP\n", escape(what), escape(line)));
        }
    }
    let related = if words.is_empty() { "pmirror\\-fs\\-COMMAND(1)" } else { "pmirror\\-fs(1)" };
    roff.push_str(&format!(".SH \"SEE ALSO\"\n{related}, pmirror\\-fs.toml(5), apt(8), nginx(8), fusermount3(1)\n"));
    roff
}

fn files_section() -> String {
    let files: &[(&str, &str)] = &[
        (CONFIG_FILE, "The configuration, pmirror-fs.toml(5)."),
        (
            "/var/lib/pmirror-fs",
            "The default store ([store] dir): pool/sha256/, the objects; catalog.db, the SQLite catalog of \
             snapshots; views/, the published view images; tmp/, downloads in progress.",
        ),
        ("/srv/pmirror-fs", "Where the packaged pmirror-fs-mount.service mounts the view for nginx."),
        (
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            "Debian's archive keys (package debian-archive-keyring), the key of the debian presets.",
        ),
        ("/etc/apt/trusted.gpg.d/proxmox-release-SUITE.gpg", "Proxmox's release key, the key of the Proxmox presets."),
    ];
    let mut roff = String::from(".SH FILES\n");
    for (path, what) in files {
        roff.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", escape(path), escape(what)));
    }
    roff
}

/// pmirror-fs.toml(5): every key with its default and meaning.
pub fn config_page() -> anyhow::Result<String> {
    let defaults = defaults()?;
    let mut roff = format!(
        ".TH PMIRROR-FS.TOML 5 \"\" \"pmirror-fs {}\"\n.SH NAME\npmirror\\-fs.toml \\- configuration of pmirror\\-fs\n\
         .SH SYNOPSIS\n\\fI{}\\fR\n.SH DESCRIPTION\n{}\n",
        env!("CARGO_PKG_VERSION"),
        escape(CONFIG_FILE),
        escape(
            "A TOML file: pmirror-fs --config FILE, else $PMIRROR_FS_CONFIG, else the file above. Unknown keys \
             are errors naming file, line and key; relative paths are taken from the file's directory. \
             `pmirror-fs config show` prints it with every default filled in, `pmirror-fs config check` \
             validates it and its key files, `pmirror-fs config add` adds presets to it."
        )
    );
    for (table, heading, what) in TABLES {
        roff.push_str(&format!(".SH \"{heading}\"\n{}\n", escape(what)));
        for (_, key, default, meaning) in KEYS.iter().filter(|(t, ..)| t == table) {
            let default = match default {
                Some("required") => "required".to_owned(),
                Some(text) => format!("default: {text}"),
                None => format!("default: {}", lookup(&defaults, table, key)?),
            };
            roff.push_str(&format!(".TP\n\\fB{}\\fR ({})\n{}\n", escape(key), escape(&default), escape(meaning)));
        }
    }
    roff.push_str(&format!(
        ".SH EXAMPLES\n{}\n.PP\n.RS 4\n.EX\n{}.EE\n.RE\n",
        escape(
            "An air-gapped Proxmox VE cluster: Proxmox's repository and Debian's base, as `pmirror-fs config add \
             --preset` writes them for pve:bookworm, debian:bookworm, debian:bookworm-updates and \
             debian:bookworm-security. Hosts then list deb http://MIRROR/debian/pve bookworm pve-no-subscription, \
             deb http://MIRROR/debian bookworm main contrib non-free-firmware (and bookworm-updates) and \
             deb http://MIRROR/debian-security bookworm-security main contrib non-free-firmware."
        ),
        escape(AIR_GAPPED_EXAMPLE)
    ));
    roff.push_str(&files_section());
    roff.push_str(".SH \"SEE ALSO\"\npmirror\\-fs(1), pmirror\\-fs\\-config\\-add(1), sources.list(5)\n");
    Ok(roff)
}

/// The empty configuration as `config show` renders it: every `[store]`, `[sync]` and `[mount]`
/// default.
fn defaults() -> anyhow::Result<toml::Table> {
    let config = Config::parse("", Path::new(CONFIG_FILE)).context("the empty configuration")?;
    config.to_toml().parse().context("rendering the default configuration")
}

fn lookup(defaults: &toml::Table, table: &str, key: &str) -> anyhow::Result<String> {
    let value = defaults.get(table).and_then(|t| t.get(key));
    value.map(ToString::to_string).with_context(|| format!("no default for [{table}] {key}"))
}

/// Text for a roff line: backslashes and hyphens escaped, no line starting with a control
/// character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| if line.starts_with(['.', '\'']) { format!("\\&{line}") } else { line.to_owned() })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser as _};

    #[test]
    fn every_example_parses_and_names_its_command() {
        for (cmd, line, _) in EXAMPLES {
            let args: Vec<&str> = line.split_whitespace().collect();
            crate::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(line.starts_with(&format!("pmirror-fs {cmd} ")) || *line == format!("pmirror-fs {cmd}"), "{line}");
        }
        let cli = crate::cli::Cli::command();
        for (cmd, ..) in EXIT_STATUS.iter().filter(|(cmd, ..)| !cmd.is_empty()) {
            let found = cmd.split(' ').try_fold(&cli, |c, word| c.find_subcommand(word));
            assert!(found.is_some(), "exit status for unknown command {cmd:?}");
        }
    }

    #[test]
    fn defaults_come_from_the_empty_config_and_examples_load() {
        let page = config_page().expect("page");
        assert!(page.contains("\\fBdir\\fR (default: \"/var/lib/pmirror\\-fs\")"), "{page}");
        assert!(page.contains("\\fBkeep\\fR (default: 3)"), "{page}");
        let dir = tempfile::tempdir().expect("tempdir");
        // Loading reads a key file's bytes; only `config check` parses them as a keyring.
        let key_file = dir.path().join("key.gpg");
        std::fs::write(&key_file, b"key").expect("write key");
        let text = AIR_GAPPED_EXAMPLE
            .replace("/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg", &key_file.display().to_string())
            .replace("/usr/share/keyrings/debian-archive-keyring.gpg", &key_file.display().to_string());
        Config::parse(&text, &dir.path().join("config.toml")).expect("the example loads");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
        assert_eq!(escape(".x\n'y\nz\n"), "\\&.x\n\\&'y\nz\n");
    }
}
