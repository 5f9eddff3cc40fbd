//! Browser sessions of the web UI. A session is created when someone signs in
//! with an API key or opens a link's secret dashboard URL; the browser holds
//! only a random session id (in an HttpOnly cookie), never the key or secret.
//! The server keeps the SHA-256 of the key (so a revoked key stops working at
//! once) and the hashes of the link secrets the browser has shown.
//!
//! Sessions are kept by a [`SessionStore`]. The default one keeps them in
//! the link store (SQLite, PostgreSQL), so they survive restarts and are
//! shared by every node; idle sessions expire.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use chrono::Utc;

use crate::store::{Store, StoreError};

/// Most link secrets one session remembers (oldest forgotten first).
pub const MAX_LINK_SECRETS: usize = 64;

/// The random id in the session cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A cookie value; `None` when it cannot be one of ours.
    pub fn parse(s: &str) -> Option<SessionId> {
        (s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionId(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What stores key sessions by, so a dump of the store holds no usable id.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// SHA-256 of the API key signed in with, if any.
    pub key_hash: Option<[u8; 32]>,
    /// SHA-256 of link secrets this browser has presented.
    pub link_secrets: Vec<[u8; 32]>,
    /// When the session began (ms; 0 before it is first saved, and for
    /// sessions written before this field existed, which count as expired).
    /// However active it is, a session ends `max_age` after this.
    #[serde(default)]
    pub created_at: i64,
}

impl Session {
    pub fn add_link_secret(&mut self, hash: [u8; 32]) {
        if !self.link_secrets.contains(&hash) {
            if self.link_secrets.len() >= MAX_LINK_SECRETS {
                self.link_secrets.remove(0);
            }
            self.link_secrets.push(hash);
        }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn load(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;
    async fn save(&self, id: &SessionId, session: &Session) -> Result<(), StoreError>;
    async fn remove(&self, id: &SessionId) -> Result<(), StoreError>;
}

/// Sessions in the link store, expiring after `idle` without use, and
/// `max_age` after they began however active they are. The idle expiry is
/// pushed back when a session is used and half its idle time has passed, so
/// reading a session rarely writes.
pub struct StoredSessions {
    store: Arc<dyn Store>,
    idle: Duration,
    max_age: Duration,
}

impl StoredSessions {
    pub fn new(store: Arc<dyn Store>, idle: Duration, max_age: Duration) -> StoredSessions {
        StoredSessions {
            store,
            idle,
            max_age,
        }
    }

    fn expiry(&self, now: i64) -> i64 {
        now + self.idle.as_millis() as i64
    }
}

#[async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let Some((data, expires_at)) = self.store.load_session(&id.hash(), now).await? else {
            return Ok(None);
        };
        let Ok(session) = serde_json::from_str::<Session>(&data) else {
            // Written by an incompatible version: treat as signed out.
            return Ok(None);
        };
        if now - session.created_at > self.max_age.as_millis() as i64 {
            self.store.remove_session(&id.hash()).await?;
            return Ok(None);
        }
        if expires_at - now < self.idle.as_millis() as i64 / 2 {
            self.store
                .save_session(&id.hash(), &data, self.expiry(now))
                .await?;
        }
        Ok(Some(session))
    }

    async fn save(&self, id: &SessionId, session: &Session) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_millis();
        let mut session = session.clone();
        if session.created_at == 0 {
            session.created_at = now;
        }
        let data =
            serde_json::to_string(&session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .save_session(&id.hash(), &data, self.expiry(now))
            .await
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        self.store.remove_session(&id.hash()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_round_trip_and_forget() {
        let store = StoredSessions::new(
            Arc::new(crate::store::memory::MemoryStore::default()),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(id.expose()), Some(id.clone()));
        assert_eq!(SessionId::parse("short"), None);
        assert_eq!(SessionId::parse(&"a".repeat(42).replace('a', "!")), None);
        assert!(store.load(&id).await.unwrap().is_none());
        let mut s = Session::default();
        s.add_link_secret([1; 32]);
        s.add_link_secret([1; 32]);
        assert_eq!(s.link_secrets.len(), 1);
        store.save(&id, &s).await.unwrap();
        let loaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(loaded.link_secrets, s.link_secrets);
        assert!((Utc::now().timestamp_millis() - loaded.created_at).abs() < 60_000);
        store.remove(&id).await.unwrap();
        assert!(store.load(&id).await.unwrap().is_none());
        assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
    }

    #[tokio::test]
    async fn sessions_end_after_their_absolute_lifetime_however_active() {
        let store = StoredSessions::new(
            Arc::new(crate::store::memory::MemoryStore::default()),
            Duration::from_secs(3600),
            Duration::from_secs(2 * 3600),
        );
        let now = Utc::now().timestamp_millis();
        let id = SessionId::generate();
        let mut s = Session {
            created_at: now - 3600 * 1000,
            ..Session::default()
        };
        store.save(&id, &s).await.unwrap();
        assert!(store.load(&id).await.unwrap().is_some(), "an hour old");
        // Used a moment ago (so not idle), but begun more than 2 h ago.
        s.created_at = now - 2 * 3600 * 1000 - 1000;
        store.save(&id, &s).await.unwrap();
        assert!(
            store.load(&id).await.unwrap().is_none(),
            "past its lifetime"
        );
        assert!(store.load(&id).await.unwrap().is_none(), "and removed");
        // Written before sessions had a beginning: expired.
        let old = SessionId::generate();
        store
            .store
            .save_session(
                &old.hash(),
                r#"{"key_hash":null,"link_secrets":[]}"#,
                now + 60_000,
            )
            .await
            .unwrap();
        assert!(store.load(&old).await.unwrap().is_none());
    }

    #[test]
    fn secrets_are_bounded() {
        let mut s = Session::default();
        for i in 0..(MAX_LINK_SECRETS + 5) {
            s.add_link_secret([i as u8; 32]);
        }
        assert_eq!(s.link_secrets.len(), MAX_LINK_SECRETS);
        assert_eq!(s.link_secrets[0], [5u8; 32]);
    }
}
