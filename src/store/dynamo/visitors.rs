//! Unique visitors across regions.
//!
//! Each region writes the visitor items of its own clicks
//! (`V#{link}#{day}`, sort key `{region}#{hash}`) and counts a visitor at
//! its first click of the day there. A visitor who clicked in two regions
//! the same day would so be counted twice. The rule: the region with the
//! earliest first click (ties: the smaller region name) counts the visitor;
//! every other region *yields* it. Each region decides for its own items
//! only (they keep a single writer): a reconciliation reads the day's
//! visitor items of every region and every region's head, and publishes,
//! as one batch under the link's lease, the items whose decision changed
//! (`yielded`) with a delta of −1 or +1 at their first click. Readers see
//! a decision and its delta in the same snapshot, like any batch.
//!
//! Who counts depends on first clicks alone, never on another region's
//! decision, so the regions cannot chase each other: once replication has
//! delivered every visitor item and each region has reconciled once more,
//! exactly one region counts each visitor.
//!
//! Most cases never get here: the click write looks up the other regions'
//! items of a visitor new in this region, and yields it at once if one of
//! them has an earlier first click. What is left are clicks of one person
//! in two regions within replication's delay, and first clicks moved
//! earlier. For those the sealer reconciles a (link, day) that has to-seal
//! marks of more than one region (a day clicked in one region costs
//! nothing), when the marks' batch counts (`b`) moved since its last
//! reconciliation (at most once every [`BUSY_FACTOR`] settle periods), and
//! once more a settle period after they stopped moving: items replicate
//! one by one, so a mark can arrive before the visitor items of its batch.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use uuid::Uuid;

use super::items::day_key;
use super::model::Counts;
use super::write::{FirstClick, Head, visitor_item, visitor_state};
use super::{DynamoStore, Item, get_n, get_s};
use crate::domain::LinkId;
use crate::store::StoreError;

/// While a day's batches keep coming, it is reconciled once every this
/// many settle periods (10 minutes by default): the click write already
/// yields a visitor another region had earlier, so what is left are races
/// within replication's delay, and each reconciliation reads all of the
/// day's visitor items.
const BUSY_FACTOR: i64 = 10;

/// Visitor items per staging transaction (the lease renewal is the 100th
/// action).
const PER_TRANSACTION: usize = 99;

/// The mark state that says when a (link, day) is reconciled next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Progress {
    /// Every region's batch count of the day at the last reconciliation
    /// (`region:b,…`).
    pub seen: Option<String>,
    pub at: i64,
    /// Reconciled twice with the same counts, a settle period apart.
    pub settled: bool,
}

impl Progress {
    pub fn from_mark(mark: &Item) -> Result<Progress, StoreError> {
        Ok(Progress {
            seen: super::opt_s(mark, "vr"),
            at: super::opt_n(mark, "vr_at")?.unwrap_or(i64::MIN),
            settled: matches!(
                mark.get("vr_done"),
                Some(aws_sdk_dynamodb::types::AttributeValue::Bool(true))
            ),
        })
    }

    /// Whether to reconcile now, the day's batch counts being `counts`:
    /// while they move, once every [`BUSY_FACTOR`] settle periods; once
    /// they stopped, a settle period after the last reconciliation.
    pub fn due(&self, counts: &str, now: i64, settle_ms: i64) -> bool {
        let since = now.saturating_sub(self.at);
        if self.seen.as_deref() != Some(counts) {
            since >= settle_ms.saturating_mul(BUSY_FACTOR)
        } else {
            !self.settled && since >= settle_ms
        }
    }

    /// After a reconciliation with `counts`.
    pub fn next(&self, counts: &str, now: i64) -> Progress {
        Progress {
            settled: self.seen.as_deref() == Some(counts),
            seen: Some(counts.to_owned()),
            at: now,
        }
    }
}

