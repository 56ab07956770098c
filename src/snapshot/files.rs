//! Snapshot names (`network-snapshot-<kimg>.safetensors`), finding them newest first, keeping the
//! newest N, and the header (format, version, generator configuration) every snapshot carries.
use crate::nets::generator::GeneratorConfig;
use crate::util::files::files_named;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub const SNAPSHOT_PREFIX: &str = "network-snapshot-";
/// A copy of the snapshot with the run's lowest FID, and the image count it was taken at.
pub const BEST_SNAPSHOT: &str = "best-snapshot.safetensors";
pub const BEST_NIMG: &str = "best_nimg.txt";
/// `format` and `version` in the metadata of every snapshot.
pub const FORMAT: &str = "fpgan-snapshot";
pub const VERSION: i64 = 1;

/// `network-snapshot-<kimg with 3 decimals, zero-padded>.safetensors`, e.g.
/// `network-snapshot-000200.000.safetensors`: unique per snapshot and sorted by progress.
pub fn snapshot_name(cur_nimg: i64) -> String {
    format!(
        "{SNAPSHOT_PREFIX}{:010.3}.safetensors",
        cur_nimg as f64 / 1000.0
    )
}

/// The kimg in a [`snapshot_name`] (`network-snapshot-000001.060.safetensors` -> 1.06).
pub fn snapshot_kimg(name: &str) -> Option<f64> {
    name.strip_prefix(SNAPSHOT_PREFIX)?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

/// The sample grid written with a snapshot: `fakes<kimg, 6 digits>.png` as the reference's, or
/// for a snapshot written inside a tick (a stop) `fakes<kimg with 3 decimals>.png` as its
/// snapshot's name, so that it does not replace the grid of a scheduled snapshot of the same kimg.
pub fn grid_name(cur_nimg: i64, inside_tick: bool) -> String {
    match inside_tick {
        true => format!("fakes{:010.3}.png", cur_nimg as f64 / 1000.0),
        false => format!("fakes{:06}.png", cur_nimg / 1000),
    }
}

/// The kimg in a [`grid_name`] (`fakes000002.png` -> 2, `fakes000001.060.png` -> 1.06).
pub fn grid_kimg(name: &str) -> Option<f64> {
    let kimg = name.strip_prefix("fakes")?.strip_suffix(".png")?;
    kimg.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.')
        .then(|| kimg.parse().ok())?
}

/// Snapshots in `dir`, newest first.
pub fn snapshots_in(dir: &Path) -> Vec<PathBuf> {
    let mut v = files_named(dir, SNAPSHOT_PREFIX, ".safetensors");
    v.sort();
    v.reverse();
    v
}

/// The newest snapshot of a run directory, or of the newest run (highest `NNNNN-` prefix) with
/// snapshots in an output directory.
pub fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    if let Some(s) = snapshots_in(dir).into_iter().next() {
        return Some(s);
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    runs.iter()
        .rev()
        .find_map(|r| snapshots_in(r).into_iter().next())
}

/// Keep the newest `keep` snapshots (and `current`); older ones are removed only after the
/// new one is complete.
pub fn prune(dir: &Path, keep: usize, current: &Path) {
    for old in snapshots_in(dir).into_iter().skip(keep.max(1)) {
        if old != current {
            std::fs::remove_file(old).ok();
        }
    }
}

/// What every snapshot's metadata says about the network it holds.
pub struct SnapshotHeader {
    pub generator: GeneratorConfig,
}

/// Check that `meta` (read from `path`) is an fpgan snapshot's and read its header.
pub fn read_header(meta: &serde_json::Value, path: &Path) -> Result<SnapshotHeader> {
    if meta["format"] != FORMAT {
        bail!(
            "{} is not an fpgan snapshot (no fpgan metadata)",
            path.display()
        );
    }
    let generator = serde_json::from_value(meta.get("generator").cloned().unwrap_or_default())
        .with_context(|| {
            format!(
                "{}: bad 'generator' in the snapshot metadata",
                path.display()
            )
        })?;
    Ok(SnapshotHeader { generator })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_names_read_back_as_their_kimg() {
        assert_eq!(grid_name(40_000, false), "fakes000040.png");
        assert_eq!(grid_name(40_128, false), "fakes000040.png");
        assert_eq!(grid_name(40_128, true), "fakes000040.128.png");
        assert_eq!(grid_kimg("fakes000040.png"), Some(40.0));
        assert_eq!(grid_kimg("fakes000040.128.png"), Some(40.128));
        for other in [
            "fakes_init.png",
            "fakesinf.png",
            "fakesNaN.png",
            "fakes.png",
            "reals.png",
        ] {
            assert_eq!(grid_kimg(other), None, "{other}");
        }
    }
}
