//! Link previews: the page chat apps' and social sites' preview bots get
//! instead of the redirect when a link has a preview, with Open Graph and
//! Twitter card tags (title, description, image). Nothing of the target is
//! in it, so a protected link's preview shows only what its owner wrote.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use minijinja::context;

use super::render::render;
use crate::domain::{Link, LinkPreview};
use crate::state::AppState;

/// The preview page of `link`.
pub fn page(state: &AppState, link: &Link, preview: &LinkPreview) -> Response {
    let title = preview
        .title
        .as_deref()
        .or(link.title.as_deref())
        .unwrap_or(link.slug.as_str());
    let mut res = render(
        StatusCode::OK,
        "preview.html",
        context! {
            title,
            description => preview.description.as_deref(),
            image => preview.image.as_ref().map(|u| u.as_str()),
            url => state.short_url(&link.slug),
        },
    );
    res.headers_mut().insert(
        axum::http::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    res
}
