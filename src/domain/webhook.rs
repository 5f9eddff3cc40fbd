//! What webhooks carry: the kinds of event an endpoint can ask for, and
//! the link as a link event shows it. The store writes link events into
//! its outbox in the same transaction as the change they describe, so
//! these are plain values the store can serialise.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{KeyId, Link, LinkId};

/// A kind of event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// A stored click (batched per endpoint).
    #[serde(rename = "click")]
    Click,
    #[serde(rename = "link.created")]
    LinkCreated,
    #[serde(rename = "link.updated")]
    LinkUpdated,
    #[serde(rename = "link.deleted")]
    LinkDeleted,
    /// The click that reached the link's click limit was counted.
    #[serde(rename = "link.exhausted")]
    LinkExhausted,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Click,
        EventType::LinkCreated,
        EventType::LinkUpdated,
        EventType::LinkDeleted,
        EventType::LinkExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Click => "click",
            EventType::LinkCreated => "link.created",
            EventType::LinkUpdated => "link.updated",
            EventType::LinkDeleted => "link.deleted",
            EventType::LinkExhausted => "link.exhausted",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link as a link event shows it: what the API shows of a link, less
/// what only the serving node knows (its short URL, clicks so far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkSnapshot {
    pub slug: String,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_clicks: Option<u64>,
    pub redirect_status: u16,
    pub disabled: bool,
    pub password_protected: bool,
}

/// A time as stored: to the millisecond.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl LinkSnapshot {
    pub fn of(link: &Link) -> LinkSnapshot {
        LinkSnapshot {
            slug: link.slug.to_string(),
            url: link.target.to_string(),
            title: link.title.clone(),
            tags: link.tags.clone(),
            created_at: ms(link.created_at),
            updated_at: ms(link.updated_at),
            expires_at: link.expires_at.map(ms),
            max_clicks: link.max_clicks,
            redirect_status: link.redirect_status.code(),
            disabled: link.disabled,
            password_protected: link.password_hash.is_some(),
        }
    }
}

/// A link event as the outbox keeps it until it is fanned out to the
/// endpoints that want it. `id` is the event's own id: every delivery of
/// it, to every endpoint, carries it as `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEvent {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (ms).
    pub at: i64,
    pub link_id: LinkId,
    pub owner: Option<KeyId>,
    pub link: LinkSnapshot,
}

impl LinkEvent {
    pub fn new(kind: EventType, link: &Link) -> LinkEvent {
        let now = Utc::now();
        LinkEvent {
            id: uuid::Uuid::now_v7(),
            kind,
            at: now.timestamp_millis(),
            link_id: link.id,
            owner: link.owner,
            link: LinkSnapshot::of(link),
        }
    }

    /// The outbox's text of it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a link event serialises")
    }
}

/// The body of a `link.*` message, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkEventPayload<'a> {
    /// `link.created`, `link.updated`, `link.deleted` or `link.exhausted`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// When it happened (RFC 3339, ms).
    pub timestamp: String,
    pub data: LinkEventData<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkEventData<'a> {
    /// The event's id: also the message's `webhook-id`.
    #[schema(value_type = String, format = "uuid")]
    pub event_id: uuid::Uuid,
    /// The link as it is after the change (before it, for `link.deleted`).
    pub link: &'a LinkSnapshot,
}

/// Kinds of outbox rows.
pub const OUTBOX_LINK: &str = "link";
/// A batch of stored clicks: the body is their event ids, 16 bytes each.
pub const OUTBOX_CLICKS: &str = "clicks";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_names() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.as_str())
            );
        }
        assert_eq!(EventType::parse("clicks"), None);
    }
}
