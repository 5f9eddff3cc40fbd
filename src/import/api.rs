//! What the importers of other shorteners' APIs share: one HTTP client,
//! the source's base URL, how its requests are signed, and how its errors
//! read.

use anyhow::{Context, bail};
use serde_json::Value;

pub struct Api {
    client: reqwest::Client,
    base: String,
    /// The header that signs a request, and its value.
    auth: (&'static str, String),
    /// The source's name, for errors.
    name: &'static str,
    /// What an error answer's body says, in the source's shape.
    detail: fn(&Value) -> String,
}

impl Api {
    pub fn new(
        name: &'static str,
        base: &str,
        auth: (&'static str, String),
        detail: fn(&Value) -> String,
    ) -> anyhow::Result<Api> {
        let url = url::Url::parse(base).with_context(|| format!("{name}'s address {base:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("{name}'s address must be an http(s) URL, not {base:?}");
        }
        Ok(Api {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            name,
            detail,
        })
    }

    /// `GET` of `path` (or of a whole URL the source handed out) with
    /// `query`: the JSON answer, or an error with the status and what the
    /// source said.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let res = self
            .client
            .get(&url)
            .header(self.auth.0, &self.auth.1)
            .header("Accept", "application/json")
            .query(query)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = res.status();
        if !status.is_success() {
            let body: Value = res.json().await.unwrap_or_default();
            bail!("GET {url}: {status} {}", (self.detail)(&body).trim());
        }
        res.json()
            .await
            .with_context(|| format!("GET {url}: not {}'s JSON", self.name))
    }
}

/// The text of `body[k]` for each key path, joined by spaces.
pub fn fields(body: &Value, paths: &[&[&str]]) -> String {
    paths
        .iter()
        .map(|p| {
            p.iter()
                .fold(body, |v, k| &v[*k])
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
