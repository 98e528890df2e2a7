//! What the ops tests share: the README's code blocks and command lines (the tests run the
//! README's own lines, so a README change breaks them), and nginx sites moved to a test port.

use crate::support::client;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md")
}

/// (info string, body) of the fenced blocks of `text`: all of them, or only those in the `## `
/// section whose title starts with `section`.
pub fn blocks(text: &str, section: Option<&str>) -> Vec<(String, String)> {
    let (mut in_section, mut current, mut out) = (section.is_none(), None::<(String, String)>, Vec::new());
    for line in text.lines() {
        match (line.strip_prefix("```"), current.take()) {
            (Some(info), None) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(block)) if in_section => out.push(block),
            (Some(_), Some(_)) => {}
            (None, Some((info, body))) => current = Some((info, body + line + "\n")),
            (None, None) => {
                if let (Some(title), Some(heading)) = (section, line.strip_prefix("## ")) {
                    in_section = heading.starts_with(title);
                }
            }
        }
    }
    out
}

/// The blocks of README section `title` (there must be some).
pub fn blocks_in(readme: &str, title: &str) -> Vec<(String, String)> {
    let out = blocks(readme, Some(title));
    assert!(!out.is_empty(), "README has no code block under a heading starting {title:?}");
    out
}

/// The command lines of a block: comments and blank lines dropped.
pub fn command_lines(body: &str) -> Vec<String> {
    let uncommented = body.lines().map(|l| l.split(" #").next().unwrap_or(l).trim());
    uncommented.filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// The command lines of the ```sh blocks in README section `title`.
pub fn sh_lines(title: &str) -> Vec<String> {
    let lines: Vec<String> = blocks_in(&readme(), title)
        .iter()
        .filter(|(info, _)| info == "sh")
        .flat_map(|(_, body)| command_lines(body))
        .collect();
    assert!(!lines.is_empty(), "README has no sh block under a heading starting {title:?}");
    lines
}

/// The one line of `lines` that starts with `prefix`.
pub fn one_line(lines: &[String], prefix: &str) -> String {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "README lines starting {prefix:?}: {lines:?}");
    found[0].clone()
}

/// An nginx site listening on 127.0.0.1:`port` only (its first `listen`; the others, `[::]:80`
/// and the like, dropped), each `root` path passed through `root`.
pub fn localize_site(site: &str, port: u16, root: impl Fn(&str) -> String) -> String {
    let (mut out, mut listening) = (String::new(), false);
    for line in site.lines() {
        let (indent, directive) = line.split_at(line.len() - line.trim_start().len());
        if directive.starts_with("listen ") {
            if !std::mem::replace(&mut listening, true) {
                out += &format!("{indent}listen 127.0.0.1:{port};\n");
            }
        } else if let Some(path) = directive.strip_prefix("root ") {
            out += &format!("{indent}root {};\n", root(path.trim_end_matches(';').trim()));
        } else {
            out += line;
            out.push('\n');
        }
    }
    out
}

/// GET from nginx on a loopback port.
pub fn get(port: u16, path: &str) -> client::Response {
    client::get(&format!("http://127.0.0.1:{port}{path}")).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
