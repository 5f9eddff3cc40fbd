//! Shlink: from a running instance's REST API v3 (short URLs, page by
//! page, with their tags, and each one's visits: date, referer, user
//! agent, location, bot flag), or from the CSV of short URLs that
//! shlink-web-client exports (visit totals only: imported as counted
//! clicks at the link's creation).
//!
//! Shlink's visits carry no id, and the API lists them newest first.
//! Each import reads a link's visits in a window ending a minute before it
//! started (`startDate`/`endDate`), so the pages of a window are fixed and
//! a visit is named by (window, page, place): an interrupted window goes on
//! from its next page, and the next import reads the visits after it.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Source, SourceClick, SourceCount, SourceLink};

/// Short URLs and visits asked per page.
const PAGE: u32 = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShortUrl {
    short_code: String,
    long_url: String,
    #[serde(default)]
    date_created: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    visits_summary: Option<VisitsSummary>,
    /// Shlink before 4.0.
    #[serde(default)]
    visits_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    valid_until: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Deserialize)]
struct VisitsSummary {
    total: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    current_page: u32,
    pages_count: u32,
}

#[derive(Deserialize)]
struct Paged<T> {
    data: Vec<T>,
    pagination: Pagination,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShortUrls {
    short_urls: Paged<ShortUrl>,
}

#[derive(Deserialize)]
struct Visits {
    visits: Paged<Visit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Visit {
    #[serde(default)]
    referer: Option<String>,
    date: DateTime<chrono::FixedOffset>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    visit_location: Option<Location>,
    #[serde(default)]
    potential_bot: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    city_name: Option<String>,
}

/// A running Shlink, read over its REST API v3.
pub struct ShlinkApi {
    api: super::api::Api,
    /// Short code and domain of each link's key.
    codes: HashMap<String, (String, Option<String>)>,
}

impl ShlinkApi {
    pub fn new(base: &str, api_key: &str) -> anyhow::Result<ShlinkApi> {
        if api_key.trim().is_empty() {
            bail!("--api-key is needed (a Shlink API key)");
        }
        Ok(ShlinkApi {
            // Shlink's problem+json: {type, title, detail, status}.
            api: super::api::Api::new(
                "Shlink",
                base,
                ("X-Api-Key", api_key.trim().to_owned()),
                |b| super::api::fields(b, &[&["detail"]]),
            )?,
            codes: HashMap::new(),
        })
    }
}

fn atom(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

#[async_trait]
impl Source for ShlinkApi {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let got: ShortUrls = self
                .api
                .get(
                    "/rest/v3/short-urls",
                    &[
                        ("page", page.to_string()),
                        ("itemsPerPage", PAGE.to_string()),
                        ("orderBy", "dateCreated-ASC".into()),
                    ],
                )
                .await?;
            for s in got.short_urls.data {
                let key = match &s.domain {
                    Some(d) => format!("{d}/{}", s.short_code),
                    None => s.short_code.clone(),
                };
                self.codes
                    .insert(key.clone(), (s.short_code.clone(), s.domain.clone()));
                out.push(SourceLink {
                    key,
                    slug: Some(s.short_code),
                    url: s.long_url,
                    title: s.title,
                    tags: s.tags,
                    created_at: s.date_created.map(|d| d.with_timezone(&Utc)),
                    expires_at: s
                        .meta
                        .and_then(|m| m.valid_until)
                        .map(|d| d.with_timezone(&Utc)),
                    clicks: s.visits_summary.map(|v| v.total).or(s.visits_count),
                });
            }
            let p = got.short_urls.pagination;
            if p.current_page >= p.pages_count {
                return Ok(out);
            }
            page += 1;
        }
    }

    fn per_link(&self) -> bool {
        true
    }

