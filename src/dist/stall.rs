//! A data-parallel run in which no process makes progress (a GPU that stopped answering, a
//! process stopped or cut off while the others wait for it in a collective) ends after the stall
//! timeout instead of the group's hours: each process adds its progress to a counter in the
//! run's TCPStore, and a process that sees the counter stand still that long exits with an
//! error, on which its launcher (fpgan's, torchrun, Slurm) stops the others.
use super::store::{StoreClient, REQUEST_TIMEOUT};
use crate::util::early_log;
use crate::util::progress::beats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The store's counter of the run's progress.
pub const PROGRESS_KEY: &str = "fpgan/progress";

/// How often a process adds its progress and reads the run's.
const POLL: Duration = Duration::from_secs(1);

/// How long the watch tries to reach the store (up already: the process has joined).
const CONNECT: Duration = Duration::from_secs(30);

/// The exit status of a process that gave up on a stalled run.
pub const STALLED_EXIT: i32 = 3;

/// One process's watch on its run's progress, on a thread of its own; it ends when dropped.
pub struct StallWatch {
    over: Arc<AtomicBool>,
}

impl StallWatch {
    /// Watch the run whose store is at `host:port` as `rank`: when its counter stands still
    /// for `timeout`, say why on stderr and end this process with [`STALLED_EXIT`] (at once:
    /// its main thread waits on something that does not come).
    pub fn start(host: &str, port: u16, rank: usize, timeout: Duration) -> Self {
        let over = Arc::new(AtomicBool::new(false));
        let (host, done) = (host.to_string(), over.clone());
        std::thread::spawn(move || {
            let store = match StoreClient::connect(&host, port, CONNECT) {
                Ok(store) => store,
                Err(e) => {
                    early_log::print(&format!("warning: rank {rank}: no stall watch: {e:#}"));
                    return;
                }
            };
            let Some(why) = watch(&store, timeout, &done) else {
                return;
            };
            if !done.load(Ordering::SeqCst) {
                early_log::print(&format!("fpgan: rank {rank}: {why}"));
                // _exit: no destructors while libtorch is busy on the main thread
                // SAFETY: _exit only ends the process.
                unsafe { libc::_exit(STALLED_EXIT) };
            }
        });
        StallWatch { over }
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        self.over.store(true, Ordering::SeqCst);
    }
}

/// Add this process's progress to the store every [`POLL`] until `over`; why the run stalled,
/// once it has (None when over first).
fn watch(store: &StoreClient, timeout: Duration, over: &AtomicBool) -> Option<String> {
    let mut clock = Stall::new(timeout, Instant::now());
    let mut mine = beats();
    while !over.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        let now = beats();
        let total = store.add(PROGRESS_KEY, i64::from(now != mine)).ok();
        mine = now;
        if let Some(why) = clock.see(total, Instant::now()) {
            return Some(why);
        }
    }
    None
}

/// A gap between two readings longer than this (a poll and a request that times out, and
/// some) means this process was itself held (SIGSTOP, a paused machine): it saw nothing then.
const HELD: Duration = Duration::from_secs(POLL.as_secs() + REQUEST_TIMEOUT.as_secs() + 2);

/// The judgement, apart from the store and the clock: the run's counter as last read, and
/// since when it has stood still.
struct Stall {
    timeout: Duration,
    total: Option<i64>,
    since: Instant,
    /// When the counter was last read.
    read: Instant,
}

impl Stall {
    fn new(timeout: Duration, now: Instant) -> Self {
        Stall {
            timeout,
            total: None,
            since: now,
            read: now,
        }
    }

    /// Note the counter read at `now` (None: the store did not answer); why the run has
    /// stalled, once the counter has not moved for the timeout while this process watched.
    fn see(&mut self, total: Option<i64>, now: Instant) -> Option<String> {
        if now.saturating_duration_since(self.read) > HELD {
            self.since = now; // held: the others' stillness was not seen
        }
        self.read = now;
        if let Some(t) = total {
            if self.total.is_some_and(|seen| seen != t) {
                self.since = now; // moved
            }
            self.total = Some(t);
        }
        let still = now.saturating_duration_since(self.since);
        (still >= self.timeout).then(|| self.why(total.is_none()))
    }

    /// The line that says why, the store having answered the latest reading or not.
    fn why(&self, unanswered: bool) -> String {
        let secs = self.timeout.as_secs();
        let what = if unanswered {
            format!("the run's rendezvous (served by rank 0) has not answered for {secs} s")
        } else {
            format!("no process of the run has made progress for {secs} s: one of them hangs (a GPU that stopped answering, a process stopped or cut off) and the others wait for it")
        };
        format!("{what} (--stall-timeout); stopping this process. The last snapshot is intact: run the same command again to resume")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_moving_counter_never_stalls() {
        let t0 = Instant::now();
        let mut s = Stall::new(T, t0);
        for k in 1..100 {
            assert_eq!(s.see(Some(k), at(t0, 5 * k as u64)), None);
        }
    }

    #[test]
    fn a_counter_standing_still_for_the_timeout_stalls() {
        let t0 = Instant::now();
        let mut s = Stall::new(T, t0);
        assert_eq!(s.see(Some(7), at(t0, 1)), None);
        assert_eq!(s.see(Some(8), at(t0, 3)), None, "moved at 3 s");
        assert_eq!(s.see(Some(8), at(t0, 12)), None, "still for 9 s only");
        let why = s.see(Some(8), at(t0, 13)).expect("still for 10 s");
        assert!(
            why.contains("no process of the run has made progress for 10 s"),
            "{why}"
        );
        assert!(why.contains("--stall-timeout"), "{why}");
    }

    #[test]
    fn the_clock_starts_with_the_watch() {
        // the first reading is no movement: the time since the watch began counts
        let t0 = Instant::now();
        let mut s = Stall::new(T, t0);
        assert_eq!(s.see(Some(5), at(t0, 9)), None);
        assert!(s.see(Some(5), at(t0, 10)).is_some());
    }

    #[test]
    fn a_process_held_itself_starts_the_clock_over() {
        // held for 30 s (SIGSTOP): the counter may have moved meanwhile and stood still since
        let t0 = Instant::now();
        let mut s = Stall::new(T, t0);
        assert_eq!(s.see(Some(1), at(t0, 1)), None);
        assert_eq!(s.see(Some(1), at(t0, 31)), None);
        assert_eq!(s.see(Some(1), at(t0, 40)), None);
        assert!(s.see(Some(1), at(t0, 41)).is_some());
    }

    #[test]
    fn a_store_that_stops_answering_stalls_too_and_says_so() {
        let t0 = Instant::now();
        let mut s = Stall::new(T, t0);
        assert_eq!(s.see(Some(1), at(t0, 1)), None);
        assert_eq!(s.see(Some(2), at(t0, 2)), None, "moved at 2 s");
        assert_eq!(s.see(None, at(t0, 11)), None);
        let why = s.see(None, at(t0, 12)).expect("unanswered for 10 s");
        assert!(
            why.contains("rendezvous (served by rank 0) has not answered for 10 s"),
            "{why}"
        );
        // an answer again with the counter moved starts the clock over
        assert_eq!(s.see(Some(3), at(t0, 13)), None);
        assert_eq!(s.see(Some(3), at(t0, 22)), None);
        assert!(s.see(Some(3), at(t0, 23)).is_some());
    }
}
