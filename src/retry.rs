//! Retrying with backoff, one way for the whole crate: the click writer,
//! the stream appender, the worker and the pub/sub listener all wait out a
//! store or Redis that is away with the same schedule type. backon gives
//! the schedule and the retry loop; this module adds what hop needs around
//! it (a failure counter for logs, giving up on shutdown).

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

/// Waits between failed attempts: `first`, doubled after each failure up
/// to `ceiling`, without jitter (one process retries one thing at a time).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub ceiling: Duration,
}

impl Backoff {
    pub const fn doubling(first: Duration, ceiling: Duration) -> Backoff {
        Backoff { first, ceiling }
    }

    /// The schedule, for at most `attempts` attempts in all (None: no end).
    fn schedule(self, attempts: Option<u32>) -> ExponentialBuilder {
        let b = ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.ceiling)
            .with_factor(2.0);
        match attempts {
            // backon counts retries, not attempts.
            Some(n) => b.with_max_times(n.saturating_sub(1) as usize),
            None => b.without_max_times(),
        }
    }
}

/// Runs `attempt` until it succeeds, waiting `backoff` between failures.
/// `failed(error, n)` hears of the n-th failure and answers whether to go
/// on; after `attempts` failures (None: never) it gives up too. Gives the
/// last error back when it gives up.
pub async fn retry<T, E, Fut>(
    backoff: Backoff,
    attempts: Option<u32>,
    attempt: impl FnMut() -> Fut,
    mut failed: impl FnMut(&E, u32) -> bool,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 0u32;
    attempt
        .retry(backoff.schedule(attempts))
        .sleep(tokio::time::sleep)
        .when(|e| {
            n += 1;
            failed(e, n)
        })
        .await
}

/// Runs `attempt` until it succeeds, waiting `backoff` between failures
/// (each one told to `failed`); None if `shutdown` fires first.
pub async fn until_ok<T, E, Fut>(
    backoff: Backoff,
    shutdown: &CancellationToken,
    attempt: impl FnMut() -> Fut,
    mut failed: impl FnMut(&E, u32),
) -> Option<T>
where
    Fut: Future<Output = Result<T, E>>,
{
    let retrying = retry(backoff, None, attempt, |e, n| {
        failed(e, n);
        true
    });
    tokio::select! {
        _ = shutdown.cancelled() => None,
        r = retrying => r.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn doubles_up_to_the_ceiling_and_gives_up_after_the_attempts() {
        let backoff = Backoff::doubling(Duration::from_millis(10), Duration::from_millis(40));
        let started = std::time::Instant::now();
        let mut seen = Vec::new();
        let r: Result<(), u32> = retry(
            backoff,
            Some(5),
            || async { Err(7) },
            |e, n| {
                seen.push((*e, n));
                true
            },
        )
        .await;
        assert_eq!(r, Err(7));
        assert_eq!(
            seen.iter().map(|s| s.1).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        // Four waits: 10 + 20 + 40 + 40 ms.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(110), "{waited:?}");
    }

    #[tokio::test]
    async fn stops_when_told_or_on_shutdown() {
        let backoff = Backoff::doubling(Duration::from_millis(1), Duration::from_millis(20));
        let r: Result<(), ()> = retry(backoff, None, || async { Err(()) }, |_, n| n < 3).await;
        assert_eq!(r, Err(()));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        let got: Option<()> = until_ok(
            backoff,
            &shutdown,
            || async { Err::<(), ()>(()) },
            |_, _| {},
        )
        .await;
        assert!(got.is_none());
    }
}
