//! A webhook receiver for tests: an HTTP server on a loopback port that
//! records every request (headers and body) and answers as the test
//! says: 2xx, 500, at random, slowly, or not at all (gone away, then back
//! on the same port).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Fail = 1,
    /// 500 to a third of requests, a hang past any timeout to another
    /// tenth, 200 to the rest.
    Flaky = 2,
    /// Answers 200 after 5 s.
    Slow = 3,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// What it was answered (0: nothing, it hung).
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    got: Mutex<Vec<Received>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mode = s.mode.load(Ordering::Relaxed);
    let roll: f64 = rand::random();
    let (status, hang) = match mode {
        0 => (StatusCode::NO_CONTENT, false),
        1 => (StatusCode::INTERNAL_SERVER_ERROR, false),
        2 if roll < 0.33 => (StatusCode::INTERNAL_SERVER_ERROR, false),
        2 if roll < 0.43 => (StatusCode::OK, true),
        3 => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, false)
        }
        _ => (StatusCode::OK, false),
    };
    s.got.lock().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: if hang { 0 } else { status.as_u16() },
    });
    if hang {
        // Past any timeout the tests give hop.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    status
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver {
            addr,
            shared: Arc::new(Shared::default()),
            server: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Goes away: the port refuses connections until [`Receiver::back`].
    pub fn away(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Comes back on the same port.
    pub async fn back(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.shared.got.lock().clone()
    }

    /// The requests answered 2xx, one per webhook-id (the receiver's
    /// deduplication): id → body.
    pub fn delivered(&self) -> BTreeMap<String, String> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| (r.id, r.body))
            .collect()
    }

    /// The click event ids in the delivered messages, and how many times
    /// an event id came in two different messages (must be 0).
    pub fn delivered_clicks(&self) -> (BTreeSet<String>, usize) {
        let mut ids = BTreeSet::new();
        let mut twice = 0;
        for body in self.delivered().values() {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            if v["type"] != "click" {
                continue;
            }
            for c in v["data"]["clicks"].as_array().unwrap() {
                if !ids.insert(c["event_id"].as_str().unwrap().to_owned()) {
                    twice += 1;
                }
            }
        }
        (ids, twice)
    }

    /// Waits until `done` holds of what was received, up to `limit`.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&Receiver) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {limit:?} for {what}; received {} requests",
                self.all().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a request's signature with the `standardwebhooks` crate.
pub fn verifies(secret: &str, r: &Received) -> bool {
    let mut h = axum::http::HeaderMap::new();
    h.insert("webhook-id", r.id.parse().unwrap());
    h.insert("webhook-timestamp", r.timestamp.parse().unwrap());
    h.insert("webhook-signature", r.signature.parse().unwrap());
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .is_ok()
}

/// Writes what was received as JSON lines (for the independent verifier,
/// `scripts/verify-webhooks.py`).
pub fn dump(received: &[Received], path: &std::path::Path) {
    let mut out = String::new();
    for r in received {
        out.push_str(
            &serde_json::json!({
                "webhook-id": r.id,
                "webhook-timestamp": r.timestamp,
                "webhook-signature": r.signature,
                "body": r.body,
            })
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}
