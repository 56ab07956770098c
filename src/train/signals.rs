//! Stop requests during training: Ctrl-C (SIGINT) or SIGTERM (what Slurm, Docker and `timeout`
//! send) stops the run after the current iteration with a snapshot.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
/// Whether this process is a worker of a data-parallel run (see [`install`]).
static WORKER: AtomicBool = AtomicBool::new(false);
/// When the pending request came, in milliseconds since [`EPOCH`].
static FIRST_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How soon after a worker's first request another counts as the same: a terminal's Ctrl-C,
/// `timeout` and Slurm signal every process, and the launcher passes its own request on.
const SAME_REQUEST: Duration = Duration::from_secs(2);

/// Install the handler (once per process; later calls keep it) and clear any earlier request.
/// A second request quits at once, without a snapshot (the previous snapshot stays intact); in
/// a `worker` of a data-parallel run only one that comes [`SAME_REQUEST`] after the first.
pub fn install(worker: bool) {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let _ = ctrlc::set_handler(move || {
        let now = epoch.elapsed().as_millis() as u64;
        if STOP.swap(true, Ordering::SeqCst) {
            let since = now.saturating_sub(FIRST_MS.load(Ordering::SeqCst));
            if WORKER.load(Ordering::SeqCst) && since < SAME_REQUEST.as_millis() as u64 {
                return; // the same request, by another way
            }
            eprintln!("\nfpgan: interrupted again, quitting without a snapshot");
            // _exit: no atexit handlers or static destructors, which would run while libtorch
            // is still working on the main thread (a segfault or a libtorch panic otherwise).
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(130) };
        }
        FIRST_MS.store(now, Ordering::SeqCst);
        eprintln!("\nfpgan: stop requested: stopping after this iteration and writing a snapshot (interrupt again to quit at once)");
    });
    WORKER.store(worker, Ordering::SeqCst);
    STOP.store(false, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
