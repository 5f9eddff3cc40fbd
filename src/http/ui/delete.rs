//! `/links/{slug}/delete`: asks first, then deletes the link with its
//! clicks.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use minijinja::context;

use super::{CsrfOnly, Frame, PageError, accept, managed_link};
use crate::http::links;
use crate::http::render::message;
use crate::state::AppState;

pub async fn delete_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let link = managed_link(&state, &frame, &slug, &format!("/links/{slug}/delete")).await?;
    let clicks = links::clicks_of(&state, &link).await?;
    Ok(frame.page(
        StatusCode::OK,
        "delete.html",
        context! {
            slug => link.slug.as_str(), short_url => state.short_url(&link.slug), clicks,
            noindex => true,
        },
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let (_, frame) = accept(&state, jar, &headers, form).await?;
    let link = managed_link(&state, &frame, &slug, &format!("/links/{slug}/delete")).await?;
    crate::service::links::delete(&state, &link).await?;
    if frame.signed_in() {
        Ok(Redirect::to(&format!("/links?deleted={}", link.slug)).into_response())
    } else {
        Ok(message(
            StatusCode::OK,
            "Link deleted",
            &format!(
                "{} no longer redirects and its clicks are gone.",
                state.short_url(&link.slug)
            ),
        ))
    }
}
