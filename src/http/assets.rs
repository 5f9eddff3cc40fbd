//! `/static/{file}`: serves the assets of [`super::embedded`]. A URL that
//! names the asset's current version may be cached for good.

use axum::extract::{Path, RawQuery};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::embedded::find;

pub async fn serve_asset(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some((asset, v)) = find(&name) else {
        return super::pages::not_found();
    };
    let etag = format!("\"{v}\"");
    // Only a URL naming this very content may be cached for good.
    let cache = if query.as_deref().and_then(|q| q.strip_prefix("v=")) == Some(v) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    if headers
        .get(IF_NONE_MATCH)
        .is_some_and(|h| h.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag), (CACHE_CONTROL, cache.to_owned())],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, asset.content_type.to_owned()),
            (ETAG, etag),
            (CACHE_CONTROL, cache.to_owned()),
        ],
        asset.body,
    )
        .into_response()
}
