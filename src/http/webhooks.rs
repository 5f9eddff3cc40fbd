//! `/api/v1/webhooks`: register, list, change and delete endpoints, rotate
//! their secrets, read their messages and delivery log, replay. The rules
//! are [`crate::webhooks::endpoints`]'; this file owns the JSON shapes
//! (the payloads' schemas too) and the mapping of errors to the envelope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppQuery, bounded_param};
use crate::domain::ExportedClick;
use crate::state::AppState;
use crate::store::webhooks::{Attempt, Endpoint, Message, MessageState, ReplaySelection};
use crate::webhooks::endpoints::{
    self as rules, EndpointChanges, EndpointError, NewEndpoint, Scope,
};

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A JSON object only: serde would also take a struct as an array of its
/// fields.
fn object<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: serde::de::DeserializeOwned,
    D: serde::Deserializer<'de>,
{
    match serde_json::Value::deserialize(d)? {
        v @ serde_json::Value::Object(_) => {
            serde_json::from_value(v).map_err(serde::de::Error::custom)
        }
        _ => Err(serde::de::Error::custom("expected an object")),
    }
}

/// [`object`], or `null` for none.
fn optional_object<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: serde::de::DeserializeOwned,
    D: serde::Deserializer<'de>,
{
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        v => object(v).map(Some).map_err(serde::de::Error::custom),
    }
}

fn event_names_of(kind: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .schema_type(kind)
        .items(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .enum_values(Some([
                    "click",
                    "link.created",
                    "link.updated",
                    "link.deleted",
                    "link.exhausted",
                ])),
        )
        .min_items(Some(1))
        .max_items(Some(5))
        .build()
}

fn event_names_schema() -> utoipa::openapi::Array {
    event_names_of(utoipa::openapi::Type::Array.into())
}

/// The events of a change: `null` or absent keeps them.
fn optional_event_names_schema() -> utoipa::openapi::Array {
    event_names_of(utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::Type::Array,
        utoipa::openapi::Type::Null,
    ]))
}

/// Which links an endpoint hears of: a tag, or listed links (not both);
/// empty: every link of its key (or, instance-wide, of the instance).
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookScope {
    /// A tag (1–64 characters, not blank, no control characters).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tag: Option<String>,
    /// Slugs of links the key can see.
    #[schema(min_items = 1, max_items = 100)]
    pub links: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed (http or https). Private, loopback and
    /// link-local addresses are refused unless the server allows them.
    #[schema(max_length = 2048, format = "uri")]
    pub url: String,
    #[schema(schema_with = event_names_schema)]
    pub events: Vec<String>,
    /// At most 500 characters, no control characters.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub scope: WebhookScope,
    /// Every link of the instance (admin keys only).
    #[serde(default)]
    pub instance_wide: bool,
    /// A signing secret of your own (`whsec_` and 24–64 bytes in base64);
    /// by default hop makes one.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/=]{32,88}$")]
    pub secret: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2048, format = "uri")]
    pub url: Option<String>,
    #[schema(schema_with = optional_event_names_schema)]
    pub events: Option<Vec<String>>,
    /// `""` removes it. At most 500 characters, no control characters.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub description: Option<String>,
    /// Replaces the scope (`{}`: every link of the key).
    #[serde(default, deserialize_with = "optional_object")]
    pub scope: Option<WebhookScope>,
    /// `true` enables a disabled endpoint (its waiting messages go out);
    /// `false` pauses it (messages wait).
    pub enabled: Option<bool>,
}

/// An endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookBody {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub scope: WebhookScope,
    pub instance_wide: bool,
    pub enabled: bool,
    /// Why it is disabled (by its owner, or after failing for days).
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Until when the secret before the last rotation is also signed with.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    /// The signing secret: only in the answer that made it (registration,
    /// rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookBody {
    fn of(e: &Endpoint, with_secret: bool) -> WebhookBody {
        WebhookBody {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.iter().map(|k| k.as_str().to_owned()).collect(),
            scope: WebhookScope {
                tag: e.scope_tag.clone(),
                links: e.scope_links.clone(),
            },
            instance_wide: e.instance_wide,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since.map(time),
            created_at: time(e.created_at),
            updated_at: time(e.updated_at),
            previous_secret_valid_until: e
                .previous_until
                .filter(|u| *u > Utc::now().timestamp_millis())
                .map(time),
            secret: with_secret.then(|| e.secret.clone()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookBody>,
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        let message = e.to_string();
        match e {
            EndpointError::InvalidUrl => ApiError::bad_request("invalid_url", message),
            EndpointError::PrivateUrl(_) => ApiError::bad_request("private_url", message),
            EndpointError::InvalidEvents => ApiError::bad_request("invalid_events", message),
            EndpointError::InvalidDescription => {
                ApiError::bad_request("invalid_description", message)
            }
            EndpointError::InvalidScope | EndpointError::UnknownLink(_) => {
                ApiError::bad_request("invalid_scope", message)
            }
            EndpointError::InvalidSecret => ApiError::bad_request("invalid_secret", message),
            EndpointError::InvalidGrace => ApiError::bad_request("invalid_grace", message),
            EndpointError::NotAdmin => ApiError::forbidden(message),
            EndpointError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", message)
            }
            EndpointError::Unsupported => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "webhooks_unsupported", message)
            }
            EndpointError::Store(e) => e.into(),
        }
    }
}

