//! What webhooks keep in the store (see [`crate::webhooks`]): endpoints,
//! the outbox, messages fanned out of it per endpoint, and the delivery
//! log. The SQL stores keep them; a store that does not answers
//! [`StoreError::Unsupported`] (the defaults), and its link changes and
//! clicks write no outbox.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::webhook::{EventType, LinkEvent};
use crate::domain::{EnrichedClick, KeyId, LinkId};

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `wh_` and 26 characters.
    pub id: String,
    pub owner: Option<KeyId>,
    /// Every link of the instance (registered by an admin key).
    pub instance_wide: bool,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<EventType>,
    /// Only links with this tag.
    pub scope_tag: Option<String>,
    /// Only these links (slugs).
    pub scope_links: Option<Vec<String>>,
    /// `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, still signed with until
    /// `previous_until` (ms).
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Since when (ms) every delivery has failed; `None`: the last one
    /// succeeded.
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.contains(&kind)
    }

    /// Whether a link with this owner, tags and slug is in the endpoint's
    /// scope.
    pub fn covers(&self, owner: Option<KeyId>, tags: &[String], slug: &str) -> bool {
        if !self.instance_wide && (self.owner.is_none() || owner != self.owner) {
            return false;
        }
        if let Some(tag) = &self.scope_tag
            && !tags.iter().any(|t| t == tag)
        {
            return false;
        }
        if let Some(slugs) = &self.scope_links
            && !slugs.iter().any(|s| s == slug)
        {
            return false;
        }
        true
    }
}

/// What fan-out knows of a clicked link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    pub slug: String,
    pub owner: Option<KeyId>,
    pub tags: Vec<String>,
}

/// One outbox row, read back for fan-out.
#[derive(Debug, Clone)]
pub enum OutboxEntry {
    Link(LinkEvent),
    /// The clicks of one stored batch that still exist, each with its
    /// link (clicks of links deleted since are left out).
    Clicks(Vec<(EnrichedClick, std::sync::Arc<LinkFacts>)>),
}

/// A message to store for an endpoint (a fan-out's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub endpoint_id: String,
    /// Its `webhook-id`: a link event's id, a lone click's event id, or
    /// (for a batch of clicks) a fresh UUIDv7 fixed here, once.
    pub id: String,
    pub event_type: EventType,
    /// When its first event happened (ms).
    pub at: i64,
    pub events: u32,
    pub body: String,
    /// When it was made (ms): due then.
    pub created_at: i64,
    /// Retried until then (ms), then dead-lettered.
    pub retry_until: i64,
}

/// What a fan-out read: the endpoints and the outbox rows, oldest first.
pub struct FanOut<'a> {
    pub endpoints: &'a [Endpoint],
    pub entries: &'a [OutboxEntry],
}

