//! `/api/v1/links`: create, list, read, edit and delete links. The rules are
//! [`crate::service::links`]'s; this file owns the JSON shapes, their
//! OpenAPI schemas and the mapping of [`LinkError`] to the error envelope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access;
use super::access::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppQuery, bounded_param};
use crate::domain::rules::RuleSpec;
use crate::domain::{Link, LinkId};
use crate::public_host::Refusal;
use crate::service;
use crate::service::links::{LinkChanges, LinkError, LinkListing, NewLink};
use crate::state::AppState;
use crate::store::ApiKey;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    #[schema(schema_with = url_schema)]
    pub url: String,
    /// Custom slug: 1–64 of `[A-Za-z0-9_-]`, case-sensitive, not a reserved
    /// word (`api`, `static`, …). Random if absent.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub slug: Option<String>,
    #[schema(schema_with = title_schema)]
    pub title: Option<String>,
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
    /// RFC 3339 time, in the future, after which the link answers 410.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Redirects allowed before the link answers 410.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub max_clicks: Option<i64>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(value_type = Option<RedirectStatus>)]
    pub redirect_status: Option<u16>,
    /// Smart link rules, in order: the first whose conditions all hold
    /// decides where a visit goes; none: `url`. At most 50.
    #[schema(max_items = 50)]
    pub rules: Option<Vec<RuleSpec>>,
    /// Where visits go instead of the 410 page once the link has expired,
    /// reached its click limit or been disabled.
    #[schema(schema_with = optional_url_schema)]
    pub fallback_url: Option<String>,
    /// A password visitors must give (on a form hop shows) before being
    /// redirected. Stored as an argon2id hash, never shown again.
    #[schema(schema_with = password_schema)]
    pub password: Option<String>,
    pub preview: Option<Preview>,
}

/// What chat apps' and social sites' preview bots (Slack, X, Facebook,
/// LinkedIn, Discord, WhatsApp, Telegram, iMessage, …) are shown instead
/// of the redirect, as Open Graph and Twitter card tags. Blank texts count
/// as absent; a preview with nothing in it is none.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub title: Option<String>,
    /// Line breaks allowed.
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    /// An image URL (checked like a target): what `og:image` names.
    #[schema(schema_with = optional_url_schema)]
    pub image: Option<String>,
}

impl From<Preview> for service::links::PreviewSpec {
    fn from(p: Preview) -> Self {
        service::links::PreviewSpec {
            title: p.title,
            description: p.description,
            image: p.image,
        }
    }
}

/// The usual shape of an accepted target URL, for the OpenAPI document.
pub(crate) const URL_PATTERN: &str = concat!(
    r"^[Hh][Tt][Tt][Pp][Ss]?://",
    // host name: labels of letters, digits, `-`, `_`; the last starts with a letter
    r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z][A-Za-z0-9_-]{0,62}\.?",
    // port, 0–65535
    r"(?::(?:[0-9]{0,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    // path, query, fragment: printable ASCII, no encoded CR, LF or NUL
    r"(?:[/?#\\](?:[!-$&-~]|%(?:[!-/1-~]|0[!-/1-@B-CE-`b-ce-~]))*(?:%0?)?)?$",
);
/// No control characters (Unicode category Cc).
const NO_CONTROLS: &str = r"[^\u0000-\u001f\u007f-\u009f]";
const NO_CONTROLS_OR_COMMA: &str = r"[^,\u0000-\u001f\u007f-\u009f]";

/// String or null: a body field that may be left out (absent and `null`
/// mean the same for these).
fn nullable(kind: utoipa::openapi::Type) -> utoipa::openapi::schema::SchemaType {
    utoipa::openapi::schema::SchemaType::from_iter([kind, utoipa::openapi::Type::Null])
}

fn url_schema() -> utoipa::openapi::Object {
    url_schema_of(utoipa::openapi::Type::String.into())
}

fn optional_url_schema() -> utoipa::openapi::Object {
    url_schema_of(nullable(utoipa::openapi::Type::String))
}

fn url_schema_of(kind: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(kind)
        .pattern(Some(URL_PATTERN))
        .max_length(Some(crate::domain::MAX_URL_LEN))
        .description(Some(
            "The long URL: http or https, with a host, without user name or password, \
             spaces, control characters or encoded line breaks, at most 8 KiB, and not a \
             link to this shortener. IDN hosts and IP literals are accepted too; the \
             pattern shows the common form.",
        ))
        .build()
}

