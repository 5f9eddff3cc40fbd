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
use crate::domain::rules::{ConditionSpec, RuleSpec};
use crate::domain::{FieldError, TargetUrl};
use crate::http::error::ApiError;
use crate::http::links::{self, LinkBody};
use crate::service::links::{LinkChanges, PreviewSpec};
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
    fallback_url: Option<String>,
    preview_title: Option<String>,
    preview_description: Option<String>,
    preview_image: Option<String>,
    /// The rules as the API's JSON list, pretty-printed (empty: none).
    rules: Option<String>,
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
            fallback_url: link.fallback_url.clone(),
            preview_title: link.preview.as_ref().and_then(|p| p.title.clone()),
            preview_description: link.preview.as_ref().and_then(|p| p.description.clone()),
            preview_image: link.preview.as_ref().and_then(|p| p.image.clone()),
            rules: (!link.rules.is_empty())
                .then(|| serde_json::to_string_pretty(&link.rules).unwrap_or_default()),
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
            rules: Some(self.rules()?),
            fallback_url: Some(checked_url(
                &self.fallback_url,
                "invalid_fallback_url",
                "Fallback URL",
            )?),
            preview: Some(self.preview()?),
            password: if self.remove_password.is_some() {
                Some(None)
            } else {
                // Kept exactly as typed (a space may be part of it).
                self.password.clone().filter(|p| !p.is_empty()).map(Some)
            },
        })
    }
}

impl EditForm {
    /// The rules field: a JSON list of rules (blank: none).
    fn rules(&self) -> Result<Vec<RuleSpec>, ApiError> {
        match non_empty(self.rules.clone()) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                ApiError::bad_request(
                    "invalid_rules_json",
                    format!("The rules must be a JSON list of rules ({e})"),
                )
            }),
        }
    }

    fn preview(&self) -> Result<Option<PreviewSpec>, ApiError> {
        let spec = PreviewSpec {
            title: non_empty(self.preview_title.clone()),
            description: non_empty(self.preview_description.clone()),
            image: checked_url(
                &self.preview_image,
                "invalid_preview_image",
                "Preview image",
            )?,
        };
        let empty = spec.title.is_none() && spec.description.is_none() && spec.image.is_none();
        Ok((!empty).then_some(spec))
    }
}

/// A URL field other than the target (blank: none), checked for shape here
/// so that a fault is shown next to it; the service checks the rest.
fn checked_url(
    field: &Option<String>,
    code: &'static str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    let Some(url) = non_empty(field.clone()) else {
        return Ok(None);
    };
    TargetUrl::parse(&url, &[]).map_err(|e| ApiError::bad_request(code, format!("{name}: {e}")))?;
    Ok(Some(url))
}

/// A rule as the edit page lists it: id, what it asks, where it sends.
#[derive(Debug, serde::Serialize)]
struct RuleLine {
    id: String,
    when: String,
    then: String,
}

fn rule_lines(rules: &[RuleSpec]) -> Vec<RuleLine> {
    rules
        .iter()
        .map(|r| RuleLine {
            id: r.id.clone().unwrap_or_default(),
            when: if r.conditions.is_empty() {
                "every visit".into()
            } else {
                r.conditions
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join(" and ")
            },
            then: match (&r.target, &r.split) {
                (Some(t), _) => t.clone(),
                (None, Some(vs)) => {
                    let total: u64 = vs.iter().map(|v| u64::from(v.weight)).sum();
                    vs.iter()
                        .map(|v| {
                            let share = 100 * u64::from(v.weight) / total.max(1);
                            format!("{} {share}% → {}", v.id.as_deref().unwrap_or("?"), v.target)
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                }
                (None, None) => String::new(),
            },
        })
        .collect()
}

/// One condition in words.
fn describe(c: &ConditionSpec) -> String {
    let list = |v: &[String]| v.join(", ");
    match c {
        ConditionSpec::Country(v) => format!("country is {}", list(v)),
        ConditionSpec::City(v) => format!("city is {}", list(v)),
        ConditionSpec::Device(v) => format!("device is {}", list(v)),
        ConditionSpec::Os(v) => format!("OS is {}", list(v)),
        ConditionSpec::Browser(v) => format!("browser is {}", list(v)),
        ConditionSpec::Language(v) => format!("language is {}", list(v)),
        ConditionSpec::Query(q) => format!("query {}={}", q.name, q.equals),
        ConditionSpec::QueryPresent(n) => format!("query has {n}"),
        ConditionSpec::QueryAbsent(n) => format!("query lacks {n}"),
        ConditionSpec::Ip(v) => format!("address in {}", list(v)),
        ConditionSpec::Referrer(v) => format!("referred by {}", list(v)),
        ConditionSpec::Time(t) => {
            let mut parts = Vec::new();
            if let Some(f) = &t.from {
                parts.push(format!("from {f}"));
            }
            if let Some(to) = &t.to {
                parts.push(format!("until {to}"));
            }
            if let Some(days) = &t.days {
                parts.push(format!("on {}", list(days)));
            }
            if let Some(h) = &t.hours {
                parts.push(format!("{}:00–{}:00", h.from, h.to));
            }
            if let Some(tz) = &t.tz {
                parts.push(format!("({tz})"));
            }
            format!("time {}", parts.join(" "))
        }
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
            rule_lines => rule_lines(&body.rules),
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
                    rule_lines => rule_lines(&link.rules.to_specs()),
                    saved => false, noindex => true,
                },
            ))
        }
    }
}
