//! `/links/{slug}/edit`: the edit form, applied through the same service
//! function as the API's PATCH; a refused field is shown next to it.

use std::collections::HashMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::{Frame, PageError, accept, field_errors, managed_link, non_empty, parse_local_time};
use crate::domain::FieldError;
use crate::http::error::ApiError;
use crate::http::links::{self, LinkBody};
use crate::service::links::LinkChanges;
use crate::state::AppState;

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
    /// A new password (empty: the one it has, or none); never shown back.
    #[serde(skip_serializing)]
    password: Option<String>,
    remove_password: Option<String>,
    /// Whether the link has a password now (shown, not posted).
    #[serde(skip_deserializing)]
    protected: bool,
    csrf: Option<String>,
}

posted!(EditForm);

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
            password: None,
            remove_password: None,
            protected: link.password_protected,
            csrf: None,
        }
    }

    fn to_changes(&self) -> Result<LinkChanges, ApiError> {
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
        Ok(LinkChanges {
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
            // Not on this form yet: left as they are.
            rules: None,
            fallback_url: None,
            preview: None,
            password: if self.remove_password.is_some() {
                Some(None)
            } else {
                // Kept exactly as typed (a space may be part of it).
                self.password.clone().filter(|p| !p.is_empty()).map(Some)
            },
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
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let link = managed_link(&state, &frame, &slug, &format!("/links/{slug}/edit")).await?;
    let body = links::body(&state, &link, 0);
    let saved = saved.is_ok_and(|q| q.saved.is_some());
    Ok(frame.page(
        StatusCode::OK,
        "edit.html",
        context! {
            slug => link.slug.as_str(), form => EditForm::of(&body), statuses => STATUSES,
            errors => HashMap::<String, String>::new(), saved, noindex => true,
        },
    ))
}

pub async fn edit(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (mut form, frame) = accept(&state, jar, &headers, form).await?;
    let link = managed_link(&state, &frame, &slug, &format!("/links/{slug}/edit")).await?;
    form.protected = link.password_hash.is_some();
    let result = match form.to_changes() {
        Ok(changes) => crate::service::links::update(&state, link.clone(), changes)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(link) => Ok(Redirect::to(&format!("/links/{}/edit?saved=1", link.slug)).into_response()),
        Err(e) => {
            let (status, errors) = field_errors(e)?;
            Ok(frame.page(
                status,
                "edit.html",
                context! {
                    slug => link.slug.as_str(), form, statuses => STATUSES, errors,
                    saved => false, noindex => true,
                },
            ))
        }
    }
}
