//! Smart links: a link's ordered rules decide where each visit goes.
//!
//! A rule has conditions, all of which must hold, and an action: one
//! target, or a split of 2 to 10 weighted variants. The first rule whose
//! conditions hold decides; when none does, the link's own target. A rule
//! without conditions holds for every visit (a link-wide A/B test is one
//! such rule, last).
//!
//! Rules come in as JSON ([`RuleSpec`]), are checked once by
//! [`Rules::parse`] (every target a valid [`TargetUrl`], every condition
//! well formed, with a specific error code for each fault), and are
//! matched in that checked form: values lowercased, networks parsed, time
//! zones resolved, so a match does no parsing. [`Rules::needs`] says which
//! facts about a visit the rules read, so that the redirect looks up the
//! location or parses the user agent only when a rule asks, and once.
//!
//! A split's variant is chosen by the visitor's daily hash (the same one
//! analytics count unique visitors by): the same visitor gets the same
//! variant all day, no cookie is set, nothing personal is kept, and over
//! many visitors the shares follow the weights.

use std::hash::Hasher;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{DeviceType, LinkId, TargetUrl, UrlError};

/// Rules per link.
pub const MAX_RULES: usize = 50;
/// Conditions per rule.
pub const MAX_CONDITIONS: usize = 20;
/// Values in one condition's list (countries, networks, …).
pub const MAX_VALUES: usize = 100;
/// Longest value in a condition (a city, a query value, …).
pub const MAX_VALUE_LEN: usize = 200;
/// Variants of a split.
pub const MIN_VARIANTS: usize = 2;
pub const MAX_VARIANTS: usize = 10;
/// Largest weight of a variant (weights are 1 to this).
pub const MAX_WEIGHT: u32 = 10_000;
/// Longest rule or variant id.
pub const MAX_ID_LEN: usize = 32;
/// What a click that no rule decided records as its rule.
pub use super::click::DEFAULT_ROUTE as DEFAULT_RULE;
use super::click::FALLBACK_ROUTE;

/// A rule as the API takes it and gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `[a-z0-9_-]{1,32}`, unique in the link; given as `r1`, `r2`, … by
    /// position when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// All must hold; none: every visit.
    #[serde(default, rename = "if", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionSpec>,
    /// Where the visit goes (or `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Weighted variants (or `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<VariantSpec>>,
}

/// One variant of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// `[a-z0-9_-]{1,32}`, unique in the rule; `a`, `b`, … when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub target: String,
    #[serde(deserialize_with = "whole")]
    pub weight: u32,
}

/// A whole number, also when written with a zero fraction (`5.0`), which
/// JSON Schema counts as an integer too.
fn whole<'de, D: serde::Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a whole number of at least 0"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            if v.fract() == 0.0 && (0.0..1.8e19).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    let n = d.deserialize_any(Visitor)?;
    T::try_from(n).map_err(|_| serde::de::Error::custom("number out of range"))
}

/// One condition, as `{"country": ["DE", "AT"]}` and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionSpec {
    /// ISO 3166-1 alpha-2 codes, from the same geo lookup as analytics.
    Country(Vec<String>),
    /// City names as the geo lookup gives them (any case).
    City(Vec<String>),
    /// `desktop`, `mobile`, `tablet`.
    Device(Vec<String>),
    /// `android`, `ios`, `windows`, `macos`, `linux`, `chromeos`.
    Os(Vec<String>),
    /// Browser names as analytics show them (`Chrome`, `Firefox`, …).
    Browser(Vec<String>),
    /// Language tags: the visitor's preferred language (Accept-Language,
    /// highest q) is one of them or a subtag of one (`en` ~ `en-GB`).
    Language(Vec<String>),
    /// A query parameter of the short URL has this value.
    Query(QuerySpec),
    /// The short URL's query has this parameter (any value).
    QueryPresent(String),
    /// The short URL's query does not have this parameter.
    QueryAbsent(String),
    /// Addresses or networks (`203.0.113.0/24`, `2001:db8::/32`).
    Ip(Vec<String>),
    /// A time window.
    Time(TimeSpec),
    /// Referrer hosts; a subdomain of one holds too.
    Referrer(Vec<String>),
}

/// A query parameter with a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    pub name: String,
    pub equals: String,
}

