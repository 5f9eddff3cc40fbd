//! Abuse reports: anyone may report a short link; admins read the reports.
//! A report is recorded whether or not the slug names a link, so the answer
//! tells nothing about which slugs exist.

use crate::domain::Slug;
use crate::state::AppState;
use crate::store::{Report, StoreError};

/// The reasons a report may give.
pub const REASONS: [&str; 4] = ["phishing", "malware", "spam", "other"];
const MAX_DETAILS: usize = 2000;

/// A report as sent, checked by [`record`].
#[derive(Debug, Default, Clone)]
pub struct AbuseReport {
    pub slug: String,
    pub reason: String,
    /// Free text; line breaks and tabs allowed.
    pub details: Option<String>,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("that is not a short link's slug")]
    InvalidSlug,
    #[error("reason must be phishing, malware, spam or other")]
    InvalidReason,
    #[error("details must be at most 2000 characters of text")]
    InvalidDetails,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates and records a report.
pub async fn record(state: &AppState, r: AbuseReport) -> Result<(), ReportError> {
    let slug = Slug::parse_path(&r.slug).map_err(|_| ReportError::InvalidSlug)?;
    if !REASONS.contains(&r.reason.as_str()) {
        return Err(ReportError::InvalidReason);
    }
    if let Some(d) = &r.details
        && (d.chars().count() > MAX_DETAILS
            || d.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t'))
    {
        return Err(ReportError::InvalidDetails);
    }
    let details = r
        .details
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let link = state.store.link_by_slug(&slug).await?;
    state
        .store
        .insert_report(
            slug.as_str(),
            link.map(|l| l.id),
            &r.reason,
            details.as_deref(),
        )
        .await?;
    tracing::info!(link.slug = %slug, reason = %r.reason, "link reported");
    Ok(())
}

/// Up to `limit` reports older than report `before`, newest first, and
/// whether there are more.
pub async fn list(
    state: &AppState,
    before: Option<i64>,
    limit: usize,
) -> Result<(Vec<Report>, bool), StoreError> {
    let mut reports = state.store.list_reports(before, limit + 1).await?;
    let more = reports.len() > limit;
    reports.truncate(limit);
    Ok((reports, more))
}
