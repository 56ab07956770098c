//! Progress bars with count, rate and ETA on a terminal; silent when stderr is not a terminal.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` steps labelled `msg`, hidden when stderr is not a terminal (logs, CI).
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:32}] {pos}/{len} {per_sec} elapsed {elapsed} ETA {eta}",
    )
    .expect("static progress template is valid")
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}

/// Print one warning line without tearing the bar.
pub fn warn(pb: &ProgressBar, line: &str) {
    pb.suspend(|| eprintln!("warning: {line}"));
}
