//! The dataset tool's destination: what `--force` may replace (a dataset, never other data nor
//! the source) and the clean-up after interrupted runs (`.partial-PID`, `.old-PID`).
use crate::util::tempfiles;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;
use zip::ZipArchive;

/// Whether `rel` is an image name of the reference layout (`00000/img00000000.png`).
fn is_layout_image(rel: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some((dir, file)) = rel.split_once('/') else {
        return false;
    };
    digits(dir, 5)
        && file
            .strip_prefix("img")
            .and_then(|f| f.strip_suffix(".png"))
            .is_some_and(|d| digits(d, 8))
}

/// The file name of `dest`, which must have one (not `.`, `..` or `/`) and not name an archive
/// of another kind than zip (it would be written as a folder of that name).
fn dest_name(dest: &Path) -> Result<String> {
    let Some(name) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        bail!(
            "--dest {} names no file or folder; give a path such as out/dataset.zip",
            dest.display()
        );
    };
    const OTHER_ARCHIVES: [&str; 9] = [
        ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".lz4",
    ];
    let lower = name.to_lowercase();
    if let Some(ext) = OTHER_ARCHIVES.iter().find(|e| lower.ends_with(*e)) {
        bail!(
            "--dest {}: fpgan writes a dataset as a .zip or a folder, not a {ext}; give a path such as out/dataset.zip",
            dest.display()
        );
    }
    Ok(name)
}

/// The directory holding `dest`.
fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The PID of a temporary `<dest name>.<tag>-<PID>` of this destination, `None` for other names.
fn leftover_of(name: &str, dest_name: &str, tag: &str) -> Option<u32> {
    tempfiles::tagged_pid(name, tag).and_then(|(stem, pid)| (stem == dest_name).then_some(pid))
}

/// Clean up after dead earlier runs for `dest`: their `.partial-PID` outputs are removed; an
/// `.old-PID` (the previous dataset, moved aside just before the new one was renamed into
/// place) is put back if the destination is missing, and removed otherwise.
pub fn clean_leftovers(dest: &Path) -> Result<()> {
    let name = dest_name(dest)?;
    let dir = parent_dir(dest);
    for old in tempfiles::dead_leftovers(&dir, |n| leftover_of(n, &name, "old")) {
        if std::fs::symlink_metadata(dest).is_err() {
            std::fs::rename(&old, dest).with_context(|| {
                format!(
                    "cannot move {} (left by an interrupted run) back to {}; rename it by hand",
                    old.display(),
                    dest.display()
                )
            })?;
            eprintln!(
                "warning: restored {} from {}, left by an interrupted run",
                dest.display(),
                old.display()
            );
        } else {
            tempfiles::remove_path(&old).with_context(|| {
                format!(
                    "cannot remove {}, left by an interrupted run; remove it by hand",
                    old.display()
                )
            })?;
        }
    }
    for p in tempfiles::remove_dead_leftovers(&dir, |n| leftover_of(n, &name, "partial"))? {
        let shown = dest.with_file_name(p.file_name().unwrap_or_default());
        eprintln!(
            "note: removed {}, left by an interrupted run",
            shown.display()
        );
    }
    Ok(())
}

/// Refuse a `dest` that is `source` or a folder containing it (replacing it would delete the
/// images being read).
pub fn check_not_source(dest: &Path, source: &Path) -> Result<()> {
    let (Ok(d), Ok(s)) = (std::fs::canonicalize(dest), std::fs::canonicalize(source)) else {
        return Ok(()); // no destination yet: it cannot hold the source
    };
    if s.starts_with(&d) {
        bail!(
            "--dest {} is the --source {} or a folder containing it, which would be overwritten; choose a --dest outside the source",
            dest.display(),
            source.display()
        );
    }
    Ok(())
}

/// `dest` relative to the folder `source` ('/'-separated) when it lies inside it, e.g. `set` for
/// `--source photos --dest photos/set`; `None` otherwise.
pub fn inside_source(dest: &Path, source: &Path) -> Option<String> {
    let s = std::fs::canonicalize(source).ok()?;
    let d = std::fs::canonicalize(parent_dir(dest))
        .ok()?
        .join(dest.file_name()?);
    let rel = d.strip_prefix(&s).ok()?;
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether the source file `name` belongs to the output at `rel` (see [`inside_source`]): the
/// dataset of an earlier run, or a temporary of one. It must not be read as an input.
pub fn is_output(name: &str, rel: &str) -> bool {
    name.strip_prefix(rel).is_some_and(|r| {
        r.is_empty() || r.starts_with('/') || r.starts_with(".partial-") || r.starts_with(".old-")
    })
}

/// Why the existing `dest` is not a dataset that `--force` may replace, `None` if it is one:
/// a directory or zip holding only `dataset.json` and image files (with `dataset.json`), or only
/// images in the reference layout `00000/img00000000.png` (without it).
pub fn not_a_dataset(dest: &Path) -> Option<String> {
    let names = match std::fs::metadata(dest) {
        Err(e) => return Some(format!("it cannot be read ({e})")),
        Ok(m) if m.is_dir() => dir_names(dest),
        Ok(_) => zip_names(dest),
    };
    let names = match names {
        Ok(n) => n,
        Err(reason) => return Some(reason),
    };
    let has_json = names.iter().any(|n| n == "dataset.json");
    let fits = |n: &String| {
        n == "dataset.json"
            || n.rsplit('/').next() == Some(".DS_Store")
            || is_layout_image(n)
            || (has_json && super::source::has_image_extension(n))
    };
    names
        .iter()
        .find(|n| !fits(n))
        .map(|n| format!("it holds {n}, which is not part of a dataset"))
}

/// Relative names of the files under `dir`; a symlink or unexpected folder is a reason.
fn dir_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for entry in WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("it cannot be read fully ({e})"))?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let ft = entry.file_type();
        if ft.is_dir() {
            let layout_dir =
                entry.depth() == 1 && rel.len() == 5 && rel.bytes().all(|b| b.is_ascii_digit());
            if !layout_dir {
                return Err(format!(
                    "it holds the folder {rel}, which is not part of a dataset"
                ));
            }
        } else if ft.is_file() {
            names.push(rel);
        } else {
            return Err(format!("it holds {rel}, which is not part of a dataset"));
        }
    }
    Ok(names)
}

/// Names of the files in the zip `path`; not a zip is a reason.
fn zip_names(path: &Path) -> Result<Vec<String>, String> {
    let not_zip = || "it is a file but not a dataset zip".to_string();
    let file = File::open(path).map_err(|_| not_zip())?;
    let zip = ZipArchive::new(file).map_err(|_| not_zip())?;
    Ok(zip
        .file_names()
        .filter(|n| !n.ends_with('/'))
        .map(str::to_string)
        .collect())
}
