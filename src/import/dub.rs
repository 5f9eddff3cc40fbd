//! Dub: links from its API (`GET /links`, page by page) and each link's
//! analytics (`GET /analytics`, `interval=all`): the clicks time series at
//! Dub's own grain, and the countries, devices, browsers, systems and
//! referrers over all time, imported as counted clicks (the series on its
//! buckets, the breakdowns on the first bucket with clicks).

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{Source, SourceCount, SourceLink};
use crate::domain::Dimension;

/// Dub's API.
pub const DEFAULT_API: &str = "https://api.dub.co";

/// Links asked per page.
const PAGE: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DubLink {
    id: String,
    key: String,
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

pub struct Dub {
    api: super::api::Api,
}

/// A device as Dub names it, as hop's device breakdown keys it.
fn device_value(v: &str) -> String {
    match v.trim().to_ascii_lowercase().as_str() {
        "desktop" => "desktop".into(),
        "mobile" => "mobile".into(),
        "tablet" => "tablet".into(),
        "bot" => "bot".into(),
        _ => "other".into(),
    }
}

/// A referrer as Dub names it (`(direct)` or a host).
fn referrer_value(v: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "(direct)" | "direct" => "direct".into(),
        h => h.strip_prefix("www.").unwrap_or(h).to_owned(),
    }
}

impl Dub {
    pub fn new(api: &str, token: &str) -> anyhow::Result<Dub> {
        if token.trim().is_empty() {
            bail!("--token is needed (a Dub API key, dub_…)");
        }
        Ok(Dub {
            // Dub's errors: {"error": {"code", "message", "doc_url"}}.
            api: super::api::Api::new(
                "Dub",
                api,
                ("Authorization", format!("Bearer {}", token.trim())),
                |b| super::api::fields(b, &[&["error", "code"], &["error", "message"]]),
            )?,
        })
    }

    async fn analytics(&self, link: &str, group_by: &str) -> anyhow::Result<Value> {
        self.api
            .get(
                "/analytics",
                &[
                    ("event", "clicks".into()),
                    ("groupBy", group_by.into()),
                    ("linkId", link.into()),
                    ("interval", "all".into()),
                    ("timezone", "UTC".into()),
                ],
            )
            .await
    }
}

#[async_trait]
impl Source for Dub {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut out = Vec::new();
        for page in 1.. {
            let body: Value = self
                .api
                .get(
                    "/links",
                    &[("page", page.to_string()), ("pageSize", PAGE.to_string())],
                )
                .await?;
            let links: Vec<DubLink> =
                serde_json::from_value(body).context("GET /links: not a list of Dub links")?;
            let n = links.len();
            for l in links {
                let total = self.analytics(&l.id, "count").await?;
                out.push(SourceLink {
                    slug: Some(l.key),
                    key: l.id,
                    url: l.url,
                    title: l.title.filter(|t| !t.is_empty()),
                    tags: l
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| t.name)
                        .collect(),
                    created_at: l.created_at,
                    expires_at: l.expires_at,
                    clicks: total["clicks"].as_u64(),
                });
            }
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn link_counts(&mut self, link: &SourceLink) -> anyhow::Result<Vec<SourceCount>> {
        let series = self.analytics(&link.key, "timeseries").await?;
        let mut out = Vec::new();
        for b in series
            .as_array()
            .context("a timeseries that is not a list")?
        {
            let clicks = b["clicks"].as_u64().unwrap_or(0);
            if clicks == 0 {
                continue;
            }
            let start = b["start"].as_str().unwrap_or("");
            let at = DateTime::parse_from_rfc3339(start)
                .with_context(|| format!("a timeseries bucket starting {start:?}"))?;
            out.push(SourceCount {
                at: at.timestamp_millis(),
                clicks,
                bot: false,
                dims: Vec::new(),
                complete_to: None,
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        let mut dims = Vec::new();
        for (group, field, dim) in [
            ("countries", "country", Dimension::Country),
            ("devices", "device", Dimension::Device),
            ("browsers", "browser", Dimension::Browser),
            ("os", "os", Dimension::Os),
            ("referers", "referer", Dimension::Referrer),
        ] {
            let rows = self.analytics(&link.key, group).await?;
            for r in rows.as_array().into_iter().flatten() {
                let (Some(value), Some(clicks)) = (r[field].as_str(), r["clicks"].as_u64()) else {
                    continue;
                };
                let value = match dim {
                    Dimension::Device => device_value(value),
                    Dimension::Referrer => referrer_value(value),
                    Dimension::Country => value.trim().to_ascii_uppercase(),
                    _ => value.trim().to_owned(),
                };
                dims.push((dim, value, clicks));
            }
        }
        Ok(super::with_breakdowns(out, dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dub_values() {
        assert_eq!(device_value("Desktop"), "desktop");
        assert_eq!(device_value("Console"), "other");
        assert_eq!(referrer_value("(direct)"), "direct");
        assert_eq!(referrer_value("www.Google.com"), "google.com");
    }
}