/// The pure step that turns outbox rows into messages (given by
/// [`crate::webhooks`]; the store calls it inside its transaction).
pub type Planner<'p> = &'p (dyn Fn(FanOut<'_>) -> Vec<NewMessage> + Send + Sync);

/// A message's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Pending,
    Delivered,
    Dead,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Delivered => "delivered",
            MessageState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        [
            MessageState::Pending,
            MessageState::Delivered,
            MessageState::Dead,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub endpoint_id: String,
    pub id: String,
    pub event_type: EventType,
    pub at: i64,
    pub events: u32,
    pub body: String,
    pub state: MessageState,
    pub attempts: u32,
    pub retry_until: i64,
    pub next_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One delivery attempt, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub endpoint_id: String,
    pub message_id: String,
    pub at: i64,
    pub attempt: u32,
    /// The HTTP status answered; `None`: no answer (refused, timed out).
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response: Option<String>,
}

/// What became of a claimed message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again at this time (ms).
    Retry(i64),
    /// Out of retries: dead-lettered.
    Dead,
}

/// Which messages a replay sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelection {
    One(String),
    /// Messages whose first event happened in [from, to) (ms).
    Range {
        from: i64,
        to: i64,
    },
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Whether this store keeps webhooks at all.
    fn has_webhooks(&self) -> bool {
        false
    }
    async fn insert_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        let _ = e;
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Every endpoint (`owner: None`), or those of one key.
    async fn list_endpoints(&self, owner: Option<KeyId>) -> Result<Vec<Endpoint>, StoreError> {
        let _ = owner;
        Err(StoreError::Unsupported("webhooks"))
    }
    async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        let _ = id;
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Replaces the endpoint's mutable fields; false if it is gone.
    async fn update_endpoint(&self, e: &Endpoint) -> Result<bool, StoreError> {
        let _ = e;
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Deletes the endpoint, its messages and its log; false if it was not
    /// there.
    async fn delete_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Takes up to `limit` outbox rows (oldest first; rows another worker
    /// holds are skipped) for `worker`, lets `plan` make messages of them,
    /// then stores those (a message already there is kept as it is) and
    /// deletes the rows in one transaction, unless the rows were meanwhile
    /// taken by another worker (the take runs out after a minute). Returns
    /// how many rows were fanned out.
    async fn fan_out(
        &self,
        worker: &str,
        now: i64,
        limit: usize,
        plan: Planner<'_>,
    ) -> Result<usize, StoreError> {
        let _ = (worker, now, limit, plan);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Leases (to `worker`) due pending messages of enabled endpoints until
    /// `lease_until` (at most `per_endpoint` of one endpoint, `limit` in
    /// all; none of the endpoints in `busy`), counting the attempt; a leased message is nobody else's until
    /// the lease runs out (a worker that dies hands it over that way).
    async fn claim_messages(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        busy: &[String],
        per_endpoint: usize,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let _ = (worker, now, lease_until, busy, per_endpoint, limit);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Logs an attempt and settles its message. A success clears the
    /// endpoint's failure; a failure starts it, and once it has lasted
    /// `disable_after` ms, the endpoint is disabled with `reason`.
    async fn record_attempt(
        &self,
        attempt: &Attempt,
        outcome: Outcome,
        disable_after: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _ = (attempt, outcome, disable_after, reason);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// An endpoint's messages, newest event first (by `at`, then id),
    /// after the message `before` (its `at` and id) if given, of one state
    /// if given.
    async fn list_messages(
        &self,
        endpoint: &str,
        state: Option<MessageState>,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let _ = (endpoint, state, before, limit);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// An endpoint's delivery log, newest first, before attempt `before`.
    async fn list_attempts(
        &self,
        endpoint: &str,
        message: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Attempt>, StoreError> {
        let _ = (endpoint, message, before, limit);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Makes the selected messages of an endpoint pending again, due now,
    /// with a fresh retry window ending `retry_until`; returns how many.
    async fn replay_messages(
        &self,
        endpoint: &str,
        which: &ReplaySelection,
        now: i64,
        retry_until: i64,
    ) -> Result<u64, StoreError> {
        let _ = (endpoint, which, now, retry_until);
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Deletes delivered and dead messages finished before `before`, and
    /// log rows older than it. Returns rows deleted.
    async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        let _ = before;
        Err(StoreError::Unsupported("webhooks"))
    }
    /// Counts for `/metrics`: outbox rows waiting, pending messages, dead
    /// messages.
    async fn webhook_backlog(&self) -> Result<(u64, u64, u64), StoreError> {
        Err(StoreError::Unsupported("webhooks"))
    }
}

/// A click as a click outbox row names it: the clicks table's key.
pub type ClickKey = (LinkId, i64, uuid::Uuid);

/// The body of a click outbox row: each click's key, 32 bytes (link id
/// and time, big-endian, then the event id).
pub fn click_keys_blob(clicks: &[ClickKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(clicks.len() * 32);
    for (link, at, id) in clicks {
        out.extend_from_slice(&link.0.to_be_bytes());
        out.extend_from_slice(&at.to_be_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// The keys in a click outbox row (a trailing partial key is corrupt).
pub fn click_keys_of(blob: &[u8]) -> Result<Vec<ClickKey>, StoreError> {
    if !blob.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt("click outbox row length".into()));
    }
    Ok(blob
        .chunks_exact(32)
        .map(|c| {
            let link = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            let at = i64::from_be_bytes(c[8..16].try_into().expect("8 bytes"));
            (
                LinkId(link),
                at,
                uuid::Uuid::from_slice(&c[16..]).expect("16 bytes"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_keys_round_trip() {
        let keys = vec![
            (LinkId(1), 1_700_000_000_000, uuid::Uuid::now_v7()),
            (LinkId(-7), -5, uuid::Uuid::now_v7()),
        ];
        assert_eq!(click_keys_of(&click_keys_blob(&keys)).unwrap(), keys);
        assert!(click_keys_of(&[0; 31]).is_err());
    }
}
