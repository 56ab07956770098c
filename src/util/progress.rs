//! Progress bars with count, rate and ETA on a terminal (silent when stderr is not a terminal),
//! the process memory figures shown next to them, and the count of work done that a
//! data-parallel run's stall watch reads.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// Steps of work this process has done (training iterations, batches of a metric).
static BEATS: AtomicU64 = AtomicU64::new(0);

/// Count one step of work (see [`beats`]).
pub fn beat() {
    BEATS.fetch_add(1, Ordering::Relaxed);
}

/// Steps of work done so far: a count that stands still while the process waits (for the GPU,
/// or for the others in a collective).
pub fn beats() -> u64 {
    BEATS.load(Ordering::Relaxed)
}

/// A bar of `len` steps labelled `msg`, hidden when stderr is not a terminal (logs, CI).
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:32}] {pos}/{len} {rate} elapsed {elapsed} ETA {eta}",
    )
    .expect("static progress template is valid")
    .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1}/s", s.per_sec());
    })
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}

/// Print one warning line without tearing the bar (kept for a run's log).
pub fn warn(pb: &ProgressBar, line: &str) {
    let line = format!("warning: {line}");
    pb.suspend(|| super::early_log::print_shared(&line));
    super::early_log::keep(&line);
}

/// A memory figure of this process from /proc/self/status (`VmRSS`, `VmHWM`, ...) in GB;
/// 0 where it cannot be read (not Linux).
pub fn proc_memory_gb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

/// `1 image`, `3 images`, `2 classes`: a count with its noun (regular plurals).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    let plural = if noun.ends_with('s') { "es" } else { "s" };
    format!("{n} {noun}{}", if n == 1 { "" } else { plural })
}
