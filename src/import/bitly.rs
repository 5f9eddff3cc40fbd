//! Bitly: links from its API v4 (the group's bitlinks, page by page) or
//! from a CSV export of links, and with a token each link's clicks per
//! day (`/clicks?unit=day&units=-1`), countries and referrers (over all
//! time), imported as counted clicks: the days as they are, the
//! breakdowns on the link's first day with clicks.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Source, SourceCount, SourceLink};
use crate::domain::Dimension;

/// Bitly's API.
pub const DEFAULT_API: &str = "https://api-ssl.bitly.com";

/// Bitly's time format: `2024-01-02T03:04:05+0000`.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s.trim()))
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| super::parse_sql_time(s))
}

#[derive(Deserialize)]
struct User {
    default_group_guid: String,
}

#[derive(Deserialize)]
struct Bitlink {
    id: String,
    long_url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    custom_bitlinks: Vec<String>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct Bitlinks {
    links: Vec<Bitlink>,
    pagination: Pagination,
}

#[derive(Deserialize)]
struct LinkClicks {
    link_clicks: Vec<DayClicks>,
}

#[derive(Deserialize)]
struct DayClicks {
    clicks: u64,
    date: String,
}

#[derive(Deserialize)]
struct Metrics {
    metrics: Vec<Metric>,
}

#[derive(Deserialize)]
struct Metric {
    value: String,
    clicks: u64,
}

/// The path of a short link: its back-half.
fn back_half(link: &str) -> Option<String> {
    let s = link
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (_, path) = s.split_once('/')?;
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// A referrer as Bitly reports it, as hop's referrer breakdown keys them.
fn referrer_value(v: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    let host = v
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    match host.as_str() {
        "" | "direct" => "direct".into(),
        h => h.strip_prefix("www.").unwrap_or(h).to_owned(),
    }
}

pub struct Bitly {
    api: super::api::Api,
    token: Option<String>,
    csv: Option<PathBuf>,
    /// Bitlink id (`bit.ly/abc`) of each link's key.
    ids: HashMap<String, String>,
}

impl Bitly {
    /// `token`: API access token (links from the API unless `csv`, and
    /// the clicks); `csv`: a CSV export of links.
    pub fn new(api: &str, token: Option<&str>, csv: Option<PathBuf>) -> anyhow::Result<Bitly> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        if token.is_none() && csv.is_none() {
            bail!("give --token (Bitly's API) or --csv FILE (its export of links), or both");
        }
        if let Some(p) = &csv {
            std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        }
        Ok(Bitly {
            // Bitly's errors: {"message": "FORBIDDEN", "description": …}.
            api: super::api::Api::new(
                "Bitly",
                api,
                ("Authorization", format!("Bearer {}", token.unwrap_or(""))),
                |b| super::api::fields(b, &[&["message"], &["description"]]),
            )?,
            token: token.map(str::to_owned),
            csv,
            ids: HashMap::new(),
        })
    }

    fn link_of(&mut self, b: Bitlink) -> SourceLink {
        let slug = b
            .custom_bitlinks
            .first()
            .and_then(|c| back_half(c))
            .or_else(|| back_half(&b.id));
        self.ids.insert(b.id.clone(), b.id.clone());
        SourceLink {
            key: b.id,
            slug,
            url: b.long_url,
            title: b.title.filter(|t| !t.is_empty()),
            tags: b.tags,
            created_at: b.created_at.as_deref().and_then(parse_time),
            expires_at: None,
            clicks: None,
        }
    }

    fn csv_links(&mut self, path: &PathBuf) -> anyhow::Result<Vec<SourceLink>> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let header: Vec<String> = reader
            .headers()?
            .iter()
            .map(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .to_ascii_lowercase()
                    .replace([' ', '-'], "_")
            })
            .collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let long = col(&["long_url", "destination", "destination_url", "original_url"]);
        let short = col(&["link", "bitlink", "short_link", "short_url", "id"]);
        let (Some(long), Some(short)) = (long, short) else {
            bail!(
                "{}: needs a long URL column (long_url) and a short link column (link or bitlink)",
                path.display()
            );
        };
        let title = col(&["title"]);
        let created = col(&["created", "created_at", "date_created", "creation_date"]);
        let tags = col(&["tags"]);
        let custom = col(&["custom_bitlinks", "custom_back_half", "custom_link"]);
        let mut out = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("row {}", n + 2))?;
            let get = |i: Option<usize>| {
                i.and_then(|i| record.get(i))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let (Some(url), Some(link)) = (get(Some(long)), get(Some(short))) else {
                continue;
            };
            let id = link
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
            let slug = get(custom)
                .and_then(|c| back_half(c.split(',').next().unwrap_or(c)))
                .or_else(|| back_half(&id));
            self.ids.insert(id.clone(), id.clone());
            out.push(SourceLink {
                key: id,
                slug,
                url: url.to_owned(),
                title: get(title).map(str::to_owned),
                tags: get(tags)
                    .map(|t| t.split([',', '|']).map(|t| t.trim().to_owned()).collect())
                    .unwrap_or_default(),
                created_at: get(created).and_then(parse_time),
                expires_at: None,
                clicks: None,
            });
        }
        Ok(out)
    }

    async fn total(&self, id: &str) -> anyhow::Result<Vec<DayClicks>> {
        let got: LinkClicks = self
            .api
            .get(&format!("/v4/bitlinks/{id}/clicks?unit=day&units=-1"), &[])
            .await?;
        Ok(got.link_clicks)
    }
}

