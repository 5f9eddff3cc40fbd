//! Click events: what the redirect hands over, and what enrichment makes of it.

use std::net::IpAddr;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::LinkId;

/// UTM parameters of the *short* URL's query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
}

/// Longest UTM value or referrer kept; longer ones are cut.
pub const MAX_ATTR_LEN: usize = 200;

impl Utm {
    pub fn from_query(query: &str) -> Utm {
        let mut utm = Utm::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "utm_source" => &mut utm.source,
                "utm_medium" => &mut utm.medium,
                "utm_campaign" => &mut utm.campaign,
                _ => continue,
            };
            let v: String = v
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_ATTR_LEN)
                .collect();
            if !v.is_empty() && slot.is_none() {
                *slot = Some(v);
            }
        }
        utm
    }
}

/// A redirect that was answered, as the redirect handler saw it. It carries
/// the raw IP only in memory (queue, stream); enrichment turns it into a
/// country, a city and a salted visitor hash, and the IP is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickEvent {
    /// Unique per answered redirect; the store ignores an id it already has,
    /// which turns at-least-once delivery into an exact count.
    pub event_id: Uuid,
    pub link_id: LinkId,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub utm: Utm,
    /// Region of the node that served the click.
    pub region: String,
    /// The user agent was withheld on purpose (`--no-track-ua`, or
    /// Do-Not-Track): count the click as a human one, with no browser.
    #[serde(default)]
    pub withheld: bool,
    /// What the address gives (location and visitor hash), worked out where
    /// the click was answered so that the address is not kept: clicks read
    /// back from the click log carry this, and `ip` unspecified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<Located>,
    /// Which way a smart link sent the visit (rule, variant), or that it
    /// went to the link's fallback.
    #[serde(default, skip_serializing_if = "Route::is_none")]
    pub route: Route,
}

/// Which way a link sent a visit, recorded with its click: the rule that
/// decided ([`DEFAULT_ROUTE`] when a link with rules used its own target,
/// [`FALLBACK_ROUTE`] when a link that no longer redirects sent it to its
/// fallback URL) and the variant of a split. Both `None` for a link
/// without rules, which is every click of such a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The rule recorded for a visit of a link with rules that no rule took.
pub const DEFAULT_ROUTE: &str = "default";
/// The rule recorded for a visit sent to a link's fallback URL.
pub const FALLBACK_ROUTE: &str = "fallback";

impl Route {
    pub fn is_none(&self) -> bool {
        self.rule.is_none() && self.variant.is_none()
    }
}

/// [`Route`] borrowing from the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteRef<'a> {
    pub rule: Option<&'a str>,
    pub variant: Option<&'a str>,
}

impl RouteRef<'_> {
    pub fn to_route(self) -> Route {
        Route {
            rule: self.rule.map(str::to_owned),
            variant: self.variant.map(str::to_owned),
        }
    }
}

/// Where a client's address is, as the geo lookup says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub country: Option<String>,
    pub city: Option<String>,
}

/// What enrichment takes from a client's address: its location and the
/// day's salted visitor hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    pub visitor: i64,
    pub country: Option<String>,
    pub city: Option<String>,
}

/// A [`ClickEvent`] borrowing its text from the request: what the redirect
/// hands over, so that a click costs no string copies on the hot path (the
/// click log encodes it straight from the borrowed headers).
#[derive(Debug, Clone, Copy)]
pub struct ClickRef<'a> {
    pub event_id: Uuid,
    pub link_id: LinkId,
    pub at: i64,
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub referrer: Option<&'a str>,
    pub utm: &'a Utm,
    pub region: &'a str,
    pub withheld: bool,
    pub route: RouteRef<'a>,
    /// Where `ip` is, when the redirect has looked it up already (a rule
    /// asked): the click pipeline uses it instead of looking again.
    pub location: Option<&'a Location>,
}

impl ClickRef<'_> {
    pub fn to_event(&self) -> ClickEvent {
        ClickEvent {
            event_id: self.event_id,
            link_id: self.link_id,
            at: self.at,
            ip: self.ip,
            user_agent: self.user_agent.map(str::to_owned),
            referrer: self.referrer.map(str::to_owned),
            utm: self.utm.clone(),
            region: self.region.to_owned(),
            withheld: self.withheld,
            located: None,
            route: self.route.to_route(),
        }
    }
}

impl ClickEvent {
    pub fn borrowed(&self) -> ClickRef<'_> {
        ClickRef {
            event_id: self.event_id,
            link_id: self.link_id,
            at: self.at,
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
            referrer: self.referrer.as_deref(),
            utm: &self.utm,
            region: &self.region,
            withheld: self.withheld,
            route: RouteRef {
                rule: self.route.rule.as_deref(),
                variant: self.route.variant.as_deref(),
            },
            location: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> DeviceType {
        match s {
            "desktop" => DeviceType::Desktop,
            "mobile" => DeviceType::Mobile,
            "tablet" => DeviceType::Tablet,
            "bot" => DeviceType::Bot,
            _ => DeviceType::Other,
        }
    }
}

/// A click as stored: no IP, no raw user agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedClick {
    pub event_id: Uuid,
    pub link_id: LinkId,
    pub at: i64,
    pub bot: bool,
    pub country: Option<String>,
    pub city: Option<String>,
    pub browser: String,
    pub os: String,
    pub device: DeviceType,
    pub referrer_host: Option<String>,
    pub utm: Utm,
    /// Hash of (IP, user agent, link, daily salt): counts unique visitors
    /// within a day without being able to recognise anyone across days.
    pub visitor: i64,
    pub region: String,
    #[serde(default, skip_serializing_if = "Route::is_none")]
    pub route: Route,
}

