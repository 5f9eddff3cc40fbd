//! Stamps the binary with the commit it was built from (`hop --version`,
//! `hop_build_info`): `HOP_GIT_COMMIT` when set (a container build has no
//! `.git`; the Dockerfile passes it as a build argument), else `git
//! rev-parse` in a checkout, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOP_GIT_COMMIT");
    // Only paths that exist: a missing one would rerun this on every build.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let explicit = std::env::var("HOP_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty());
    let from_git = || {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = explicit
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HOP_GIT_COMMIT={commit}");
}
