//! The web UI: server-rendered pages (minijinja templates compiled into the
//! binary) that work without JavaScript, enhanced by small embedded scripts.
//!
//! - `/` shorten form and result page (QR code, copy button, secret
//!   dashboard URL for anonymous links);
//! - `/login`, `/logout`: sign in with an API key (session cookie);
//! - `/links`: the signed-in key's links; `/links/{slug}`: the live
//!   dashboard; `/links/{slug}/edit` and `/delete`.
//!
//! Every form carries a CSRF token (double-submit: a random `hop_csrf`
//! cookie, SameSite=Strict, that the form must echo), and a cross-site
//! `Origin` is refused. Links are created, edited and deleted through the
//! same functions as the API, so the rules and error codes are the same.

// Helpers return the page to show instead as their error: a cold path where
// the size of `Response` costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::access::{self, Caller, SESSION_COOKIE};
use super::error::ApiError;
use super::extract::PeerAddr;
use super::limits::client_key;
use super::links::{self, CreateLink, LinkBody, ListParams, UpdateLink};
use crate::auth::{LINK_SECRET_PREFIX, Token};
use crate::domain::{FieldError, Link, Slug, UrlError};
use crate::ratelimit::Bucket;
use crate::session::{Session, SessionId};
use crate::state::AppState;

/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "hop_csrf";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    macro_rules! template {
        ($name:literal) => {
            env.add_template(
                $name,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $name)),
            )
            .expect(concat!("template ", $name, " parses"))
        };
    }
    template!("base.html");
    template!("_link_form_macros.html");
    template!("message.html");
    template!("home.html");
    template!("created.html");
    template!("login.html");
    template!("links.html");
    template!("dashboard.html");
    template!("edit.html");
    template!("delete.html");
    template!("report.html");
    template!("unlock.html");
    env.add_function("asset", |name: &str| {
        Value::from_safe_string(super::assets::url(name))
    });
    env.set_formatter(html_formatter);
    env
});

/// HTML escaping of `& < > " '` (what attributes and text need), leaving
/// `/` alone so URLs read as URLs in the page source.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() == minijinja::AutoEscape::Html
        && !value.is_safe()
        && let Some(s) = value.as_str()
    {
        let mut escaped = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                c => escaped.push(c),
            }
        }
        return out.write_str(&escaped).map_err(minijinja::Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// Renders a template, with the headers every HTML page carries (the
/// policy of [`super::ops::CONTENT_SECURITY_POLICY`], no sniffing, no
/// framing); a rendering failure is logged and answered 500.
pub fn render(status: StatusCode, name: &str, ctx: Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (
            status,
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CACHE_CONTROL, "no-store"),
                (
                    axum::http::header::CONTENT_SECURITY_POLICY,
                    super::ops::CONTENT_SECURITY_POLICY,
                ),
                (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    axum::http::header::REFERRER_POLICY,
                    "strict-origin-when-cross-origin",
                ),
                (axum::http::header::X_FRAME_OPTIONS, "DENY"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = name, "rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page in the site's look that says what went wrong.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    message_about(status, title, text, None)
}

/// The same, about a short link, with a link to report it.
pub fn message_about(status: StatusCode, title: &str, text: &str, slug: Option<&Slug>) -> Response {
    render(
        status,
        "message.html",
        context! {
            status => status.as_u16(), title, message => text, noindex => true,
            report_slug => slug.map(Slug::as_str),
        },
    )
}

/// What every page's frame needs: whether someone is signed in, and the CSRF
/// token for its forms (the sign-out button is one).
struct Frame {
    jar: CookieJar,
    csrf: String,
    session: Option<(SessionId, Session)>,
}

impl Frame {
    async fn load(state: &AppState, jar: CookieJar) -> Result<Frame, Response> {
        let (jar, csrf) = ensure_csrf(state, jar);
        let session = access::session_of(state, &jar)
            .await
            .map_err(api_error_page)?;
        Ok(Frame { jar, csrf, session })
    }

    fn signed_in(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|(_, s)| s.key_hash.is_some())
    }

    fn caller(&self) -> Caller {
        match &self.session {
            Some(s) => Caller::Session(Arc::new(s.clone())),
            None => Caller::Nobody,
        }
    }

    fn ctx(&self, page: Value) -> Value {
        context! { signed_in => self.signed_in(), csrf => &self.csrf, ..page }
    }

    fn page(self, status: StatusCode, name: &str, page: Value) -> Response {
        let html = render(status, name, self.ctx(page));
        (self.jar, html).into_response()
    }
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(same_site)
        .build()
}

fn ensure_csrf(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(CSRF_COOKIE)
        && c.value().len() >= 32
    {
        let token = c.value().to_owned();
        return (jar, token);
    }
    let token = Token::generate("").expose().to_owned();
    let jar = jar.add(cookie(state, CSRF_COOKIE, token.clone(), SameSite::Strict));
    (jar, token)
}

/// Refuses a form post whose token does not match the cookie, or that comes
/// from another origin.
fn check_csrf(jar: &CookieJar, headers: &HeaderMap, sent: Option<&str>) -> Result<(), Response> {
    let refused = || {
        message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The page was open too long or came from another site. Go back, reload the page and try again.",
        )
    };
    if let (Some(origin), Some(host)) = (headers.get(ORIGIN), headers.get(HOST)) {
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin == "null" || origin_host.as_bytes() != host.as_bytes() {
            return Err(refused());
        }
    }
    let expected = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or_default();
    let sent = sent.unwrap_or_default();
    if expected.len() < 32 || !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        return Err(refused());
    }
    Ok(())
}

