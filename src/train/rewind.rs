//! A resume from an earlier snapshot than the run's newest: the later snapshots, their sample
//! grids and best snapshot move aside (with copies of the logs), so that nothing of that branch
//! is overwritten and a re-run continues the branch being trained.
use crate::snapshot::snapshots_in;
use crate::util::clock::unix_time;
use crate::util::files::files_named;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Move what `dir` holds past the snapshot `used` (at `used_nimg` images) into a new
/// `set-aside-<unix time>` folder of the run: later snapshots, sample grids of later kimg, and
/// the best snapshot when it is later; stats.jsonl and metric-*.jsonl are copied whole before the
/// resume cuts them. Returns a note for the log, or None when nothing is later.
pub fn set_aside_later(dir: &Path, used: &Path, used_nimg: i64) -> Result<Option<String>> {
    let later: Vec<PathBuf> = snapshots_in(dir)
        .into_iter()
        .filter(|s| s.file_name() > used.file_name())
        .collect();
    let Some(newest) = later.first() else {
        return Ok(None);
    };
    let aside = dir.join(format!("set-aside-{}", unix_time() as u64));
    std::fs::create_dir(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
    let grids = files_named(dir, "fakes", ".png").into_iter().filter(|g| {
        let kimg = g
            .file_stem()
            .and_then(|s| s.to_str()?.strip_prefix("fakes")?.parse().ok());
        kimg.is_some_and(|k: i64| k > used_nimg / 1000)
    });
    let best_nimg = std::fs::read_to_string(dir.join("best_nimg.txt")).ok();
    let best_later = best_nimg.and_then(|n| n.trim().parse::<i64>().ok()) > Some(used_nimg);
    let best = ["best-snapshot.safetensors", "best_nimg.txt"].map(|n| dir.join(n));
    let moved = later
        .iter()
        .cloned()
        .chain(grids)
        .chain(best.into_iter().filter(|_| best_later));
    for file in moved {
        let to = aside.join(file.file_name().context("a file name")?);
        std::fs::rename(&file, &to)
            .with_context(|| format!("cannot move {} to {}", file.display(), to.display()))?;
    }
    let logs = files_named(dir, "metric-", ".jsonl");
    for log in logs.into_iter().chain([dir.join("stats.jsonl")]) {
        if log.is_file() {
            let to = aside.join(log.file_name().context("a file name")?);
            std::fs::copy(&log, &to)
                .with_context(|| format!("cannot copy {} to {}", log.display(), to.display()))?;
        }
    }
    Ok(Some(format!(
        "note: resuming from an earlier snapshot than the run's newest ({}): {} later snapshot(s), their sample grids{} and copies of the logs moved to {}; the run goes on from {}, and a re-run continues it",
        newest.file_name().unwrap_or_default().to_string_lossy(),
        later.len(),
        if best_later { ", the best snapshot" } else { "" },
        aside.display(),
        used.display()
    )))
}
