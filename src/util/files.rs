//! Output directories with clear errors, and the leftovers of interrupted writes, removed once
//! the process that left them is gone.
use super::atomic::atomic_write;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Create the directory `dir` given by `flag` (and its parents); a clear error when it is a file.
pub fn create_output_dir(dir: &Path, flag: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{flag} {} is a file, not a directory; give a directory path",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {flag} {}", dir.display()))
}

/// Check before any work that the file `path` given by `flag` can be written: its folder exists
/// and it is not a directory.
pub fn check_writable_file(path: &Path, flag: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!("{flag} {} is a directory; give a file path", path.display());
    }
    if !dir.is_dir() {
        bail!(
            "{flag} {}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        );
    }
    let probe = tempfile_in(dir);
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "{flag} {}: {} is not writable",
                path.display(),
                dir.display()
            )
        })
}

fn tempfile_in(dir: &Path) -> std::path::PathBuf {
    dir.join(format!(
        ".fpgan-write-test{}{}",
        super::atomic::TMP_MARKER,
        std::process::id()
    ))
}

/// Whether process `pid` is gone (no such process). A live process, or one we may not signal,
/// counts as alive.
pub fn process_is_dead(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The process id a temporary name ends with: `<anything><marker><pid>`.
fn owner_pid(name: &str, marker: &str) -> Option<u32> {
    name.rsplit_once(marker)?.1.parse().ok()
}

/// Remove the entries of `dir` whose names contain `marker` followed by the id of a process that
/// is gone (left by a killed writer: `.<name>.tmp-<pid>`, `<dest>.partial-<pid>`); returns the
/// names removed. Entries of live processes stay.
pub fn remove_dead_leftovers(dir: &Path, marker: &str) -> Vec<String> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name, marker) else {
            continue;
        };
        if pid == std::process::id() || !process_is_dead(pid) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Take an exclusive lock on `<dir>/.lock`, held while the returned file lives and released by
/// the OS when the process dies; a clear error when another process holds it.
pub fn lock_dir(dir: &Path, what: &str) -> Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another fpgan process is {what} in {}; wait for it to finish or stop it first",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Rewrite the JSON-lines file `path` (if it exists) keeping the lines `keep` accepts; a file
/// that needs no change is left alone.
pub fn keep_lines(path: &Path, keep: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let lines: Vec<&str> = text.lines().collect();
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| serde_json::from_str(l).is_ok_and(|v| keep(&v)))
        .collect();
    if kept.len() == lines.len() {
        return Ok(());
    }
    let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
    atomic_write(path, |w| Ok(w.write_all(body.as_bytes())?))
}
