//! Reporting a metric as the reference's `metric_main.report_metric`: the JSON line appended to
//! `metric-<name>.jsonl` in the run directory (training and `fpgan metrics` alike).
use super::evaluator::Score;
use super::metrics::Metric;
use crate::util::clock::unix_time;
use crate::util::files::files_named;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// The reference's metric line: `{"results": {name: value}, "metric", "total_time",
/// "total_time_str", "num_gpus", "snapshot_pkl", "timestamp"}`, and `"num_gen"` after them
/// when fewer or more images than the metric's were generated (`--num-gen`: not comparable).
pub fn metric_line(score: &Score, snapshot: &str) -> serde_json::Value {
    let mut line = serde_json::json!({
        "results": { score.metric.name(): score.value },
        "metric": score.metric.name(),
        "total_time": score.seconds,
        "total_time_str": format!("{:.0}s", score.seconds),
        "num_gpus": score.processes,
        "snapshot_pkl": snapshot,
        "timestamp": unix_time(),
    });
    if score.num_gen != score.metric.num_gen() {
        line["num_gen"] = score.num_gen.into();
    }
    line
}

/// Append a [`metric_line`] of `metric` to `<dir>/metric-<name>.jsonl`.
pub fn append_metric(dir: &Path, metric: Metric, line: &serde_json::Value) -> Result<()> {
    let path = metric_path(dir, metric);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("cannot append to {}", path.display()))
}

/// `<dir>/metric-<name>.jsonl`.
fn metric_path(dir: &Path, metric: Metric) -> std::path::PathBuf {
    dir.join(format!("metric-{}.jsonl", metric.name()))
}

/// The readable lines of `<dir>/metric-<name>.jsonl` (none without the file).
fn recorded(dir: &Path, metric: Metric) -> Vec<serde_json::Value> {
    let lines = std::fs::read_to_string(metric_path(dir, metric)).unwrap_or_default();
    lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The lowest value of `metric` in `<dir>/metric-<name>.jsonl` (None without a readable line).
pub fn lowest_recorded(dir: &Path, metric: Metric) -> Option<f64> {
    recorded(dir, metric)
        .iter()
        .filter_map(|v| v["results"][metric.name()].as_f64())
        .reduce(f64::min)
}

/// Whether `<dir>/metric-<name>.jsonl` has a line scoring the snapshot file named `snapshot`.
pub fn has_line_for(dir: &Path, metric: Metric, snapshot: &str) -> bool {
    recorded(dir, metric)
        .iter()
        .any(|v| v["snapshot_pkl"] == snapshot)
}

/// The `metric-*.jsonl` files in `dir`.
pub fn metric_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_named(dir, "metric-", ".jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(metric: Metric, num_gen: usize) -> Score {
        Score {
            metric,
            value: 12.5,
            seconds: 3.0,
            num_gen,
            processes: 1,
        }
    }

    #[test]
    fn a_line_names_its_image_count_only_when_it_is_not_the_metrics() {
        let standard = metric_line(&score(Metric::Fid50kFull, 50_000), "network-snapshot-1");
        assert_eq!(standard["results"]["fid50k_full"], 12.5);
        let keys =
            |l: &serde_json::Value| l.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        // in the reference's order (its json.dumps of a dict keeps insertion order)
        let reference = [
            "results",
            "metric",
            "total_time",
            "total_time_str",
            "num_gpus",
            "snapshot_pkl",
            "timestamp",
        ];
        assert_eq!(keys(&standard), reference);
        let ten = metric_line(&score(Metric::Fid10kFull, 10_000), "s");
        assert!(ten.get("num_gen").is_none(), "{ten}");
        let quick = metric_line(&score(Metric::Kid50kFull, 500), "s");
        assert_eq!(quick["num_gen"], 500, "{quick}");
        assert_eq!(
            keys(&quick)[..7],
            reference,
            "num_gen after the reference's keys"
        );
    }
}