/// The batch counts of a day's marks as one comparable string.
pub(super) fn batch_counts(marks: &[&Item]) -> Result<String, StoreError> {
    let mut counts: Vec<(String, i64)> = marks
        .iter()
        .map(|m| {
            Ok((
                get_s(m, "region")?.to_owned(),
                super::opt_n(m, "b")?.unwrap_or(0),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    counts.sort();
    Ok(counts
        .iter()
        .map(|(r, b)| format!("{r}:{b}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// This region's decisions that change: (visitor, its published state,
/// whether it counts now), from every region's items and heads.
fn changes(
    region: &str,
    items: &[Item],
    heads: &std::collections::HashMap<String, Head>,
) -> Result<Vec<(i64, FirstClick, bool)>, StoreError> {
    let none = Head::default();
    // visitor → (region → first click, published)
    let mut firsts: BTreeMap<i64, Vec<(&str, FirstClick)>> = BTreeMap::new();
    for item in items {
        let sk = get_s(item, "sk")?;
        let Some((r, _)) = sk.split_once('#') else {
            return Err(StoreError::Corrupt(format!("visitor key {sk}")));
        };
        let head = heads.get(r).unwrap_or(&none);
        if let Some(f) = visitor_state(item, head, None)? {
            firsts
                .entry(get_n(item, "visitor")?)
                .or_default()
                .push((r, f));
        }
    }
    let mut out = Vec::new();
    for (visitor, seen) in firsts {
        let Some((_, mine)) = seen.iter().find(|(r, _)| *r == region) else {
            continue;
        };
        let owner = seen.iter().map(|(r, f)| (f.at, *r)).min().map(|(_, r)| r);
        let count = owner == Some(region);
        if count != mine.counted {
            out.push((visitor, *mine, count));
        }
    }
    Ok(out)
}

impl DynamoStore {
    /// Reconciles this region's visitors of (`link`, `day`) with the other
    /// regions' (see the module docs). `Ok(false)`: a click batch was
    /// published meanwhile; the next pass tries again.
    pub(super) async fn reconcile_visitors(
        &self,
        link: LinkId,
        day: i64,
    ) -> Result<bool, StoreError> {
        let heads = self.heads(link).await?;
        let read_seq = heads.get(&self.region).map_or(0, |h| h.seq);
        let items = self
            .query_all(format!("V#{}#{}", link.0, day_key(day)), None, true)
            .await?;
        let changes = changes(&self.region, &items, &heads)?;
        if changes.is_empty() {
            return Ok(true);
        }
        let me = Uuid::new_v4().simple().to_string();
        let (head, seq) = self.acquire(link, &me).await?;
        if head.seq != read_seq {
            self.release(link, &me, seq, false).await?;
            return Ok(false);
        }
        let mut staged = false;
        let result = self
            .publish_decisions(link, day, &me, seq, &changes, &mut staged)
            .await;
        match result {
            Ok(true) => Ok(true),
            Ok(false) => {
                // The link is gone: nothing to count.
                self.release(link, &me, seq, staged).await?;
                Ok(true)
            }
            Err(e) => {
                let _ = self.release(link, &me, seq, staged).await;
                Err(e)
            }
        }
    }

    /// Stages the changed visitor items under the lease and publishes
    /// their deltas as batch `seq`. `Ok(false)`: the link is gone.
    async fn publish_decisions(
        &self,
        link: LinkId,
        day: i64,
        me: &str,
        seq: i64,
        changes: &[(i64, FirstClick, bool)],
        staged: &mut bool,
    ) -> Result<bool, StoreError> {
        let mut counts = Counts::default();
        for chunk in changes.chunks(PER_TRANSACTION) {
            let mut actions = vec![self.lease_renewal(link, me)];
            for (visitor, published, count) in chunk {
                let now = FirstClick {
                    counted: *count,
                    ..*published
                };
                let item = visitor_item(
                    link,
                    (day, *visitor),
                    &self.region,
                    now,
                    Some(*published),
                    seq,
                    me,
                );
                actions.push(TransactWriteItem::builder().put(self.tx_put(item)).build());
            }
            if self
                .transact(actions, "the visitor reconciliation")
                .await?
                .is_err()
            {
                return Err(StoreError::Unavailable(
                    "lost this link's click lease while reconciling visitors".into(),
                ));
            }
            *staged = true;
            for (_, published, count) in chunk {
                let delta = if *count { 1 } else { -1 };
                counts.visitor(published.at, published.bot, delta);
            }
        }
        self.publish(link, me, seq, &counts, 0, 0, false, None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_reconciled_when_counts_move_and_once_more_after_they_settle() {
        let start = Progress {
            seen: None,
            at: i64::MIN,
            settled: false,
        };
        assert!(start.due("a:1,b:1", 0, 60_000), "never reconciled");
        let once = start.next("a:1,b:1", 0);
        assert!(!once.settled);
        assert!(
            !once.due("a:1,b:1", 59_999, 60_000),
            "within the settle period"
        );
        assert!(once.due("a:1,b:1", 60_000, 60_000), "once more, settled");
        let twice = once.next("a:1,b:1", 60_000);
        assert!(twice.settled);
        assert!(!twice.due("a:1,b:1", 10_000_000, 60_000), "nothing moved");
        assert!(
            !twice.due("a:1,b:2", 100_000, 60_000),
            "a batch came: not at once"
        );
        assert!(
            twice.due("a:1,b:2", 660_000, 60_000),
            "ten settle periods later"
        );
        let busy = twice.next("a:1,b:2", 660_000);
        assert!(!busy.due("a:1,b:2", 700_000, 60_000), "settling");
        assert!(busy.due("a:1,b:2", 720_000, 60_000), "settled once more");
    }

    #[test]
    fn the_earliest_first_click_counts_and_ties_go_to_the_smaller_region() {
        let heads =
            std::collections::HashMap::from([("a".to_owned(), head(1)), ("b".to_owned(), head(1))]);
        let item = |region: &str, visitor: i64, at: i64, yielded: bool| {
            visitor_item(
                LinkId(1),
                (0, visitor),
                region,
                FirstClick {
                    at,
                    bot: false,
                    counted: !yielded,
                },
                None,
                1,
                "n",
            )
        };
        let items = [
            item("a", 1, 10, false), // a first: a keeps it
            item("b", 1, 20, false), // b yields
            item("a", 2, 30, false), // b first: a yields
            item("b", 2, 25, true),  // b, yielded so far, counts
            item("a", 3, 40, false), // a tie: the smaller name counts
            item("b", 3, 40, false),
            item("a", 4, 50, false), // a alone
        ];
        let in_a = changes("a", &items, &heads).unwrap();
        let in_b = changes("b", &items, &heads).unwrap();
        let counts = |c: Vec<(i64, FirstClick, bool)>| {
            c.into_iter().map(|(v, _, n)| (v, n)).collect::<Vec<_>>()
        };
        assert_eq!(counts(in_a), vec![(2, false)]);
        assert_eq!(counts(in_b), vec![(1, false), (2, true), (3, false)]);
    }

    fn head(seq: i64) -> Head {
        let mut head = Head::default();
        head.seq = seq;
        head
    }
}
