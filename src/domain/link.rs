//! `Link` and the values it is built from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::Rules;
use super::{Slug, TargetUrl};

/// Numeric identity of a link, independent of its slug: rollups and clicks
/// are keyed by it, so a deleted slug that is taken again starts from zero.
/// Time-ordered (milliseconds in the high bits) so that newest-first
/// pagination is an index scan on the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkId(pub i64);

impl LinkId {
    pub fn generate(now: DateTime<Utc>, rng: &mut impl rand::Rng) -> LinkId {
        let ms = now.timestamp_millis().max(0);
        LinkId((ms << 20) | rng.random_range(0..(1i64 << 20)))
    }

    /// The id under which this link's clicks that went to `variant` are
    /// counted a second time, so that stats can be asked of a variant alone
    /// (`?variant=`): a segment of the link. Negative, so never a link's
    /// own id (those are positive), and the same on every node and region.
    pub fn variant_segment(self, variant: &str) -> LinkId {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0x686f_7020_7365_676d, 0x656e_7473);
        h.write_i64(self.0);
        h.write(variant.as_bytes());
        LinkId(-1 - (h.finish() >> 1) as i64)
    }

    /// Whether this is a segment's id ([`LinkId::variant_segment`]).
    pub fn is_segment(self) -> bool {
        self.0 < 0
    }
}

/// Id of an API key (the owner of the links created with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedirectStatus {
    MovedPermanently = 301,
    Found = 302,
    TemporaryRedirect = 307,
    PermanentRedirect = 308,
}

impl RedirectStatus {
    pub fn from_code(code: u16) -> Option<RedirectStatus> {
        Some(match code {
            301 => RedirectStatus::MovedPermanently,
            302 => RedirectStatus::Found,
            307 => RedirectStatus::TemporaryRedirect,
            308 => RedirectStatus::PermanentRedirect,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        self as u16
    }
}

/// Limits on the free-text fields, shared by the API and the UI.
pub const MAX_TITLE_LEN: usize = 500;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 64;
/// Largest click limit (a quadrillion: no limit anyone needs, and exact in
/// a double for clients that send numbers as floats).
pub const MAX_CLICK_LIMIT: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("title must be at most {MAX_TITLE_LEN} characters without control characters")]
    Title,
    #[error(
        "tags: at most {MAX_TAGS}, each 1 to {MAX_TAG_LEN} characters, no control characters or commas"
    )]
    Tags,
    #[error("max_clicks must be 1 to {MAX_CLICK_LIMIT}")]
    MaxClicks,
    #[error("redirect_status must be 301, 302, 307 or 308")]
    RedirectStatus,
    #[error("expires_at must be in the future")]
    Expiry,
    #[error(
        "password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters without control characters"
    )]
    Password,
    #[error(
        "preview: title at most {MAX_PREVIEW_TITLE_LEN} and description at most {MAX_PREVIEW_DESCRIPTION_LEN} characters, without control characters"
    )]
    Preview,
}

impl FieldError {
    pub fn code(&self) -> &'static str {
        match self {
            FieldError::Title => "invalid_title",
            FieldError::Tags => "invalid_tags",
            FieldError::MaxClicks => "invalid_max_clicks",
            FieldError::RedirectStatus => "invalid_redirect_status",
            FieldError::Expiry => "invalid_expiry",
            FieldError::Password => "invalid_password",
            FieldError::Preview => "invalid_preview",
        }
    }
}

/// Shortest and longest password of a protected link, in characters.
pub const MIN_PASSWORD_LEN: usize = 4;
pub const MAX_PASSWORD_LEN: usize = 128;

/// A protected link's password as given: kept exactly (no trimming: a
/// space may be part of it), checked for length and control characters.
pub fn parse_password(password: &str) -> Result<&str, FieldError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) || password.chars().any(char::is_control)
    {
        return Err(FieldError::Password);
    }
    Ok(password)
}

/// Longest preview title and description, in characters.
pub const MAX_PREVIEW_TITLE_LEN: usize = 200;
pub const MAX_PREVIEW_DESCRIPTION_LEN: usize = 1000;

/// What chat apps and social sites show of a link (Open Graph and Twitter
/// card tags), answered to their preview bots instead of the redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPreview {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<TargetUrl>,
}

impl LinkPreview {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.image.is_none()
    }
}

/// A preview's title or description: at most `max` characters, no control
/// characters but line breaks where `lines`; trimmed, and blank is none.
pub fn parse_preview_text(
    text: Option<String>,
    max: usize,
    lines: bool,
) -> Result<Option<String>, FieldError> {
    let Some(t) = text else {
        return Ok(None);
    };
    if t.chars().count() > max || t.chars().any(|c| c.is_control() && !(lines && c == '\n')) {
        return Err(FieldError::Preview);
    }
    let t = t.trim();
    Ok((!t.is_empty()).then(|| t.to_owned()))
}