    async fn link_clicks(
        &mut self,
        link: &SourceLink,
        after: Option<i64>,
        until: i64,
        page: u32,
    ) -> anyhow::Result<Vec<SourceClick>> {
        let Some((code, domain)) = self.codes.get(&link.key).cloned() else {
            return Ok(Vec::new());
        };
        let mut query = vec![
            ("page", (page + 1).to_string()),
            ("itemsPerPage", PAGE.to_string()),
            ("endDate", atom(until)),
        ];
        if let Some(after) = after {
            // Dates are whole seconds: the window starts a second on.
            query.push(("startDate", atom(after + 1000)));
        }
        if let Some(d) = domain {
            query.push(("domain", d));
        }
        let path = format!(
            "/rest/v3/short-urls/{}/visits",
            url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
        );
        let got: Visits = self.api.get(&path, &query).await?;
        if got.visits.pagination.current_page > got.visits.pagination.pages_count.max(1)
            || page + 1 > got.visits.pagination.pages_count
        {
            return Ok(Vec::new());
        }
        Ok(got
            .visits
            .data
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at = v.date.timestamp_millis();
                let location = v.visit_location;
                SourceClick {
                    link: link.key.clone(),
                    id: format!("{}:{until}:{page}:{i}", link.key),
                    pos: at,
                    at,
                    ip: None,
                    user_agent: v.user_agent.filter(|u| !u.is_empty()),
                    referrer: v.referer.filter(|r| !r.is_empty()),
                    country: location
                        .as_ref()
                        .and_then(|l| l.country_code.clone())
                        .filter(|c| c.len() == 2),
                    city: location
                        .and_then(|l| l.city_name)
                        .filter(|c| !c.is_empty() && c != "Unknown"),
                    bot: Some(v.potential_bot),
                }
            })
            .collect())
    }
}

/// The CSV of short URLs shlink-web-client exports: `createdAt`, `domain`,
/// `shortCode`, `shortUrl`, `longUrl`, `title`, `tags` (`|` between them)
/// and `visits` (a total, with no times).
pub struct ShlinkCsv {
    path: PathBuf,
    totals: HashMap<String, (i64, u64)>,
}

impl ShlinkCsv {
    pub fn open(path: PathBuf) -> anyhow::Result<ShlinkCsv> {
        std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(ShlinkCsv {
            path,
            totals: HashMap::new(),
        })
    }
}

#[async_trait]
impl Source for ShlinkCsv {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut reader = csv::Reader::from_path(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let header: HashMap<String, usize> = reader
            .headers()?
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}').to_owned(), i))
            .collect();
        for needed in ["shortCode", "longUrl"] {
            if !header.contains_key(needed) {
                bail!(
                    "{}: no `{needed}` column (shlink-web-client's export has createdAt, domain, shortCode, shortUrl, longUrl, title, tags, visits)",
                    self.path.display()
                );
            }
        }
        let mut out = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("row {}", n + 2))?;
            let get = |k: &str| {
                header
                    .get(k)
                    .and_then(|&i| record.get(i))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let Some(code) = get("shortCode") else {
                continue;
            };
            let key = match get("domain") {
                Some(d) => format!("{d}/{code}"),
                None => code.to_owned(),
            };
            let created = get("createdAt")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let visits = match get("visits") {
                None => None,
                Some(v) => Some(
                    v.parse::<u64>()
                        .with_context(|| format!("row {}: visits {v:?}", n + 2))?,
                ),
            };
            if let Some(v) = visits {
                let at = created.unwrap_or_else(Utc::now).timestamp_millis();
                self.totals.insert(key.clone(), (at, v));
            }
            out.push(SourceLink {
                key,
                slug: Some(code.to_owned()),
                url: get("longUrl").unwrap_or("").to_owned(),
                title: get("title").map(str::to_owned),
                tags: get("tags")
                    .map(|t| t.split('|').map(|t| t.trim().to_owned()).collect())
                    .unwrap_or_default(),
                created_at: created,
                expires_at: None,
                clicks: visits,
            });
        }
        Ok(out)
    }

    async fn link_counts(&mut self, link: &SourceLink) -> anyhow::Result<Vec<SourceCount>> {
        Ok(match self.totals.get(&link.key) {
            Some(&(at, clicks)) if clicks > 0 => vec![SourceCount {
                at,
                clicks,
                bot: false,
                dims: Vec::new(),
                complete_to: Some(clicks),
            }],
            _ => Vec::new(),
        })
    }
}