/// Hours of the day, from `from` (0–23) up to `to` (1–24); `to` before
/// `from` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursSpec {
    #[serde(deserialize_with = "whole")]
    pub from: u8,
    #[serde(deserialize_with = "whole")]
    pub to: u8,
}

/// A time window: instants, days and hours in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// From this instant on (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// On these days (`mon` … `sun`) in `tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// Hours of the day in `tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<HoursSpec>,
    /// IANA time zone of `days` and `hours` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// Days of the week as conditions name them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why rules were refused: one code per fault, for the API's 400s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("at most {MAX_RULES} rules per link")]
    TooManyRules,
    #[error("rule {0}: an id is 1 to {MAX_ID_LEN} of a-z, 0-9, _ and -, and not \"default\"")]
    InvalidId(String),
    #[error("rule id {0:?} is used twice")]
    DuplicateId(String),
    #[error("rule {0}: at most {MAX_CONDITIONS} conditions")]
    TooManyConditions(String),
    #[error("rule {0}: give either a target or a split")]
    NoAction(String),
    #[error("rule {rule}: target: {error}")]
    Target { rule: String, error: UrlError },
    #[error(
        "rule {0}: a split has {MIN_VARIANTS} to {MAX_VARIANTS} variants with distinct ids and weights 1 to {MAX_WEIGHT}"
    )]
    Split(String),
    #[error("rule {rule}: {condition}: {why}")]
    Condition {
        rule: String,
        condition: &'static str,
        why: String,
    },
}

impl RuleError {
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::TooManyRules => "too_many_rules",
            RuleError::InvalidId(_) => "invalid_rule_id",
            RuleError::DuplicateId(_) => "duplicate_rule_id",
            RuleError::TooManyConditions(_) => "too_many_conditions",
            RuleError::NoAction(_) => "invalid_rule_action",
            RuleError::Target { .. } => "invalid_rule_target",
            RuleError::Split(_) => "invalid_split",
            RuleError::Condition { .. } => "invalid_condition",
        }
    }
}

/// Operating system families, from the user agent's OS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsFamily {
    Android,
    Ios,
    Windows,
    MacOs,
    Linux,
    ChromeOs,
}

