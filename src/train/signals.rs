//! Stop requests during training: Ctrl-C (SIGINT) or SIGTERM (what Slurm, Docker and `timeout`
//! send) stops the run after the current iteration with a snapshot.
use crate::util::early_log;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
/// A second request to the launcher of data-parallel workers (see [`quit_requested`]).
static QUIT: AtomicBool = AtomicBool::new(false);
/// This process's [`Role`], as a number.
static ROLE: AtomicU8 = AtomicU8::new(Role::Alone as u8);
/// When the pending request came, in milliseconds since [`EPOCH`].
static FIRST_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How soon after a worker's first request another counts as the same: a terminal's Ctrl-C,
/// `timeout` and Slurm signal every process, and the launcher passes its own request on.
const SAME_REQUEST: Duration = Duration::from_secs(2);

/// Who takes the stop requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A training process on its own.
    Alone,
    /// A worker of a data-parallel run.
    Worker,
    /// The launcher of this machine's workers (`train --gpus N`).
    Launcher,
}

/// Install the handler (once per process; later calls keep it) and clear any earlier request.
/// A second request quits at once, without a snapshot (the previous snapshot stays intact); in
/// a worker only one that comes [`SAME_REQUEST`] after the first; in the launcher it is
/// [`quit_requested`], for the launcher to end its workers before it quits.
pub fn install(role: Role) {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let _ = ctrlc::set_handler(move || {
        let now = epoch.elapsed().as_millis() as u64;
        if STOP.swap(true, Ordering::SeqCst) {
            let since = now.saturating_sub(FIRST_MS.load(Ordering::SeqCst));
            let role = ROLE.load(Ordering::SeqCst);
            if role == Role::Worker as u8 && since < SAME_REQUEST.as_millis() as u64 {
                return; // the same request, by another way
            }
            if role == Role::Launcher as u8 {
                if !QUIT.swap(true, Ordering::SeqCst) {
                    eprintln!("\nfpgan: interrupted again, ending the workers without a snapshot");
                }
                return;
            }
            // each worker of a terminal gets the same Ctrl-C: said once
            early_log::print_shared("\nfpgan: interrupted again, quitting without a snapshot");
            // _exit: no atexit handlers or static destructors, which would run while libtorch
            // is still working on the main thread (a segfault or a libtorch panic otherwise).
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(130) };
        }
        FIRST_MS.store(now, Ordering::SeqCst);
        if ROLE.load(Ordering::SeqCst) == Role::Launcher as u8 {
            return; // passed on: its first worker says so
        }
        early_log::print_shared("\nfpgan: stop requested: stopping after this iteration and writing a snapshot (interrupt again to quit at once)");
    });
    ROLE.store(role as u8, Ordering::SeqCst);
    STOP.store(false, Ordering::SeqCst);
    QUIT.store(false, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether the launcher was asked a second time: to end its workers at once and quit.
pub fn quit_requested() -> bool {
    QUIT.load(Ordering::SeqCst)
}