pub fn parse_title(title: Option<String>) -> Result<Option<String>, FieldError> {
    match title {
        None => Ok(None),
        Some(t) => {
            if t.chars().count() > MAX_TITLE_LEN || t.chars().any(char::is_control) {
                return Err(FieldError::Title);
            }
            let t = t.trim();
            Ok((!t.is_empty()).then(|| t.to_owned()))
        }
    }
}

/// Tags are trimmed, de-duplicated and kept in the order given.
pub fn parse_tags(tags: Vec<String>) -> Result<Vec<String>, FieldError> {
    if tags.len() > MAX_TAGS {
        return Err(FieldError::Tags);
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.chars().count() > MAX_TAG_LEN {
            return Err(FieldError::Tags);
        }
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().any(|c| c.is_control() || c == ',') {
            return Err(FieldError::Tags);
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    Ok(out)
}

pub fn parse_max_clicks(n: Option<i64>) -> Result<Option<u64>, FieldError> {
    match n {
        None => Ok(None),
        Some(n) if (1..=MAX_CLICK_LIMIT).contains(&n) => Ok(Some(n as u64)),
        Some(_) => Err(FieldError::MaxClicks),
    }
}

pub fn parse_expiry(
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    match at {
        Some(t) if t <= now => Err(FieldError::Expiry),
        other => Ok(other),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: LinkId,
    pub slug: Slug,
    pub target: TargetUrl,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When set, the redirect claims each click in the store before answering,
    /// so the limit holds exactly even across nodes.
    pub max_clicks: Option<u64>,
    pub redirect_status: RedirectStatus,
    pub disabled: bool,
    /// API key that created the link; `None` for anonymous links.
    pub owner: Option<KeyId>,
    /// SHA-256 of the per-link secret handed out for anonymous links.
    pub secret_hash: Option<[u8; 32]>,
    /// Rules deciding where each visit goes (smart links); empty: always
    /// the target.
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub rules: Rules,
    /// Where visits go instead of the 410 page once the link has expired,
    /// reached its click limit or been disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<TargetUrl>,
    /// The argon2id hash (PHC string) of the password a visitor must give
    /// before being redirected; `None`: not protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// What link preview bots are shown instead of the redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<LinkPreview>,
}

/// Why a link that exists does not redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Expired,
    Disabled,
    Exhausted,
    /// The target's domain is on the blocklist.
    Blocked,
    /// An admin took the target's domain down.
    TakenDown,
    /// `--refuse-private-targets`: the target is not (or no longer) on the
    /// public internet, or cannot be checked to be.
    PrivateTarget,
}

impl Link {
    /// Whether the link may redirect at `now`, ignoring the click limit (which
    /// only the store can decide).
    pub fn check_live(&self, now: DateTime<Utc>) -> Result<(), Gone> {
        if self.disabled {
            return Err(Gone::Disabled);
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return Err(Gone::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let tags = parse_tags(vec![" a ".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(tags, vec!["a", "b"]);
        assert_eq!(parse_tags(vec!["".into()]), Err(FieldError::Tags));
        assert_eq!(parse_tags(vec!["a,b".into()]), Err(FieldError::Tags));
        assert_eq!(parse_tags(vec!["x".repeat(65)]), Err(FieldError::Tags));
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        assert_eq!(parse_tags(many), Err(FieldError::Tags));
    }

    #[test]
    fn field_rules() {
        assert_eq!(parse_title(Some("  ".into())), Ok(None));
        assert_eq!(parse_title(Some("a\u{7}".into())), Err(FieldError::Title));
        assert_eq!(parse_max_clicks(Some(0)), Err(FieldError::MaxClicks));
        assert_eq!(
            parse_max_clicks(Some(MAX_CLICK_LIMIT + 1)),
            Err(FieldError::MaxClicks)
        );
        assert_eq!(parse_max_clicks(Some(3)), Ok(Some(3)));
        let now = Utc::now();
        assert_eq!(parse_expiry(Some(now), now), Err(FieldError::Expiry));
        assert!(RedirectStatus::from_code(303).is_none());
        assert_eq!(RedirectStatus::from_code(308).unwrap().code(), 308);
    }

    #[test]
    fn link_ids_are_time_ordered() {
        let mut rng = rand::rng();
        let a = LinkId::generate(Utc::now(), &mut rng);
        let b = LinkId::generate(Utc::now() + chrono::Duration::milliseconds(1), &mut rng);
        assert!(b > a);
    }
}