impl OsFamily {
    const ALL: [(&'static str, OsFamily); 6] = [
        ("android", OsFamily::Android),
        ("ios", OsFamily::Ios),
        ("windows", OsFamily::Windows),
        ("macos", OsFamily::MacOs),
        ("linux", OsFamily::Linux),
        ("chromeos", OsFamily::ChromeOs),
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether an OS name as the user agent parser gives it (`Windows 10`,
    /// `Mac OSX`, `iOS`, `ChromeOS`, …) is of this family.
    pub fn holds(self, os: &str) -> bool {
        let os = os.to_ascii_lowercase();
        match self {
            OsFamily::Android => os.starts_with("android"),
            OsFamily::Ios => os == "ios" || os.starts_with("iphone") || os.starts_with("ipad"),
            OsFamily::Windows => os.starts_with("windows"),
            OsFamily::MacOs => os.starts_with("mac"),
            OsFamily::Linux => os.starts_with("linux"),
            OsFamily::ChromeOs => os.replace(' ', "").starts_with("chromeos"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTest {
    Equals(String),
    Present,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Bit `d` set: weekday `d` (Monday 0) holds.
    days: Option<u8>,
    hours: Option<(u8, u8)>,
    tz: Tz,
}

impl TimeWindow {
    fn holds(&self, now: DateTime<Utc>, memo: &mut Option<(Tz, u8, u8)>) -> bool {
        if self.from.is_some_and(|f| now < f) || self.to.is_some_and(|t| now >= t) {
            return false;
        }
        if self.days.is_none() && self.hours.is_none() {
            return true;
        }
        // (weekday, hour) in the zone, kept for the next rule of that zone.
        let (weekday, hour) = match memo {
            Some((tz, d, h)) if *tz == self.tz => (*d, *h),
            _ => {
                let local = self.tz.from_utc_datetime(&now.naive_utc());
                let d = local.weekday().num_days_from_monday() as u8;
                let h = local.hour() as u8;
                *memo = Some((self.tz, d, h));
                (d, h)
            }
        };
        if let Some(days) = self.days
            && days & (1 << weekday) == 0
        {
            return false;
        }
        match self.hours {
            Some((from, to)) if from <= to => (from..to).contains(&hour),
            // Across midnight: from the first hour to 24, and 0 to the second.
            Some((from, to)) => hour >= from || hour < to,
            None => true,
        }
    }
}

/// A checked condition (see [`ConditionSpec`] for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Country(Vec<String>),
    City(Vec<String>),
    Device(Vec<DeviceType>),
    Os(Vec<OsFamily>),
    Browser(Vec<String>),
    Language(Vec<String>),
    Query { name: String, test: QueryTest },
    Ip(Vec<IpNet>),
    Time(TimeWindow),
    Referrer(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: String,
    pub target: TargetUrl,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Target(TargetUrl),
    Split(Vec<Variant>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub conditions: Vec<Condition>,
    pub action: Action,
}

/// What the rules read of a visit, so that only that is worked out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Country or city: the geo lookup.
    pub location: bool,
    /// Device, OS or browser: the user agent parse.
    pub user_agent: bool,
    /// A split: the visitor's daily hash.
    pub visitor: bool,
}

/// What is known of one visit. Location, user agent and visitor are
/// filled in when [`Rules::needs`] asks for them.
#[derive(Debug, Clone, Default)]
pub struct Visit<'a> {
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub device: Option<DeviceType>,
    pub os: Option<&'a str>,
    pub browser: Option<&'a str>,
    pub accept_language: Option<&'a str>,
    pub query: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub referrer_host: Option<&'a str>,
    pub visitor: i64,
    pub now: DateTime<Utc>,
}

/// Where a visit goes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'r> {
    /// The rule that decided; `None`: no rule held (the link's target).
    pub rule: Option<&'r str>,
    /// The variant chosen, when that rule splits.
    pub variant: Option<&'r str>,
    /// `None`: the link's own target.
    pub target: Option<&'r TargetUrl>,
}

/// A link's checked rules, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
    needs: Needs,
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && id != DEFAULT_RULE
        && id != FALLBACK_ROUTE
}

/// A condition's list of values: 1 to [`MAX_VALUES`], each checked by `one`.
fn values<T>(list: &[String], one: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if list.is_empty() || list.len() > MAX_VALUES {
        return Err(format!("give 1 to {MAX_VALUES} values"));
    }
    list.iter()
        .map(|v| {
            if v.is_empty() || v.chars().count() > MAX_VALUE_LEN || v.chars().any(char::is_control)
            {
                return Err(format!(
                    "{v:?}: 1 to {MAX_VALUE_LEN} characters, no control characters"
                ));
            }
            one(v)
        })
        .collect()
}

fn parse_time(spec: &TimeSpec) -> Result<TimeWindow, String> {
    let instant = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| format!("{what}: {s:?} is not an RFC 3339 time"))
            })
            .transpose()
    };
    let from = instant(&spec.from, "from")?;
    let to = instant(&spec.to, "to")?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err("from must be before to".into());
    }
    let tz = match &spec.tz {
        Some(tz) => tz
            .parse::<Tz>()
            .map_err(|_| format!("tz: {tz:?} is not an IANA time zone"))?,
        None => chrono_tz::UTC,
    };
    let days = match &spec.days {
        Some(days) => {
            let mut bits = 0u8;
            for d in values(days, |d| {
                DAYS.iter()
                    .position(|x| *x == d)
                    .and_then(|i| Weekday::try_from(i as u8).ok())
                    .ok_or_else(|| format!("days: {d:?} is not a day (mon … sun)"))
            })? {
                bits |= 1 << d.num_days_from_monday();
            }
            Some(bits)
        }
        None => None,
    };
    let hours = match spec.hours {
        Some(HoursSpec { from, to }) if from <= 23 && (1..=24).contains(&to) && from != to => {
            Some((from, to))
        }
        Some(_) => return Err("hours: from 0 to 23, to 1 to 24, not equal".into()),
        None => None,
    };
    if from.is_none() && to.is_none() && days.is_none() && hours.is_none() {
        return Err("give from, to, days or hours".into());
    }
    Ok(TimeWindow {
        from,
        to,
        days,
        hours,
        tz,
    })
}

fn query_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.chars().count() > MAX_VALUE_LEN || name.chars().any(char::is_control)
    {
        return Err("the parameter's name: 1 to 200 characters, no control characters".into());
    }
    Ok(name.to_owned())
}

