//! make-upstream: write a signed fixture upstream repository tree (the same generator the
//! integration tests use) for the demo script and manual experiments.
//!
//! ```text
//! cargo run --release --example make-upstream -- --out DIR --flavor proxmox|debian [--generation N]
//!     [--secret-key FILE]
//! ```
//!
//! Writes `DIR/debian/…` (replacing a previous tree there), `DIR/key.gpg` (public key, binary,
//! for a mirror's `key =` or apt's `signed-by=`) and `DIR/key.asc` (armored). The secret key is
//! kept in `--secret-key` (default `DIR/secret-key.tsk`) and reused, so successive generations
//! written into the same DIR stay signed by the same key.

#[allow(dead_code)]
#[path = "../tests/integration/support/fixture.rs"]
mod fixture;

use anyhow::{bail, Context, Result};
use fixture::{Flavor, Upstream};
use pmirror_fs::apt::signature::testkey::{self, SigningKey};
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: make-upstream --out DIR --flavor proxmox|debian [--generation N] [--secret-key FILE]";

struct Args {
    out: PathBuf,
    flavor: Flavor,
    generation: u32,
    secret_key: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let (mut out, mut flavor, mut generation, mut secret_key) = (None, None, 0, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--flavor" => flavor = Some(value()?.parse::<Flavor>()?),
            "--generation" => generation = value()?.parse().context("--generation must be a number")?,
            "--secret-key" => secret_key = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        out: out.with_context(|| format!("--out is required\n{USAGE}"))?,
        flavor: flavor.with_context(|| format!("--flavor is required\n{USAGE}"))?,
        generation,
        secret_key,
    })
}

/// Reuse the key stored at `path`, or make one and store it there.
fn load_or_create_key(path: &Path) -> Result<SigningKey> {
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return SigningKey::from_tsk_bytes(&bytes).with_context(|| format!("loading key {}", path.display()));
    }
    let key = testkey::generate("pmirror-fs demo upstream <demo@pmirror-fs.invalid>")?;
    std::fs::write(path, key.to_tsk_bytes()?).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let key = load_or_create_key(&args.secret_key.clone().unwrap_or_else(|| args.out.join("secret-key.tsk")))?;
    let upstream = Upstream::build(args.flavor, args.generation, &key)?;
    // Every fixture path lives under debian/: replace that tree so removed packages disappear.
    let tree = args.out.join("debian");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing old {}", tree.display()))?;
    }
    upstream.write_to(&args.out)?;
    std::fs::write(args.out.join("key.gpg"), key.public_binary()?)?;
    std::fs::write(args.out.join("key.asc"), key.public_armored()?)?;
    tracing::info!(
        flavor = ?args.flavor,
        generation = args.generation,
        files = upstream.files.len(),
        out = %args.out.display(),
        key = %key.fingerprint(),
        "fixture upstream written"
    );
    Ok(())
}
