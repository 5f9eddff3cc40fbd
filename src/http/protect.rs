//! Password-protected links: the form hop answers instead of redirecting,
//! the check of a posted password, and one-time access tokens.
//!
//! A protected link's target is never in an answer before the password
//! (or an access token) is given: GET and HEAD of it, by browsers and bots
//! alike, get the form (200, `no-store`, `noindex`). The form posts back
//! to the short URL itself (its query kept, so rules and UTM parameters
//! see it), CSRF-protected like every form of the site, and works without
//! JavaScript. Wrong passwords are counted per client and per link
//! ([`Bucket::PasswordFailure`], [`Bucket::PasswordLinkFailure`]); past
//! either allowance the form answers 429 until some of it is back, right
//! password or not.
//!
//! An access token (`POST /api/v1/links/{slug}/access-tokens`) opens the
//! link once: `/{slug}?hop_access=TOKEN` redirects as a right password
//! would, and the token is gone. Tokens are kept as the hash of their
//! text (in the store's one-time records, [`crate::store::SessionRecords`])
//! and taken atomically, so two uses at once open the link once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::access::{self, Caller};
use super::csrf;
use super::error::{ApiError, ErrorBody};
use super::extract::AppJson;
use super::limits::client_key;
use super::pages;
use super::render::render;
use crate::auth::Token;
use crate::domain::{Link, Slug};
use crate::ratelimit::Bucket;
use crate::state::AppState;
use crate::store::StoreError;

/// The query parameter that carries an access token.
pub const ACCESS_PARAM: &str = "hop_access";
/// Prefix of access tokens.
pub const ACCESS_PREFIX: &str = "hpa_";
/// Longest an access token is valid: 30 days.
pub const MAX_ACCESS_SECS: u64 = 30 * 86_400;

/// The site's Content-Security-Policy with `form-action` opened to any
/// web address (see [`form`]).
const PASSWORD_PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self' https: http:; frame-ancestors 'none'";

/// The password form, as posted.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    pub password: Option<String>,
    pub csrf: Option<String>,
}

/// The form asking for `slug`'s password (`error`: why the last attempt
/// failed), with the CSRF cookie it needs.
pub fn form(
    state: &AppState,
    slug: &Slug,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (jar, token) = csrf::ensure(state, CookieJar::from_headers(headers));
    let mut res = render(
        status,
        "password.html",
        context! { slug => slug.as_str(), csrf => token, error, noindex => true },
    );
    res.headers_mut().insert(
        axum::http::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    // The form's answer redirects to the target, and browsers hold that
    // redirect to `form-action` too: any web address may follow (naming the
    // target's origin here would show it before the password).
    res.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PASSWORD_PAGE_POLICY),
    );
    (jar, res).into_response()
}

/// Checks a posted password for `link`: the form's CSRF token, the
/// client's and the link's allowance of wrong passwords, then the password
/// itself. `Some`: the page to answer instead of the redirect.
pub async fn refusal(
    state: &AppState,
    link: &Link,
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    posted: PasswordForm,
) -> Option<Response> {
    let hash = link.password_hash.as_ref()?;
    let jar = CookieJar::from_headers(headers);
    if let Some(page) = csrf::refusal(&jar, headers, posted.csrf.as_deref()) {
        return Some(page);
    }
    let client = client_key(state, peer, headers);
    let per_link = link.id.0.to_string();
    for (bucket, key) in [
        (Bucket::PasswordFailure, &client),
        (Bucket::PasswordLinkFailure, &per_link),
    ] {
        if let Some(d) = state.limiter.refused(bucket, key).await {
            return Some(pages::too_many_requests(d.reset_secs));
        }
    }
    let password = posted.password.unwrap_or_default();
    if !password.is_empty() && crate::password::verify_blocking(password, hash.clone()).await {
        return None;
    }
    state.limiter.take(Bucket::PasswordFailure, &client).await;
    state
        .limiter
        .take(Bucket::PasswordLinkFailure, &per_link)
        .await;
    tracing::info!(link.slug = %link.slug, "wrong password for a protected link");
    Some(form(
        state,
        &link.slug,
        headers,
        StatusCode::UNAUTHORIZED,
        Some("That password is not right."),
    ))
}

