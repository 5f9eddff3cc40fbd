//! SQLite's click write: a batch goes to SQLite through rusqlite, on the
//! calling thread (in hop, the click writer's own thread, below serving),
//! one cached prepared statement per kind of row and every parameter bound
//! by reference.
//!
//! Why not sqlx here (docs/architecture.md, "The click write"): sqlx runs
//! each SQLite connection on a thread of its own and sends it every
//! statement over a channel; for a batch of clicks that hand-off (thread
//! switches, a contended mutex) cost more than SQLite's own work (a profile
//! of `bench_pipeline`: 17% of samples in task switches, 12% in lock
//! contention, 2% executing statements). Here each click is one insert
//! that says itself whether it was new (`changes()`): a replayed click, or
//! one twice in a batch, is skipped without a savepoint or a read.
//!
//! The connection is the second writer of the database file beside sqlx's
//! (which keeps links, keys, sealing and retention): both begin their
//! write transactions `IMMEDIATE`, so neither meets the other's commit
//! half-way through (SQLite would answer `SQLITE_BUSY` at once instead of
//! waiting).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{FirstClick, VisitorDeltas, WANTS_CLICKS, visitors_by_day};
use crate::domain::EnrichedClick;
use crate::domain::webhook::OUTBOX_CLICKS;
use crate::store::StoreError;
use crate::store::rollup::{BatchRollup, BucketKey, Map};
use crate::store::webhooks::{ClickKey, click_keys_blob};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// The click writer's connection.
pub(super) struct ClickWriter {
    conn: Mutex<Connection>,
}

const INSERT_CLICK: &str = "INSERT INTO clicks (link_id, at, event_id, bot, country, city, \
     browser, os, device, referrer_host, utm_source, utm_medium, utm_campaign, visitor, region, \
     route_rule, route_variant) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
     ON CONFLICT DO NOTHING";

const INSERT_OUTBOX: &str =
    "INSERT INTO webhook_outbox (kind, created_at, body) VALUES (?1, ?2, ?3)";

impl ClickWriter {
    /// Opens a connection to the (already migrated) database at `path`.
    pub fn open(path: &Path, cache_mib: u32) -> Result<ClickWriter, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(ClickWriter {
            conn: Mutex::new(conn),
        })
    }

    /// Stores a batch in one transaction: `ClickStore::record_clicks`.
    pub fn record(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        // A panic mid-batch rolled its transaction back (the `Transaction`
        // was dropped): the connection is fine to use again.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let new = insert_clicks(&tx, clicks)?;
        tx.commit()?;
        Ok(new)
    }
}

