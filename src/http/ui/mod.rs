//! The web UI: server-rendered pages (templates in [`super::render`]) that
//! work without JavaScript, enhanced by small embedded scripts. One file per
//! part of the site:
//!
//! - `shorten`: `/`, the shorten form and result page (QR code, copy
//!   button, secret dashboard URL for anonymous links);
//! - `sign_in`: `/login`, `/logout`: sign in with an API key (session
//!   cookie);
//! - `links`: `/links`, the signed-in key's links; `/links/{slug}`, the
//!   live dashboard, and `/links/{slug}/unlock` for a link secret;
//! - `edit` and `delete`: `/links/{slug}/edit` and `/delete`;
//! - `report`: `/report`, the abuse report form;
//! - `webhooks`: `/webhooks` and `/webhooks/{id}`, webhook endpoints,
//!   their messages and delivery log.
//!
//! This file holds what they share: the page frame, CSRF checks (through
//! [`super::csrf`]), sessions,
//! and [`PageError`], the page shown instead when a handler fails.
//!
//! Every form carries a CSRF token (double-submit: a random `hop_csrf`
//! cookie, SameSite=Strict, that the form must echo), and a cross-site
//! `Origin` is refused. Links are created, edited and deleted through the
//! same service functions as the API ([`crate::service`]), and their errors
//! pass through the API's codes, so the rules and messages are the same.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Form;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::SameSite;
use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::{Value, context};

use super::access::{self, Caller, SESSION_COOKIE};
use super::csrf;
use super::error::ApiError;
use super::render::{message, render};
use crate::domain::{FieldError, Link, UrlError};
use crate::session::{Session, SessionId};
use crate::state::AppState;
use crate::store::StoreError;

/// A posted form: one that carries a CSRF token field. Each form's module
/// says so with `posted!(Form)` (its fields are private to it).
trait Posted {
    fn csrf(&self) -> Option<&str>;
}

macro_rules! posted {
    ($($form:ty),*) => {
        $(impl super::Posted for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}

pub mod delete;
pub mod edit;
pub mod links;
pub mod report;
pub mod shorten;
pub mod sign_in;
pub mod webhooks;

pub use delete::{delete, delete_page};
pub use edit::{edit, edit_page};
pub use links::{dashboard, list_page, unlock};
pub use report::{report, report_page};
pub use shorten::{home, shorten};
pub use sign_in::{login, login_page, logout};
pub use webhooks::{create_webhook, webhook_action, webhook_page, webhooks_page};

pub use super::csrf::CSRF_COOKIE;

/// The page to show instead of the one asked for: sign in, not found, the
/// form refused, the database unavailable. Page handlers return
/// `Result<Response, PageError>` and use `?`. Boxed: it is the cold path,
/// and keeps the `Result` small.
pub struct PageError(Box<Response>);

impl PageError {
    /// Shows `page` instead.
    pub fn page(page: Response) -> PageError {
        PageError(Box::new(page))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An API error as a page: what the caller may not see is a 404, the
/// database down a 503, a bug a 500, anything else its message.
impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::page(match e.status {
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
        })
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<FormRejection> for PageError {
    fn from(r: FormRejection) -> Self {
        let status = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        PageError::page(message(
            status,
            "That form could not be read",
            "The form was sent in a shape hop does not understand, or was too large.",
        ))
    }
}

/// What every page's frame needs: whether someone is signed in, and the CSRF
/// token for its forms (the sign-out button is one).
struct Frame {
    jar: CookieJar,
    csrf: String,
    session: Option<(SessionId, Session)>,
}

impl Frame {
    async fn load(state: &AppState, jar: CookieJar) -> Result<Frame, PageError> {
        let (jar, csrf) = csrf::ensure(state, jar);
        let session = access::session_of(state, &jar).await?;
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

/// Refuses a form post whose token does not match the cookie, or that comes
/// from another origin.
fn check_csrf(jar: &CookieJar, headers: &HeaderMap, sent: Option<&str>) -> Result<(), PageError> {
    match csrf::refusal(jar, headers, sent) {
        Some(page) => Err(PageError::page(page)),
        None => Ok(()),
    }
}

/// Accepts a posted form: readable, from this site (CSRF token and Origin),
/// with the frame of the page that answers it; or the page that refuses it.
async fn accept<T: Posted>(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<(T, Frame), PageError> {
    let Form(form) = form?;
    check_csrf(&jar, headers, form.csrf())?;
    let frame = Frame::load(state, jar).await?;
    Ok((form, frame))
}

/// A form that carries nothing but its CSRF token (sign out, delete).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

impl Posted for CsrfOnly {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
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
        c if c == FieldError::Password.code() => "password",
        c if c == FieldError::Preview.code() => "preview",
        "invalid_fallback_url" => "fallback_url",
        "invalid_preview_image" => "preview_image",
        "invalid_rules_json"
        | "too_many_rules"
        | "invalid_rule_id"
        | "duplicate_rule_id"
        | "too_many_conditions"
        | "invalid_rule_action"
        | "invalid_rule_target"
        | "invalid_split"
        | "invalid_condition" => "rules",
        _ => "general",
    }
}

/// Field errors for the template, or the page for an error that is not about
/// a field.
fn field_errors(e: ApiError) -> Result<(StatusCode, HashMap<&'static str, String>), PageError> {
    if e.status.is_server_error() {
        return Err(e.into());
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
) -> Result<CookieJar, PageError> {
    let id = match old {
        Some(id) if !fresh => id.clone(),
        _ => SessionId::generate(),
    };
    if fresh && let Some(old) = old {
        state.sessions.remove(old).await?;
    }
    state.sessions.save(&id, session).await?;
    Ok(jar.add(csrf::cookie(
        state,
        SESSION_COOKIE,
        id.expose().to_owned(),
        SameSite::Lax,
    )))
}

/// The sign-in page, coming back to `next` afterwards.
fn to_login(next: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// The link named by `slug`, if this browser may manage it; otherwise the
/// page to show instead (sign in, or not found).
async fn managed_link(
    state: &AppState,
    frame: &Frame,
    slug: &str,
    here: &str,
) -> Result<Link, PageError> {
    if frame.session.is_none() {
        return Err(PageError::page(to_login(here)));
    }
    Ok(access::link(state, &frame.caller(), slug).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn error_codes_map_to_fields() {
        assert_eq!(field_of("unsupported_scheme"), "url");
        assert_eq!(field_of("redirect_loop"), "url");
        assert_eq!(field_of("slug_taken"), "slug");
        assert_eq!(field_of("invalid_expiry"), "expires_at");
        assert_eq!(field_of("something_else"), "general");
    }
}
