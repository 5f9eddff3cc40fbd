//! Domain types: no I/O, no async. Everything here can only be built through
//! a parser, so a value that exists is valid.

mod click;
mod link;
mod rate;
pub mod rules;
mod slug;
mod target_url;
pub mod webhook;

pub use click::{
    ClickEvent, ClickRef, DEFAULT_ROUTE, DeviceType, Dimension, EnrichedClick, ExportedClick,
    FALLBACK_ROUTE, Located, Location, MAX_ATTR_LEN, Route, RouteRef, Utm, rfc3339_ms, visitor_hex,
};
pub use link::{
    FieldError, Gone, KeyId, Link, LinkId, LinkPreview, MAX_CLICK_LIMIT, MAX_PASSWORD_LEN,
    MAX_PREVIEW_DESCRIPTION_LEN, MAX_PREVIEW_TITLE_LEN, MAX_TAG_LEN, MAX_TAGS, MAX_TITLE_LEN,
    MIN_PASSWORD_LEN, RedirectStatus, parse_expiry, parse_max_clicks, parse_password,
    parse_preview_text, parse_tags, parse_title,
};
pub use rate::Rate;
pub use slug::{Slug, SlugError, is_reserved, is_slug};
pub use target_url::{MAX_LEN as MAX_URL_LEN, TargetUrl, UrlError, is_host_name};

pub mod slug_rules {
    pub use super::slug::{ALPHABET, MAX_LEN, RANDOM_LEN, RESERVED};
}
