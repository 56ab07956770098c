//! Lines printed before a run's log.txt exists (data preparation, skipped files), kept so that
//! the run can write them at the top of its log.
use std::sync::Mutex;

/// At most this many lines are kept; later ones are counted in one closing line.
const MAX_LINES: usize = 1000;

static LINES: Mutex<(Vec<String>, usize)> = Mutex::new((Vec::new(), 0));

/// Print `line` to stderr and keep it for the log.
pub fn say(line: &str) {
    eprintln!("{line}");
    keep(line);
}

/// Keep `line` (already printed) for the log.
pub fn keep(line: &str) {
    let mut kept = LINES.lock().unwrap_or_else(|e| e.into_inner());
    if kept.0.len() < MAX_LINES {
        kept.0.push(line.to_string());
    } else {
        kept.1 += 1;
    }
}

/// The kept lines, oldest first, and forget them.
pub fn take() -> Vec<String> {
    let mut kept = LINES.lock().unwrap_or_else(|e| e.into_inner());
    let (mut lines, more) = std::mem::take(&mut *kept);
    if more > 0 {
        lines.push(format!("({more} more lines like these were printed)"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_in_order_up_to_the_limit_and_counts_the_rest() {
        take();
        for i in 0..MAX_LINES + 3 {
            keep(&format!("line {i}"));
        }
        let lines = take();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[MAX_LINES - 1], format!("line {}", MAX_LINES - 1));
        assert_eq!(lines[MAX_LINES], "(3 more lines like these were printed)");
        assert!(take().is_empty(), "take forgets what it returned");
    }
}
