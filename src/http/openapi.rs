//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the router's table of documented routes, so it says what the server does.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::links::{
    CreateLink, LinkBody, LinkPage, PatchRule, Preview, RedirectStatus, UpdateLink,
};
use super::live::{ClickBody, LiveClickBody, LiveTotals, RecentClicks};
use super::reports::{
    DisableDomain, DomainDisabled, NewReport, NewTakedown, ReportPage, ReportReceived,
    TakedownBody, TakedownList,
};
use super::stats::{self, Bucket, Entry, StatsBody};
use super::webhooks::{
    ClickEventData, ClickEventPayload, CreateWebhook, ReplayWebhook, Replayed, RotateSecret,
    UpdateWebhook, WebhookAttempt, WebhookAttemptPage, WebhookBody, WebhookList, WebhookMessage,
    WebhookMessagePage, WebhookScope,
};
use crate::domain::ExportedClick;
use crate::domain::rules::RuleSpec;
use crate::domain::webhook::{LinkEventData, LinkEventPayload, LinkSnapshot};
use crate::store::Report;

/// What the document says besides its paths: title, shared schemas, tags.
/// The paths come from the router (`super::api_routes`).
#[derive(OpenApi)]
#[openapi(
    info(title = "hop", description = "URL shortener with exact, real-time click analytics."),
    components(schemas(CreateLink, UpdateLink, RedirectStatus, RuleSpec, PatchRule, Preview, LinkBody, LinkPage, StatsBody, Bucket, Entry, LiveTotals, LiveClickBody, ClickBody, RecentClicks, stats::IntervalParam, stats::TimeZone, NewReport, ReportReceived, Report, ReportPage, DisableDomain, DomainDisabled, NewTakedown, TakedownBody, TakedownList, ErrorBody, ErrorDetail, CreateWebhook, UpdateWebhook, WebhookScope, WebhookBody, WebhookList, RotateSecret, WebhookMessage, WebhookMessagePage, WebhookAttempt, WebhookAttemptPage, ReplayWebhook, Replayed, LinkEventPayload, LinkEventData, LinkSnapshot, ClickEventPayload, ClickEventData, ExportedClick)),
    tags((name = "links", description = "Create and manage short links"),
         (name = "stats", description = "Click analytics"),
         (name = "abuse", description = "Reports and domain takedowns"),
         (name = "webhooks", description = "Signed event deliveries (Standard Webhooks); the payloads are LinkEventPayload and ClickEventPayload"),
         (name = "imports", description = "Links and click history from another shortener, as background jobs (admins)")),
)]
struct ApiBase;

/// The whole document: `ApiBase` with the routes of
/// [`super::api_routes`] under `/api/v1`, then the answers and security
/// schemes every operation shares.
pub struct ApiDoc;

impl OpenApi for ApiDoc {
    fn openapi() -> utoipa::openapi::OpenApi {
        let (_, paths) = super::api_routes().split_for_parts();
        let mut doc = ApiBase::openapi().nest("/api/v1", paths);
        Security.modify(&mut doc);
        doc
    }
}

struct Security;

/// Answers every operation may give, whatever it does: rate limited, too
/// slow, unavailable store.
fn common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |what: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in openapi.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ]
        .into_iter()
        .flatten()
        {
            let json_body = op.request_body.is_some();
            let r = &mut op.responses.responses;
            r.entry("400".into())
                .or_insert_with(|| error("Invalid request (query, body or path)"));
            if json_body {
                r.entry("413".into())
                    .or_insert_with(|| error("Body larger than 64 KiB"));
                r.entry("415".into())
                    .or_insert_with(|| error("Body is not application/json"));
            }
            r.entry("408".into())
                .or_insert_with(|| error("Request not completed in time"));
            r.entry("429".into())
                .or_insert_with(|| error("Rate limited (see Retry-After)"));
            r.entry("503".into())
                .or_insert_with(|| error("Store unavailable"));
        }
    }
}

/// Describes each event of the live stream (`event`, JSON `data`, `id`,
/// `retry`), which is what SSE-aware tools check, instead of one string.
fn live_events(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ObjectBuilder, RefOr, Type};
    let Some(op) = openapi
        .paths
        .paths
        .get_mut("/api/v1/links/{slug}/live")
        .and_then(|item| item.get.as_mut())
    else {
        return;
    };
    let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
        return;
    };
    let Some(content) = ok.content.get_mut("text/event-stream") else {
        return;
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let event = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            string().enum_values(Some(["totals", "click", "resync"])),
        )
        .property(
            "data",
            string()
                .content_media_type("application/json")
                .description(Some(
                    "`totals`: LiveTotals; `click`: LiveClickBody; `resync`: `{}`",
                )),
        )
        .property(
            "id",
            string().description(Some("Per-node sequence of a `click`")),
        )
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
        .required("event")
        .required("data");
    content.schema = Some(event.into());
}

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        common_responses(openapi);
        live_events(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("api_key", "API key (hop_…)"),
            ("link_secret", "Per-link secret (hls_…)"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}
