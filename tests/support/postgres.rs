//! A private PostgreSQL server for tests: `initdb` and `pg_ctl` in a temp
//! dir, on a free port, run as the `postgres` user when the tests run as
//! root (PostgreSQL refuses to run as root). Tests may stop and start it to
//! check behaviour under faults; it is stopped (immediately) on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<&'static str>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The newest installed PostgreSQL's binaries (Debian keeps them off PATH).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries are missing: apt-get install postgresql (scripts/test.sh does)")
    })
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("hop-pg").tempdir().unwrap();
        let as_user = nix::unistd::Uid::effective()
            .is_root()
            .then_some("postgres");
        if as_user.is_some() {
            // The server's user must reach its data dir.
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let server = PgServer {
            port: free_port(),
            dir,
            bin,
            as_user,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data().to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A server shared by every test of this test binary, stopped by a
    /// watchdog when the binary exits (statics are never dropped).
    pub fn shared() -> &'static PgServer {
        static SHARED: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let server = PgServer::start();
            let pg_ctl = server.bin.join("pg_ctl");
            let stop = match server.as_user {
                Some(user) => format!("runuser -u {user} -- {}", pg_ctl.display()),
                None => pg_ctl.display().to_string(),
            };
            let script = format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
                pid = std::process::id(),
                data = server.data().display(),
                dir = server.dir.path().display(),
            );
            // Outlives this process by design (then reparented to init).
            #[allow(clippy::zombie_processes)]
            Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("watchdog starts");
            server
        })
    }

    /// Starts (or restarts after `stop`) the server and waits for it.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database on this server.
    pub fn create_db(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hop_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let host = self.dir.path().to_string_lossy().into_owned();
        self.run(
            "createdb",
            &[
                "-h",
                &host,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        );
        name
    }

    /// A plain-text `pg_dump` of the database at `url` (schema and data).
    pub fn dump(&self, url: &str) -> Vec<u8> {
        // A client: it needs no other user than the one running the tests.
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["--no-password", "--format=plain", "--dbname", url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}
