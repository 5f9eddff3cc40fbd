//! `/`: the shorten form, and the page for the link just made (QR code,
//! copy button, and for an anonymous link its secret dashboard URL, shown
//! once).

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::{Frame, PageError, accept, field_errors, non_empty, parse_local_time, save_session};
use crate::http::access;
use crate::http::error::ApiError;
use crate::http::extract::PeerAddr;
use crate::http::limits::client_key;
use crate::http::links;
use crate::ratelimit::Bucket;
use crate::service::links::NewLink;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ShortenForm {
    url: Option<String>,
    slug: Option<String>,
    expires_at: Option<String>,
    tz: Option<String>,
    csrf: Option<String>,
}

posted!(ShortenForm);

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let can_create = state.anonymous_links || frame.signed_in();
    Ok(frame.page(
        StatusCode::OK,
        "home.html",
        context! { can_create, public_base => &state.public_base, form => ShortenForm::default(), errors => HashMap::<String, String>::new() },
    ))
}

pub async fn shorten(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ShortenForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let caller = frame.caller();
    if !frame.signed_in() {
        let ip = client_key(&state, peer, &headers);
        let d = state.limiter.take(Bucket::Create, &ip).await;
        if !d.allowed {
            return Ok(crate::http::pages::too_many_requests(d.reset_secs));
        }
    }
    let result = async {
        let owner = access::creator(&state, &caller).await?;
        let new = NewLink {
            url: form.url.clone().unwrap_or_default().trim().to_owned(),
            slug: non_empty(form.slug.clone()),
            expires_at: parse_local_time(form.expires_at.as_deref(), form.tz.as_deref())?,
            ..NewLink::default()
        };
        Ok::<_, ApiError>(crate::service::links::create(&state, owner.as_ref(), new).await?)
    }
    .await;
    let (link, secret) = match result {
        Ok(created) => created,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return Ok(frame.page(
                StatusCode::UNAUTHORIZED,
                "home.html",
                context! { can_create => false, public_base => &state.public_base, form, errors => HashMap::<String, String>::new() },
            ));
        }
        Err(e) => {
            let (status, errors) = field_errors(e)?;
            return Ok(frame.page(
                status,
                "home.html",
                context! { can_create => true, public_base => &state.public_base, form, errors },
            ));
        }
    };
    let body = links::body(&state, &link, 0);
    let mut jar = frame.jar.clone();
    let mut secret_url = None;
    if let Some(secret) = &secret {
        // This browser made the link: let it see the dashboard and QR code
        // right away, and show the secret URL once for later.
        let (old, mut session) = frame.session.clone().unzip();
        let mut s = session.take().unwrap_or_default();
        s.add_link_secret(secret.hash());
        // More rights, new id: a session id planted before cannot ride on
        // them (session fixation).
        jar = save_session(&state, jar, old.as_ref(), &s, true).await?;
        secret_url = Some(format!(
            "{}/links/{}?secret={}",
            state.public_base,
            link.slug,
            secret.expose()
        ));
    }
    let frame = Frame { jar, ..frame };
    Ok(frame.page(
        StatusCode::CREATED,
        "created.html",
        context! { link => body, secret_url, noindex => true },
    ))
}
