//! A plain CSV of links: a header row naming the columns `url` (needed),
//! `slug`, `title`, `tags` (comma-separated in the cell), `created_at` and
//! `expires_at` (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC, or a date), in any
//! order; other columns are passed over. `hop export links` writes such a
//! file. No click history.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Source, SourceLink, parse_sql_time};

pub struct CsvLinks {
    path: PathBuf,
}

impl CsvLinks {
    pub fn open(path: PathBuf) -> anyhow::Result<CsvLinks> {
        std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(CsvLinks { path })
    }
}

/// A cell as written, without the `'` hop's export puts before text a
/// spreadsheet would run as a formula.
fn cell(value: &str) -> &str {
    match value.as_bytes() {
        [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] => &value[1..],
        _ => value,
    }
}

/// A time as CSV files write them.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_sql_time(s))
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

#[async_trait]
impl Source for CsvLinks {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let header: HashMap<String, usize> = reader
            .headers()?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                (
                    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase(),
                    i,
                )
            })
            .collect();
        let Some(&url_at) = header.get("url") else {
            bail!(
                "{}: the header row names no `url` column (columns: url, slug, title, tags, created_at, expires_at)",
                self.path.display()
            );
        };
        let mut links = Vec::new();
        let mut unnamed: HashMap<String, u32> = HashMap::new();
        for (n, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("row {}", n + 2))?;
            let get = |k: &str| {
                header
                    .get(k)
                    .and_then(|&i| record.get(i))
                    .map(cell)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let url = record.get(url_at).map(cell).unwrap_or("").trim().to_owned();
            if url.is_empty() {
                continue;
            }
            let time = |k: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
                match get(k) {
                    None => Ok(None),
                    Some(v) => parse_time(v)
                        .map(Some)
                        .with_context(|| format!("row {}: {k} {v:?} is no time", n + 2)),
                }
            };
            let slug = get("slug").map(str::to_owned);
            // A row without a slug is known by its URL (and which such row
            // of that URL it is), so a second run finds it.
            let key = match &slug {
                Some(s) => s.clone(),
                None => {
                    let k = unnamed.entry(url.clone()).or_default();
                    *k += 1;
                    format!("{url}#{k}")
                }
            };
            links.push(SourceLink {
                key,
                slug,
                title: get("title").map(str::to_owned),
                tags: get("tags")
                    .map(|t| t.split(',').map(|t| t.trim().to_owned()).collect())
                    .unwrap_or_default(),
                created_at: time("created_at")?,
                expires_at: time("expires_at")?,
                clicks: None,
                url,
            });
        }
        Ok(links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_times() {
        assert_eq!(cell("'=1+1"), "=1+1");
        assert_eq!(cell("'quoted"), "'quoted");
        assert_eq!(
            parse_time("2024-05-06T07:08:09+02:00").unwrap().timestamp(),
            parse_time("2024-05-06 05:08:09").unwrap().timestamp()
        );
        assert_eq!(parse_time("2024-05-06").unwrap().timestamp(), 1_714_953_600);
        assert!(parse_time("soon").is_none());
    }
}
