//! The guided setup of `config add` on a terminal: product (Proxmox's or Debian), suite, channel
//! (Debian: standard or non-free), architectures and key for each mirror, the store directory
//! for a new config, then a confirmation. Generic over the input and output so the dialogue is
//! tested with in-memory text.

use crate::config::presets::{self, AddOptions, Preset};
use crate::config::validate;
use std::io::{self, BufRead, Write};

/// What the operator chose.
#[derive(Debug, Default)]
pub struct Answers {
    /// `[store] dir` for a config file that does not exist yet.
    pub store: Option<String>,
    pub mirrors: Vec<(Preset, AddOptions)>,
}

pub struct Dialogue<R, W> {
    input: R,
    output: W,
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "input ended before the setup was complete; nothing written")
}

impl<R: BufRead, W: Write> Dialogue<R, W> {
    pub fn new(input: R, output: W) -> Self {
        Dialogue { input, output }
    }

    /// Asks until `check` accepts the answer (an empty answer means `default`).
    fn ask<T>(&mut self, question: &str, default: &str, check: impl Fn(&str) -> Result<T, String>) -> io::Result<T> {
        loop {
            write!(self.output, "{question} [{default}]: ")?;
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                return Err(eof());
            }
            let answer = match line.trim() {
                "" => default,
                text => text,
            };
            match check(answer) {
                Ok(v) => return Ok(v),
                Err(why) => writeln!(self.output, "  {why}")?,
            }
        }
    }

    fn choose(&mut self, question: &str, choices: &[&str]) -> io::Result<String> {
        let list = choices.join(", ");
        let default = choices.first().copied().unwrap_or_default();
        self.ask(&format!("{question} ({list})"), default, |a| {
            choices.iter().find(|c| **c == a).map(|c| (*c).to_owned()).ok_or_else(|| format!("choose one of {list}"))
        })
    }

    fn yes(&mut self, question: &str, default: bool) -> io::Result<bool> {
        let label = if default { "Y/n" } else { "y/N" };
        self.ask(question, label, |a| match a.to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(true),
            "n" | "no" => Ok(false),
            _ if a == label => Ok(default),
            _ => Err("answer y or n".to_owned()),
        })
    }

    fn mirror(&mut self) -> io::Result<(Preset, AddOptions)> {
        let all = presets::all();
        let product = self.choose("Product", &presets::products())?;
        let mut suites: Vec<&str> = all.iter().filter(|p| p.product == product).map(|p| p.suite).collect();
        suites.dedup();
        let suite = self.choose("Suite", &suites)?;
        let channels: Vec<&str> =
            all.iter().filter(|p| p.product == product && p.suite == suite).map(|p| p.channel.name()).collect();
        let channel = self.choose("Repository", &channels)?;
        let preset: Preset = format!("{product}:{suite}:{channel}")
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let architectures = self.ask("Architectures", "amd64 all", |a| {
            let archs: Vec<String> = a.split([' ', ',']).filter(|w| !w.is_empty()).map(str::to_owned).collect();
            archs.iter().try_for_each(|arch| validate::architecture(arch))?;
            Ok(archs)
        })?;
        let key = self.ask("Release key file", &preset.key, |a| Ok::<_, String>(a.to_owned()))?;
        let key = (key != preset.key).then_some(key);
        Ok((preset, AddOptions { architectures, key, ..AddOptions::default() }))
    }

    /// Runs the dialogue; `None` when the operator declined at the end.
    pub fn run(&mut self, config_exists: bool) -> io::Result<Option<Answers>> {
        writeln!(self.output, "pmirror-fs guided setup: add Proxmox and Debian repositories to the configuration.")?;
        let mut answers = Answers::default();
        if !config_exists {
            let store = self.ask("Store directory (pool, catalog)", "/var/lib/pmirror-fs", |a| {
                if a.starts_with('/') {
                    Ok(a.to_owned())
                } else {
                    Err("give an absolute path".to_owned())
                }
            })?;
            answers.store = Some(store);
        }
        loop {
            answers.mirrors.push(self.mirror()?);
            if !self.yes("Add another repository?", false)? {
                break;
            }
        }
        for (preset, _) in &answers.mirrors {
            writeln!(self.output, "  {preset}")?;
        }
        Ok(self.yes("Write this configuration?", true)?.then_some(answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, exists: bool) -> (io::Result<Option<Answers>>, String) {
        let mut out = Vec::new();
        let result = Dialogue::new(input.as_bytes(), &mut out).run(exists);
        (result, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn dialogues() {
        // (input, config exists, specs chosen, store, key overrides)
        let cases: &[(&str, bool, &[&str], Option<&str>)] = &[
            ("\n\n\n\n\n\n\n\n", false, &["pve:bookworm:no-subscription"], Some("/var/lib/pmirror-fs")),
            ("pbs\nbullseye\ntest\namd64\n\nn\ny\n", true, &["pbs:bullseye:test"], None),
            (
                "debian\nbookworm-security\n\n\n\ny\ndebian\nbookworm\nnon-free\n\n\nn\n\n",
                true,
                &["debian:bookworm-security", "debian:bookworm:non-free"],
                None,
            ),
            (
                "/srv/m\nceph-reef\n\nenterprise\narm64 all\n\ny\npbs-client\nbuster\n\n\n\nn\n\n",
                false,
                &["ceph-reef:bookworm:enterprise", "pbs-client:buster:no-subscription"],
                Some("/srv/m"),
            ),
        ];
        for (input, exists, specs, store) in cases {
            let (got, out) = run(input, *exists);
            let answers = got.unwrap_or_else(|e| panic!("{input:?}: {e}\n{out}")).expect("confirmed");
            let got_specs: Vec<String> = answers.mirrors.iter().map(|(p, _)| p.spec()).collect();
            assert_eq!(got_specs, *specs, "{input:?}\n{out}");
            assert_eq!(answers.store.as_deref(), *store, "{input:?}");
        }
    }

    #[test]
    fn re_asks_on_bad_answers_and_stops_at_eof() {
        let (got, out) = run("relative\n/s\nfoo\npve\nsid\nbookworm\n\nsparc\namd64\n/k.gpg\nmaybe\nn\nn\n", false);
        assert!(got.expect("completes").is_none(), "declined at the end:\n{out}");
        for needle in ["give an absolute path", "choose one of pve", "choose one of bookworm", "sparc", "answer y or n"]
        {
            assert!(out.contains(needle), "no {needle:?} in\n{out}");
        }
        let (got, _) = run("pve\n", true);
        assert_eq!(got.expect_err("eof").kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn key_override_is_kept() {
        let (got, _) = run("\n\n\n\n/tmp/k.gpg\n\n\n", true);
        let answers = got.expect("ok").expect("confirmed");
        assert_eq!(answers.mirrors[0].1.key.as_deref(), Some("/tmp/k.gpg"));
        assert_eq!(answers.mirrors[0].1.architectures, ["amd64", "all"]);
    }
}
