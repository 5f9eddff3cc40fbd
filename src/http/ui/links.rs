//! `/links`: the signed-in key's links; `/links/{slug}`: a link's live
//! dashboard; `/links/{slug}/unlock`: keeps a link secret in this browser's
//! session.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::{Frame, PageError, accept, managed_link, save_session, to_login};
use crate::auth::{LINK_SECRET_PREFIX, Token};
use crate::domain::{Link, Slug};
use crate::http::access::{self, Caller};
use crate::http::links::{self, ListParams};
use crate::http::render::message;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    tag: Option<String>,
    cursor: Option<String>,
    deleted: Option<String>,
}

pub async fn list_page(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let Ok(Query(query)) = query else {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            "That search could not be read",
            "The address has a malformed query string.",
        ));
    };
    if !frame.signed_in() {
        return Ok(to_login("/links"));
    }
    let key = match access::api_key(&state, &frame.caller()).await {
        Ok(k) => k,
        Err(e) if e.status.is_server_error() => return Err(e.into()),
        // The key was revoked since sign-in.
        Err(_) => return Ok(to_login("/links")),
    };
    let q = query.q.clone().unwrap_or_default();
    let tag = query.tag.clone().unwrap_or_default();
    let params = ListParams {
        limit: Some("25".into()),
        // A form may send an empty cursor; the API would refuse it.
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
        tag: Some(tag.clone()),
        q: Some(q.clone()),
    };
    let page = links::list(&state, &key, params).await?;
    let notice = query
        .deleted
        .as_deref()
        .and_then(|s| Slug::parse_path(s).ok())
        .map(|s| format!("Deleted {s}."));
    Ok(frame.page(
        StatusCode::OK,
        "links.html",
        context! {
            links => page.links, next_cursor => page.next_cursor,
            is_later_page => query.cursor.is_some_and(|c| !c.is_empty()),
            q, tag, notice, noindex => true,
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    secret: Option<String>,
}

/// The dashboard's breakdowns: key in the stats answer, heading, and
/// whether it is shown only once the range has clicks in it (smart links'
/// rules and variants).
const BREAKDOWNS: [(&str, &str, bool); 9] = [
    ("countries", "Countries", false),
    ("cities", "Cities", false),
    ("referrers", "Referrers", false),
    ("browsers", "Browsers", false),
    ("oses", "Operating systems", false),
    ("devices", "Devices", false),
    ("utm_sources", "UTM sources", false),
    ("rules", "Rules", true),
    ("variants", "Variants", true),
];

pub async fn dashboard(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let here = format!("/links/{slug}");
    // A secret dashboard URL: a page whose button (a POST) keeps the secret
    // in this browser's session. A GET changes nothing: link previewers and
    // prefetchers open such URLs too.
    if let Ok(Query(DashboardQuery {
        secret: Some(secret),
    })) = &query
    {
        let link = link_of_secret(&state, &slug, secret).await?;
        let mut res = frame.page(
            StatusCode::OK,
            "unlock.html",
            context! { slug => link.slug.to_string(), secret => secret.trim(), noindex => true },
        );
        // The address holds the secret: never send it on as a referrer.
        res.headers_mut().insert(
            axum::http::header::REFERRER_POLICY,
            axum::http::HeaderValue::from_static("no-referrer"),
        );
        return Ok(res);
    }
    let link = managed_link(&state, &frame, &slug, &here).await?;
    let total_clicks = links::clicks_of(&state, &link).await?;
    let body = links::body(&state, &link, total_clicks);
    // Clicks an import brought only as counts (no visitors, no detail):
    // the page says so. A note that cannot be read is left out.
    let counted = crate::import::counted_note(state.store.as_ref(), link.id)
        .await
        .ok()
        .flatten();
    let (counted_clicks, counted_sources) = match counted {
        Some(n) => (n.clicks, n.sources.join(", ")),
        None => (0, String::new()),
    };
    Ok(frame.page(
        StatusCode::OK,
        "dashboard.html",
        context! { link => body, total_clicks, counted_clicks, counted_sources, breakdowns => BREAKDOWNS, geo_credit => state.tracking.geo_credit, noindex => true },
    ))
}

/// The link a secret opens (a wrong one is a 404 page, like no link).
async fn link_of_secret(state: &AppState, slug: &str, secret: &str) -> Result<Link, PageError> {
    let token = Token::new(secret.trim());
    if !token.expose().starts_with(LINK_SECRET_PREFIX) {
        return Err(PageError::page(crate::http::pages::not_found()));
    }
    Ok(access::link(state, &Caller::Token(token), slug).await?)
}

#[derive(Debug, Deserialize)]
pub struct UnlockForm {
    secret: Option<String>,
    csrf: Option<String>,
}

posted!(UnlockForm);

/// `POST /links/{slug}/unlock`: keeps a link secret in this browser's
/// session, under a new session id, and continues at the clean URL.
pub async fn unlock(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<UnlockForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let secret = form.secret.unwrap_or_default();
    let link = link_of_secret(&state, &slug, &secret).await?;
    let (old, session) = frame.session.clone().unzip();
    let mut session = session.unwrap_or_default();
    session.add_link_secret(Token::new(secret.trim()).hash());
    let jar = save_session(&state, frame.jar, old.as_ref(), &session, true).await?;
    Ok((jar, Redirect::to(&format!("/links/{}", link.slug))).into_response())
}
