//! Kutt: links from its API (`GET /api/v2/links`, page by page) and each
//! one's stats (`GET /api/v2/links/{id}/stats`), imported as counted
//! clicks.
//!
//! Kutt keeps visits as hourly rows and answers stats relative to the
//! moment it computed them (`updatedAt`, "now" below), as its
//! `visit.queries.js` does: `lastDay` has 24 hours (`differenceInHours`),
//! `lastMonth` 30 days of 24 hours (`differenceInDays`), `lastYear` 12
//! months (`differenceInMonths`; `allTime`, 18 of them, before Kutt 3),
//! each view at index `length − diff − 1`. Those nest (the last 24 hours
//! are the month's day 0; the last 30 days lie in the first one or two
//! months), so the series is taken finest first: the hours, then the days
//! before them, then what each month has beyond its days, then what the
//! link's total (`visit_count`) has beyond the months, on the day the link
//! was made. Every count lands where Kutt put it, at the start of its
//! bucket; breakdowns (browser, OS, country, referrer) are Kutt's for the
//! months it keeps, on the first bucket with clicks.

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Months, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{Source, SourceCount, SourceLink};
use crate::domain::Dimension;

/// Links asked per page (Kutt's most).
const PAGE: usize = 50;

#[derive(Deserialize)]
struct KuttLink {
    id: String,
    address: String,
    target: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    expire_in: Option<DateTime<Utc>>,
    #[serde(default)]
    visit_count: Option<u64>,
}

#[derive(Deserialize)]
struct Links {
    data: Vec<KuttLink>,
}

pub struct Kutt {
    api: super::api::Api,
}

impl Kutt {
    pub fn new(base: &str, api_key: &str) -> anyhow::Result<Kutt> {
        if api_key.trim().is_empty() {
            bail!("--api-key is needed (Kutt: Settings → API)");
        }
        Ok(Kutt {
            // Kutt's errors: {"error": "…"}.
            api: super::api::Api::new(
                "Kutt",
                base,
                ("X-API-KEY", api_key.trim().to_owned()),
                |b| super::api::fields(b, &[&["error"]]),
            )?,
        })
    }
}

/// A browser as Kutt names it, as hop's user agent check does.
fn browser_value(v: &str) -> String {
    match v {
        "chrome" => "Chrome",
        "edge" => "Edge",
        "firefox" => "Firefox",
        "ie" => "Internet Explorer",
        "opera" => "Opera",
        "safari" => "Safari",
        _ => "Other",
    }
    .into()
}

fn os_value(v: &str) -> String {
    match v {
        "android" => "Android",
        "ios" => "iOS",
        "linux" => "Linux",
        "macos" => "Mac OSX",
        "windows" => "Windows",
        _ => "Other",
    }
    .into()
}

/// Kutt's referrer keys: hosts with `[dot]` for dots, or `direct`.
fn referrer_value(v: &str) -> String {
    let v = v.replace("[dot]", ".").to_ascii_lowercase();
    match v.as_str() {
        "" | "direct" => "direct".into(),
        h => h.strip_prefix("www.").unwrap_or(h).to_owned(),
    }
}

fn country_value(v: &str) -> String {
    if v.len() == 2 {
        v.to_ascii_uppercase()
    } else {
        "unknown".into()
    }
}

