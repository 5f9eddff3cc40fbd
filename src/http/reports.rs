//! Abuse reports: anyone may report a short link (`POST /api/v1/reports`,
//! or the form at `/report` linked from the 404 and 410 pages); admins read
//! them (`GET /api/v1/reports`) and take a domain down
//! (`/api/v1/admin/takedowns`, see [`crate::takedown`]): every link to it
//! answers 410 and none can be made, until an admin lifts it.
//! `POST /api/v1/admin/disable-domain` is the older name of a takedown.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppQuery, bounded_param};
use crate::domain::Slug;
use crate::state::AppState;
use crate::store::{Report, Takedown};

pub const REASONS: [&str; 4] = ["phishing", "malware", "spam", "other"];
const MAX_DETAILS: usize = 2000;

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

/// Validates and records a report; the answer is the same whether or not
/// the slug names a link.
pub async fn record(state: &AppState, r: NewReport) -> Result<(), ApiError> {
    let slug = Slug::parse_path(&r.slug)
        .map_err(|_| ApiError::bad_request("invalid_slug", "that is not a short link's slug"))?;
    if !REASONS.contains(&r.reason.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason must be phishing, malware, spam or other",
        ));
    }
    if let Some(d) = &r.details
        && (d.chars().count() > MAX_DETAILS
            || d.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t'))
    {
        return Err(ApiError::bad_request(
            "invalid_details",
            "details must be at most 2000 characters of text",
        ));
    }
    let details = r
        .details
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let link = state.store.link_by_slug(&slug).await?;
    state
        .store
        .insert_report(
            slug.as_str(),
            link.map(|l| l.id),
            &r.reason,
            details.as_deref(),
        )
        .await?;
    tracing::info!(link.slug = %slug, reason = %r.reason, "link reported");
    Ok(())
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
    record(&state, r).await?;
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

async fn admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let key = access::api_key(state, caller).await?;
    if !key.admin {
        return Err(ApiError::forbidden("this needs an admin API key"));
    }
    Ok(())
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
    admin(&state, &caller).await?;
    let limit = bounded_param("limit", p.limit.as_deref(), 50, 1..=200)?;
    let before = p
        .cursor
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not valid"))?;
    let mut reports = state.store.list_reports(before, limit + 1).await?;
    let next_cursor = (reports.len() > limit).then(|| {
        reports.truncate(limit);
        reports.last().map(|r| r.id.to_string()).unwrap_or_default()
    });
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

fn domain_of(input: &str) -> Result<String, ApiError> {
    parse_domain(input).ok_or_else(|| {
        ApiError::bad_request("invalid_domain", "give a domain name, e.g. evil.example")
    })
}

/// Records a takedown (kept if there already is one) and tells every node;
/// returns whether it is new and the slugs of the links it covers.
async fn take_down(
    state: &AppState,
    domain: &str,
    reason: &str,
) -> Result<(bool, Vec<String>), ApiError> {
    let new = state.store.add_takedown(domain, reason).await?;
    state.takedowns_changed().await;
    let slugs: Vec<String> = state
        .store
        .links_to_domain(domain)
        .await?
        .into_iter()
        .map(|l| l.slug.to_string())
        .collect();
    tracing::info!(domain = %domain, links = slugs.len(), new, "domain taken down");
    Ok((new, slugs))
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
    admin(&state, &caller).await?;
    let domain = domain_of(&req.domain)?;
    let (_, slugs) = take_down(&state, &domain, "disabled by an admin").await?;
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
    admin(&state, &caller).await?;
    let domain = domain_of(&req.domain)?;
    let reason = req.reason.unwrap_or_default();
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "the reason is at most 500 characters, without control characters",
        ));
    }
    let (new, slugs) = take_down(&state, &domain, reason.trim()).await?;
    let stored = state
        .store
        .list_takedowns()
        .await?
        .into_iter()
        .find(|t| t.domain == domain);
    let mut body = match stored {
        Some(t) => TakedownBody::from(t),
        // Lifted by another admin in between: answer with what was asked.
        None => TakedownBody {
            domain,
            reason: reason.trim().to_owned(),
            created_at: chrono::Utc::now(),
            slugs: None,
        },
    };
    body.slugs = Some(slugs);
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
    admin(&state, &caller).await?;
    let takedowns = state.store.list_takedowns().await?;
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
    admin(&state, &caller).await?;
    let domain = domain_of(&domain)?;
    if !state.store.remove_takedown(&domain).await? {
        return Err(ApiError::not_found());
    }
    state.takedowns_changed().await;
    tracing::info!(domain = %domain, "takedown lifted");
    Ok(StatusCode::NO_CONTENT)
}

/// A host name of two or more labels (as in a target URL, see
/// [`crate::domain::is_host_name`]), lower-cased; a Unicode name is turned
/// into punycode first. Anything else (a URL, a path, an IP address) is None.
pub fn parse_domain(input: &str) -> Option<String> {
    let ascii = if input.is_ascii() {
        input.to_ascii_lowercase()
    } else {
        if input.contains(|c: char| "/:?#@[]\\%".contains(c) || c.is_whitespace()) {
            return None;
        }
        url::Url::parse(&format!("http://{input}/"))
            .ok()?
            .host_str()?
            .to_owned()
    };
    (ascii.len() <= 253
        && ascii.contains('.')
        && !ascii.ends_with('.')
        && crate::domain::is_host_name(&ascii))
    .then_some(ascii)
}

#[cfg(test)]
mod tests {
    use super::parse_domain;

    #[test]
    fn domains_are_host_names_only() {
        assert_eq!(
            parse_domain("Evil.Example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            parse_domain("a-b.c.example").as_deref(),
            Some("a-b.c.example")
        );
        assert_eq!(
            parse_domain("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        for bad in [
            "",
            "example",
            ".example",
            "example.",
            "a..example",
            "a.-example",
            "a*.example",
            "evil.example/path",
            "http://evil.example",
            "user@evil.example",
            "evil.example:80",
            " evil.example",
            "10.0.0.1",
            "a.123",
            "bü cher.example",
        ] {
            assert_eq!(parse_domain(bad), None, "{bad:?}");
        }
    }
}
