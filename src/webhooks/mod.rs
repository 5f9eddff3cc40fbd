//! Webhooks: events out of hop, signed the Standard Webhooks way and
//! delivered exactly once from the receiver's point of view.
//!
//! The path of an event (docs/webhooks.md, docs/architecture.md):
//!
//! 1. **Outbox.** The store writes the event in the same transaction as
//!    what it describes: a link's insert, update or delete, the click
//!    claim that reached a link's limit, and, while any endpoint wants
//!    clicks, each click batch (the keys of the clicks it newly stored).
//!    A crash between storing and delivering loses nothing.
//! 2. **Fan-out** ([`plan`]): every `--webhook-batch-wait`, outbox rows are
//!    turned into messages, one per endpoint that wants the event and
//!    covers its link; an endpoint's clicks are batched up to
//!    `--webhook-batch-size` per message. Messages and the deletion of the
//!    rows commit together.
//! 3. **Delivery** ([`deliver`]): due messages are leased (a worker that
//!    dies hands its leases over when they run out), POSTed with
//!    `webhook-id`, `webhook-timestamp` and `webhook-signature`, and then
//!    delivered, retried later (exponential backoff with jitter) or, past
//!    `--webhook-retry-for`, dead-lettered. A retry carries the same
//!    `webhook-id` and body, so a receiver that deduplicates on the id
//!    sees each event once.

pub mod deliver;
pub mod endpoints;

use base64::Engine;
use rand::{Rng, RngCore};

use crate::domain::webhook::{EventType, LinkEventData, LinkEventPayload};
use crate::domain::{ExportedClick, rfc3339_ms};
use crate::store::webhooks::{Endpoint, FanOut, NewMessage, OutboxEntry};

/// A fresh signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Now, in ms.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh endpoint id.
pub fn new_endpoint_id() -> String {
    format!("wh_{}", uuid::Uuid::now_v7().simple())
}

