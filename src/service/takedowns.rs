//! Takedowns: an admin takes a domain down (see [`crate::takedown`]) and
//! every link to it, or to its subdomains, answers 410 on every node and
//! none can be made, until an admin lifts it.

use crate::state::AppState;
use crate::store::{StoreError, Takedown};

const MAX_REASON: usize = 500;

/// Why a takedown could not be made or lifted.
#[derive(Debug, thiserror::Error)]
pub enum TakedownError {
    #[error("give a domain name, e.g. evil.example")]
    InvalidDomain,
    #[error("the reason is at most 500 characters, without control characters")]
    InvalidReason,
    /// Lifting a domain that is not taken down.
    #[error("the domain is not taken down")]
    NotTakenDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A takedown made (or found already in place).
#[derive(Debug)]
pub struct TakenDown {
    /// False when the domain was already taken down (its first reason kept).
    pub new: bool,
    pub takedown: Takedown,
    /// Slugs of the links to the domain now.
    pub slugs: Vec<String>,
}

fn domain_of(input: &str) -> Result<String, TakedownError> {
    parse_domain(input).ok_or(TakedownError::InvalidDomain)
}

/// Records a takedown (kept if there already is one) and tells every node;
/// returns whether it is new and the slugs of the links it covers.
async fn record(
    state: &AppState,
    domain: &str,
    reason: &str,
) -> Result<(bool, Vec<String>), StoreError> {
    let new = state.store.add_takedown(domain, reason).await?;
    state.takedowns_changed().await;
    let slugs: Vec<String> = state
        .store
        .links_to_domain(domain)
        .await?
        .into_iter()
        .map(|l| l.slug.to_string())
        .collect();
    tracing::info!(domain = %domain, links = slugs.len(), new, "domain taken down");
    Ok((new, slugs))
}

/// Takes `domain` down with `reason` (at most 500 characters, no control
/// characters; blank if absent).
pub async fn take_down(
    state: &AppState,
    domain: &str,
    reason: Option<String>,
) -> Result<TakenDown, TakedownError> {
    let domain = domain_of(domain)?;
    let reason = reason.unwrap_or_default();
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(TakedownError::InvalidReason);
    }
    let (new, slugs) = record(state, &domain, reason.trim()).await?;
    let stored = state
        .store
        .list_takedowns()
        .await?
        .into_iter()
        .find(|t| t.domain == domain);
    let takedown = match stored {
        Some(t) => t,
        // Lifted by another admin in between: answer with what was asked.
        None => Takedown {
            domain,
            reason: reason.trim().to_owned(),
            created_at: chrono::Utc::now(),
        },
    };
    Ok(TakenDown {
        new,
        takedown,
        slugs,
    })
}

/// The older form of [`take_down`] (`disable-domain`): a fixed reason;
/// returns the slugs of the links it covers.
pub async fn disable_domain(state: &AppState, domain: &str) -> Result<Vec<String>, TakedownError> {
    let domain = domain_of(domain)?;
    let (_, slugs) = record(state, &domain, "disabled by an admin").await?;
    Ok(slugs)
}

/// Every domain taken down, by name.
pub async fn list(state: &AppState) -> Result<Vec<Takedown>, StoreError> {
    state.store.list_takedowns().await
}

/// Lifts the takedown of `domain` on every node.
pub async fn lift(state: &AppState, domain: &str) -> Result<(), TakedownError> {
    let domain = domain_of(domain)?;
    if !state.store.remove_takedown(&domain).await? {
        return Err(TakedownError::NotTakenDown);
    }
    state.takedowns_changed().await;
    tracing::info!(domain = %domain, "takedown lifted");
    Ok(())
}

/// A host name of two or more labels (as in a target URL, see
/// [`crate::domain::is_host_name`]), lower-cased; a Unicode name is turned
/// into punycode first. Anything else (a URL, a path, an IP address) is None.
pub fn parse_domain(input: &str) -> Option<String> {
    let ascii = if input.is_ascii() {
        input.to_ascii_lowercase()
    } else {
        if input.contains(|c: char| "/:?#@[]\\%".contains(c) || c.is_whitespace()) {
            return None;
        }
        url::Url::parse(&format!("http://{input}/"))
            .ok()?
            .host_str()?
            .to_owned()
    };
    (ascii.len() <= 253
        && ascii.contains('.')
        && !ascii.ends_with('.')
        && crate::domain::is_host_name(&ascii))
    .then_some(ascii)
}

#[cfg(test)]
mod tests {
    use super::parse_domain;

    #[test]
    fn domains_are_host_names_only() {
        assert_eq!(
            parse_domain("Evil.Example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            parse_domain("a-b.c.example").as_deref(),
            Some("a-b.c.example")
        );
        assert_eq!(
            parse_domain("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        for bad in [
            "",
            "example",
            ".example",
            "example.",
            "a..example",
            "a.-example",
            "a*.example",
            "evil.example/path",
            "http://evil.example",
            "user@evil.example",
            "evil.example:80",
            " evil.example",
            "10.0.0.1",
            "a.123",
            "bü cher.example",
        ] {
            assert_eq!(parse_domain(bad), None, "{bad:?}");
        }
    }
}
