//! Temporary files named `<name>.<tag>-<PID>` (written, then renamed into place): is their writer still alive, and removal of the leftovers of dead ones.
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `name` of a temporary file `<stem>.<tag>-<PID>`, split into `(stem, pid)`; `None` for any
/// other name. The last `.<tag>-` counts, and the PID must be all digits.
pub fn tagged_pid<'a>(name: &'a str, tag: &str) -> Option<(&'a str, u32)> {
    let marker = format!(".{tag}-");
    let at = name.rfind(&marker)?;
    let digits = &name[at + marker.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&name[..at], digits.parse().ok()?))
}

/// Whether process `pid` may still be running. Unknown cases (no such check on this platform,
/// a PID that cannot be one) count as alive, so that nothing of a live writer is ever removed.
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return true;
        };
        if p <= 0 {
            return true;
        }
        // Signal 0 checks existence only; EPERM means it exists under another user.
        // SAFETY: kill with signal 0 sends nothing and has no memory effects.
        if unsafe { libc::kill(p, 0) } == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Entries of `dir` whose name `owner` maps to a PID (`Some(pid)`: one of the temporary files
/// in question) and whose process is dead. An unreadable `dir` has none.
pub fn dead_leftovers(dir: &Path, owner: impl Fn(&str) -> Option<u32>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(&owner)
                .is_some_and(|pid| !pid_alive(pid))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Remove a file, a symlink (not its target) or a directory tree.
pub fn remove_path(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Remove the leftovers of dead processes in `dir` (see [`dead_leftovers`]); returns what
/// was removed. A leftover that cannot be removed is an error naming it.
pub fn remove_dead_leftovers(
    dir: &Path,
    owner: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<PathBuf>> {
    let found = dead_leftovers(dir, owner);
    for path in &found {
        remove_path(path).with_context(|| {
            format!(
                "cannot remove {}, left by an interrupted run; remove it by hand",
                path.display()
            )
        })?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pids() {
        assert_eq!(
            tagged_pid("a.zip.partial-12", "partial"),
            Some(("a.zip", 12))
        );
        assert_eq!(
            tagged_pid(".network-snapshot-000004.pt.tmp-7", "tmp"),
            Some((".network-snapshot-000004.pt", 7))
        );
        assert_eq!(tagged_pid("a.zip.partial-", "partial"), None);
        assert_eq!(tagged_pid("a.zip.partial-1x", "partial"), None);
        assert_eq!(tagged_pid("a.zip", "partial"), None);
        assert_eq!(tagged_pid("a.partial-99999999999999", "partial"), None);
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(pid_alive(0) && pid_alive(u32::MAX), "non-PIDs are kept");
    }
}
