//! A private redis-server for tests, on a free port in a temp dir, with an
//! append-only file fsynced on every write: a restart keeps the stream, as
//! a production Redis holding the click stream must.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Further configuration (`--requirepass`, ACL users, TLS).
    extra: Vec<String>,
    /// Whether clients speak TLS to it (then `port` is the TLS port).
    tls: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A server with more configuration, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("hop-redis")
                .tempdir()
                .unwrap(),
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            tls: false,
        };
        server.start_again();
        server
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1
    /// signed by a CA made here; returns it and the CA's PEM file.
    pub fn start_tls() -> (RedisServer, std::path::PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("hop-redis-tls")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let sh = |args: &str| {
            let ok = Command::new("sh")
                .arg("-c")
                .arg(args)
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "{args}");
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hop-test-ca \
            -keyout ca.key -out ca.pem",
        );
        sh("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
            -keyout server.key -out server.csr");
        sh(
            "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && \
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -extfile ext.cnf -out server.pem",
        );
        let file = |n: &str| d.join(n).to_string_lossy().into_owned();
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            extra: vec![
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            tls: true,
            dir,
        };
        server.start_again();
        let ca = server.dir.path().join("ca.pem");
        (server, ca)
    }

    /// Where the server keeps its files (the append-only file).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Starts (or restarts) the server on the same port and data dir.
    pub fn start_again(&mut self) {
        let (port, tls_port) = if self.tls {
            ("0".to_owned(), self.port.to_string())
        } else {
            (self.port.to_string(), "0".to_owned())
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--tls-port",
                &tls_port,
                "--bind",
                "127.0.0.1",
                "--dir",
                &self.dir.path().to_string_lossy(),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash: no chance to write anything
    /// more) and waits for it to exit.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server the way an orchestrator does (SIGTERM: it finishes
    /// writing its append-only file) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
