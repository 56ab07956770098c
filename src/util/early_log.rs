//! Lines printed before a run's log.txt exists (data preparation, skipped files), kept so that
//! the run can write them at the top of its log.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Whether [`print_shared`] prints (see [`set_echo`]).
static ECHO: AtomicBool = AtomicBool::new(true);

/// Print what [`print_shared`] is given (`on`: [`say`], warnings, stop requests, a collective
/// that failed after another worker), or not: off in the workers of a data-parallel run but
/// each machine's first, which would print the same lines once per GPU.
pub fn set_echo(on: bool) {
    ECHO.store(on, Ordering::Relaxed);
}

fn echo() -> bool {
    ECHO.load(Ordering::Relaxed)
}

/// At most this many lines are kept; later ones are counted in one closing line.
const MAX_LINES: usize = 1000;

/// Kept lines, and how many more were left out.
#[derive(Default)]
struct Kept {
    lines: Vec<String>,
    more: usize,
}

impl Kept {
    fn keep(&mut self, line: &str) {
        if self.lines.len() < MAX_LINES {
            self.lines.push(line.to_string());
        } else {
            self.more += 1;
        }
    }

    fn take(&mut self) -> Vec<String> {
        let Kept { mut lines, more } = std::mem::take(self);
        if more > 0 {
            lines.push(format!("({more} more lines like these were printed)"));
        }
        lines
    }
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    lines: Vec::new(),
    more: 0,
});

/// Print `line` to stderr and keep it for the log.
pub fn say(line: &str) {
    print_shared(line);
    keep(line);
}

/// Print `line`, one that every worker of a data-parallel run would print the same, unless
/// this process leaves it to its machine's first (see [`set_echo`]).
pub fn print_shared(line: &str) {
    if echo() {
        print(line);
    }
}

/// Print `line` to stderr in one write (eprintln! writes the newline apart), so that the lines
/// of the worker processes sharing a terminal or log do not run into each other.
pub fn print(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Keep `line` (already printed) for the log.
pub fn keep(line: &str) {
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).keep(line);
}

/// The kept lines, oldest first, and forget them.
pub fn take() -> Vec<String> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_in_order_up_to_the_limit_and_counts_the_rest() {
        let mut kept = Kept::default();
        for i in 0..MAX_LINES + 3 {
            kept.keep(&format!("line {i}"));
        }
        let lines = kept.take();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[MAX_LINES - 1], format!("line {}", MAX_LINES - 1));
        assert_eq!(lines[MAX_LINES], "(3 more lines like these were printed)");
        assert!(kept.take().is_empty(), "take forgets what it returned");
    }
}
