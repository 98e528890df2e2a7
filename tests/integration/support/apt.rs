//! The real apt client against a repository URL, fully isolated in a tempdir: its own
//! Dir::State, Dir::Cache, Dir::Etc (sources.list.d with `deb [signed-by=KEY] …`), an empty dpkg
//! status file, amd64 only, no system apt.conf.d, no proxy. `update` is strict — any `W:`/`E:`
//! line or `Err:` fetch fails it — so a passing update means apt accepted every signature,
//! hash and index. apt-get missing is a test failure (panic), never a skip.
//!
//! ```text
//! <dir>/apt.conf            APT_CONFIG: every Dir:: points below <dir>
//! <dir>/etc/sources.list.d/fixture.list
//! <dir>/state/{status,lists/}   <dir>/cache/archives/   <dir>/downloads/
//! ```

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const APT_GET: &str = "/usr/bin/apt-get";
/// Proxy variables a CI environment may carry; loopback traffic must not go through them.
const PROXY_VARS: [&str; 8] =
    ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("running {cmd}: {source}")]
    Spawn { cmd: String, source: io::Error },
    /// Non-zero exit, or an error/warning line: apt did not fully accept the repository.
    #[error("{cmd} was not clean (exit {}):\n--- stdout\n{}\n--- stderr\n{}",
        .output.status, String::from_utf8_lossy(&.output.stdout), String::from_utf8_lossy(&.output.stderr))]
    Failed { cmd: String, output: Output },
    #[error("reading apt lists in {dir}: {source}")]
    Lists { dir: String, source: io::Error },
    #[error("apt-get download fetched {got} files for {wanted} package versions: {files:?}")]
    Incomplete { wanted: usize, got: usize, files: Vec<PathBuf> },
}

impl AptError {
    /// apt's stderr + stdout for a `Failed` run (empty otherwise), to assert on messages.
    pub fn output_text(&self) -> String {
        match self {
            AptError::Failed { output, .. } => {
                format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout))
            }
            _ => String::new(),
        }
    }
}

/// A package version as apt's lists name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

pub struct AptClient {
    dir: PathBuf,
    sources: usize,
}

fn mkdirs(dirs: &[PathBuf]) {
    for d in dirs {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("apt harness: mkdir {}: {e}", d.display()));
    }
}

impl AptClient {
    /// An apt client in `dir` with one source, `URL SUITE COMPONENT…` (a leading `deb ` is
    /// accepted and dropped), trusting only `key` (binary or .asc public key).
    pub fn new(dir: &Path, sources_line: &str, key: &Path) -> AptClient {
        let mut client = AptClient::empty(dir);
        client.add_source(sources_line, key);
        client
    }