fn title_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(nullable(utoipa::openapi::Type::String))
        .max_length(Some(crate::domain::MAX_TITLE_LEN))
        .pattern(Some(format!("^{NO_CONTROLS}*$")))
        .description(Some(
            "At most 500 characters, no control characters; blank means none.",
        ))
        .build()
}

fn password_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(nullable(utoipa::openapi::Type::String))
        .min_length(Some(crate::domain::MIN_PASSWORD_LEN))
        .max_length(Some(crate::domain::MAX_PASSWORD_LEN))
        .pattern(Some(format!("^{NO_CONTROLS}*$")))
        .write_only(Some(true))
        .description(Some(
            "4 to 128 characters, no control characters; kept exactly as given.",
        ))
        .build()
}

/// The redirect's status code in the OpenAPI document: one named schema,
/// so generated clients get one enum for it (not one per body).
pub struct RedirectStatus;

impl utoipa::PartialSchema for RedirectStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .enum_values(Some([301, 302, 307, 308]))
            .description(Some("301, 302 (default), 307 or 308."))
            .into()
    }
}

impl ToSchema for RedirectStatus {
    fn name() -> std::borrow::Cow<'static, str> {
        "RedirectStatus".into()
    }
}

fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON integer, also when written with a zero fraction (`5.0`), which
/// JSON Schema counts as an integer too (as do many JSON encoders).
struct Whole(i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // Both bounds are powers of two, so the comparison is exact.
                if v.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v)
                {
                    Ok(Whole(v as i64))
                } else {
                    Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

pub(super) fn whole<'de, T: TryFrom<i64>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Whole>::deserialize(d)?
        .map(|w| T::try_from(w.0).map_err(|_| serde::de::Error::custom("integer out of range")))
        .transpose()
}

fn double_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Ok(Some(Option::<Whole>::deserialize(d)?.map(|w| w.0)))
}

fn tags_schema() -> utoipa::openapi::Array {
    let c = NO_CONTROLS_OR_COMMA;
    let tag = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::domain::MAX_TAG_LEN))
        .pattern(Some(format!(r"^{c}*[^\s,\u0000-\u001f\u007f-\u009f]{c}*$")));
    utoipa::openapi::ArrayBuilder::new()
        .schema_type(nullable(utoipa::openapi::Type::Array))
        .items(tag)
        .max_items(Some(crate::domain::MAX_TAGS))
        .description(Some(
            "At most 20 tags of 1–64 characters, not blank, no commas or control \
             characters; duplicates are dropped.",
        ))
        .build()
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLink {
    #[schema(schema_with = optional_url_schema)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = title_schema)]
    pub title: Option<Option<String>>,
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_whole")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub max_clicks: Option<Option<i64>>,
    #[serde(default, deserialize_with = "whole")]
    #[schema(value_type = Option<RedirectStatus>)]
    pub redirect_status: Option<u16>,
    pub disabled: Option<bool>,
    /// The whole list of rules, replacing the link's (`[]`: none).
    #[schema(max_items = 50)]
    pub rules: Option<Vec<RuleSpec>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = optional_url_schema)]
    pub fallback_url: Option<Option<String>>,
    /// A new password; `null` removes the protection.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = password_schema)]
    pub password: Option<Option<String>>,
    /// The whole preview, replaced; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Preview>)]
    pub preview: Option<Option<Preview>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkBody {
    pub slug: String,
    pub short_url: String,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_clicks: Option<u64>,
    pub redirect_status: u16,
    pub disabled: bool,
    /// An admin has taken the target's domain down: the link answers 410
    /// whatever `disabled` says, until an admin lifts the takedown.
    #[serde(default)]
    pub taken_down: bool,
    /// Smart link rules, in order (ids filled in).
    pub rules: Vec<RuleSpec>,
    pub fallback_url: Option<String>,
    /// Visitors must give the link's password before being redirected.
    #[serde(default)]
    pub password_protected: bool,
    /// What link preview bots are shown instead of the redirect.
    #[serde(default)]
    pub preview: Option<Preview>,
    /// All-time human clicks.
    pub clicks: u64,
    /// Per-link secret of an anonymous link: returned once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkPage {
    pub links: Vec<LinkBody>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    pub cursor: Option<String>,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Case-insensitive text in slug, URL or title.
    pub q: Option<String>,
}

