//! Atomic file writes: a temporary file beside the target, fsynced, then renamed over it, so a
//! crash or a full disk never leaves a half-written file under the final name.
use anyhow::{Context, Result};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// The tag of temporary names, before the writer's process id: `.<name>.tmp-<pid>`
/// (see [`super::tempfiles`]).
pub const TMP_TAG: &str = "tmp";

/// Write `path` atomically: `fill` writes into `<path>.tmp-<pid>`, which is fsynced and renamed.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    atomic_write_path(path, |tmp| {
        let mut w = BufWriter::new(File::create(tmp)?);
        fill(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
}

/// Write `path` atomically when only a writer of paths is at hand (libtorch's module save):
/// `fill` creates the file `<path>.tmp-<pid>` it is given, which is then fsynced and renamed.
pub fn atomic_write_path(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{TMP_TAG}-{}", std::process::id()));
    let result = (|| -> Result<()> {
        fill(&tmp)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        Ok(())
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result.with_context(|| {
        format!(
            "cannot write {} (disk full or not writable?)",
            path.display()
        )
    })
}