fn parse_condition(spec: &ConditionSpec) -> Result<Condition, (&'static str, String)> {
    let lower = |v: &str| Ok::<_, String>(v.to_lowercase());
    Ok(match spec {
        ConditionSpec::Country(list) => Condition::Country(
            values(list, |v| {
                if v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(v.to_ascii_uppercase())
                } else {
                    Err(format!("{v:?} is not a two-letter country code"))
                }
            })
            .map_err(|e| ("country", e))?,
        ),
        ConditionSpec::City(list) => Condition::City(values(list, lower).map_err(|e| ("city", e))?),
        ConditionSpec::Device(list) => Condition::Device(
            values(list, |v| match v {
                "desktop" => Ok(DeviceType::Desktop),
                "mobile" => Ok(DeviceType::Mobile),
                "tablet" => Ok(DeviceType::Tablet),
                _ => Err(format!("{v:?}: give desktop, mobile or tablet")),
            })
            .map_err(|e| ("device", e))?,
        ),
        ConditionSpec::Os(list) => Condition::Os(
            values(list, |v| {
                OsFamily::ALL
                    .iter()
                    .find(|(n, _)| *n == v)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| {
                        format!("{v:?}: give android, ios, windows, macos, linux or chromeos")
                    })
            })
            .map_err(|e| ("os", e))?,
        ),
        ConditionSpec::Browser(list) => {
            Condition::Browser(values(list, lower).map_err(|e| ("browser", e))?)
        }
        ConditionSpec::Language(list) => Condition::Language(
            values(list, |v| {
                let ok = v.split('-').all(|part| {
                    (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                if ok {
                    Ok(v.to_ascii_lowercase())
                } else {
                    Err(format!("{v:?} is not a language tag (en, en-GB, …)"))
                }
            })
            .map_err(|e| ("language", e))?,
        ),
        ConditionSpec::Query(q) => {
            let name = query_name(&q.name).map_err(|e| ("query", e))?;
            if q.equals.chars().count() > MAX_VALUE_LEN || q.equals.chars().any(char::is_control) {
                return Err((
                    "query",
                    "equals: at most 200 characters, no control characters".into(),
                ));
            }
            Condition::Query {
                name,
                test: QueryTest::Equals(q.equals.clone()),
            }
        }
        ConditionSpec::QueryPresent(name) => Condition::Query {
            name: query_name(name).map_err(|e| ("query_present", e))?,
            test: QueryTest::Present,
        },
        ConditionSpec::QueryAbsent(name) => Condition::Query {
            name: query_name(name).map_err(|e| ("query_absent", e))?,
            test: QueryTest::Absent,
        },
        ConditionSpec::Ip(list) => Condition::Ip(
            values(list, |v| {
                v.parse::<IpNet>()
                    .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{v:?} is not an address or a network"))
            })
            .map_err(|e| ("ip", e))?,
        ),
        ConditionSpec::Time(t) => Condition::Time(parse_time(t).map_err(|e| ("time", e))?),
        ConditionSpec::Referrer(list) => Condition::Referrer(
            values(list, |v| {
                if super::is_host_name(v) {
                    Ok(v.strip_suffix('.').unwrap_or(v).to_ascii_lowercase())
                } else {
                    Err(format!("{v:?} is not a host name"))
                }
            })
            .map_err(|e| ("referrer", e))?,
        ),
    })
}

/// The visitor's preferred language: the first of the highest q (above
/// 0) in an Accept-Language header, lowercased; `*` is no language.
pub fn preferred_language(header: &str) -> Option<String> {
    let mut best: Option<(f32, &str)> = None;
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or_default().trim();
        if tag.is_empty() || tag == "*" {
            continue;
        }
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
            .filter(|q| q.is_finite() && (0.0..=1.0).contains(q));
        let Some(q) = q.filter(|q| *q > 0.0) else {
            continue;
        };
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, tag));
        }
    }
    best.map(|(_, tag)| tag.to_ascii_lowercase())
}

/// Whether `tag` is `range` or one of its subtags (`en-gb` for `en`).
fn language_holds(range: &str, tag: &str) -> bool {
    tag == range || (tag.starts_with(range) && tag.as_bytes().get(range.len()) == Some(&b'-'))
}

