//! The README's commands are the product's interface: every `pmirror-fs …` line in its shell and
//! cron blocks parses with the real CLI, every preset exists, the TOML and JSON examples load and
//! validate, and every repository path it names exists.

use clap::Parser as _;
use pmirror_fs::cli::Cli;
use pmirror_fs::config::presets::Preset;
use pmirror_fs::config::Config;
use std::path::Path;

use super::readme_text::blocks;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `pmirror-fs …` invocations in shell and cron lines: from the program name to a comment,
/// redirection or the end of the line.
fn invocations(body: &str) -> Vec<Vec<String>> {
    body.lines()
        .filter_map(|line| {
            let start = line.find("pmirror-fs ").filter(|i| *i == 0 || line[..*i].ends_with(' '))?;
            let cmd = &line[start..];
            let cmd = cmd.split(['#', '>']).next().unwrap_or(cmd);
            Some(cmd.split_whitespace().map(str::to_owned).collect())
        })
        .collect()
}

#[test]
fn readme_commands_parse_presets_exist_and_examples_load() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let blocks = blocks(&readme, None);
    let mut parsed = 0;
    for (info, body) in &blocks {
        if info != "sh" && !body.contains("/etc/cron.d") {
            continue;
        }
        for args in invocations(body) {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("README command {args:?} does not parse:\n{e}"));
            if let Some(i) = args.iter().position(|a| a == "--preset") {
                args[i + 1].parse::<Preset>().unwrap_or_else(|e| panic!("README preset: {e}"));
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 11, "only {parsed} README commands found");
    let tmp = tempfile::tempdir().unwrap();
    let key = crate::support::write_public_key(tmp.path());
    let tomls: Vec<&String> = blocks.iter().filter(|(i, _)| i == "toml").map(|(_, b)| b).collect();
    assert_eq!(tomls.len(), 6, "TOML examples");
    for (i, body) in tomls.iter().enumerate() {
        // The [[medium]] example names the mirrors of the example before it.
        let body = match body.starts_with("[[medium]]") {
            true => format!("{}\n{body}", tomls[i - 1]),
            false => body.to_string(),
        };
        let body = body.replace("/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg", &key.display().to_string());
        Config::parse(&body, &tmp.path().join("config.toml")).unwrap_or_else(|e| panic!("README config: {e}\n{body}"));
    }
    let json = blocks.iter().find(|(i, _)| i == "json").expect("JSON example");
    let doc: serde_json::Value = serde_json::from_str(&json.1).expect("README JSON parses");
    let schema = std::fs::read_to_string(Path::new(ROOT).join("docs/status.schema.json")).unwrap();
    let errors = super::checks::validate(&serde_json::from_str(&schema).unwrap(), &doc);
    assert!(errors.is_empty(), "README status example: {errors:?}");
    for word in readme.split(['`', ' ', '(', ')', '[', ']', '\n']) {
        let path = word.trim_end_matches(['.', ',', ':', '*']);
        if ["scripts/", "docs/"].iter().any(|p| path.starts_with(p)) {
            assert!(Path::new(ROOT).join(path).exists(), "README names {path}, which does not exist");
        }
    }
}