pub fn body(state: &AppState, link: &Link, clicks: u64) -> LinkBody {
    LinkBody {
        slug: link.slug.to_string(),
        short_url: state.short_url(&link.slug),
        url: link.target.to_string(),
        title: link.title.clone(),
        tags: link.tags.clone(),
        created_at: link.created_at,
        updated_at: link.updated_at,
        expires_at: link.expires_at,
        max_clicks: link.max_clicks,
        redirect_status: link.redirect_status.code(),
        disabled: link.disabled,
        taken_down: state.takedowns.covers(link.target.host()),
        rules: link.rules.to_specs(),
        fallback_url: link.fallback_url.as_ref().map(|u| u.to_string()),
        password_protected: link.password_hash.is_some(),
        preview: link.preview.as_ref().map(|p| Preview {
            title: p.title.clone(),
            description: p.description.clone(),
            image: p.image.as_ref().map(|u| u.to_string()),
        }),
        clicks,
        secret: None,
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Url(e) => e.into(),
            LinkError::Slug(e) => e.into(),
            LinkError::Field(e) => e.into(),
            LinkError::Rules(e) => ApiError::bad_request(e.code(), e.to_string()),
            LinkError::InvalidExpiry => ApiError::bad_request(
                "invalid_expiry",
                "expires_at must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z",
            ),
            LinkError::TakenDown => ApiError::bad_request(
                "taken_down_domain",
                "links to this domain have been taken down by this service's administrators",
            ),
            LinkError::Blocked => ApiError::bad_request(
                "blocked_domain",
                "links to this domain are not allowed on this service",
            ),
            LinkError::PrivateTarget(why) => private_target_error(why),
            LinkError::SlugTaken => ApiError::new(
                StatusCode::CONFLICT,
                "slug_taken",
                "this slug is already taken",
            ),
            LinkError::SlugSpaceExhausted => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "slug_space_exhausted",
                "could not find a free slug; try again",
            ),
            LinkError::NotFound => ApiError::link_not_found(),
            LinkError::RuleNotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "rule_not_found",
                "this link has no rule with that id",
            ),
            LinkError::Store(e) => e.into(),
        }
    }
}

/// The API's answer to a target refused by `--refuse-private-targets`. The
/// check fails closed: a name that does not resolve is refused too.
pub fn private_target_error(why: Refusal) -> ApiError {
    match why {
        Refusal::Private | Refusal::SpecialName => ApiError::bad_request(
            "private_target",
            "links to private, loopback, link-local or special-use addresses are not allowed",
        ),
        Refusal::Unresolvable | Refusal::Timeout => ApiError::bad_request(
            "unresolvable_target",
            "the target's host name does not resolve, so it cannot be checked to be public",
        ),
        Refusal::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "lookups_busy",
            "too many target checks are in progress; try again in a moment",
        ),
    }
}

impl From<CreateLink> for NewLink {
    fn from(req: CreateLink) -> NewLink {
        NewLink {
            url: req.url,
            slug: req.slug,
            title: req.title,
            tags: req.tags.unwrap_or_default(),
            expires_at: req.expires_at,
            max_clicks: req.max_clicks,
            redirect_status: req.redirect_status,
            rules: req.rules.unwrap_or_default(),
            fallback_url: req.fallback_url,
            password: req.password,
            preview: req.preview.map(Into::into),
        }
    }
}

impl From<UpdateLink> for LinkChanges {
    fn from(req: UpdateLink) -> LinkChanges {
        LinkChanges {
            url: req.url,
            title: req.title,
            tags: req.tags,
            expires_at: req.expires_at,
            max_clicks: req.max_clicks,
            redirect_status: req.redirect_status,
            disabled: req.disabled,
            rules: req.rules,
            fallback_url: req.fallback_url,
            password: req.password,
            preview: req.preview.map(|p| p.map(Into::into)),
        }
    }
}

/// All-time human clicks of a link.
pub async fn clicks_of(state: &AppState, link: &Link) -> Result<u64, ApiError> {
    Ok(service::links::clicks(state, link).await?)
}

