//! Time as fpgan writes it: wall-clock seconds since the Unix epoch for the logs (stats.jsonl,
//! metric lines, TensorBoard), and durations as people read them (ETAs, estimates).

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `42s`, `3m 05s`, `2h 03m 05s`, `1d 02h 03m`.
pub fn format_time(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60),
        _ => format!("{}d {:02}h {:02}m", s / 86400, s / 3600 % 24, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn durations_read_in_their_largest_units() {
        let cases = [
            (-3.0, "0s"),
            (41.6, "42s"),
            (185.0, "3m 05s"),
            (7385.0, "2h 03m 05s"),
            (93_780.0, "1d 02h 03m"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_time(secs), want, "{secs}");
        }
    }
}