/// What an access token is stored as.
#[derive(Debug, Serialize, Deserialize)]
struct AccessRecord {
    access: i64,
}

/// The one-time record key of `link`'s access token: a hash in a domain of
/// its own (no session id can name it), with the link in it (a token tried
/// on another link finds nothing there and stays valid for its own).
fn record_key(link: &Link, token: &str) -> [u8; 32] {
    Token::new(format!("access:{}:{token}", link.id.0)).hash()
}

/// A new access token for `link`, valid until `expires_at`.
pub async fn issue(
    state: &AppState,
    link: &Link,
    expires_at: DateTime<Utc>,
) -> Result<Token, StoreError> {
    let token = Token::generate(ACCESS_PREFIX);
    let data =
        serde_json::to_string(&AccessRecord { access: link.id.0 }).expect("a number serialises");
    state
        .store
        .save_session(
            &record_key(link, token.expose()),
            &data,
            expires_at.timestamp_millis(),
        )
        .await?;
    Ok(token)
}

/// The access token a query carries, if any.
pub fn access_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == ACCESS_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// Whether `token` opens `link` (and is used up now).
pub async fn redeem(state: &AppState, link: &Link, token: &str) -> Result<bool, StoreError> {
    if !token.starts_with(ACCESS_PREFIX) || token.len() > 128 {
        return Ok(false);
    }
    let taken = state
        .store
        .take_session(&record_key(link, token), Utc::now().timestamp_millis())
        .await?;
    Ok(taken
        .and_then(|d| serde_json::from_str::<AccessRecord>(&d).ok())
        .is_some_and(|r| r.access == link.id.0))
}

/// Asks for an access token.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessToken {
    /// Seconds the token stays valid: 60 to 2 592 000 (30 days); one day
    /// if absent.
    #[serde(default, deserialize_with = "super::links::whole")]
    #[schema(minimum = 60, maximum = 2_592_000)]
    pub expires_in: Option<i64>,
}

/// A one-time access token of a protected link.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessTokenBody {
    /// Shown once; hop keeps only its hash.
    pub token: String,
    /// The short URL that opens the link once, without the password.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, operation_id = "create_access_token", path = "/links/{slug}/access-tokens", tag = "links",
    params(("slug" = String, Path, description = "The link's slug")),
    request_body = CreateAccessToken,
    responses(
        (status = 201, description = "A token that opens the protected link once", body = AccessTokenBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
        (status = 409, description = "The link has no password", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn create_access_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppJson(req): AppJson<CreateAccessToken>,
) -> Result<(StatusCode, Json<AccessTokenBody>), ApiError> {
    let secs = match req.expires_in {
        None => 86_400,
        Some(s) if (60..=MAX_ACCESS_SECS as i64).contains(&s) => s,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_expires_in",
                "expires_in must be 60 to 2592000 seconds",
            ));
        }
    };
    let link = access::link(&state, &caller, &slug).await?;
    if link.password_hash.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "link_not_protected",
            "this link has no password; it opens without a token",
        ));
    }
    let expires_at = Utc::now() + chrono::Duration::seconds(secs);
    let token = issue(&state, &link, expires_at).await?;
    tracing::info!(link.slug = %link.slug, "access token issued");
    let url = format!(
        "{}?{ACCESS_PARAM}={}",
        state.short_url(&link.slug),
        token.expose()
    );
    Ok((
        StatusCode::CREATED,
        Json(AccessTokenBody {
            token: token.expose().to_owned(),
            url,
            expires_at,
        }),
    ))
}