/// What a decision works out of a visit at most once, for every rule that
/// reads it.
#[derive(Default)]
struct Memo<'v> {
    language: Option<Option<String>>,
    city: Option<Option<String>>,
    os: Option<u8>,
    referrer: Option<Option<String>>,
    query: Option<Vec<(std::borrow::Cow<'v, str>, std::borrow::Cow<'v, str>)>>,
    /// A zone, and the weekday (Monday 0) and hour there.
    local: Option<(Tz, u8, u8)>,
}

impl<'v> Memo<'v> {
    fn language(&mut self, visit: &Visit<'v>) -> Option<&str> {
        self.language
            .get_or_insert_with(|| visit.accept_language.and_then(preferred_language))
            .as_deref()
    }

    fn city(&mut self, visit: &Visit<'v>) -> Option<&str> {
        self.city
            .get_or_insert_with(|| visit.city.map(str::to_lowercase))
            .as_deref()
    }

    /// The OS families the visit's OS is of, as bits.
    fn os(&mut self, visit: &Visit<'v>) -> u8 {
        *self.os.get_or_insert_with(|| {
            visit.os.map_or(0, |os| {
                OsFamily::ALL
                    .iter()
                    .filter(|(_, f)| f.holds(os))
                    .fold(0, |bits, (_, f)| bits | f.bit())
            })
        })
    }

    fn referrer(&mut self, visit: &Visit<'v>) -> Option<&str> {
        self.referrer
            .get_or_insert_with(|| {
                visit
                    .referrer_host
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            })
            .as_deref()
    }

    fn query(
        &mut self,
        visit: &Visit<'v>,
    ) -> &[(std::borrow::Cow<'v, str>, std::borrow::Cow<'v, str>)] {
        self.query.get_or_insert_with(|| {
            visit
                .query
                .map(|q| url::form_urlencoded::parse(q.as_bytes()).collect())
                .unwrap_or_default()
        })
    }
}

impl Condition {
    fn holds<'v>(&self, visit: &Visit<'v>, memo: &mut Memo<'v>) -> bool {
        let any_eq = |list: &[String], v: Option<&str>| {
            v.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        match self {
            Condition::Country(list) => any_eq(list, visit.country),
            Condition::City(list) => memo
                .city(visit)
                .is_some_and(|c| list.iter().any(|x| x == c)),
            Condition::Device(list) => visit.device.is_some_and(|d| list.contains(&d)),
            Condition::Os(list) => {
                let families = memo.os(visit);
                list.iter().any(|f| families & f.bit() != 0)
            }
            Condition::Browser(list) => any_eq(list, visit.browser),
            Condition::Language(list) => memo
                .language(visit)
                .is_some_and(|tag| list.iter().any(|range| language_holds(range, tag))),
            Condition::Query { name, test } => {
                let value = memo
                    .query(visit)
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v);
                match test {
                    QueryTest::Equals(want) => value.is_some_and(|v| v == want.as_str()),
                    QueryTest::Present => value.is_some(),
                    QueryTest::Absent => value.is_none(),
                }
            }
            Condition::Ip(nets) => visit.ip.is_some_and(|ip| {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                nets.iter().any(|n| n.contains(&ip))
            }),
            Condition::Time(window) => window.holds(visit.now, &mut memo.local),
            Condition::Referrer(hosts) => memo.referrer(visit).is_some_and(|h| {
                hosts.iter().any(|host| {
                    h == host
                        || (h.ends_with(host.as_str())
                            && h.as_bytes().get(h.len() - host.len() - 1) == Some(&b'.'))
                })
            }),
        }
    }

    fn to_spec(&self) -> ConditionSpec {
        let strings = |v: &[String]| v.to_vec();
        match self {
            Condition::Country(v) => ConditionSpec::Country(strings(v)),
            Condition::City(v) => ConditionSpec::City(strings(v)),
            Condition::Device(v) => {
                ConditionSpec::Device(v.iter().map(|d| d.as_str().to_owned()).collect())
            }
            Condition::Os(v) => ConditionSpec::Os(v.iter().map(|f| f.name().to_owned()).collect()),
            Condition::Browser(v) => ConditionSpec::Browser(strings(v)),
            Condition::Language(v) => ConditionSpec::Language(strings(v)),
            Condition::Query { name, test } => match test {
                QueryTest::Equals(v) => ConditionSpec::Query(QuerySpec {
                    name: name.clone(),
                    equals: v.clone(),
                }),
                QueryTest::Present => ConditionSpec::QueryPresent(name.clone()),
                QueryTest::Absent => ConditionSpec::QueryAbsent(name.clone()),
            },
            Condition::Ip(v) => ConditionSpec::Ip(v.iter().map(|n| n.to_string()).collect()),
            Condition::Time(w) => ConditionSpec::Time(TimeSpec {
                from: w.from.map(|t| t.to_rfc3339()),
                to: w.to.map(|t| t.to_rfc3339()),
                days: w.days.map(|bits| {
                    (0..7)
                        .filter(|d| bits & (1 << d) != 0)
                        .map(|d| DAYS[d].to_owned())
                        .collect()
                }),
                hours: w.hours.map(|(from, to)| HoursSpec { from, to }),
                tz: (w.tz != chrono_tz::UTC).then(|| w.tz.name().to_owned()),
            }),
            Condition::Referrer(v) => ConditionSpec::Referrer(strings(v)),
        }
    }
}

