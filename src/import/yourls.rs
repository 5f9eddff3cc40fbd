//! YOURLS: links (`yourls_url`) and every logged click (`yourls_log`),
//! from its MySQL/MariaDB database or from a SQL dump of those tables.
//!
//! YOURLS's own table definitions (`includes/functions-install.php`):
//! `yourls_url (keyword, url, title, timestamp, ip, clicks)` and
//! `yourls_log (click_id, click_time, shorturl, referrer, user_agent,
//! ip_address, country_code)`. It writes times as UTC text, `direct` for
//! a click without a referrer and `-` for one without a user agent.

use std::collections::{HashMap, VecDeque};
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;

use super::sqldump::{Statement, Statements, Value};
use super::{Source, SourceClick, SourceLink, parse_sql_time};

/// YOURLS's table prefix unless its config says otherwise.
pub const DEFAULT_PREFIX: &str = "yourls_";

const URL_COLUMNS: [&str; 6] = ["keyword", "url", "title", "timestamp", "ip", "clicks"];
const LOG_COLUMNS: [&str; 7] = [
    "click_id",
    "click_time",
    "shorturl",
    "referrer",
    "user_agent",
    "ip_address",
    "country_code",
];

/// Refuses a prefix that is not a plain SQL name (it goes into queries).
pub fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty()
        || prefix.len() > 40
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("--prefix must be letters, digits and '_' (YOURLS's default is {DEFAULT_PREFIX})");
    }
    Ok(())
}

/// A link row, whatever it came from.
fn link_of(
    keyword: String,
    url: String,
    title: Option<String>,
    created: Option<&str>,
    clicks: Option<i64>,
) -> SourceLink {
    SourceLink {
        slug: Some(keyword.clone()),
        key: keyword,
        url,
        title,
        tags: Vec::new(),
        created_at: created.and_then(parse_sql_time),
        expires_at: None,
        clicks: clicks.map(|c| c.max(0) as u64),
    }
}

/// A log row, whatever it came from; `None` without a usable time.
fn click_of(
    id: i64,
    time: &str,
    keyword: String,
    referrer: Option<&str>,
    user_agent: Option<&str>,
    ip: Option<&str>,
    country: Option<&str>,
) -> Option<SourceClick> {
    let at = parse_sql_time(time)?.timestamp_millis();
    let present = |v: Option<&str>, none: &str| {
        v.map(str::trim)
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case(none))
            .map(str::to_owned)
    };
    Some(SourceClick {
        link: keyword,
        id: id.to_string(),
        pos: id,
        at,
        ip: ip.and_then(|ip| ip.trim().parse().ok()),
        user_agent: present(user_agent, "-"),
        referrer: present(referrer, "direct"),
        country: present(country, ""),
        city: None,
        bot: None,
    })
}

/// A YOURLS database, read over MySQL's protocol.
#[cfg(feature = "mysql")]
pub struct YourlsDb {
    pool: sqlx::MySqlPool,
    prefix: String,
}

#[cfg(feature = "mysql")]
impl YourlsDb {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<YourlsDb> {
        check_prefix(prefix)?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .with_context(|| format!("connecting to {}", crate::store::redact_url(url)))?;
        Ok(YourlsDb {
            pool,
            prefix: prefix.to_owned(),
        })
    }
}

#[cfg(feature = "mysql")]
#[async_trait]
impl Source for YourlsDb {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        use sqlx::Row;
        // Times as the text YOURLS wrote (UTC), not converted by the
        // connection's time zone.
        // The prefix is a checked name (`check_prefix`).
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(keyword AS CHAR) AS keyword, CAST(url AS CHAR) AS url,
                    CAST(title AS CHAR) AS title, CAST(`timestamp` AS CHAR) AS created,
                    CAST(clicks AS SIGNED) AS clicks
             FROM {}url ORDER BY keyword",
            self.prefix
        )))
        .fetch_all(&self.pool)
        .await
        .with_context(|| format!("reading {}url", self.prefix))?;
        rows.iter()
            .map(|r| {
                Ok(link_of(
                    r.try_get("keyword")?,
                    r.try_get("url")?,
                    r.try_get("title")?,
                    r.try_get::<Option<String>, _>("created")?.as_deref(),
                    r.try_get("clicks")?,
                ))
            })
            .collect()
    }

    async fn clicks(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Vec<SourceClick>> {
        use sqlx::Row;
        let after = after.unwrap_or(i64::MIN);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(click_id AS SIGNED) AS id, CAST(click_time AS CHAR) AS t,
                    CAST(shorturl AS CHAR) AS shorturl, CAST(referrer AS CHAR) AS referrer,
                    CAST(user_agent AS CHAR) AS ua, CAST(ip_address AS CHAR) AS ip,
                    CAST(country_code AS CHAR) AS cc
             FROM {}log WHERE click_id > ? ORDER BY click_id LIMIT ?",
            self.prefix
        )))
        .bind(after)
        .bind(limit.max(1) as i64)
        .fetch_all(&self.pool)
        .await
        .with_context(|| format!("reading {}log", self.prefix))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let text = |k: &str| r.try_get::<Option<String>, _>(k);
            match click_of(
                id,
                text("t")?.as_deref().unwrap_or(""),
                text("shorturl")?.unwrap_or_default(),
                text("referrer")?.as_deref(),
                text("ua")?.as_deref(),
                text("ip")?.as_deref(),
                text("cc")?.as_deref(),
            ) {
                Some(c) => out.push(c),
                None => out.push(unusable(id)),
            }
        }
        Ok(out)
    }
}

