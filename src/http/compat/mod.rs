//! The APIs of other shorteners, each switched on by a flag (off by
//! default), so that their clients work against hop unchanged:
//! [`yourls`] (`--compat-yourls`). docs/compat.md says what each covers.

pub mod yourls;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::access::Caller;
use super::extract::AppQuery;
use super::stats::{StatsParams, link_stats_handler};
use crate::state::AppState;

/// `GET /analytics/{slug}`, the path of the Flask shortener hop replaced:
/// its stats as JSON for a client that asks for JSON (`Accept:
/// application/json`; the same answer and credentials as
/// `/api/v1/links/{slug}/stats`), else the link's dashboard, where it
/// lives now (308).
pub async fn analytics(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    query: AppQuery<StatsParams>,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if wants_json {
        return link_stats_handler(state, caller, Path(slug), query)
            .await
            .into_response();
    }
    let path: String = url::form_urlencoded::byte_serialize(slug.as_bytes()).collect();
    Redirect::permanent(&format!("/links/{path}")).into_response()
}