fn scope(s: WebhookScope) -> Scope {
    Scope {
        tag: s.tag,
        links: s.links,
    }
}

#[utoipa::path(post, operation_id = "create_webhook", path = "/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "Registered; the answer holds the signing secret, shown this once", body = WebhookBody),
        (status = 400, description = "Invalid endpoint", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 403, description = "Instance-wide without an admin key", body = ErrorBody),
        (status = 501, description = "This store keeps no webhooks", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookBody>), ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let e = rules::create(
        &*state.store,
        &key,
        NewEndpoint {
            url: body.url,
            events: body.events,
            description: body.description,
            scope: scope(body.scope),
            instance_wide: body.instance_wide,
            secret: body.secret,
        },
        state.webhooks.allow_private,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(WebhookBody::of(&e, true))))
}

#[utoipa::path(get, operation_id = "list_webhooks", path = "/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The key's endpoints (an admin's: every one)", body = WebhookList),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let list = rules::list(&*state.store, &key).await?;
    Ok(Json(WebhookList {
        webhooks: list.iter().map(|e| WebhookBody::of(e, false)).collect(),
    }))
}

#[utoipa::path(get, operation_id = "get_webhook", path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookBody>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let e = rules::get(&*state.store, &key, &id).await?;
    Ok(Json(WebhookBody::of(&e, false)))
}

#[utoipa::path(patch, operation_id = "update_webhook", path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "Changed", body = WebhookBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> Result<Json<WebhookBody>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let e = rules::update(
        &*state.store,
        &key,
        &id,
        EndpointChanges {
            url: body.url,
            events: body.events,
            description: body.description.map(|d| Some(d).filter(|d| !d.is_empty())),
            scope: body.scope.map(scope),
            enabled: body.enabled,
        },
        state.webhooks.allow_private,
    )
    .await?;
    Ok(Json(WebhookBody::of(&e, false)))
}

#[utoipa::path(delete, operation_id = "delete_webhook", path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted, with its messages and log"),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    rules::delete(&*state.store, &key, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret is still signed with (default 86400, at
    /// most 604800; 0: at once).
    #[serde(default, deserialize_with = "super::links::whole")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<u64>,
}