/// Turns a click's event id into its segment copy's, and back: a fixed
/// bijection, so a replayed click's copy is the same copy (and skipped).
const SEGMENT_EVENT_MASK: u128 = 0x7365_676d_656e_7420_636f_7079_2d2d_2d2d;

impl EnrichedClick {
    /// This click as counted again under its variant's segment
    /// ([`LinkId::variant_segment`]); `None` when it took no variant.
    pub fn segment_copy(&self) -> Option<EnrichedClick> {
        let variant = self.route.variant.as_deref()?;
        Some(EnrichedClick {
            event_id: Uuid::from_u128(self.event_id.as_u128() ^ SEGMENT_EVENT_MASK),
            link_id: self.link_id.variant_segment(variant),
            ..self.clone()
        })
    }
}

/// The breakdowns that stats report, in a stable numeric encoding for stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dimension {
    Country = 1,
    City = 2,
    Referrer = 3,
    Browser = 4,
    Os = 5,
    Device = 6,
    UtmSource = 7,
    UtmMedium = 8,
    UtmCampaign = 9,
    Rule = 10,
    Variant = 11,
}

impl Dimension {
    pub const ALL: [Dimension; 11] = [
        Dimension::Country,
        Dimension::City,
        Dimension::Referrer,
        Dimension::Browser,
        Dimension::Os,
        Dimension::Device,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Rule,
        Dimension::Variant,
    ];

    pub fn from_code(code: i64) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| *d as i64 == code)
    }

    /// The value a click contributes to this breakdown (`None`: not counted).
    /// Every store rolls up through this one function, so rollups and raw
    /// scans can never disagree.
    pub fn value_of(self, c: &EnrichedClick) -> Option<String> {
        self.value_ref(c).map(std::borrow::Cow::into_owned)
    }

    /// [`Self::value_of`], borrowed from the click where it can be (every
    /// dimension but a city with its country): the batch writer looks its
    /// counts up by it without allocating.
    pub fn value_ref(self, c: &EnrichedClick) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            Dimension::Country => Some(Borrowed(c.country.as_deref().unwrap_or("unknown"))),
            Dimension::City => Some(match (&c.city, &c.country) {
                (Some(city), Some(cc)) => Owned(format!("{city}, {cc}")),
                (Some(city), None) => Borrowed(city),
                _ => Borrowed("unknown"),
            }),
            Dimension::Referrer => Some(Borrowed(c.referrer_host.as_deref().unwrap_or("direct"))),
            Dimension::Browser => Some(Borrowed(&c.browser)),
            Dimension::Os => Some(Borrowed(&c.os)),
            Dimension::Device => Some(Borrowed(c.device.as_str())),
            Dimension::UtmSource => c.utm.source.as_deref().map(Borrowed),
            Dimension::UtmMedium => c.utm.medium.as_deref().map(Borrowed),
            Dimension::UtmCampaign => c.utm.campaign.as_deref().map(Borrowed),
            Dimension::Rule => c.route.rule.as_deref().map(Borrowed),
            Dimension::Variant => c.route.variant.as_deref().map(Borrowed),
        }
    }
}

/// One click of an NDJSON export: a line holding one such object. The
/// fields are the CSV export's, under the same names, plus the link's
/// slug; absent values are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedClick<'a> {
    pub slug: &'a str,
    /// The click's event id (a UUIDv7): stable, unique, what webhooks and
    /// replays name the click by.
    #[schema(value_type = String, format = "uuid")]
    pub event_id: uuid::Uuid,
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub browser: &'a str,
    pub os: &'a str,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device: &'a str,
    pub bot: bool,
    pub referrer_host: Option<&'a str>,
    pub utm_source: Option<&'a str>,
    pub utm_medium: Option<&'a str>,
    pub utm_campaign: Option<&'a str>,
    /// The day's salted visitor hash, 16 hex digits (the same visitor on
    /// the same UTC day and link has the same value).
    pub visitor: String,
    pub region: &'a str,
    /// The smart-link rule that sent the visit (`default`, `fallback` or a
    /// rule id); `null` for a link without rules.
    pub rule: Option<&'a str>,
    /// The A/B variant the visit went to, if any.
    pub variant: Option<&'a str>,
}

impl<'a> ExportedClick<'a> {
    pub fn of(slug: &'a str, c: &'a EnrichedClick) -> Self {
        ExportedClick {
            slug,
            event_id: c.event_id,
            time: rfc3339_ms(c.at),
            country: c.country.as_deref(),
            city: c.city.as_deref(),
            browser: &c.browser,
            os: &c.os,
            device: c.device.as_str(),
            bot: c.bot,
            referrer_host: c.referrer_host.as_deref(),
            utm_source: c.utm.source.as_deref(),
            utm_medium: c.utm.medium.as_deref(),
            utm_campaign: c.utm.campaign.as_deref(),
            visitor: visitor_hex(c.visitor),
            region: &c.region,
            rule: c.route.rule.as_deref(),
            variant: c.route.variant.as_deref(),
        }
    }
}

/// A time (ms) as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339_ms(at: i64) -> String {
    DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A visitor hash as exports show it: 16 hex digits.
pub fn visitor_hex(visitor: i64) -> String {
    format!("{visitor:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_from_query() {
        let u = Utm::from_query("utm_source=news%20letter&x=1&utm_medium=email&utm_source=other");
        assert_eq!(u.source.as_deref(), Some("news letter"));
        assert_eq!(u.medium.as_deref(), Some("email"));
        assert_eq!(u.campaign, None);
        let long = format!("utm_campaign={}", "x".repeat(500));
        assert_eq!(Utm::from_query(&long).campaign.unwrap().len(), MAX_ATTR_LEN);
    }
}
