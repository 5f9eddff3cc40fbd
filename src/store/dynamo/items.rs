//! The table's keys and item formats, shared by the click write, the
//! reads and sealing: raw clicks, visitors, to-seal marks, and what a
//! cancelled transaction says about each of its actions.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::{Item, get_n, get_s, n, opt_s, ord_key, s};
use crate::domain::{DeviceType, EnrichedClick, LinkId, Route, Utm};
use crate::store::StoreError;

/// Raw clicks of a link are spread over this many partitions, so a hot
/// link's click writes are not bound by one partition's 1 000 writes/s.
pub const RAW_SHARDS: u32 = 4;

/// Why one action of a cancelled transaction failed.
#[derive(Debug, Clone)]
pub(super) struct Reason {
    pub code: Option<String>,
    /// The item as it was, when the action asked for it (`ALL_OLD`).
    pub item: Option<Item>,
}

impl Reason {
    pub fn failed(&self) -> bool {
        self.code.as_deref() == Some("ConditionalCheckFailed")
    }
}

/// The reasons of a cancelled transaction, one per action.
pub(super) fn cancelled<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<Reason>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(ex) => Some(
            ex.cancellation_reasons()
                .iter()
                .map(|r| Reason {
                    code: r.code().filter(|c| *c != "None").map(str::to_owned),
                    item: r.item().cloned(),
                })
                .collect(),
        ),
        _ => None,
    }
}

pub(super) fn day_key(day: i64) -> String {
    ord_key(day)
}

pub(super) fn raw_pk(link: LinkId, shard: u32) -> String {
    format!("C#{}#{shard}", link.0)
}

pub(super) fn shard_of(event: Uuid) -> u32 {
    (event.as_u128() % u128::from(RAW_SHARDS)) as u32
}

pub(super) fn raw_sk(at: i64, event: Uuid) -> String {
    format!("{}#{}", ord_key(at), event.hyphenated())
}

pub(super) fn raw_item(c: &EnrichedClick, region: &str, seq: i64) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(raw_pk(c.link_id, shard_of(c.event_id)))),
        ("sk".into(), s(raw_sk(c.at, c.event_id))),
        ("event".into(), s(c.event_id.hyphenated().to_string())),
        ("link".into(), n(c.link_id.0)),
        ("at".into(), n(c.at)),
        ("bot".into(), AttributeValue::Bool(c.bot)),
        ("browser".into(), s(c.browser.clone())),
        ("os".into(), s(c.os.clone())),
        ("device".into(), s(c.device.as_str())),
        ("visitor".into(), n(c.visitor)),
        ("region".into(), s(c.region.clone())),
        ("w".into(), s(region)),
        ("seq".into(), n(seq)),
    ]);
    for (k, v) in [
        ("country", &c.country),
        ("city", &c.city),
        ("ref", &c.referrer_host),
        ("us", &c.utm.source),
        ("um", &c.utm.medium),
        ("uc", &c.utm.campaign),
        ("rl", &c.route.rule),
        ("vr", &c.route.variant),
    ] {
        if let Some(v) = v {
            item.insert(k.into(), s(v.clone()));
        }
    }
    item
}

pub(super) fn click_from_item(item: &Item) -> Result<EnrichedClick, StoreError> {
    Ok(EnrichedClick {
        event_id: Uuid::parse_str(get_s(item, "event")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        link_id: LinkId(get_n(item, "link")?),
        at: get_n(item, "at")?,
        bot: matches!(item.get("bot"), Some(AttributeValue::Bool(true))),
        country: opt_s(item, "country"),
        city: opt_s(item, "city"),
        browser: get_s(item, "browser")?.to_owned(),
        os: get_s(item, "os")?.to_owned(),
        device: DeviceType::parse(get_s(item, "device")?),
        referrer_host: opt_s(item, "ref"),
        utm: Utm {
            source: opt_s(item, "us"),
            medium: opt_s(item, "um"),
            campaign: opt_s(item, "uc"),
        },
        visitor: get_n(item, "visitor")?,
        region: get_s(item, "region")?.to_owned(),
        route: Route {
            rule: opt_s(item, "rl"),
            variant: opt_s(item, "vr"),
        },
    })
}

/// Partitions of the to-do list of days to seal.
pub(super) const DIRTY_SHARDS: i64 = 16;

pub(super) fn dirty_key(link: LinkId, day_key: &str, region: &str) -> (String, String) {
    (
        format!("DIRTY#{}", link.0.rem_euclid(DIRTY_SHARDS)),
        format!("{}#{day_key}#{region}", link.0),
    )
}

pub(super) fn visitor_key(link: LinkId, day: i64, region: &str, visitor: i64) -> Item {
    Item::from([
        ("pk".into(), s(format!("V#{}#{}", link.0, day_key(day)))),
        ("sk".into(), s(format!("{region}#{visitor}"))),
    ])
}