    /// An apt client in `dir` whose sources are the deb822 `*.sources` files in `from` (their
    /// `Signed-By` names the keys).
    pub fn with_sources(dir: &Path, from: &Path) -> AptClient {
        let client = AptClient::empty(dir);
        let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("apt harness: {}: {e}", from.display()));
        for entry in entries.map(|e| e.expect("apt harness: read_dir")) {
            if entry.file_name().to_string_lossy().ends_with(".sources") {
                let to = client.dir.join("etc/sources.list.d").join(entry.file_name());
                std::fs::copy(entry.path(), &to).unwrap_or_else(|e| panic!("apt harness: copy {}: {e}", to.display()));
            }
        }
        client
    }

    /// An apt client in `dir` with no source yet.
    fn empty(dir: &Path) -> AptClient {
        assert!(
            Path::new(APT_GET).exists(),
            "{APT_GET} not found: these tests need the real apt client (apt-get install apt)"
        );
        let dir = dir.to_path_buf();
        let d = |p: &str| dir.join(p);
        mkdirs(&[
            d("etc/sources.list.d"),
            d("etc/apt.conf.d"),
            d("etc/preferences.d"),
            d("etc/trusted.gpg.d"),
            d("state/lists/partial"),
            d("cache/archives/partial"),
            d("log"),
            d("downloads"),
        ]);
        let write = |p: PathBuf, text: String| {
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("apt harness: write {}: {e}", p.display()))
        };
        write(d("state/status"), String::new());
        write(d("etc/sources.list"), String::new());
        write(d("apt.conf"), apt_conf(&dir));
        AptClient { dir, sources: 0 }
    }

    /// Another `deb [signed-by=key] …` line, in its own file.
    pub fn add_source(&mut self, sources_line: &str, key: &Path) {
        let line = sources_line.trim().trim_start_matches("deb ").trim();
        let key = std::fs::canonicalize(key).unwrap_or_else(|e| panic!("apt harness: key {}: {e}", key.display()));
        self.sources += 1;
        let path = self.dir.join(format!("etc/sources.list.d/fixture{}.list", self.sources));
        let text = format!("deb [signed-by={}] {line}\n", key.display());
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("apt harness: write {}: {e}", path.display()));
    }

    /// Append `line` (an apt.conf statement, e.g. `Acquire::By-Hash "force";`) to this client's
    /// configuration.
    pub fn configure(&self, line: &str) {
        let path = self.dir.join("apt.conf");
        let mut text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("apt harness: {}: {e}", path.display()));
        text.push_str(line);
        text.push('\n');
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("apt harness: write {}: {e}", path.display()));
    }

    pub fn lists_dir(&self) -> PathBuf {
        self.dir.join("state/lists")
    }

    pub fn downloads_dir(&self) -> PathBuf {
        self.dir.join("downloads")
    }

    /// Run an apt binary (`apt-get`, `apt-cache`) with this client's configuration.
    pub fn run(&self, program: &str, args: &[&str], cwd: &Path) -> Result<Output, AptError> {
        let cmd = format!("{program} {}", args.join(" "));
        let mut command = Command::new(program);
        command.args(args).current_dir(cwd).stdin(Stdio::null());
        command.env("APT_CONFIG", self.dir.join("apt.conf")).env("LC_ALL", "C");
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        command.output().map_err(|source| AptError::Spawn { cmd, source })
    }

    /// `apt-get update`, unchecked: for tests that expect apt to refuse a repository.
    pub fn update_raw(&self) -> Result<Output, AptError> {
        self.run(APT_GET, &["-q", "update"], &self.dir)
    }

    /// `apt-get update`; Err unless it exited 0 without any error or warning.
    pub fn update(&self) -> Result<Output, AptError> {
        let output = self.update_raw()?;
        clean(output, "apt-get update")
    }

    /// Every package version in the downloaded Packages lists.
    pub fn listed_packages(&self) -> Result<Vec<ListedPackage>, AptError> {
        let lists = self.lists_dir();
        let lists_err = |source| AptError::Lists { dir: lists.display().to_string(), source };
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(&lists).map_err(lists_err)? {
            let path = entry.map_err(lists_err)?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_Packages")) {
                out.extend(parse_list(&std::fs::read_to_string(&path).map_err(lists_err)?));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// `apt-get download NAME=VERSION …` for every version in the lists (into `downloads/`);
    /// apt checks each file's hash against the index. Returns the .deb files, sorted.
    pub fn download_all(&self) -> Result<Vec<PathBuf>, AptError> {
        let wanted: BTreeSet<String> =
            self.listed_packages()?.into_iter().map(|p| format!("{}={}", p.name, p.version)).collect();
        // Start from an empty downloads/ so repeated rounds (load tests) count only this one.
        let dl = self.downloads_dir();
        for entry in
            std::fs::read_dir(&dl).map_err(|source| AptError::Lists { dir: dl.display().to_string(), source })?
        {
            let path = entry.map_err(|source| AptError::Lists { dir: dl.display().to_string(), source })?.path();
            if path.is_file() {
                std::fs::remove_file(&path)
                    .map_err(|source| AptError::Lists { dir: dl.display().to_string(), source })?;
            }
        }
        let mut args = vec!["-q", "download"];
        args.extend(wanted.iter().map(String::as_str));
        let output = self.run(APT_GET, &args, &self.downloads_dir())?;
        clean(output, "apt-get download")?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dl)
            .map_err(|source| AptError::Lists { dir: dl.display().to_string(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        files.sort();
        if files.len() != wanted.len() {
            return Err(AptError::Incomplete { wanted: wanted.len(), got: files.len(), files });
        }
        Ok(files)
    }
}

fn apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "Dir::State \"{d}/state\";\nDir::State::status \"{d}/state/status\";\nDir::Cache \"{d}/cache\";\n\
         Dir::Etc \"{d}/etc\";\nDir::Etc::sourcelist \"sources.list\";\nDir::Etc::sourceparts \"sources.list.d\";\n\
         Dir::Etc::parts \"apt.conf.d\";\nDir::Etc::preferencesparts \"preferences.d\";\n\
         Dir::Etc::trustedparts \"trusted.gpg.d\";\nDir::Log \"{d}/log\";\n\
         APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\n\
         Acquire::Languages {{ \"en\"; }};\nAPT::Sandbox::User \"root\";\nAcquire::Retries \"0\";\n\
         Acquire::http::Timeout \"30\";\n"
    )
}

/// Err unless apt exited 0 and printed no `E:`/`W:` line and no `Err:` fetch.
fn clean(output: Output, cmd: &str) -> Result<Output, AptError> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let bad_line = stderr.lines().any(|l| l.starts_with("E:") || l.starts_with("W:"))
        || stdout.lines().any(|l| l.starts_with("Err:"));
    if output.status.success() && !bad_line {
        Ok(output)
    } else {
        Err(AptError::Failed { cmd: cmd.into(), output })
    }
}

/// (Package, Version, Architecture) of each stanza of an apt list file.
fn parse_list(text: &str) -> Vec<ListedPackage> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
            };
            Some(ListedPackage { name: field("Package")?, version: field("Version")?, arch: field("Architecture")? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_stanzas() {
        let text =
            "Package: a\nVersion: 1:2\nArchitecture: all\n\nPackage: b\nVersion: 3\nArchitecture: amd64\n\nJunk: x\n";
        let got = parse_list(text);
        let names: Vec<_> = got.iter().map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str())).collect();
        assert_eq!(names, [("a", "1:2", "all"), ("b", "3", "amd64")]);
    }
}