/// The views of one period.
fn views(stats: &Value, period: &str) -> Vec<u64> {
    stats[period]["views"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// Kutt's stats as counts at the start of each bucket (see the module's
/// docs); `created`: where what no period holds goes.
pub fn counts_of(
    stats: &Value,
    total: u64,
    created: DateTime<Utc>,
) -> anyhow::Result<Vec<SourceCount>> {
    let now: DateTime<Utc> = stats["updatedAt"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .context("stats without updatedAt")?;
    let hour = Duration::hours(1);
    let day = Duration::hours(24);
    let (months_key, months_len) = if stats.get("allTime").is_some() {
        ("allTime", 18)
    } else {
        ("lastYear", 12)
    };
    let hours = views(stats, "lastDay");
    let days = views(stats, "lastMonth");
    let months = views(stats, months_key);
    if hours.len() != 24 || days.len() != 30 || months.len() != months_len {
        bail!("stats whose periods are not Kutt's (24 hours, 30 days, {months_len} months)");
    }
    // The month (0: the latest) that a time `at` falls in, as
    // `differenceInMonths(now, at)` counts.
    let month_of = |at: DateTime<Utc>| -> usize {
        (1..=months_len)
            .find(|m| {
                now.checked_sub_months(Months::new(*m as u32))
                    .is_some_and(|b| at > b)
            })
            .map_or(months_len, |m| m - 1)
    };
    let mut out = Vec::new();
    let mut in_month = vec![0u64; months_len];
    let push = |at: DateTime<Utc>, clicks: u64, out: &mut Vec<SourceCount>| {
        if clicks > 0 {
            out.push(SourceCount {
                at: at.timestamp_millis(),
                clicks,
                bot: false,
                dims: Vec::new(),
                complete_to: None,
            });
        }
    };
    // Hours: the row of the hour `now − diff` is in.
    for (i, n) in hours.iter().enumerate() {
        let diff = 23 - i as i64;
        let at = (now - hour * diff as i32).duration_trunc(hour)?;
        if let Some(m) = in_month.get_mut(month_of(at)) {
            *m += n;
        }
        push(at, *n, &mut out);
    }
    // Days before them (day 0 is the last 24 hours): from the first hour
    // in the day.
    for (i, n) in days.iter().enumerate() {
        let diff = 29 - i as i64;
        if diff == 0 {
            continue;
        }
        let end = now - day * diff as i32;
        let at = (end - day).duration_trunc(hour)? + hour;
        if let Some(m) = in_month.get_mut(month_of(at)) {
            *m += n;
        }
        push(at, *n, &mut out);
    }
    // What each month has beyond its hours and days: from its start.
    let mut dated = 0u64;
    for (i, n) in months.iter().enumerate() {
        let m = months_len - 1 - i;
        dated += n;
        let rest = n.saturating_sub(in_month[m]);
        let start = now
            .checked_sub_months(Months::new(m as u32 + 1))
            .context("a month before the calendar")?;
        push(start.duration_trunc(hour)? + hour, rest, &mut out);
    }
    let first = out.iter().map(|c| c.at).min();
    // What the total has beyond the months: undated, on the day the link
    // was made, with no breakdown.
    let undated = total.saturating_sub(dated);
    if undated > 0 {
        out.push(SourceCount {
            at: created.timestamp_millis(),
            clicks: undated,
            bot: false,
            dims: Vec::new(),
            complete_to: Some(undated),
        });
    }
    let Some(first) = first else {
        return Ok(out);
    };
    let mut dims = Vec::new();
    for (field, dim) in [
        ("browser", Dimension::Browser),
        ("os", Dimension::Os),
        ("country", Dimension::Country),
        ("referrer", Dimension::Referrer),
    ] {
        for e in stats[months_key]["stats"][field]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(n)) = (e["name"].as_str(), e["value"].as_u64()) else {
                continue;
            };
            let value = match dim {
                Dimension::Browser => browser_value(name),
                Dimension::Os => os_value(name),
                Dimension::Country => country_value(name),
                _ => referrer_value(name),
            };
            dims.push((dim, value, n));
        }
    }
    out.push(SourceCount {
        at: first,
        clicks: 0,
        bot: false,
        dims,
        complete_to: Some(dated),
    });
    Ok(out)
}

#[async_trait]
impl Source for Kutt {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut out = Vec::new();
        loop {
            let body: Value = self
                .api
                .get(
                    "/api/v2/links",
                    &[("limit", PAGE.to_string()), ("skip", out.len().to_string())],
                )
                .await?;
            let page: Links = serde_json::from_value(body).context("not Kutt's list of links")?;
            let n = page.data.len();
            for l in page.data {
                out.push(SourceLink {
                    key: l.id,
                    slug: Some(l.address),
                    url: l.target,
                    title: l.description.filter(|d| !d.is_empty()),
                    tags: Vec::new(),
                    created_at: l.created_at,
                    expires_at: l.expire_in,
                    clicks: l.visit_count,
                });
            }
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    async fn link_counts(&mut self, link: &SourceLink) -> anyhow::Result<Vec<SourceCount>> {
        let stats: Value = self
            .api
            .get(&format!("/api/v2/links/{}/stats", link.key), &[])
            .await?;
        let total = link
            .clicks
            .or_else(|| stats["visit_count"].as_u64())
            .unwrap_or(0);
        counts_of(&stats, total, link.created_at.unwrap_or_else(Utc::now))
            .with_context(|| format!("stats of {}", link.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kutt_values() {
        assert_eq!(
            referrer_value("news[dot]ycombinator[dot]com"),
            "news.ycombinator.com"
        );
        assert_eq!(referrer_value("direct"), "direct");
        assert_eq!(country_value("fr"), "FR");
        assert_eq!(country_value("unknown"), "unknown");
        assert_eq!(browser_value("ie"), "Internet Explorer");
    }
}