#[utoipa::path(post, operation_id = "create_link", path = "/links", tag = "links", request_body = CreateLink,
    responses(
        (status = 201, description = "Link created", body = LinkBody),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 409, description = "Slug taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security((), ("api_key" = [])))]
pub async fn create_link(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateLink>,
) -> Result<Response, ApiError> {
    let owner = access::creator(&state, &caller).await?;
    let (link, secret) = service::links::create(&state, owner.as_ref(), req.into()).await?;
    let mut out = body(&state, &link, 0);
    out.secret = secret.map(|s| s.expose().to_owned());
    let location = format!("/api/v1/links/{}", link.slug);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(out)).into_response())
}

#[utoipa::path(get, operation_id = "list_links", path = "/links", tag = "links", params(ListParams),
    responses(
        (status = 200, description = "Links, newest first", body = LinkPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_links(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Json<LinkPage>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    Ok(Json(list(&state, &key, params).await?))
}

/// One page of the links `key` may see, newest first, with click totals.
/// Shared by the API and the web UI's list, so both read the same query.
pub async fn list(
    state: &AppState,
    key: &ApiKey,
    params: ListParams,
) -> Result<LinkPage, ApiError> {
    let limit = bounded_param("limit", params.limit.as_deref(), 50, 1..=200)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map(LinkId))
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not valid"))?;
    let listing = LinkListing {
        tag: params.tag.filter(|t| !t.is_empty()),
        text: params.q.filter(|t| !t.is_empty()),
        before,
        limit,
    };
    let listed = service::links::list(state, key, listing).await?;
    let links = listed
        .links
        .iter()
        .map(|(l, clicks)| body(state, l, *clicks))
        .collect();
    Ok(LinkPage {
        links,
        next_cursor: listed.next.map(|id| id.0.to_string()),
    })
}

#[utoipa::path(get, operation_id = "get_link", path = "/links/{slug}", tag = "links",
    params(("slug" = String, Path, description = "The link's slug")),
    responses(
        (status = 200, description = "The link", body = LinkBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn get_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<LinkBody>, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let clicks = clicks_of(&state, &link).await?;
    Ok(Json(body(&state, &link, clicks)))
}

#[utoipa::path(patch, operation_id = "update_link", path = "/links/{slug}", tag = "links", request_body = UpdateLink,
    params(("slug" = String, Path, description = "The link's slug")),
    responses(
        (status = 200, description = "The updated link", body = LinkBody),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn update_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppJson(req): AppJson<UpdateLink>,
) -> Result<Json<LinkBody>, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let link = service::links::update(&state, link, req.into()).await?;
    let clicks = clicks_of(&state, &link).await?;
    Ok(Json(body(&state, &link, clicks)))
}

/// A change to one rule of a link: each field given replaces the rule's
/// (`target` replaces a `split` and the other way round), the rest stays.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRule {
    pub id: Option<String>,
    #[serde(rename = "if")]
    pub conditions: Option<Vec<crate::domain::rules::ConditionSpec>>,
    pub target: Option<String>,
    pub split: Option<Vec<crate::domain::rules::VariantSpec>>,
}

#[utoipa::path(patch, operation_id = "update_link_rule", path = "/links/{slug}/rules/{rule_id}", tag = "links",
    request_body = PatchRule,
    params(("slug" = String, Path, description = "The link's slug"),
        ("rule_id" = String, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "The link, with the rule changed", body = LinkBody),
        (status = 400, description = "Invalid input: the rule, or the list with it, fails a check", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials, or no such rule", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn update_link_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, rule_id)): Path<(String, String)>,
    AppJson(req): AppJson<PatchRule>,
) -> Result<Json<LinkBody>, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let patch = service::links::RulePatch {
        id: req.id,
        conditions: req.conditions,
        target: req.target,
        split: req.split,
    };
    let link = service::links::patch_rule(&state, link, &rule_id, patch).await?;
    let clicks = clicks_of(&state, &link).await?;
    Ok(Json(body(&state, &link, clicks)))
}

#[utoipa::path(delete, operation_id = "delete_link", path = "/links/{slug}", tag = "links",
    params(("slug" = String, Path, description = "The link's slug")),
    responses(
        (status = 204, description = "Deleted, with its clicks"),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn delete_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    service::links::delete(&state, &link).await?;
    Ok(StatusCode::NO_CONTENT)
}
