//! Output paths checked before any work (directories, writable files), a lock per run
//! directory, and JSON-lines files trimmed on resume.
use super::atomic::atomic_write;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Create the directory `dir` given by `flag` (and its parents); a clear error when it is a file.
pub fn create_output_dir(dir: &Path, flag: &str) -> Result<()> {
    check_output_dir(dir, flag)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {flag} {}", dir.display()))
}

/// Refuse an output directory `dir` (given by `flag`) that is a file.
pub fn check_output_dir(dir: &Path, flag: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{flag} {} is a file, not a directory; give a directory path",
            dir.display()
        );
    }
    Ok(())
}

/// A kind of file a command writes, told from others by looking at one (`is`).
pub struct FileKind {
    pub what: &'static str,
    pub is: fn(&Path) -> bool,
}

/// Whether the file at `path` begins with `magic`.
pub fn begins_with(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(magic.len() as u64).read_to_end(&mut head))
        .is_ok_and(|_| head == magic)
}

/// Check before any work that the file `path` given by `flag` can be written: its folder is
/// there (created with its parents when missing, as every output folder is), it is not a directory, and a file already there is empty or of the `kind` the command writes
/// (an earlier output), never another (a snapshot, an image, the command's own input).
pub fn check_writable_file(path: &Path, flag: &str, kind: &FileKind) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!("{flag} {} is a directory; give a file path", path.display());
    }
    let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    if path.is_file() && !empty && !(kind.is)(path) {
        bail!(
            "{flag} {} exists and is not {}: give another name, or remove it first",
            path.display(),
            kind.what
        );
    }
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{flag} {}: {} is a file, not a folder; give another path",
            path.display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{flag} {}: cannot create {}", path.display(), dir.display()))?;
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
    let tag = super::atomic::TMP_TAG;
    dir.join(format!(".fpgan-write-test.{tag}-{}", std::process::id()))
}

/// The entries of `dir` named `<prefix>...<suffix>`, sorted (none when it cannot be read).
pub fn files_named(dir: &Path, prefix: &str, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    files.sort();
    files
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

/// `p` as one word of a shell command: as it is if it needs no quoting, else in single quotes.
pub fn shell_word(p: &Path) -> String {
    let s = p.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./-+=,:@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_a_shell() {
        for p in ["runs/00000-a/snap.safetensors", "my data/x.zip", "it's", ""] {
            let w = shell_word(Path::new(p));
            let o = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {w}")])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), p, "{w}");
        }
        assert_eq!(shell_word(Path::new("runs/a.zip")), "runs/a.zip");
    }
}
