//! Reporting a metric as the reference's `metric_main.report_metric`: the JSON line appended to
//! `metric-<name>.jsonl` in the run directory (training and `fpgan metrics` alike).
use super::evaluator::Score;
use crate::util::clock::unix_time;
use crate::util::files::files_named;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// The reference's metric line: `{"results": {name: value}, "metric", "total_time",
/// "total_time_str", "num_gpus", "snapshot_pkl", "timestamp"}`.
pub fn metric_line(score: &Score, snapshot: &str) -> serde_json::Value {
    serde_json::json!({
        "results": { score.metric.name(): score.value },
        "metric": score.metric.name(),
        "total_time": score.seconds,
        "total_time_str": format!("{:.0}s", score.seconds),
        "num_gpus": score.processes,
        "snapshot_pkl": snapshot,
        "timestamp": unix_time(),
    })
}

/// Append `score` as a [`metric_line`] to `<dir>/metric-<name>.jsonl`.
pub fn append_metric(dir: &Path, score: &Score, snapshot: &str) -> Result<()> {
    let path = dir.join(format!("metric-{}.jsonl", score.metric.name()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{}", metric_line(score, snapshot))
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// The `metric-*.jsonl` files in `dir`.
pub fn metric_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_named(dir, "metric-", ".jsonl")
}
