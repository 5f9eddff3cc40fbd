//! Thread priorities: the threads that store clicks (the batch writer's,
//! and SQLite's writer connection's) run below serving, so that on a busy
//! core the redirects go first and the click log holds the backlog until
//! the load drops (on an idle core it drains at full speed).
//!
//! A lower priority decides how often the writer gets the core, not for
//! how long: once picked, a thread runs until the scheduler's next tick
//! (4 ms at 250 Hz), and every redirect waiting meanwhile waits that long
//! (measured: the redirects' p99 went from 1.0 ms with the writer paused
//! to 4.3 ms with it running at nice 10, 3.6 ms even as `SCHED_IDLE`).
//! So the writer's loops also call [`share_core`], which gives the core
//! away after every [`SLICE`] of work: a redirect then waits for at most
//! about that long.

/// Nice value of the threads that store clicks (serving runs at 0).
pub const WRITER_NICE: i32 = 10;

/// Sets the nice value of thread `tid` of this process (Linux: nice is per
/// thread). Best effort: a refusal is logged, not fatal.
pub fn set_thread_nice(tid: i32, nice: i32) {
    let pid = rustix::process::Pid::from_raw(tid);
    if let Err(e) = rustix::process::setpriority_process(pid, nice) {
        tracing::debug!(error = %e, tid, "could not lower a thread's priority");
    }
}

/// Lowers the calling thread's scheduling priority to `nice`.
pub fn lower_this_thread(nice: i32) {
    set_thread_nice(rustix::thread::gettid().as_raw_nonzero().get(), nice);
}

thread_local! {
    static OWN_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Says that the calling thread runs nothing but one job (the click
/// writer's thread and its current-thread runtime): a store may block it
/// for synchronous work (see `SqliteStore`'s click write).
pub fn mark_own_thread() {
    OWN_THREAD.with(|c| c.set(true));
}

/// Whether [`mark_own_thread`] was called on this thread.
pub fn on_own_thread() -> bool {
    OWN_THREAD.with(|c| c.get())
}

/// Longest stretch a click-storing thread works before it lets waiting
/// threads run ([`share_core`]).
pub const SLICE: std::time::Duration = std::time::Duration::from_micros(200);

thread_local! {
    /// When this thread last gave the core away, and calls since it looked.
    static LAST_SHARED: std::cell::Cell<(Option<std::time::Instant>, u32)> =
        const { std::cell::Cell::new((None, 0)) };
}

/// Called once per unit of work (a click, a row) in the loops of threads
/// below serving: after every [`SLICE`] of work, yields the core to any
/// thread waiting for it (with none waiting, the yield returns at once).
/// Looks at the clock once every 32 calls.
pub fn share_core() {
    LAST_SHARED.with(|cell| {
        let (last, calls) = cell.get();
        if calls < 31 {
            cell.set((last, calls + 1));
            return;
        }
        let now = std::time::Instant::now();
        match last {
            Some(t) if now.duration_since(t) < SLICE => cell.set((last, 0)),
            Some(_) => {
                std::thread::yield_now();
                cell.set((Some(std::time::Instant::now()), 0));
            }
            None => cell.set((Some(now), 0)),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_and_no_other() {
        let main = rustix::process::getpriority_process(None).unwrap();
        let got = std::thread::spawn(|| {
            lower_this_thread(WRITER_NICE);
            rustix::process::getpriority_process(rustix::process::Pid::from_raw(
                rustix::thread::gettid().as_raw_nonzero().get(),
            ))
            .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(got, main.max(WRITER_NICE));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), main);
    }
}
