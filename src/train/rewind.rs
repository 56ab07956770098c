//! A resume from an earlier snapshot than the run's newest: the later snapshots, their sample
//! grids and best snapshot move aside (with copies of the logs), so that nothing of that branch
//! is overwritten and a re-run continues the branch being trained.
use crate::snapshot::{grid_kimg, snapshot_kimg, snapshots_in, BEST_NIMG, BEST_SNAPSHOT};
use crate::util::clock::unix_time;
use crate::util::files::files_named;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What [`set_aside_later`] did.
pub struct SetAside {
    /// For the log.
    pub note: String,
    /// The best snapshot was a later one: the run has none until its next evaluation.
    pub best_moved: bool,
}

/// Move what `dir` holds past `used_nimg` images (the snapshot `used`) into a new
/// `set-aside-<unix time>` folder of the run: later snapshots (by their kimg), sample grids of
/// later kimg, and the best snapshot when it is later; stats.jsonl and metric-*.jsonl are copied
/// whole before the resume cuts them. None when nothing is later.
pub fn set_aside_later(dir: &Path, used: &Path, used_nimg: i64) -> Result<Option<SetAside>> {
    let later = later_snapshots(dir, used, used_nimg);
    let Some(newest) = later.first() else {
        return Ok(None);
    };
    let aside = new_folder(dir)?;
    let grids = files_named(dir, "fakes", ".png").into_iter().filter(|g| {
        let kimg = name_of(g).and_then(grid_kimg);
        kimg.is_some_and(|k| (k * 1000.0).round() as i64 > used_nimg)
    });
    let best_nimg = std::fs::read_to_string(dir.join(BEST_NIMG)).ok();
    let best_moved = best_nimg.and_then(|n| n.trim().parse::<i64>().ok()) > Some(used_nimg);
    let best = [BEST_SNAPSHOT, BEST_NIMG].map(|n| dir.join(n));
    let moved = later
        .iter()
        .cloned()
        .chain(grids)
        .chain(best.into_iter().filter(|b| best_moved && b.exists()));
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
    let note = format!(
        "note: resuming from an earlier snapshot than the run's newest ({}): {} later snapshot(s), their sample grids{} moved to {} with copies of stats.jsonl and metric-*.jsonl; the run goes on from {}, and a re-run continues it",
        name_of(newest).unwrap_or_default(),
        later.len(),
        match best_moved {
            true => ", the best snapshot (a new one is kept from the next evaluation on)",
            false => "",
        },
        aside.display(),
        used.display()
    );
    Ok(Some(SetAside { note, best_moved }))
}

/// The snapshots of `dir` later than `used` (at `used_nimg` images) by their kimg, newest first.
pub fn later_snapshots(dir: &Path, used: &Path, used_nimg: i64) -> Vec<PathBuf> {
    let after = |kimg: f64| (kimg * 1000.0).round() as i64 > used_nimg;
    snapshots_in(dir)
        .into_iter()
        .filter(|s| s != used)
        .filter(|s| name_of(s).and_then(snapshot_kimg).is_some_and(after))
        .collect()
}

fn name_of(p: &Path) -> Option<&str> {
    p.file_name()?.to_str()
}

/// A new `set-aside-<unix time>[-N]` folder in `dir`.
fn new_folder(dir: &Path) -> Result<PathBuf> {
    let stem = format!("set-aside-{}", unix_time() as u64);
    for n in 0..1000 {
        let path = match n {
            0 => dir.join(&stem),
            n => dir.join(format!("{stem}-{n}")),
        };
        match std::fs::create_dir(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            r => {
                return r
                    .map(|_| path.clone())
                    .with_context(|| format!("cannot create {}", path.display()))
            }
        }
    }
    anyhow::bail!(
        "cannot create a {stem} folder in {}: 1000 exist",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots at 1, 2 and 3 kimg, grids of kimg 1-3, the best at 3 kimg, logs: resuming at
    /// 1 kimg moves 2 and 3 with their grids and the best, and copies the logs.
    #[test]
    fn what_is_later_than_the_snapshot_moves_aside_and_the_rest_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let touch = |n: &str| std::fs::write(dir.join(n), n).unwrap();
        let snap = |k: i64| crate::snapshot::snapshot_name(k * 1000);
        for n in [snap(1), snap(2), snap(3)] {
            touch(&n);
        }
        for n in [
            "fakes_init.png",
            "fakes000001.png",
            "fakes000002.png",
            "fakes000003.png",
            "fakes000001.500.png",
        ] {
            touch(n);
        }
        touch("best-snapshot.safetensors");
        std::fs::write(dir.join("best_nimg.txt"), "3000").unwrap();
        touch("stats.jsonl");
        touch("metric-fid50k_full.jsonl");
        let used = dir.join(snap(1));
        let aside = set_aside_later(dir, &used, 1000).unwrap().unwrap();
        assert!(aside.best_moved);
        assert!(aside.note.contains(&snap(3)), "{}", aside.note);
        let folder = dir
            .read_dir()
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .unwrap()
            .path();
        let mut moved: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        moved.sort();
        let mut want = vec![
            "best-snapshot.safetensors".to_string(),
            "best_nimg.txt".into(),
            "fakes000001.500.png".into(),
            "fakes000002.png".into(),
            "fakes000003.png".into(),
            "metric-fid50k_full.jsonl".into(),
            snap(2),
            snap(3),
            "stats.jsonl".into(),
        ];
        want.sort();
        assert_eq!(moved, want);
        for stays in [
            snap(1),
            "fakes_init.png".into(),
            "fakes000001.png".into(),
            "stats.jsonl".into(),
        ] {
            assert!(dir.join(&stays).is_file(), "{stays}");
        }
        // nothing later now; a second rewind in the same second gets a folder of its own
        assert!(set_aside_later(dir, &used, 1000).unwrap().is_none());
        touch(&snap(2));
        set_aside_later(dir, &used, 1000).unwrap().unwrap();
        let folders = dir
            .read_dir()
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .count();
        assert_eq!(folders, 2);
        // a snapshot named otherwise (the best one) is placed by its kimg, not its name
        touch(&snap(3));
        let best = dir.join("best-snapshot.safetensors");
        std::fs::write(&best, "b").unwrap();
        let aside = set_aside_later(dir, &best, 3000).unwrap();
        assert!(aside.is_none(), "nothing is later than 3 kimg");
    }
}