/// A posted form: one that carries a CSRF token field.
trait Posted {
    fn csrf(&self) -> Option<&str>;
}

macro_rules! posted {
    ($($form:ty),*) => {
        $(impl Posted for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}
posted!(
    ShortenForm,
    LoginForm,
    CsrfOnly,
    EditForm,
    ReportForm,
    UnlockForm
);

/// Accepts a posted form: readable, from this site (CSRF token and Origin),
/// with the frame of the page that answers it; or the page that refuses it.
async fn accept<T: Posted>(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<(T, Frame), Response> {
    let Form(form) = form.map_err(form_rejection)?;
    check_csrf(&jar, headers, form.csrf())?;
    let frame = Frame::load(state, jar).await?;
    Ok((form, frame))
}

fn api_error_page(e: ApiError) -> Response {
    match e.status {
        StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            super::pages::not_found()
        }
        StatusCode::SERVICE_UNAVAILABLE => message(
            e.status,
            "Temporarily unavailable",
            "hop cannot reach its database right now. Please try again in a moment.",
        ),
        status if status.is_server_error() => super::pages::internal_error(),
        status => message(status, "That did not work", &e.message),
    }
}

fn form_rejection(r: FormRejection) -> Response {
    let status = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    message(
        status,
        "That form could not be read",
        "The form was sent in a shape hop does not understand, or was too large.",
    )
}

/// Which form field an API error code belongs to.
fn field_of(code: &str) -> &'static str {
    let url_codes = [
        UrlError::TooLong.code(),
        UrlError::Loop.code(),
        UrlError::UserInfo.code(),
        UrlError::MissingHost.code(),
        "invalid_url",
        "unsupported_scheme",
    ];
    match code {
        c if url_codes.contains(&c) || c == "blocked_domain" || c == "private_target" => "url",
        "invalid_slug" | "reserved_slug" | "slug_taken" => "slug",
        c if c == FieldError::Expiry.code() => "expires_at",
        c if c == FieldError::Title.code() => "title",
        c if c == FieldError::Tags.code() => "tags",
        c if c == FieldError::MaxClicks.code() => "max_clicks",
        c if c == FieldError::RedirectStatus.code() => "redirect_status",
        _ => "general",
    }
}

/// Field errors for the template, or the page for an error that is not about
/// a field.
fn field_errors(e: ApiError) -> Result<(StatusCode, HashMap<&'static str, String>), Response> {
    if e.status.is_server_error() {
        return Err(api_error_page(e));
    }
    let field = field_of(e.code);
    let mut message = e.message;
    if let Some(first) = message.get(..1) {
        message = first.to_uppercase() + &message[1..];
    }
    Ok((e.status, HashMap::from([(field, message)])))
}

/// A `datetime-local` value read in the browser's time zone (sent by the
/// page's script; UTC without it). Empty means none.
fn parse_local_time(value: Option<&str>, tz: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            FieldError::Expiry.code(),
            "Expiry must be a date and time, e.g. 2030-01-31 18:00",
        )
    };
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| bad())?;
    let tz: Tz = tz.and_then(|t| t.parse().ok()).unwrap_or(Tz::UTC);
    let at = tz.from_local_datetime(&naive).earliest().ok_or_else(|| {
        ApiError::bad_request(
            FieldError::Expiry.code(),
            "That time does not exist in your time zone (clocks change)",
        )
    })?;
    Ok(Some(at.with_timezone(&Utc).to_rfc3339()))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Saves `session` under a fresh id (on sign-in, so an id planted before it
/// is worthless) or its current one, and sets the cookie.
async fn save_session(
    state: &AppState,
    jar: CookieJar,
    old: Option<&SessionId>,
    session: &Session,
    fresh: bool,
) -> Result<CookieJar, Response> {
    let id = match old {
        Some(id) if !fresh => id.clone(),
        _ => SessionId::generate(),
    };
    if fresh && let Some(old) = old {
        state
            .sessions
            .remove(old)
            .await
            .map_err(|e| api_error_page(e.into()))?;
    }
    state
        .sessions
        .save(&id, session)
        .await
        .map_err(|e| api_error_page(e.into()))?;
    Ok(jar.add(cookie(
        state,
        SESSION_COOKIE,
        id.expose().to_owned(),
        SameSite::Lax,
    )))
}

// ---------------------------------------------------------------- shorten

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ShortenForm {
    url: Option<String>,
    slug: Option<String>,
    expires_at: Option<String>,
    tz: Option<String>,
    csrf: Option<String>,
}

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let can_create = state.anonymous_links || frame.signed_in();
    frame.page(
        StatusCode::OK,
        "home.html",
        context! { can_create, public_base => &state.public_base, form => ShortenForm::default(), errors => HashMap::<String, String>::new() },
    )
}