#[async_trait]
impl Source for Bitly {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut links = match self.csv.clone() {
            Some(path) => self.csv_links(&path)?,
            None => {
                let user: User = self.api.get("/v4/user", &[]).await?;
                let mut url = format!("/v4/groups/{}/bitlinks?size=100", user.default_group_guid);
                let mut out = Vec::new();
                loop {
                    let page: Bitlinks = self.api.get(&url, &[]).await?;
                    let done = page.links.is_empty() || page.pagination.next.is_empty();
                    for b in page.links {
                        out.push(self.link_of(b));
                    }
                    if done {
                        break;
                    }
                    url = page.pagination.next;
                }
                out
            }
        };
        // With a token, each link's total is what Bitly counted.
        if self.token.is_some() {
            for l in &mut links {
                let days = self.total(&l.key).await?;
                l.clicks = Some(days.iter().map(|d| d.clicks).sum());
            }
        }
        Ok(links)
    }

    async fn link_counts(&mut self, link: &SourceLink) -> anyhow::Result<Vec<SourceCount>> {
        if self.token.is_none() {
            return Ok(Vec::new());
        }
        let id = self.ids.get(&link.key).cloned().unwrap_or(link.key.clone());
        let mut out = Vec::new();
        for d in self.total(&id).await? {
            if d.clicks == 0 {
                continue;
            }
            let Some(at) = parse_time(&d.date) else {
                bail!("{id}: a day Bitly names {:?}", d.date);
            };
            out.push(SourceCount {
                at: at.timestamp_millis(),
                clicks: d.clicks,
                bot: false,
                dims: Vec::new(),
                complete_to: None,
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        let mut dims = Vec::new();
        for (facet, dim) in [
            ("countries", Dimension::Country),
            ("referrers", Dimension::Referrer),
        ] {
            let got: Metrics = self
                .api
                .get(&format!("/v4/bitlinks/{id}/{facet}?unit=day&units=-1"), &[])
                .await?;
            for m in got.metrics {
                let value = match dim {
                    Dimension::Referrer => referrer_value(&m.value),
                    _ => m.value.trim().to_ascii_uppercase(),
                };
                dims.push((dim, value, m.clicks));
            }
        }
        Ok(super::with_breakdowns(out, dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitly_values() {
        assert_eq!(
            back_half("https://bit.ly/3abcDEF").as_deref(),
            Some("3abcDEF")
        );
        assert_eq!(back_half("bit.ly/my-half").as_deref(), Some("my-half"));
        assert_eq!(back_half("bit.ly/"), None);
        assert_eq!(
            referrer_value("https://www.Google.com/search"),
            "google.com"
        );
        assert_eq!(referrer_value("direct"), "direct");
        assert_eq!(
            parse_time("2024-01-02T03:04:05+0000").unwrap().timestamp(),
            1_704_164_645
        );
    }
}