impl ClickWriter {
    /// `ClickStore::record_counts`, in one transaction with the mark.
    pub fn record_counts(
        &self,
        counts: &[crate::store::CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rollup = BatchRollup::default();
        {
            let mut link_exists = tx.prepare_cached("SELECT 1 FROM links WHERE id = ?1")?;
            let mut live: Map<i64, bool> = Map::default();
            for c in counts {
                let exists = match live.get(&c.link.0) {
                    Some(known) => *known,
                    None => {
                        let exists = link_exists.exists([c.link.0])?;
                        live.insert(c.link.0, exists);
                        exists
                    }
                };
                if exists {
                    rollup.add_counted(c);
                }
            }
        }
        write_rollups(&tx, rollup)?;
        if let Some((key, value)) = mark {
            tx.prepare_cached(super::UPSERT_MARK)?.execute(params![
                key,
                value,
                chrono::Utc::now().timestamp_millis()
            ])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Inserts the clicks of links that exist, skipping those stored already,
/// and adds the new ones to the rollups.
fn insert_clicks(tx: &Transaction, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
    let mut link_exists = tx.prepare_cached("SELECT 1 FROM links WHERE id = ?1")?;
    let mut insert = tx.prepare_cached(INSERT_CLICK)?;
    let mut live: Map<i64, bool> = Map::default();
    let mut rollup = BatchRollup::default();
    let mut new = 0u64;
    // Webhooks: an endpoint wants clicks, so the batch's new clicks go into
    // the outbox too, in this transaction. Read here, in the transaction,
    // so an endpoint registered before it sees every click stored after.
    let mut outbox: Option<Vec<ClickKey>> = tx
        .prepare_cached(WANTS_CLICKS)?
        .query_row([], |r| r.get::<_, bool>(0))?
        .then(Vec::new);
    for c in clicks {
        crate::priority::share_core();
        let link = c.link_id.0;
        let exists = match live.get(&link) {
            Some(known) => *known,
            None => {
                let exists = link_exists.exists([link])?;
                live.insert(link, exists);
                exists
            }
        };
        if !exists {
            continue;
        }
        let inserted = insert.execute(params![
            link,
            c.at,
            c.event_id.as_bytes().as_slice(),
            c.bot,
            c.country.as_deref(),
            c.city.as_deref(),
            c.browser.as_str(),
            c.os.as_str(),
            c.device.as_str(),
            c.referrer_host.as_deref(),
            c.utm.source.as_deref(),
            c.utm.medium.as_deref(),
            c.utm.campaign.as_deref(),
            c.visitor,
            c.region.as_str(),
            c.route.rule.as_deref(),
            c.route.variant.as_deref(),
        ])?;
        if inserted == 1 {
            rollup.add(c);
            new += 1;
            if let Some(keys) = &mut outbox {
                keys.push((c.link_id, c.at, c.event_id));
            }
        }
    }
    if let Some(keys) = outbox.filter(|k| !k.is_empty()) {
        tx.prepare_cached(INSERT_OUTBOX)?.execute(params![
            OUTBOX_CLICKS,
            chrono::Utc::now().timestamp_millis(),
            click_keys_blob(&keys),
        ])?;
    }
    write_rollups(tx, rollup)?;
    Ok(new)
}

/// Adds one batch's rollup increments: the sealer's to-do list, series,
/// totals, breakdowns and visitors.
fn write_rollups(tx: &Transaction, mut rollup: BatchRollup) -> Result<(), StoreError> {
    let mut dirty = tx.prepare_cached(
        "INSERT INTO rollup_dirty (closes_at, link_id, res, bucket, pending) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT DO UPDATE SET pending = pending + excluded.pending",
    )?;
    for (closes_at, link, res, bucket, n) in rollup.touched() {
        crate::priority::share_core();
        dirty.execute(params![closes_at, link, res, bucket, n])?;
    }
    let mut segment = tx.prepare_cached(
        "INSERT INTO link_segments (link_id, segment_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for (link, seg) in rollup.segments.keys() {
        segment.execute(params![link, seg])?;
    }
    add_counts(
        tx,
        "INSERT INTO rollup_series (link_id, res, bucket, bot, clicks) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks",
        std::mem::take(&mut rollup.series),
    )?;
    let mut totals = tx.prepare_cached(
        "INSERT INTO link_totals (link_id, bot, clicks) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks",
    )?;
    for ((link, bot), n) in std::mem::take(&mut rollup.totals) {
        crate::priority::share_core();
        totals.execute(params![link, bot, n])?;
    }
    let mut dims = tx.prepare_cached(
        "INSERT INTO rollup_dims (link_id, res, bucket, bot, dim, value, clicks) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks",
    )?;
    for ((link, res, bucket, bot, dim, value), n) in rollup.dims() {
        dims.execute(params![
            link,
            res,
            bucket,
            bot,
            *dim as i64,
            value.as_str(),
            n
        ])?;
    }
    write_visitors(tx, rollup.visitors)
}

/// Visitors: new ones count at their first click; one seen before but whose
/// stored first click is later than this batch's moves buckets.
fn write_visitors(
    tx: &Transaction,
    visitors: Map<(i64, i64, i64), (bool, i64)>,
) -> Result<(), StoreError> {
    let mut stored_first = tx.prepare_cached(
        "SELECT first_at FROM visitors WHERE link_id = ?1 AND day = ?2 AND visitor = ?3",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO visitors (link_id, day, visitor, first_at, bot) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut earlier = tx.prepare_cached(
        "UPDATE visitors SET first_at = ?1 WHERE link_id = ?2 AND day = ?3 AND visitor = ?4",
    )?;
    let mut deltas = VisitorDeltas::default();
    for ((link, day), seen) in visitors_by_day(visitors) {
        for (visitor, bot, first) in seen {
            crate::priority::share_core();
            let stored: Option<i64> = stored_first
                .query_row(params![link, day, visitor], |r| r.get(0))
                .optional()?;
            match deltas.see(link, stored, first, bot) {
                FirstClick::New => {
                    insert.execute(params![link, day, visitor, first, bot])?;
                }
                FirstClick::Earlier => {
                    earlier.execute(params![first, link, day, visitor])?;
                }
                FirstClick::Known => {}
            }
        }
    }
    add_counts(
        tx,
        "INSERT INTO rollup_visitors (link_id, res, bucket, bot, visitors) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT DO UPDATE SET visitors = visitors + excluded.visitors",
        deltas.into_rows(),
    )
}

/// Runs an upsert of (link, res, bucket, bot, count) once per row.
fn add_counts(
    tx: &Transaction,
    upsert: &str,
    rows: impl IntoIterator<Item = (BucketKey, i64)>,
) -> Result<(), StoreError> {
    let mut statement = tx.prepare_cached(upsert)?;
    for ((link, res, bucket, bot), n) in rows {
        crate::priority::share_core();
        statement.execute(params![link, res, bucket, bot, n])?;
    }
    Ok(())
}
