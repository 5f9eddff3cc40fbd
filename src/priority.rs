//! Thread priorities: the threads that store clicks (the batch writer's,
//! and SQLite's writer connection's) run below serving, so that on a busy
//! core the redirects go first and the click log holds the backlog until
//! the load drops (on an idle core it drains at full speed).

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
