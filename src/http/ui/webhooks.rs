//! `/webhooks`: the signed-in key's webhook endpoints, and a form to
//! register one (its secret shown once, on the page that answers it);
//! `/webhooks/{id}`: one endpoint's settings, messages and delivery log,
//! with enable, pause, rotate, replay and delete. The same rules as the API
//! ([`crate::webhooks::endpoints`]), with its error messages.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use chrono::DateTime;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Frame, PageError, accept, to_login};
use crate::domain::webhook::EventType;
use crate::http::access;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::ApiKey;
use crate::store::webhooks::{Endpoint, ReplaySelection};
use crate::webhooks::endpoints::{self as rules, EndpointChanges, NewEndpoint, Scope};

#[derive(Debug, Default, Deserialize)]
pub struct WebhookForm {
    url: Option<String>,
    description: Option<String>,
    tag: Option<String>,
    ev_click: Option<String>,
    ev_link_created: Option<String>,
    ev_link_updated: Option<String>,
    ev_link_deleted: Option<String>,
    ev_link_exhausted: Option<String>,
    csrf: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// `enable`, `disable`, `rotate`, `replay` or `delete`.
    action: Option<String>,
    message: Option<String>,
    csrf: Option<String>,
}

posted!(WebhookForm, ActionForm);

impl WebhookForm {
    fn events(&self) -> Vec<String> {
        [
            (&self.ev_click, EventType::Click),
            (&self.ev_link_created, EventType::LinkCreated),
            (&self.ev_link_updated, EventType::LinkUpdated),
            (&self.ev_link_deleted, EventType::LinkDeleted),
            (&self.ev_link_exhausted, EventType::LinkExhausted),
        ]
        .into_iter()
        .filter(|(on, _)| on.is_some())
        .map(|(_, e)| e.as_str().to_owned())
        .collect()
    }
}

fn when(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn endpoint_ctx(e: &Endpoint) -> Value {
    let scope = match (&e.scope_tag, &e.scope_links) {
        (Some(t), _) => format!("links tagged “{t}”"),
        (None, Some(l)) => l.join(", "),
        (None, None) if e.instance_wide => "every link of the instance".into(),
        (None, None) => "every link of the key".into(),
    };
    context! {
        id => &e.id, url => &e.url, description => &e.description,
        events => e.events.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        enabled => e.enabled, disabled_reason => &e.disabled_reason,
        failing_since => e.failing_since.map(when), created_at => when(e.created_at),
        scope,
    }
}

/// The signed-in key, or the page to show instead (sign in).
async fn signed_in_key(state: &AppState, frame: &Frame, back: &str) -> Result<ApiKey, Response> {
    if !frame.signed_in() {
        return Err(to_login(back));
    }
    match access::api_key(state, &frame.caller()).await {
        Ok(k) => Ok(k),
        Err(e) if e.status.is_server_error() => Err(e.into_response()),
        Err(_) => Err(to_login(back)),
    }
}

async fn list_page_with(
    state: &AppState,
    frame: Frame,
    key: &ApiKey,
    status: StatusCode,
    form: &WebhookForm,
    error: Option<String>,
    created: Option<&Endpoint>,
) -> Result<Response, PageError> {
    let endpoints = match rules::list(&*state.store, key).await {
        Ok(l) => l,
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let checked = form.events();
    Ok(frame.page(
        status,
        "webhooks.html",
        context! {
            endpoints => endpoints.iter().map(endpoint_ctx).collect::<Vec<_>>(),
            error,
            created => created.map(|e| context! { id => &e.id, secret => &e.secret, url => &e.url }),
            url => form.url.as_deref().unwrap_or(""),
            description => form.description.as_deref().unwrap_or(""),
            tag => form.tag.as_deref().unwrap_or(""),
            checked, is_admin => key.admin, noindex => true,
        },
    ))
}

pub async fn webhooks_page(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let key = match signed_in_key(&state, &frame, "/webhooks").await {
        Ok(k) => k,
        Err(page) => return Ok(page),
    };
    let form = WebhookForm {
        ev_click: Some("on".into()),
        ..WebhookForm::default()
    };
    list_page_with(&state, frame, &key, StatusCode::OK, &form, None, None).await
}

pub async fn create_webhook(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<WebhookForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let key = match signed_in_key(&state, &frame, "/webhooks").await {
        Ok(k) => k,
        Err(page) => return Ok(page),
    };
    let tag = form
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let made = rules::create(
        &*state.store,
        &key,
        NewEndpoint {
            url: form.url.clone().unwrap_or_default(),
            events: form.events(),
            description: form.description.clone(),
            scope: Scope { tag, links: None },
            instance_wide: false,
            secret: None,
        },
        state.webhooks.allow_private,
    )
    .await
    .map_err(ApiError::from);
    match made {
        Ok(e) => {
            let empty = WebhookForm {
                ev_click: Some("on".into()),
                ..WebhookForm::default()
            };
            list_page_with(
                &state,
                frame,
                &key,
                StatusCode::CREATED,
                &empty,
                None,
                Some(&e),
            )
            .await
        }
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            list_page_with(&state, frame, &key, status, &form, Some(e.message), None).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn detail_page(
    state: &AppState,
    frame: Frame,
    key: &ApiKey,
    e: &Endpoint,
    notice: Option<String>,
    secret: Option<&str>,
) -> Result<Response, PageError> {
    let store = &*state.store;
    let messages = rules::messages(store, key, &e.id, None, None, 25)
        .await
        .map_err(ApiError::from)?;
    let attempts = rules::attempts(store, key, &e.id, None, None, 25)
        .await
        .map_err(ApiError::from)?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            context! {
                id => &m.id, event_type => m.event_type.as_str(), at => when(m.at),
                events => m.events, state => m.state.as_str(), attempts => m.attempts,
                last_status => m.last_status, last_error => &m.last_error,
            }
        })
        .collect();
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            context! {
                message_id => &a.message_id, at => when(a.at), attempt => a.attempt,
                status => a.status, latency_ms => a.latency_ms, error => &a.error,
                response => &a.response,
            }
        })
        .collect();
    Ok(frame.page(
        StatusCode::OK,
        "webhook.html",
        context! {
            endpoint => endpoint_ctx(e), messages, attempts, notice, secret,
            noindex => true,
        },
    ))
}

