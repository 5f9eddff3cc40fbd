//! `POST /api/v1/imports` (admins): an import as `hop import` runs it,
//! as a background job on this node; `GET /api/v1/imports/{id}` says how
//! it stands (running, done with its summary, or failed with why). The
//! job's state is kept in the store (an import mark), so any node answers
//! for it. File sources (a CSV, a YOURLS dump) come in the body, up to the
//! API's body limit; bigger ones are for the CLI.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::AppJson;
use crate::import::{self, ImportOptions, OnConflict, Source, Summary};
use crate::state::AppState;

/// The kinds of source an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Yourls,
    Shlink,
    Kutt,
    Bitly,
    Dub,
    Csv,
}

/// What to import, and how (docs/migrating.md has each source).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    pub source: SourceKind,
    /// The source's address: YOURLS's database (`mysql://…`), or a
    /// Shlink's or Kutt's base URL.
    #[schema(max_length = 2000)]
    pub from: Option<String>,
    /// Shlink's or Kutt's API key.
    #[schema(max_length = 500)]
    pub api_key: Option<String>,
    /// Bitly's or Dub's API token.
    #[schema(max_length = 500)]
    pub token: Option<String>,
    /// A file's content: the CSV (`csv`; Shlink's or Bitly's export), or
    /// YOURLS's SQL dump (`yourls`).
    pub data: Option<String>,
    /// YOURLS's table prefix (default `yourls_`).
    #[schema(max_length = 40, pattern = r"^[A-Za-z0-9_]+$")]
    pub prefix: Option<String>,
    /// `skip` (default), `suffix` or `overwrite`.
    pub on_conflict: Option<OnConflict>,
    /// Names this source among others of its kind (default `default`).
    #[schema(max_length = 100, pattern = r"^[A-Za-z0-9_.-]+$")]
    pub source_name: Option<String>,
}

/// An import job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportJob {
    pub id: String,
    pub source: SourceKind,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the import did (once done).
    pub summary: Option<Summary>,
    /// Why it failed; running it again goes on where it stopped.
    pub error: Option<String>,
}

fn job_key(id: &str) -> String {
    format!("job:{id}")
}

async fn save(state: &AppState, job: &ImportJob) {
    let Ok(text) = serde_json::to_string(job) else {
        return;
    };
    if let Err(e) = state.store.set_import_mark(&job_key(&job.id), &text).await {
        tracing::warn!(error = %e, job = %job.id, "could not save an import job's state");
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_import", message)
}

/// The source a request names, checked before the job starts; file
/// content goes to a temporary file the job holds.
fn open(req: &NewImport) -> Result<(Box<dyn Source>, Option<tempfile::NamedTempFile>), ApiError> {
    let data_file = |data: &str| -> Result<tempfile::NamedTempFile, ApiError> {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
        f.write_all(data.as_bytes()).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
        Ok(f)
    };
    let need = |v: &Option<String>, what: &str| -> Result<String, ApiError> {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad(format!("{what} is needed for this source")))
    };
    let refused = |e: anyhow::Error| bad(e.to_string());
    let prefix = req
        .prefix
        .as_deref()
        .unwrap_or(import::yourls::DEFAULT_PREFIX);
    Ok(match req.source {
        SourceKind::Csv => {
            let f = data_file(&need(&req.data, "data (the CSV)")?)?;
            let s = import::csv::CsvLinks::open(f.path().to_owned()).map_err(refused)?;
            (Box::new(s), Some(f))
        }
        SourceKind::Yourls => match (&req.data, &req.from) {
            (Some(dump), _) => {
                let f = data_file(dump)?;
                let s = import::yourls::YourlsDump::open(f.path().to_owned(), prefix)
                    .map_err(refused)?;
                (Box::new(s), Some(f))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "a YOURLS database is imported with the CLI (hop import yourls --from); here, send its SQL dump as data",
                ));
            }
            (None, None) => return Err(bad("data (YOURLS's SQL dump) is needed")),
        },
        SourceKind::Shlink => match &req.data {
            Some(csv) => {
                let f = data_file(csv)?;
                let s = import::shlink::ShlinkCsv::open(f.path().to_owned()).map_err(refused)?;
                (Box::new(s), Some(f))
            }
            None => (
                Box::new(
                    import::shlink::ShlinkApi::new(
                        &need(&req.from, "from")?,
                        &need(&req.api_key, "api_key")?,
                    )
                    .map_err(refused)?,
                ),
                None,
            ),
        },
        SourceKind::Kutt => (
            Box::new(
                import::kutt::Kutt::new(&need(&req.from, "from")?, &need(&req.api_key, "api_key")?)
                    .map_err(refused)?,
            ),
            None,
        ),
        SourceKind::Dub => (
            Box::new(
                import::dub::Dub::new(import::dub::DEFAULT_API, &need(&req.token, "token")?)
                    .map_err(refused)?,
            ),
            None,
        ),
        SourceKind::Bitly => {
            let f = req.data.as_deref().map(data_file).transpose()?;
            let s = import::bitly::Bitly::new(
                import::bitly::DEFAULT_API,
                req.token.as_deref(),
                f.as_ref().map(|f| f.path().to_owned()),
            )
            .map_err(refused)?;
            (Box::new(s), f)
        }
    })
}

#[utoipa::path(post, operation_id = "create_import", path = "/imports", tag = "imports",
    request_body = NewImport,
    responses(
        (status = 202, description = "The import runs in the background", body = ImportJob),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_import(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewImport>,
) -> Result<(StatusCode, Json<ImportJob>), ApiError> {
    access::admin(&state, &caller).await?;
    if let Some(name) = &req.source_name
        && (name.is_empty()
            || name.len() > 100
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
    {
        return Err(bad(
            "source_name must be 1 to 100 of A-Z, a-z, 0-9, _, . and -",
        ));
    }
    let (mut source, file) = open(&req)?;
    let job = ImportJob {
        id: uuid::Uuid::now_v7().to_string(),
        source: req.source,
        state: "running".into(),
        started_at: chrono::Utc::now(),
        finished_at: None,
        summary: None,
        error: None,
    };
    save(&state, &job).await;
    let kind = serde_json::to_value(req.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let opts = ImportOptions {
        source: format!("{kind}:{}", req.source_name.as_deref().unwrap_or("default")),
        on_conflict: req.on_conflict.unwrap_or_default(),
        own_hosts: state.own_hosts.clone(),
        region: state.region.clone(),
        ..ImportOptions::default()
    };
    let (task_state, mut done) = (state.clone(), job.clone());
    tokio::spawn(async move {
        let _file = file;
        let result = import::run(
            task_state.store.as_ref(),
            &task_state.enricher,
            &mut *source,
            &opts,
            |_| {},
        )
        .await;
        done.finished_at = Some(chrono::Utc::now());
        match result {
            Ok(summary) => {
                done.state = "done".into();
                done.summary = Some(summary);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), job = %done.id, "import failed");
                done.state = "failed".into();
                done.error = Some(format!("{e:#}"));
            }
        }
        save(&task_state, &done).await;
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, operation_id = "get_import", path = "/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "The job's id", max_length = 64,
        pattern = r"^[0-9a-f-]{1,64}$")),
    responses(
        (status = 200, description = "The job as it stands", body = ImportJob),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportJob>, ApiError> {
    access::admin(&state, &caller).await?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(ApiError::not_found());
    }
    let Some(text) = state.store.import_mark(&job_key(&id)).await? else {
        return Err(ApiError::not_found());
    };
    let job: ImportJob = serde_json::from_str(&text)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("import job {id}: {e}")))?;
    Ok(Json(job))
}
