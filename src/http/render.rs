//! Rendering HTML: the minijinja templates compiled into the binary, the
//! headers every page carries (content security policy and friends), and
//! [`message`], the page that says what went wrong. The bottom of the web
//! side of `http`: error pages, UI handlers and middleware render through
//! it, and it depends on nothing in `http` but the asset table.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value, context};

use crate::domain::Slug;

/// Policy for every HTML page: only this origin's scripts, styles, images
/// and connections; no inline code, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(super) static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
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
    template!("password.html");
    template!("preview.html");
    template!("webhooks.html");
    template!("webhook.html");
    env.add_function("asset", |name: &str| {
        Value::from_safe_string(super::embedded::url(name))
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
/// policy of [`CONTENT_SECURITY_POLICY`], no sniffing, no
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
                    CONTENT_SECURITY_POLICY,
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
}
