//! Abuse reports: anyone may report a short link (`POST /api/v1/reports`,
//! or the form at `/report` linked from the 404 and 410 pages); admins read
//! them (`GET /api/v1/reports`) and take a domain down
//! (`/api/v1/admin/takedowns`, see [`crate::takedown`]): every link to it
//! answers 410 and none can be made, until an admin lifts it.
//! `POST /api/v1/admin/disable-domain` is the older name of a takedown.
//! The rules are [`crate::service::reports`]' and
//! [`crate::service::takedowns`]'; this file owns the JSON shapes and the
//! mapping of their errors to the error envelope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppQuery, bounded_param};
use crate::service::reports::{self as rules, AbuseReport, ReportError};
use crate::service::takedowns::{self, TakedownError};
use crate::state::AppState;
use crate::store::{Report, Takedown};

pub use crate::service::reports::REASONS;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// The reported short link's slug.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub slug: String,
    #[schema(schema_with = reason_schema)]
    pub reason: String,
    /// Free text, at most 2000 characters (line breaks and tabs allowed).
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub details: Option<String>,
}

fn reason_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(REASONS))
        .description(Some("`phishing`, `malware`, `spam` or `other`."))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportReceived {
    pub received: bool,
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::InvalidSlug => {
                ApiError::bad_request("invalid_slug", "that is not a short link's slug")
            }
            ReportError::InvalidReason => ApiError::bad_request(
                "invalid_reason",
                "reason must be phishing, malware, spam or other",
            ),
            ReportError::InvalidDetails => ApiError::bad_request(
                "invalid_details",
                "details must be at most 2000 characters of text",
            ),
            ReportError::Store(e) => e.into(),
        }
    }
}

impl From<TakedownError> for ApiError {
    fn from(e: TakedownError) -> Self {
        match e {
            TakedownError::InvalidDomain => {
                ApiError::bad_request("invalid_domain", "give a domain name, e.g. evil.example")
            }
            TakedownError::InvalidReason => ApiError::bad_request(
                "invalid_reason",
                "the reason is at most 500 characters, without control characters",
            ),
            TakedownError::NotTakenDown => ApiError::not_found(),
            TakedownError::Store(e) => e.into(),
        }
    }
}

impl From<NewReport> for AbuseReport {
    fn from(r: NewReport) -> AbuseReport {
        AbuseReport {
            slug: r.slug,
            reason: r.reason,
            details: r.details,
        }
    }
}

#[utoipa::path(post, operation_id = "create_report", path = "/reports", tag = "abuse", request_body = NewReport,
    responses(
        (status = 201, description = "Report recorded", body = ReportReceived),
        (status = 400, description = "Invalid report", body = ErrorBody),
    ))]
pub async fn create_report(
    State(state): State<AppState>,
    AppJson(r): AppJson<NewReport>,
) -> Result<(StatusCode, Json<ReportReceived>), ApiError> {
    rules::record(&state, r.into()).await?;
    Ok((StatusCode::CREATED, Json(ReportReceived { received: true })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Reports older than this id (from `next_cursor`).
    #[param(value_type = Option<i64>)]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportPage {
    pub reports: Vec<Report>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, operation_id = "list_reports", path = "/reports", tag = "abuse", params(ReportParams),
    responses(
        (status = 200, description = "Reports, newest first", body = ReportPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_reports(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(p): AppQuery<ReportParams>,
) -> Result<Json<ReportPage>, ApiError> {
    access::admin(&state, &caller).await?;
    let limit = bounded_param("limit", p.limit.as_deref(), 50, 1..=200)?;
    let before = p
        .cursor
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not valid"))?;
    let (reports, more) = rules::list(&state, before, limit).await?;
    let next_cursor = more.then(|| reports.last().map(|r| r.id.to_string()).unwrap_or_default());
    Ok(Json(ReportPage {
        reports,
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableDomain {
    /// Every link to this domain or its subdomains is taken down. A host
    /// name of at least two labels; an IDN may be given in Unicode or
    /// punycode.
    #[schema(
        pattern = r"^(?:[A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}$",
        max_length = 253
    )]
    pub domain: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainDisabled {
    /// Links to the domain, which now answer 410.
    pub disabled: usize,
    pub slugs: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTakedown {
    /// The domain taken down, with its subdomains. A host name of at least
    /// two labels; an IDN may be given in Unicode or punycode.
    #[schema(
        pattern = r"^(?:[A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}$",
        max_length = 253
    )]
    pub domain: String,
    /// Why, for other admins (at most 500 characters).
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reason: Option<String>,
}

/// A domain taken down.
#[derive(Debug, Serialize, ToSchema)]
pub struct TakedownBody {
    pub domain: String,
    pub reason: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Links to the domain now (they answer 410). Only in the answer to a
    /// takedown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slugs: Option<Vec<String>>,
}

impl From<Takedown> for TakedownBody {
    fn from(t: Takedown) -> Self {
        TakedownBody {
            domain: t.domain,
            reason: t.reason,
            created_at: t.created_at,
            slugs: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TakedownList {
    /// By domain name.
    pub takedowns: Vec<TakedownBody>,
}

#[utoipa::path(post, operation_id = "disable_domain", path = "/admin/disable-domain", tag = "abuse", request_body = DisableDomain,
    responses(
        (status = 200, description = "The domain is taken down: its links answer 410 (the older name of POST /api/v1/admin/takedowns)", body = DomainDisabled),
        (status = 400, description = "Invalid domain", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn disable_domain(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<DisableDomain>,
) -> Result<Json<DomainDisabled>, ApiError> {
    access::admin(&state, &caller).await?;
    let slugs = takedowns::disable_domain(&state, &req.domain).await?;
    Ok(Json(DomainDisabled {
        disabled: slugs.len(),
        slugs,
    }))
}

#[utoipa::path(post, operation_id = "create_takedown", path = "/admin/takedowns", tag = "abuse", request_body = NewTakedown,
    responses(
        (status = 201, description = "Taken down: links to the domain and its subdomains answer 410 on every node, and no link may point there", body = TakedownBody),
        (status = 200, description = "Already taken down (the first reason is kept)", body = TakedownBody),
        (status = 400, description = "Invalid domain or reason", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_takedown(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewTakedown>,
) -> Result<(StatusCode, Json<TakedownBody>), ApiError> {
    access::admin(&state, &caller).await?;
    let taken = takedowns::take_down(&state, &req.domain, req.reason).await?;
    let new = taken.new;
    let mut body = TakedownBody::from(taken.takedown);
    body.slugs = Some(taken.slugs);
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)))
}

#[utoipa::path(get, operation_id = "list_takedowns", path = "/admin/takedowns", tag = "abuse",
    responses(
        (status = 200, description = "Every domain taken down", body = TakedownList),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_takedowns(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TakedownList>, ApiError> {
    access::admin(&state, &caller).await?;
    let takedowns = takedowns::list(&state).await?;
    Ok(Json(TakedownList {
        takedowns: takedowns.into_iter().map(TakedownBody::from).collect(),
    }))
}

#[utoipa::path(delete, operation_id = "lift_takedown", path = "/admin/takedowns/{domain}", tag = "abuse",
    params(("domain" = String, Path, description = "The domain taken down", max_length = 253,
        pattern = r"^(?:[A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}$")),
    responses(
        (status = 204, description = "Lifted: links to the domain redirect again (unless disabled otherwise)"),
        (status = 400, description = "Invalid domain", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "The domain is not taken down", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn lift_takedown(
    State(state): State<AppState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    access::admin(&state, &caller).await?;
    takedowns::lift(&state, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}