pub async fn webhook_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let back = format!("/webhooks/{id}");
    let key = match signed_in_key(&state, &frame, &back).await {
        Ok(k) => k,
        Err(page) => return Ok(page),
    };
    let e = rules::get(&*state.store, &key, &id)
        .await
        .map_err(ApiError::from)?;
    detail_page(&state, frame, &key, &e, None, None).await
}

pub async fn webhook_action(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let back = format!("/webhooks/{id}");
    let key = match signed_in_key(&state, &frame, &back).await {
        Ok(k) => k,
        Err(page) => return Ok(page),
    };
    let store = &*state.store;
    let allow = state.webhooks.allow_private;
    let changes = |enabled| EndpointChanges {
        enabled: Some(enabled),
        ..EndpointChanges::default()
    };
    let (e, notice, secret) = match form.action.as_deref().unwrap_or_default() {
        "enable" => {
            let e = rules::update(store, &key, &id, changes(true), allow).await;
            (e, "Enabled: waiting messages go out now.".to_owned(), false)
        }
        "disable" => {
            let e = rules::update(store, &key, &id, changes(false), allow).await;
            (
                e,
                "Paused: messages wait until it is enabled.".to_owned(),
                false,
            )
        }
        "rotate" => {
            let e = rules::rotate_secret(store, &key, &id, None).await;
            let notice = "New secret below; the old one also signs for a day.".to_owned();
            (e, notice, true)
        }
        "replay" => {
            let message = form.message.clone().unwrap_or_default();
            if message.is_empty() || message.len() > 64 {
                return Err(ApiError::bad_request("invalid_replay", "no message given").into());
            }
            let n = rules::replay(
                store,
                &key,
                &id,
                ReplaySelection::One(message.clone()),
                state.webhooks.retry_for,
            )
            .await
            .map_err(ApiError::from)?;
            let e = rules::get(store, &key, &id).await;
            let notice = if n == 1 {
                format!("Message {message} goes out again.")
            } else {
                "No such message.".to_owned()
            };
            (e, notice, false)
        }
        "delete" => {
            rules::delete(store, &key, &id)
                .await
                .map_err(ApiError::from)?;
            return Ok(Redirect::to("/webhooks").into_response());
        }
        _ => {
            return Err(ApiError::bad_request("invalid_action", "unknown action").into());
        }
    };
    let e = e.map_err(ApiError::from)?;
    let secret = secret.then_some(e.secret.as_str());
    detail_page(&state, frame, &key, &e, Some(notice), secret).await
}