#[utoipa::path(post, operation_id = "rotate_webhook_secret", path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = RotateSecret,
    responses(
        (status = 200, description = "The new secret (shown this once); messages carry a signature with each secret until the old one's grace period ends", body = WebhookBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<RotateSecret>,
) -> Result<Json<WebhookBody>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let grace = body.grace_seconds.map(std::time::Duration::from_secs);
    let e = rules::rotate_secret(&*state.store, &key, &id, grace).await?;
    Ok(Json(WebhookBody::of(&e, true)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// `pending`, `delivered` or `dead`.
    #[param(value_type = Option<String>, pattern = "^(pending|delivered|dead)$")]
    pub state: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}\.[^.]{1,64}$")]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

/// A message: one event, or a batch of clicks, as delivered (with the
/// same `webhook-id` and body on every attempt).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookMessage {
    /// Its `webhook-id`.
    pub id: String,
    pub event_type: String,
    /// When its (first) event happened.
    pub at: DateTime<Utc>,
    /// Events in it (clicks of a batch).
    pub events: u32,
    /// `pending`, `delivered` or `dead` (out of retries).
    pub state: String,
    pub attempts: u32,
    /// When it is tried next (pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The body POSTed.
    pub payload: serde_json::Value,
}

impl WebhookMessage {
    fn of(m: &Message) -> WebhookMessage {
        WebhookMessage {
            id: m.id.clone(),
            event_type: m.event_type.as_str().to_owned(),
            at: time(m.at),
            events: m.events,
            state: m.state.as_str().to_owned(),
            attempts: m.attempts,
            next_attempt_at: (m.state == MessageState::Pending).then(|| time(m.next_at)),
            last_status: m.last_status,
            last_error: m.last_error.clone(),
            finished_at: m.finished_at.map(time),
            payload: serde_json::from_str(&m.body).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookMessagePage {
    pub messages: Vec<WebhookMessage>,
    pub next_cursor: Option<String>,
}

fn cursor(c: Option<&str>) -> Result<Option<i64>, ApiError> {
    c.map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", "cursor is not valid"))
}

#[utoipa::path(get, operation_id = "list_webhook_messages", path = "/webhooks/{id}/messages", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), MessageParams),
    responses(
        (status = 200, description = "Messages, newest event first", body = WebhookMessagePage),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_webhook_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(p): AppQuery<MessageParams>,
) -> Result<Json<WebhookMessagePage>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let limit = bounded_param("limit", p.limit.as_deref(), 50, 1..=200)?;
    let filter = p
        .state
        .as_deref()
        .map(|s| {
            MessageState::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "state must be pending, delivered or dead")
            })
        })
        .transpose()?;
    // The cursor is the last message's time (ms) and id: `at.id`.
    let before = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                .filter(|(_, id)| !id.is_empty() && id.len() <= 64)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "cursor is not valid"))?,
        ),
    };
    let list = rules::messages(&*state.store, &key, &id, filter, before, limit).await?;
    let next_cursor = (list.len() == limit)
        .then(|| list.last().map(|m| format!("{}.{}", m.at, m.id)))
        .flatten();
    Ok(Json(WebhookMessagePage {
        messages: list.iter().map(WebhookMessage::of).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptParams {
    /// Only the attempts at this message.
    #[param(max_length = 64)]
    pub message: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    pub message_id: String,
    pub at: DateTime<Utc>,
    /// 1 for the first attempt at the message.
    pub attempt: u32,
    /// The HTTP status answered; `null`: no answer (refused, timed out).
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first kilobyte of the answer.
    pub response: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptPage {
    pub attempts: Vec<WebhookAttempt>,
    pub next_cursor: Option<String>,
}

impl WebhookAttempt {
    fn of(a: &Attempt) -> WebhookAttempt {
        WebhookAttempt {
            message_id: a.message_id.clone(),
            at: time(a.at),
            attempt: a.attempt,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            response: a.response.clone(),
        }
    }
}

#[utoipa::path(get, operation_id = "list_webhook_attempts", path = "/webhooks/{id}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), AttemptParams),
    responses(
        (status = 200, description = "The delivery log, newest first", body = WebhookAttemptPage),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn list_webhook_attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(p): AppQuery<AttemptParams>,
) -> Result<Json<WebhookAttemptPage>, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let limit = bounded_param("limit", p.limit.as_deref(), 50, 1..=200)?;
    let before = cursor(p.cursor.as_deref())?;
    if p.message.as_ref().is_some_and(|m| m.len() > 64) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "message is a message id (at most 64 characters)",
        ));
    }
    let list = rules::attempts(
        &*state.store,
        &key,
        &id,
        p.message.as_deref(),
        before,
        limit,
    )
    .await?;
    let next_cursor = (list.len() == limit)
        .then(|| list.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(WebhookAttemptPage {
        attempts: list.iter().map(WebhookAttempt::of).collect(),
        next_cursor,
    }))
}

/// What to send again: one message, or every message whose (first) event
/// happened in [from, to).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhook {
    #[schema(max_length = 64)]
    pub message_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    /// Messages due again (delivered, dead or pending alike).
    pub replayed: u64,
}

#[utoipa::path(post, operation_id = "replay_webhook", path = "/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = ReplayWebhook,
    responses(
        (status = 202, description = "The messages go out again, with their ids and bodies unchanged", body = Replayed),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn replay_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<ReplayWebhook>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let which = match (body.message_id, body.from, body.to) {
        (Some(m), None, None) if !m.is_empty() && m.len() <= 64 => ReplaySelection::One(m),
        (None, Some(from), Some(to)) if from < to => ReplaySelection::Range {
            from: from.timestamp_millis(),
            to: to.timestamp_millis(),
        },
        _ => {
            return Err(ApiError::bad_request(
                "invalid_replay",
                "give message_id, or from and to (RFC 3339, from before to)",
            ));
        }
    };
    let n = rules::replay(&*state.store, &key, &id, which, state.webhooks.retry_for).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// The body of a `click` message: a batch of one or more clicks, each with
/// its event id, in the order stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClickEventPayload {
    /// Always `click`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the first click happened (RFC 3339, ms).
    pub timestamp: String,
    pub data: ClickEventData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClickEventData {
    /// The clicks (the fields of the NDJSON export).
    #[schema(value_type = Vec<ExportedClick>)]
    pub clicks: Vec<serde_json::Value>,
}
