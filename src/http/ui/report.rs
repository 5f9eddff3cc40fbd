//! `/report`: the abuse report form, linked from the 404 and 410 pages.
//! Rate-limited like creating a link, recorded like the API's report.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Frame, PageError, accept};
use crate::http::error::ApiError;
use crate::http::extract::PeerAddr;
use crate::http::limits::client_key;
use crate::ratelimit::Bucket;
use crate::service::reports::{self, AbuseReport, REASONS};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ReportForm {
    slug: Option<String>,
    reason: Option<String>,
    details: Option<String>,
    csrf: Option<String>,
}

posted!(ReportForm);

fn report_ctx(state: &AppState, form: &ReportForm, error: Option<&str>, done: bool) -> Value {
    context! {
        public_base => &state.public_base,
        slug => form.slug.as_deref().unwrap_or(""),
        reason => form.reason.as_deref().unwrap_or("phishing"),
        details => form.details.as_deref().unwrap_or(""),
        reasons => REASONS,
        error, done, noindex => true,
    }
}

pub async fn report_page(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<ReportForm>, QueryRejection>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let form = query.map(|q| q.0).unwrap_or_default();
    let ctx = report_ctx(&state, &form, None, false);
    Ok(frame.page(StatusCode::OK, "report.html", ctx))
}

pub async fn report(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let ip = client_key(&state, peer, &headers);
    let d = state.limiter.take(Bucket::Create, &ip).await;
    if !d.allowed {
        return Ok(crate::http::pages::too_many_requests(d.reset_secs));
    }
    let report = AbuseReport {
        slug: form.slug.as_deref().unwrap_or_default().trim().to_owned(),
        reason: form.reason.clone().unwrap_or_default(),
        details: form.details.clone(),
    };
    match reports::record(&state, report)
        .await
        .map_err(ApiError::from)
    {
        Ok(()) => {
            let ctx = report_ctx(&state, &form, None, true);
            Ok(frame.page(StatusCode::CREATED, "report.html", ctx))
        }
        Err(e) if e.status.is_client_error() => {
            let ctx = report_ctx(&state, &form, Some(&e.message), false);
            Ok(frame.page(e.status, "report.html", ctx))
        }
        Err(e) => Err(e.into()),
    }
}