/// The `webhook-signature` header of a message: signed with the endpoint's
/// secret, and also with the previous one while its grace period lasts
/// (`now`, ms), space-separated as the specification allows.
pub fn signature(e: &Endpoint, msg_id: &str, timestamp: i64, body: &str, now: i64) -> String {
    let mut secrets = vec![e.secret.as_str()];
    if let (Some(previous), Some(until)) = (&e.previous_secret, e.previous_until)
        && until > now
    {
        secrets.push(previous);
    }
    secrets
        .into_iter()
        .filter_map(|s| standardwebhooks::Webhook::new(s).ok())
        .filter_map(|w| w.sign(msg_id, timestamp, body.as_bytes()).ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a secret is one hop can sign with.
pub fn valid_secret(s: &str) -> bool {
    s.strip_prefix("whsec_").is_some_and(|k| {
        base64::engine::general_purpose::STANDARD
            .decode(k)
            .is_ok_and(|k| (24..=64).contains(&k.len()))
    })
}

/// What fan-out needs besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    pub batch_size: usize,
    /// ms a message is retried for.
    pub retry_for: i64,
    /// ms, now.
    pub now: i64,
}

/// Turns outbox rows into messages: a link event to each endpoint that
/// wants its type and covers its link; clicks to each endpoint that wants
/// clicks and covers their link, batched per endpoint in the order stored.
/// Events from before an endpoint was registered are not its.
pub fn plan(f: FanOut<'_>, s: PlanSettings) -> Vec<NewMessage> {
    let mut out = Vec::new();
    // Each endpoint's clicks, as (time, event id, JSON), in order.
    let mut clicks: Vec<Vec<(i64, uuid::Uuid, std::rc::Rc<str>)>> =
        vec![Vec::new(); f.endpoints.len()];
    let message =
        |e: &Endpoint, id: String, kind: EventType, at: i64, n: u32, body: String| NewMessage {
            endpoint_id: e.id.clone(),
            id,
            event_type: kind,
            at,
            events: n,
            body,
            created_at: s.now,
            retry_until: s.now + s.retry_for,
        };
    for entry in f.entries {
        match entry {
            OutboxEntry::Link(ev) => {
                let body = serde_json::to_string(&LinkEventPayload {
                    kind: ev.kind.as_str(),
                    timestamp: rfc3339_ms(ev.at),
                    data: LinkEventData {
                        event_id: ev.id,
                        link: &ev.link,
                    },
                })
                .expect("a link event serialises");
                for e in f.endpoints {
                    if e.wants(ev.kind)
                        && ev.at >= e.created_at
                        && e.covers(ev.owner, &ev.link.tags, &ev.link.slug)
                    {
                        out.push(message(
                            e,
                            ev.id.to_string(),
                            ev.kind,
                            ev.at,
                            1,
                            body.clone(),
                        ));
                    }
                }
            }
            OutboxEntry::Clicks(batch) => {
                for (click, link) in batch {
                    let mut json: Option<std::rc::Rc<str>> = None;
                    for (i, e) in f.endpoints.iter().enumerate() {
                        if e.wants(EventType::Click)
                            && click.at >= e.created_at
                            && e.covers(link.owner, &link.tags, &link.slug)
                        {
                            let json = json.get_or_insert_with(|| {
                                serde_json::to_string(&ExportedClick::of(&link.slug, click))
                                    .expect("a click serialises")
                                    .into()
                            });
                            clicks[i].push((click.at, click.event_id, json.clone()));
                        }
                    }
                }
            }
        }
    }
    for (e, mine) in f.endpoints.iter().zip(clicks) {
        for batch in mine.chunks(s.batch_size.max(1)) {
            let (first_at, first_id, _) = &batch[0];
            // A lone click is its own message: its event id is the
            // webhook-id. A batch gets an id of its own, fixed here.
            let id = if batch.len() == 1 {
                first_id.to_string()
            } else {
                uuid::Uuid::now_v7().to_string()
            };
            let items: Vec<&str> = batch.iter().map(|(_, _, j)| &**j).collect();
            let body = format!(
                r#"{{"type":"click","timestamp":"{}","data":{{"clicks":[{}]}}}}"#,
                rfc3339_ms(*first_at),
                items.join(",")
            );
            out.push(message(
                e,
                id,
                EventType::Click,
                *first_at,
                batch.len() as u32,
                body,
            ));
        }
    }
    out
}

/// The delay before retry number `attempt` (1 for the first retry):
/// `base` doubled each time, at most `max`, then between half and all of
/// it at random ("equal jitter"), so endpoints coming back are not hit by
/// every retry at once.
pub fn backoff(
    attempt: u32,
    base: std::time::Duration,
    max: std::time::Duration,
    rng: &mut impl Rng,
) -> std::time::Duration {
    let exp = base
        .checked_mul(1u32 << attempt.saturating_sub(1).min(30))
        .unwrap_or(max)
        .min(max);
    let half = exp / 2;
    half + half.mul_f64(rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::domain::webhook::{LinkEvent, LinkSnapshot};
    use crate::domain::{DeviceType, EnrichedClick, KeyId, LinkId, Route, Utm};
    use crate::store::webhooks::LinkFacts;

    fn endpoint(id: &str, owner: i64, events: &[EventType]) -> Endpoint {
        Endpoint {
            id: id.into(),
            owner: Some(KeyId(owner)),
            instance_wide: false,
            url: "https://example.com/hook".into(),
            description: None,
            events: events.to_vec(),
            scope_tag: None,
            scope_links: None,
            secret: new_secret(),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: 1_000,
            updated_at: 1_000,
        }
    }

    fn click(at: i64) -> EnrichedClick {
        EnrichedClick {
            event_id: uuid::Uuid::now_v7(),
            link_id: LinkId(1),
            at,
            bot: false,
            country: Some("DE".into()),
            city: None,
            browser: "Firefox".into(),
            os: "Linux".into(),
            device: DeviceType::Desktop,
            referrer_host: None,
            utm: Utm::default(),
            visitor: 7,
            region: "local".into(),
            route: Route::default(),
        }
    }

    fn settings(batch_size: usize) -> PlanSettings {
        PlanSettings {
            batch_size,
            retry_for: 10_000,
            now: 5_000,
        }
    }

    #[test]
    fn clicks_are_batched_per_endpoint_and_scoped_to_the_owners_links() {
        let mine = Arc::new(LinkFacts {
            slug: "mine".into(),
            owner: Some(KeyId(1)),
            tags: vec!["news".into()],
        });
        let theirs = Arc::new(LinkFacts {
            slug: "theirs".into(),
            owner: Some(KeyId(2)),
            tags: vec![],
        });
        let batch: Vec<_> = (0..5)
            .map(|i| (click(2_000 + i), mine.clone()))
            .chain([(click(2_100), theirs.clone()), (click(500), mine.clone())])
            .collect();
        let mut tagged = endpoint("b", 1, &[EventType::Click]);
        tagged.scope_tag = Some("other".into());
        let mut admin = endpoint("c", 9, &[EventType::Click]);
        admin.instance_wide = true;
        let endpoints = [
            endpoint("a", 1, &[EventType::Click]),
            tagged,
            admin,
            endpoint("d", 1, &[EventType::LinkCreated]),
        ];
        let entries = [OutboxEntry::Clicks(batch.clone())];
        let out = plan(
            FanOut {
                endpoints: &endpoints,
                entries: &entries,
            },
            settings(2),
        );
        let of =
            |id: &str| -> Vec<&NewMessage> { out.iter().filter(|m| m.endpoint_id == id).collect() };
        // a: its own five clicks (the one from before it existed left
        // out), in messages of at most two.
        assert_eq!(
            of("a").iter().map(|m| m.events).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(of("a")[2].id, batch[4].0.event_id.to_string());
        assert!(of("b").is_empty() && of("d").is_empty());
        // c: instance-wide, so the other key's click too.
        assert_eq!(of("c").iter().map(|m| m.events).sum::<u32>(), 6);
        let body: serde_json::Value = serde_json::from_str(&of("a")[0].body).unwrap();
        assert_eq!(body["type"], "click");
        assert_eq!(body["data"]["clicks"][0]["slug"], "mine");
        assert_eq!(
            body["data"]["clicks"][1]["event_id"],
            batch[1].0.event_id.to_string()
        );
        assert!(out.iter().all(|m| m.retry_until == 15_000));
    }

    #[test]
    fn link_events_keep_their_id_for_every_endpoint() {
        let ev = LinkEvent {
            id: uuid::Uuid::now_v7(),
            kind: EventType::LinkCreated,
            at: 3_000,
            link_id: LinkId(1),
            owner: Some(KeyId(1)),
            link: LinkSnapshot {
                slug: "s".into(),
                url: "https://example.com/".into(),
                title: None,
                tags: vec![],
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
                expires_at: None,
                max_clicks: None,
                redirect_status: 302,
                disabled: false,
                password_protected: false,
            },
        };
        let mut listed = endpoint("b", 1, &[EventType::LinkCreated]);
        listed.scope_links = Some(vec!["other".into()]);
        let endpoints = [
            endpoint("a", 1, &EventType::ALL),
            endpoint("c", 1, &[EventType::LinkCreated]),
            listed,
        ];
        let out = plan(
            FanOut {
                endpoints: &endpoints,
                entries: &[OutboxEntry::Link(ev.clone())],
            },
            settings(100),
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|m| m.id == ev.id.to_string()));
        let body: serde_json::Value = serde_json::from_str(&out[0].body).unwrap();
        assert_eq!(body["type"], "link.created");
        assert_eq!(body["data"]["link"]["slug"], "s");
    }

    #[test]
    fn signatures_verify_with_the_standard_library_and_rotation_signs_twice() {
        let mut e = endpoint("a", 1, &[EventType::Click]);
        let body = r#"{"type":"click"}"#;
        let ts = chrono::Utc::now().timestamp();
        let sig = signature(&e, "msg_1", ts, body, 0);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        let verify = |secret: &str, h: &axum::http::HeaderMap| {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(body.as_bytes(), h)
                .is_ok()
        };
        assert!(verify(&e.secret, &headers));
        assert!(!verify(&new_secret(), &headers));
        // Rotated: both secrets verify during the grace period, only the
        // new one after it.
        let old = std::mem::replace(&mut e.secret, new_secret());
        e.previous_secret = Some(old.clone());
        e.previous_until = Some(100);
        headers.insert(
            "webhook-signature",
            signature(&e, "msg_1", ts, body, 50).parse().unwrap(),
        );
        assert!(verify(&old, &headers) && verify(&e.secret, &headers));
        headers.insert(
            "webhook-signature",
            signature(&e, "msg_1", ts, body, 100).parse().unwrap(),
        );
        assert!(!verify(&old, &headers) && verify(&e.secret, &headers));
    }

    #[test]
    fn secrets_are_standard_and_checked() {
        let s = new_secret();
        assert!(valid_secret(&s));
        assert!(!valid_secret("whsec_short"));
        assert!(!valid_secret(&s[6..]));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let mut rng = rand::rng();
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(3600);
        for _ in 0..100 {
            let d1 = backoff(1, base, max, &mut rng);
            assert!(d1 >= Duration::from_millis(2500) && d1 <= base);
            let d4 = backoff(4, base, max, &mut rng);
            assert!(d4 >= Duration::from_secs(20) && d4 <= Duration::from_secs(40));
            let d40 = backoff(40, base, max, &mut rng);
            assert!(d40 >= max / 2 && d40 <= max);
        }
    }
}
