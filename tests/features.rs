//! A build with some backends left out (cargo features) refuses the others'
//! URLs at start, naming the feature it lacks, instead of failing later.
//! `.ci/run` runs this with `--no-default-features --features sqlite` and
//! with `--features postgres`; a default build has every backend, so these
//! tests are not compiled into it.

#![allow(unused)]

use std::process::{Command, Output};

/// Runs hop in an empty directory; its output, and what it left there.
fn hop(args: &[&str]) -> (Output, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .current_dir(dir.path())
        .env(
            "HOP_CLUSTER_KEY",
            "features-test-key-0123456789abcdef0123456789",
        )
        .output()
        .unwrap();
    let left = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    (out, left)
}

fn refused_naming(args: &[&str], feature: &str) {
    let (out, left) = hop(args);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} started anyway: {said}");
    // Refused before anything opens: no database file was created.
    assert!(left.is_empty(), "{args:?} refused after writing {left:?}");
    assert!(
        said.contains(&format!("{feature} feature")),
        "{args:?} does not name the {feature} feature: {said}"
    );
}

#[cfg(all(feature = "sqlite", not(feature = "redis")))]
#[test]
fn cluster_mode_needs_the_redis_feature() {
    let db = "sqlite://hop.db";
    let redis = "redis://127.0.0.1:1/";
    refused_naming(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            db,
            "--redis-url",
            redis,
        ],
        "redis",
    );
    refused_naming(
        &["worker", "--database-url", db, "--redis-url", redis],
        "redis",
    );
}

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_urls_need_the_postgres_feature() {
    let db = "postgres://hop@127.0.0.1:1/hop";
    refused_naming(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", db],
        "postgres",
    );
    refused_naming(&["migrate", "--database-url", db], "postgres");
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_urls_need_the_sqlite_feature() {
    refused_naming(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite://hop.db",
        ],
        "sqlite",
    );
}