/// A row without a usable time: a click of no link, which the engine
/// counts as skipped and moves past.
fn unusable(id: i64) -> SourceClick {
    SourceClick {
        link: String::new(),
        id: id.to_string(),
        pos: id,
        ..SourceClick::default()
    }
}

/// A SQL dump of YOURLS's tables (mysqldump, phpMyAdmin, Adminer).
pub struct YourlsDump {
    path: PathBuf,
    prefix: String,
    clicks: Option<DumpClicks>,
}

struct DumpClicks {
    statements: Statements<BufReader<std::fs::File>>,
    columns: Vec<String>,
    pending: VecDeque<Vec<Value>>,
    after: i64,
}

impl YourlsDump {
    pub fn open(path: PathBuf, prefix: &str) -> anyhow::Result<YourlsDump> {
        check_prefix(prefix)?;
        std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(YourlsDump {
            path,
            prefix: prefix.to_owned(),
            clicks: None,
        })
    }

    fn statements(&self) -> anyhow::Result<Statements<BufReader<std::fs::File>>> {
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(Statements::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// The columns of `row` by name, in the order `columns` gives.
fn named<'a>(columns: &'a [String], row: &'a [Value]) -> HashMap<&'a str, &'a Value> {
    columns.iter().map(String::as_str).zip(row.iter()).collect()
}

fn text<'a>(row: &HashMap<&str, &'a Value>, k: &str) -> Option<&'a str> {
    row.get(k).and_then(|v| v.text())
}

#[async_trait]
impl Source for YourlsDump {
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>> {
        let table = format!("{}url", self.prefix);
        let mut statements = self.statements()?;
        let mut columns: Vec<String> = URL_COLUMNS.map(String::from).to_vec();
        let mut links = Vec::new();
        let mut seen = false;
        while let Some(st) = statements.next_of(|t| t == table)? {
            match st {
                Statement::Create { columns: c, .. } => {
                    seen = true;
                    columns = c;
                }
                Statement::Insert {
                    columns: c, rows, ..
                } => {
                    seen = true;
                    let cols = c.as_ref().unwrap_or(&columns);
                    for row in &rows {
                        let r = named(cols, row);
                        let (Some(keyword), Some(url)) = (text(&r, "keyword"), text(&r, "url"))
                        else {
                            bail!("a row of {table} without keyword or url");
                        };
                        links.push(link_of(
                            keyword.to_owned(),
                            url.to_owned(),
                            text(&r, "title").map(str::to_owned),
                            text(&r, "timestamp"),
                            text(&r, "clicks").and_then(|c| c.parse().ok()),
                        ));
                    }
                }
            }
        }
        if !seen {
            bail!(
                "{} has no table {table} (another --prefix?)",
                self.path.display()
            );
        }
        links.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(links)
    }

    async fn clicks(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Vec<SourceClick>> {
        if self.clicks.is_none() {
            self.clicks = Some(DumpClicks {
                statements: self.statements()?,
                columns: LOG_COLUMNS.map(String::from).to_vec(),
                pending: VecDeque::new(),
                after: after.unwrap_or(i64::MIN),
            });
        }
        let table = format!("{}log", self.prefix);
        let state = self.clicks.as_mut().expect("opened above");
        let mut out = Vec::new();
        while out.len() < limit.max(1) {
            let Some(row) = state.pending.pop_front() else {
                match state.statements.next_of(|t| t == table)? {
                    None => break,
                    Some(Statement::Create { columns, .. }) => state.columns = columns,
                    Some(Statement::Insert { columns, rows, .. }) => {
                        if let Some(c) = columns {
                            state.columns = c;
                        }
                        state.pending.extend(rows);
                    }
                }
                continue;
            };
            let r = named(&state.columns, &row);
            let Some(id) = text(&r, "click_id").and_then(|i| i.parse::<i64>().ok()) else {
                bail!("a row of {table} without a click_id");
            };
            if id <= state.after {
                continue;
            }
            state.after = id;
            let click = click_of(
                id,
                text(&r, "click_time").unwrap_or(""),
                text(&r, "shorturl").unwrap_or("").to_owned(),
                text(&r, "referrer"),
                text(&r, "user_agent"),
                text(&r, "ip_address"),
                text(&r, "country_code"),
            );
            out.push(click.unwrap_or_else(|| unusable(id)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rows_as_yourls_writes_them() {
        let c = click_of(
            7,
            "2021-03-04 05:06:07",
            "abc".into(),
            Some("direct"),
            Some("-"),
            Some("2001:db8::1"),
            Some(""),
        )
        .unwrap();
        assert_eq!(c.referrer, None);
        assert_eq!(c.user_agent, None);
        assert_eq!(c.country, None);
        assert_eq!(c.ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(c.at, 1_614_834_367_000);
        assert_eq!(c.id, "7");
        assert!(click_of(1, "0000-00-00 00:00:00", "a".into(), None, None, None, None).is_none());
    }

    #[test]
    fn prefixes_are_names() {
        assert!(check_prefix("yourls_").is_ok());
        assert!(check_prefix("x; DROP TABLE").is_err());
        assert!(check_prefix("").is_err());
    }
}