/// The key a split chooses a variant by: a keyed hash of the UTC day,
/// the link, the address and the user agent: the inputs of the visitor
/// hash analytics count unique visitors by, so each visitor of a day has
/// one variant, on every node, with no salt to share. Never stored.
pub fn visit_key(link: LinkId, at_ms: i64, ip: IpAddr, user_agent: &str) -> i64 {
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x6b65_7920_6f66_2061, 0x2076_6973_6974_2121);
    h.write_i64(at_ms.div_euclid(86_400_000));
    h.write_i64(link.0);
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.write(user_agent.as_bytes());
    h.finish() as i64
}

/// The point in `[0, total)` a visitor falls on for one rule's split:
/// stable for the (link, rule, visitor), spread evenly over visitors.
fn split_point(link: LinkId, rule: &str, visitor: i64, total: u64) -> u64 {
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x6f70_6820_7370_6c69, 0x7420_7275_6c65_7321);
    h.write_i64(link.0);
    h.write(rule.as_bytes());
    h.write_i64(visitor);
    // Multiply-shift: no modulo bias for totals far below 2^64.
    ((u128::from(h.finish()) * u128::from(total)) >> 64) as u64
}

impl Rules {
    /// Checks rules from the API. `own_hosts`: hop's hosts, which no
    /// target may point at (as for a link's target).
    pub fn parse(specs: &[RuleSpec], own_hosts: &[String]) -> Result<Rules, RuleError> {
        if specs.len() > MAX_RULES {
            return Err(RuleError::TooManyRules);
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(specs.len());
        let given: Vec<&str> = specs.iter().filter_map(|s| s.id.as_deref()).collect();
        for (i, spec) in specs.iter().enumerate() {
            let id = match &spec.id {
                Some(id) if valid_id(id) => id.clone(),
                Some(id) => return Err(RuleError::InvalidId(format!("{id:?}"))),
                // `r` and its position, or the next number no rule has.
                None => (i + 1..)
                    .map(|n| format!("r{n}"))
                    .find(|c| !given.contains(&c.as_str()) && !rules.iter().any(|r| r.id == *c))
                    .expect("a free id"),
            };
            if rules.iter().any(|r| r.id == id) {
                return Err(RuleError::DuplicateId(id));
            }
            if spec.conditions.len() > MAX_CONDITIONS {
                return Err(RuleError::TooManyConditions(id));
            }
            let conditions = spec
                .conditions
                .iter()
                .map(parse_condition)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|(condition, why)| RuleError::Condition {
                    rule: id.clone(),
                    condition,
                    why,
                })?;
            let target = |t: &str| {
                TargetUrl::parse(t, own_hosts).map_err(|error| RuleError::Target {
                    rule: id.clone(),
                    error,
                })
            };
            let action = match (&spec.target, &spec.split) {
                (Some(t), None) => Action::Target(target(t)?),
                (None, Some(variants)) => {
                    if !(MIN_VARIANTS..=MAX_VARIANTS).contains(&variants.len()) {
                        return Err(RuleError::Split(id));
                    }
                    let mut out: Vec<Variant> = Vec::with_capacity(variants.len());
                    let given: Vec<&str> =
                        variants.iter().filter_map(|v| v.id.as_deref()).collect();
                    for v in variants {
                        let vid = match &v.id {
                            Some(vid) if valid_id(vid) => vid.clone(),
                            Some(_) => return Err(RuleError::Split(id)),
                            // The first letter no variant has.
                            None => (b'a'..=b'z')
                                .map(|c| (c as char).to_string())
                                .find(|c| {
                                    !given.contains(&c.as_str()) && !out.iter().any(|o| o.id == *c)
                                })
                                .expect("a free letter for at most 10 variants"),
                        };
                        if out.iter().any(|o| o.id == vid) || !(1..=MAX_WEIGHT).contains(&v.weight)
                        {
                            return Err(RuleError::Split(id));
                        }
                        out.push(Variant {
                            id: vid,
                            target: target(&v.target)?,
                            weight: v.weight,
                        });
                    }
                    Action::Split(out)
                }
                _ => return Err(RuleError::NoAction(id)),
            };
            rules.push(Rule {
                id,
                conditions,
                action,
            });
        }
        let mut needs = Needs::default();
        for rule in &rules {
            needs.visitor |= matches!(rule.action, Action::Split(_));
            for c in &rule.conditions {
                needs.location |= matches!(c, Condition::Country(_) | Condition::City(_));
                needs.user_agent |= matches!(
                    c,
                    Condition::Device(_) | Condition::Os(_) | Condition::Browser(_)
                );
            }
        }
        Ok(Rules { rules, needs })
    }

