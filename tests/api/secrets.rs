//! Credentials in URLs never reach what hop prints: errors, logs (text and
//! JSON, at debug level) and messages of every subcommand that takes one.

use std::process::Stdio;

/// Runs `hop ARGS` with a debug log in `format`, for at most 20 s; returns
/// everything it wrote.
async fn output_of(args: &[&str], format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .current_dir(dir.path())
        .env("HOP_LOG", "debug")
        .env("HOP_LOG_FORMAT", format)
        .env("HOP_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("hop gave up within 20 s")
        .unwrap();
    assert!(!out.status.success(), "{args:?} cannot succeed here");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn passwords_in_urls_are_never_printed() {
    // A closed port on this machine: connections are refused at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pg = format!("postgres://hop:S3cretPW@127.0.0.1:{closed}/hop");
    let redis = format!("redis://default:S3cretPW@127.0.0.1:{closed}/0");
    let sqlite = format!(
        "sqlite://{}/x.db",
        tempfile::tempdir().unwrap().path().display()
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["migrate", "--database-url", "pgsql://hop:S3cretPW@db/hop"],
        vec!["migrate", "--database-url", "pg sql://hop:S3cretPW@db/hop"],
        vec!["migrate", "--database-url", &pg],
        vec!["keys", "create", "--name", "x", "--database-url", &pg],
        vec!["serve", "--database-url", "pgsql://hop:S3cretPW@db/hop"],
        vec!["serve", "--database-url", &sqlite, "--redis-url", &redis],
        vec!["worker", "--database-url", &pg, "--redis-url", &redis],
    ];
    for args in &cases {
        for format in ["text", "json"] {
            let printed = output_of(args, format).await;
            assert!(
                !printed.contains("S3cretPW"),
                "{args:?} ({format}) printed the password:\n{printed}"
            );
            assert!(
                printed.contains("***") || printed.to_lowercase().contains("error"),
                "{args:?} ({format}) said nothing useful:\n{printed}"
            );
        }
    }
}
