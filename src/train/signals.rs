//! Stop requests during training: Ctrl-C (SIGINT) or SIGTERM (what Slurm, Docker and `timeout`
//! send) stops the run after the current iteration with a snapshot.
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Install the handler (once per process; later calls keep it) and clear any earlier request.
/// A second request quits at once, without a snapshot (the previous snapshot stays intact).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nfpgan: interrupted again, quitting without a snapshot");
            // _exit: no atexit handlers or static destructors, which would run while libtorch
            // is still working on the main thread (a segfault or a libtorch panic otherwise).
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(130) };
        }
        eprintln!("\nfpgan: stop requested: stopping after this iteration and writing a snapshot (interrupt again to quit at once)");
    });
    STOP.store(false, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