    /// The rules as the API gives them back (ids filled in, values
    /// normalised).
    pub fn to_specs(&self) -> Vec<RuleSpec> {
        self.rules
            .iter()
            .map(|r| {
                let (target, split) = match &r.action {
                    Action::Target(t) => (Some(t.as_str().to_owned()), None),
                    Action::Split(vs) => (
                        None,
                        Some(
                            vs.iter()
                                .map(|v| VariantSpec {
                                    id: Some(v.id.clone()),
                                    target: v.target.as_str().to_owned(),
                                    weight: v.weight,
                                })
                                .collect(),
                        ),
                    ),
                };
                RuleSpec {
                    id: Some(r.id.clone()),
                    conditions: r.conditions.iter().map(Condition::to_spec).collect(),
                    target,
                    split,
                }
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every target the rules can send a visit to.
    pub fn targets(&self) -> impl Iterator<Item = &TargetUrl> {
        self.rules.iter().flat_map(|r| match &r.action {
            Action::Target(t) => std::slice::from_ref(t).iter().collect::<Vec<_>>(),
            Action::Split(vs) => vs.iter().map(|v| &v.target).collect(),
        })
    }

    /// What the rules read of a visit.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// Where `visit` of link `link` goes: the first rule whose conditions
    /// all hold decides.
    pub fn decide<'v>(&self, link: LinkId, visit: &Visit<'v>) -> Decision<'_> {
        // What rules read of the visit: worked out once, and only if asked.
        let mut memo = Memo::default();
        for rule in &self.rules {
            if rule.conditions.iter().all(|c| c.holds(visit, &mut memo)) {
                return match &rule.action {
                    Action::Target(t) => Decision {
                        rule: Some(&rule.id),
                        variant: None,
                        target: Some(t),
                    },
                    Action::Split(variants) => {
                        let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
                        let mut point = split_point(link, &rule.id, visit.visitor, total);
                        let chosen = variants
                            .iter()
                            .find(|v| {
                                let w = u64::from(v.weight);
                                if point < w {
                                    return true;
                                }
                                point -= w;
                                false
                            })
                            .unwrap_or(&variants[variants.len() - 1]);
                        Decision {
                            rule: Some(&rule.id),
                            variant: Some(&chosen.id),
                            target: Some(&chosen.target),
                        }
                    }
                };
            }
        }
        Decision {
            rule: None,
            variant: None,
            target: None,
        }
    }
}

/// As the API's JSON: the list of [`RuleSpec`]s. Stored and cached rules
/// are read back through [`Rules::parse`] (without hop's own hosts, which
/// were checked when they were written).
impl Serialize for Rules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_specs().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rules, D::Error> {
        let specs = Vec::<RuleSpec>::deserialize(d)?;
        Rules::parse(&specs, &[]).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