pub async fn shorten(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ShortenForm>, FormRejection>,
) -> Response {
    let (form, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let caller = frame.caller();
    if !frame.signed_in() {
        let ip = client_key(&state, peer, &headers);
        let d = state.limiter.take(Bucket::Create, &ip).await;
        if !d.allowed {
            return super::pages::too_many_requests(d.reset_secs);
        }
    }
    let result = async {
        let owner = access::creator(&state, &caller).await?;
        let req = CreateLink {
            url: form.url.clone().unwrap_or_default().trim().to_owned(),
            slug: non_empty(form.slug.clone()),
            expires_at: parse_local_time(form.expires_at.as_deref(), form.tz.as_deref())?,
            ..CreateLink::default()
        };
        links::create(&state, owner.as_ref(), req).await
    }
    .await;
    let (link, secret) = match result {
        Ok(created) => created,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return frame.page(
                StatusCode::UNAUTHORIZED,
                "home.html",
                context! { can_create => false, public_base => &state.public_base, form, errors => HashMap::<String, String>::new() },
            );
        }
        Err(e) => {
            let (status, errors) = match field_errors(e) {
                Ok(v) => v,
                Err(page) => return page,
            };
            return frame.page(
                status,
                "home.html",
                context! { can_create => true, public_base => &state.public_base, form, errors },
            );
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
        jar = match save_session(&state, jar, old.as_ref(), &s, true).await {
            Ok(j) => j,
            Err(r) => return r,
        };
        secret_url = Some(format!(
            "{}/links/{}?secret={}",
            state.public_base,
            link.slug,
            secret.expose()
        ));
    }
    let frame = Frame { jar, ..frame };
    frame.page(
        StatusCode::CREATED,
        "created.html",
        context! { link => body, secret_url, noindex => true },
    )
}

// ---------------------------------------------------------------- sign in

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// Only a path on this origin is followed after sign-in (no open
/// redirect): it starts with one `/`, has no backslash, control or space
/// character (browsers drop tabs and newlines, so `/\t/evil.example` would
/// become `//evil.example`), and resolves to this origin.
fn safe_next(next: Option<&str>) -> String {
    let same_origin = |n: &str| {
        let base = url::Url::parse("http://hop.invalid/").expect("static base parses");
        n.starts_with('/')
            && !n.starts_with("//")
            && !n
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
            && base
                .join(n)
                .is_ok_and(|u| u.origin() == base.origin() && u.username().is_empty())
    };
    match next {
        Some(n) if same_origin(n) => n.to_owned(),
        _ => "/links".to_owned(),
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    next: Result<Query<NextParam>, QueryRejection>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(next.as_ref().ok().and_then(|q| q.next.as_deref()));
    frame.page(
        StatusCode::OK,
        "login.html",
        context! { next, noindex => true },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: Option<String>,
    next: Option<String>,
    csrf: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let (form, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let next = safe_next(form.next.as_deref());
    let ip = client_key(&state, peer, &headers);
    if let Some(d) = state.limiter.refused(Bucket::AuthFailure, &ip).await {
        return super::pages::too_many_requests(d.reset_secs);
    }
    let token = Token::new(form.key.unwrap_or_default().trim());
    let key = match access::api_key(&state, &Caller::Token(token.clone())).await {
        Ok(key) => key,
        Err(e) if e.status.is_server_error() => return api_error_page(e),
        Err(_) => {
            tracing::info!("web sign-in refused");
            state.limiter.take(Bucket::AuthFailure, &ip).await;
            return frame.page(
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { next, error => "That API key is not valid.", noindex => true },
            );
        }
    };
    let (old, session) = frame.session.clone().unzip();
    let mut session = session.unwrap_or_default();
    session.key_hash = Some(token.hash());
    // A sign-in begins the session's lifetime anew.
    session.created_at = 0;
    let jar = match save_session(&state, frame.jar, old.as_ref(), &session, true).await {
        Ok(j) => j,
        Err(r) => return r,
    };
    tracing::info!(key.id = key.id.0, "web sign-in");
    (jar, Redirect::to(&next)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let (_, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some((id, _)) = &frame.session {
        let _ = state.sessions.remove(id).await;
    }
    let jar = frame.jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/")).into_response()
}

// ---------------------------------------------------------------- links

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    tag: Option<String>,
    cursor: Option<String>,
    deleted: Option<String>,
}

fn to_login(next: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

pub async fn list_page(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(Query(query)) = query else {
        return message(
            StatusCode::BAD_REQUEST,
            "That search could not be read",
            "The address has a malformed query string.",
        );
    };
    if !frame.signed_in() {
        return to_login("/links");
    }
    let key = match access::api_key(&state, &frame.caller()).await {
        Ok(k) => k,
        Err(e) if e.status.is_server_error() => return api_error_page(e),
        // The key was revoked since sign-in.
        Err(_) => return to_login("/links"),
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
    let page = match links::list(&state, &key, params).await {
        Ok(p) => p,
        Err(e) => return api_error_page(e),
    };
    let notice = query
        .deleted
        .as_deref()
        .and_then(|s| Slug::parse_path(s).ok())
        .map(|s| format!("Deleted {s}."));
    frame.page(
        StatusCode::OK,
        "links.html",
        context! {
            links => page.links, next_cursor => page.next_cursor,
            is_later_page => query.cursor.is_some_and(|c| !c.is_empty()),
            q, tag, notice, noindex => true,
        },
    )
}

/// The link named by `slug`, if this browser may manage it; otherwise the
/// page to show instead (sign in, or not found).
async fn managed_link(
    state: &AppState,
    frame: &Frame,
    slug: &str,
    here: &str,
) -> Result<Link, Response> {
    if frame.session.is_none() {
        return Err(to_login(here));
    }
    access::link(state, &frame.caller(), slug)
        .await
        .map_err(api_error_page)
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    secret: Option<String>,
}

const BREAKDOWNS: [(&str, &str); 7] = [
    ("countries", "Countries"),
    ("cities", "Cities"),
    ("referrers", "Referrers"),
    ("browsers", "Browsers"),
    ("oses", "Operating systems"),
    ("devices", "Devices"),
    ("utm_sources", "UTM sources"),
];

pub async fn dashboard(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let here = format!("/links/{slug}");
    // A secret dashboard URL: a page whose button (a POST) keeps the secret
    // in this browser's session. A GET changes nothing: link previewers and
    // prefetchers open such URLs too.
    if let Ok(Query(DashboardQuery {
        secret: Some(secret),
    })) = &query
    {
        let link = match link_of_secret(&state, &slug, secret).await {
            Ok(l) => l,
            Err(r) => return r,
        };
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
        return res;
    }
    let link = match managed_link(&state, &frame, &slug, &here).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let total_clicks = match links::clicks_of(&state, &link).await {
        Ok(n) => n,
        Err(e) => return api_error_page(e),
    };
    let body = links::body(&state, &link, total_clicks);
    frame.page(
        StatusCode::OK,
        "dashboard.html",
        context! { link => body, total_clicks, breakdowns => BREAKDOWNS, noindex => true },
    )
}

/// The link a secret opens (a wrong one is a 404 page, like no link).
async fn link_of_secret(state: &AppState, slug: &str, secret: &str) -> Result<Link, Response> {
    let token = Token::new(secret.trim());
    if !token.expose().starts_with(LINK_SECRET_PREFIX) {
        return Err(super::pages::not_found());
    }
    access::link(state, &Caller::Token(token), slug)
        .await
        .map_err(api_error_page)
}

#[derive(Debug, Deserialize)]
pub struct UnlockForm {
    secret: Option<String>,
    csrf: Option<String>,
}

/// `POST /links/{slug}/unlock`: keeps a link secret in this browser's
/// session, under a new session id, and continues at the clean URL.
pub async fn unlock(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<UnlockForm>, FormRejection>,
) -> Response {
    let (form, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let secret = form.secret.unwrap_or_default();
    let link = match link_of_secret(&state, &slug, &secret).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (old, session) = frame.session.clone().unzip();
    let mut session = session.unwrap_or_default();
    session.add_link_secret(Token::new(secret.trim()).hash());
    let jar = match save_session(&state, frame.jar, old.as_ref(), &session, true).await {
        Ok(j) => j,
        Err(r) => return r,
    };
    (jar, Redirect::to(&format!("/links/{}", link.slug))).into_response()
}

// ---------------------------------------------------------------- edit

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct EditForm {
    url: Option<String>,
    title: Option<String>,
    tags: Option<String>,
    expires_at: Option<String>,
    #[serde(skip_deserializing)]
    expires_utc: Option<String>,
    tz: Option<String>,
    max_clicks: Option<String>,
    redirect_status: Option<String>,
    disabled: Option<String>,
    csrf: Option<String>,
}

impl EditForm {
    fn of(link: &LinkBody) -> EditForm {
        EditForm {
            url: Some(link.url.clone()),
            title: link.title.clone(),
            tags: Some(link.tags.join(", ")),
            expires_at: link
                .expires_at
                .map(|t| t.format("%Y-%m-%dT%H:%M").to_string()),
            expires_utc: link.expires_at.map(|t| t.to_rfc3339()),
            tz: None,
            max_clicks: link.max_clicks.map(|n| n.to_string()),
            redirect_status: Some(link.redirect_status.to_string()),
            disabled: link.disabled.then(|| "on".to_owned()),
            csrf: None,
        }
    }

    fn to_update(&self) -> Result<UpdateLink, ApiError> {
        let max_clicks = match non_empty(self.max_clicks.clone()) {
            None => None,
            Some(s) => Some(s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    FieldError::MaxClicks.code(),
                    "Click limit must be a whole number of at least 1",
                )
            })?),
        };
        let status = match non_empty(self.redirect_status.clone()) {
            None => None,
            Some(s) => Some(s.parse::<u16>().map_err(|_| FieldError::RedirectStatus)?),
        };
        Ok(UpdateLink {
            url: Some(self.url.clone().unwrap_or_default().trim().to_owned()),
            title: Some(non_empty(self.title.clone())),
            tags: Some(
                self.tags
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            expires_at: Some(parse_local_time(
                self.expires_at.as_deref(),
                self.tz.as_deref(),
            )?),
            max_clicks: Some(max_clicks),
            redirect_status: status,
            disabled: Some(self.disabled.is_some()),
        })
    }
}

const STATUSES: [(&str, &str); 4] = [
    ("302", "Found (temporary, default)"),
    ("301", "Moved permanently"),
    ("307", "Temporary redirect"),
    ("308", "Permanent redirect"),
];

#[derive(Debug, Deserialize)]
pub struct SavedParam {
    saved: Option<String>,
}

pub async fn edit_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
    saved: Result<Query<SavedParam>, QueryRejection>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let link = match managed_link(&state, &frame, &slug, &format!("/links/{slug}/edit")).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let body = links::body(&state, &link, 0);
    let saved = saved.is_ok_and(|q| q.saved.is_some());
    frame.page(
        StatusCode::OK,
        "edit.html",
        context! {
            slug => link.slug.as_str(), form => EditForm::of(&body), statuses => STATUSES,
            errors => HashMap::<String, String>::new(), saved, noindex => true,
        },
    )
}

pub async fn edit(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Response {
    let (form, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let link = match managed_link(&state, &frame, &slug, &format!("/links/{slug}/edit")).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let result = match form.to_update() {
        Ok(update) => links::update(&state, link.clone(), update).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(link) => Redirect::to(&format!("/links/{}/edit?saved=1", link.slug)).into_response(),
        Err(e) => {
            let (status, errors) = match field_errors(e) {
                Ok(v) => v,
                Err(page) => return page,
            };
            frame.page(
                status,
                "edit.html",
                context! {
                    slug => link.slug.as_str(), form, statuses => STATUSES, errors,
                    saved => false, noindex => true,
                },
            )
        }
    }
}

// ---------------------------------------------------------------- delete

pub async fn delete_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let link = match managed_link(&state, &frame, &slug, &format!("/links/{slug}/delete")).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let clicks = match links::clicks_of(&state, &link).await {
        Ok(n) => n,
        Err(e) => return api_error_page(e),
    };
    frame.page(
        StatusCode::OK,
        "delete.html",
        context! {
            slug => link.slug.as_str(), short_url => state.short_url(&link.slug), clicks,
            noindex => true,
        },
    )
}

pub async fn delete(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let (_, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let link = match managed_link(&state, &frame, &slug, &format!("/links/{slug}/delete")).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Err(e) = links::delete(&state, &link).await {
        return api_error_page(e);
    }
    if frame.signed_in() {
        Redirect::to(&format!("/links?deleted={}", link.slug)).into_response()
    } else {
        message(
            StatusCode::OK,
            "Link deleted",
            &format!(
                "{} no longer redirects and its clicks are gone.",
                state.short_url(&link.slug)
            ),
        )
    }
}

// ---------------------------------------------------------------- report

#[derive(Debug, Default, Deserialize)]
pub struct ReportForm {
    slug: Option<String>,
    reason: Option<String>,
    details: Option<String>,
    csrf: Option<String>,
}

fn report_ctx(state: &AppState, form: &ReportForm, error: Option<&str>, done: bool) -> Value {
    context! {
        public_base => &state.public_base,
        slug => form.slug.as_deref().unwrap_or(""),
        reason => form.reason.as_deref().unwrap_or("phishing"),
        details => form.details.as_deref().unwrap_or(""),
        reasons => super::reports::REASONS,
        error, done, noindex => true,
    }
}

pub async fn report_page(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<ReportForm>, QueryRejection>,
) -> Response {
    let frame = match Frame::load(&state, jar).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let form = query.map(|q| q.0).unwrap_or_default();
    let ctx = report_ctx(&state, &form, None, false);
    frame.page(StatusCode::OK, "report.html", ctx)
}

pub async fn report(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let (form, frame) = match accept(&state, jar, &headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ip = client_key(&state, peer, &headers);
    let d = state.limiter.take(Bucket::Create, &ip).await;
    if !d.allowed {
        return super::pages::too_many_requests(d.reset_secs);
    }
    let report = super::reports::NewReport {
        slug: form.slug.as_deref().unwrap_or_default().trim().to_owned(),
        reason: form.reason.clone().unwrap_or_default(),
        details: form.details.clone(),
    };
    match super::reports::record(&state, report).await {
        Ok(()) => {
            let ctx = report_ctx(&state, &form, None, true);
            frame.page(StatusCode::CREATED, "report.html", ctx)
        }
        Err(e) if e.status.is_client_error() => {
            let ctx = report_ctx(&state, &form, Some(&e.message), false);
            frame.page(e.status, "report.html", ctx)
        }
        Err(e) => api_error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_renders() {
        for name in TEMPLATES
            .templates()
            .map(|(n, _)| n.to_owned())
            .collect::<Vec<_>>()
        {
            assert!(TEMPLATES.get_template(&name).is_ok(), "{name}");
        }
        let page = message(StatusCode::GONE, "Gone <b>", "x & y");
        assert_eq!(page.status(), StatusCode::GONE);
        let html = TEMPLATES
            .get_template("message.html")
            .unwrap()
            .render(context! { status => 410, title => "<b>\"it's\"</b>", message => "https://a.example/x?a=1&b=2" })
            .unwrap();
        assert!(
            html.contains("&lt;b&gt;&quot;it&#39;s&quot;&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("https://a.example/x?a=1&amp;b=2"));
    }

    #[test]
    fn local_times_use_the_browser_zone() {
        let t = parse_local_time(Some("2030-01-31T18:00"), Some("Europe/Paris"))
            .unwrap()
            .unwrap();
        assert_eq!(t, "2030-01-31T17:00:00+00:00");
        assert_eq!(parse_local_time(Some(""), None).unwrap(), None);
        assert!(parse_local_time(Some("tomorrow"), None).is_err());
        // A time skipped by a DST change does not exist.
        assert!(parse_local_time(Some("2030-03-31T02:30"), Some("Europe/Paris")).is_err());
        // An unknown zone falls back to UTC.
        let t = parse_local_time(Some("2030-01-31T18:00"), Some("Mars/Base")).unwrap();
        assert_eq!(t.as_deref(), Some("2030-01-31T18:00:00+00:00"));
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/links/abc")), "/links/abc");
        assert_eq!(safe_next(Some("//evil.com")), "/links");
        assert_eq!(safe_next(Some("https://evil.com")), "/links");
        assert_eq!(safe_next(Some("/\\evil.com")), "/links");
        assert_eq!(safe_next(None), "/links");
        for hostile in [
            "/\t/evil.example/phish",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /evil.example",
            "/\u{3000}/evil.example",
            "/\u{0}/evil.example",
            "\\/evil.example",
            " //evil.example",
            "///evil.example",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/links", "{hostile:?}");
        }
        assert_eq!(safe_next(Some("/links?q=a%20b")), "/links?q=a%20b");
    }

    #[test]
    fn error_codes_map_to_fields() {
        assert_eq!(field_of("unsupported_scheme"), "url");
        assert_eq!(field_of("redirect_loop"), "url");
        assert_eq!(field_of("slug_taken"), "slug");
        assert_eq!(field_of("invalid_expiry"), "expires_at");
        assert_eq!(field_of("something_else"), "general");
    }
}
