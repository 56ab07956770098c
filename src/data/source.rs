//! Input files for the dataset tool and the loader: every regular file of a directory tree or a
//! zip archive, sorted by path (as the reference's `sorted()`), readable from many threads.
use crate::util::early_log;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use walkdir::WalkDir;
use zip::ZipArchive;

/// File extensions the reference reader treats as images (PIL's list, lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "webp", "bmp", "dib", "tif", "tiff", "gif",
];

/// Whether `name` ends in one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Largest file read for an image of at most `max_pixels` pixels: 16 bytes a pixel (RGBA of
/// 32-bit floats, the widest layout a decoder produces) plus 64 MiB of metadata. Anything
/// longer (a zip bomb, a device, a huge non-image) is refused before it fills the memory.
pub fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(16).saturating_add(64 << 20)
}

enum Backing {
    Dir(PathBuf),
    Zip(PathBuf, Mutex<ZipArchive<File>>),
}

/// Where a listed file is: its path (as the file system spells it, which need not be UTF-8)
/// or the index of its zip entry.
enum Place {
    Path(PathBuf),
    Entry(usize),
}

/// A sorted list of the files in a directory or zip. Hidden entries (a path component starting
/// with '.', or `__MACOSX`) and `dataset.json` are left out. Directories are walked following
/// symlinks, but each directory once: a symlink back to an ancestor (a loop) or to a directory
/// already walked is skipped with a warning.
pub struct Source {
    backing: Backing,
    /// Relative names ('/'-separated), sorted, and where each file is.
    names: Vec<String>,
    places: Vec<Place>,
    has_dataset_json: bool,
}

fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|c| c.starts_with('.') || c == "__MACOSX")
}

impl Source {
    /// Open a directory (scanned recursively) or a `.zip` file.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{} does not exist or cannot be read", path.display()))?;
        let (backing, mut names) = if meta.is_dir() {
            (Backing::Dir(path.to_path_buf()), walk(path)?)
        } else {
            open_zip(path)?
        };
        let has_dataset_json = names.iter().any(|(n, _)| n == "dataset.json");
        names.retain(|(n, _)| !is_hidden(n) && n != "dataset.json");
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, places) = names.into_iter().unzip();
        Ok(Source {
            backing,
            names,
            places,
            has_dataset_json,
        })
    }

    /// Keep only files whose extension is an image extension (the reference reader's rule);
    /// returns the names of the others.
    pub fn retain_image_extensions(&mut self) -> Vec<String> {
        let others = self
            .names
            .iter()
            .filter(|n| !has_image_extension(n))
            .cloned()
            .collect();
        self.retain_names(has_image_extension);
        others
    }

    /// Keep only the files whose relative name passes `keep`.
    pub fn retain_names(&mut self, keep: impl Fn(&str) -> bool) {
        let keep: Vec<bool> = self.names.iter().map(|n| keep(n)).collect();
        let mut k = keep.iter();
        self.places.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.names.retain(|_| *k.next().unwrap_or(&false));
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The directory or zip file this source reads.
    pub fn root(&self) -> &Path {
        match &self.backing {
            Backing::Dir(root) | Backing::Zip(root, _) => root,
        }
    }

    /// Whether the root holds a `dataset.json`, i.e. this is a prepared dataset.
    pub fn has_dataset_json(&self) -> bool {
        self.has_dataset_json
    }

    /// The relative name ('/'-separated) of file `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Name for messages: the source path joined with the file's relative name.
    pub fn display_name(&self, i: usize) -> String {
        match &self.backing {
            Backing::Dir(root) => root.join(&self.names[i]).display().to_string(),
            Backing::Zip(zip, _) => format!("{}:{}", zip.display(), self.names[i]),
        }
    }

    /// The root's `dataset.json` as JSON, if there is one.
    pub fn dataset_json(&self) -> Result<Option<serde_json::Value>> {
        if !self.has_dataset_json {
            return Ok(None);
        }
        const MAX: u64 = 1 << 30;
        let (bytes, shown) = match &self.backing {
            Backing::Dir(root) => {
                let p = root.join("dataset.json");
                (read_file(&p, MAX)?, p.display().to_string())
            }
            Backing::Zip(path, zip) => {
                let mut zip = zip.lock().unwrap_or_else(|e| e.into_inner());
                let shown = format!("{}:dataset.json", path.display());
                let entry = zip
                    .by_name("dataset.json")
                    .with_context(|| format!("cannot open {shown}"))?;
                let claimed = entry.size();
                (
                    read_bounded(entry, claimed, MAX)
                        .with_context(|| format!("cannot read {shown}"))?,
                    shown,
                )
            }
        };
        let json = serde_json::from_slice(&bytes).with_context(|| {
            format!("{shown} is not JSON; re-create the dataset with `fpgan dataset`")
        })?;
        Ok(Some(json))
    }

    /// The bytes of file `i`, if it is no longer than the default [`max_file_bytes`].
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        self.read_at_most(i, max_file_bytes(super::image_ops::DEFAULT_MAX_PIXELS))
    }

    /// The bytes of file `i`; a file longer than `max_bytes` is an error (nothing more is read).
    pub fn read_at_most(&self, i: usize, max_bytes: u64) -> Result<Vec<u8>> {
        let name = &self.names[i];
        let index = match &self.places[i] {
            Place::Path(path) => return read_file(path, max_bytes),
            Place::Entry(index) => *index,
        };
        let Backing::Zip(path, zip) = &self.backing else {
            bail!("{name}: a zip entry outside a zip");
        };
        let mut zip = zip.lock().unwrap_or_else(|e| e.into_inner());
        let entry = zip
            .by_index(index)
            .with_context(|| format!("{}: cannot open entry {name}", path.display()))?;
        let claimed = entry.size();
        read_bounded(entry, claimed, max_bytes)
            .with_context(|| format!("{}: cannot read entry {name}", path.display()))
    }
}

fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_bounded(file, len, max_bytes).with_context(|| format!("cannot read {}", path.display()))
}

/// Read all of `r` (about `expected` bytes, a hint only) unless it is longer than `max_bytes`.
fn read_bounded(r: impl Read, expected: u64, max_bytes: u64) -> Result<Vec<u8>> {
    let too_long = || {
        anyhow::anyhow!(
            "longer than {max_bytes} bytes, more than any image within the pixel limit \
             (raise it with `fpgan dataset --max-pixels`)"
        )
    };
    if expected > max_bytes {
        return Err(too_long());
    }
    // The size is a claim of the file system or the archive: reserve at most 64 MiB up front.
    let mut buf = Vec::with_capacity(expected.min(64 << 20) as usize);
    r.take(max_bytes.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max_bytes {
        return Err(too_long());
    }
    Ok(buf)
}

/// The files of a zip archive as (name, entry index), from its central directory only: a
/// damaged entry fails when it is read (and is skipped then), not here.
fn open_zip(path: &Path) -> Result<(Backing, Vec<(String, Place)>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let zip = ZipArchive::new(file).with_context(|| {
        format!(
            "{} is neither a directory nor a readable zip archive",
            path.display()
        )
    })?;
    let names = (0..zip.len())
        .filter_map(|i| Some((zip.name_for_index(i)?.to_string(), Place::Entry(i))))
        .filter(|(n, _)| !n.ends_with('/') && !n.ends_with('\\'))
        .collect();
    Ok((Backing::Zip(path.to_path_buf(), Mutex::new(zip)), names))
}

/// Identity of a directory, to walk each one once however many symlinks lead to it.
#[cfg(unix)]
fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_id(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every regular file under `root` (following symlinks, each directory once), as (relative
/// name, path). A broken symlink is listed too, so that it is skipped with a warning like any
/// unreadable file; special files (pipes, devices, sockets) are left out with a warning.
fn walk(root: &Path) -> Result<Vec<(String, Place)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut it = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skip_walk_error(root, e, &mut out)?;
                continue;
            }
        };
        let path = entry.path();
        if entry.file_type().is_dir() {
            let hidden = entry.depth() > 0 && is_hidden(&entry.file_name().to_string_lossy());
            if hidden {
                it.skip_current_dir();
            } else if dir_id(path).is_some_and(|id| !seen.insert(id)) {
                early_log::say(&format!(
                    "warning: skipping {}: a symlink to a directory already read",
                    path.display()
                ));
                it.skip_current_dir();
            }
        } else if entry.file_type().is_file() {
            out.push((relative(root, path), Place::Path(path.to_path_buf())));
        } else if !is_hidden(&entry.file_name().to_string_lossy()) {
            early_log::say(&format!(
                "warning: skipping {}: not a regular file (a pipe, socket or device)",
                path.display()
            ));
        }
    }
    if out.is_empty() {
        // An empty folder is an error for every caller; say so here with the path.
        bail!("{} contains no files", root.display());
    }
    Ok(out)
}

/// A walk error: the root itself is fatal; a symlink loop or an unreadable folder is skipped
/// with a warning; a broken symlink is listed (to be skipped as unreadable later).
fn skip_walk_error(root: &Path, e: walkdir::Error, out: &mut Vec<(String, Place)>) -> Result<()> {
    let reason = e.io_error().map_or(e.to_string(), |io| io.to_string());
    let path = match e.path() {
        Some(p) if e.depth() > 0 => p.to_path_buf(),
        _ => bail!("cannot list {}: {reason}", root.display()),
    };
    if let Some(ancestor) = e.loop_ancestor() {
        early_log::say(&format!(
            "warning: skipping {}: a symlink loop back to {}",
            path.display(),
            ancestor.display()
        ));
    } else if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::metadata(&path).is_err()
    {
        out.push((relative(root, &path), Place::Path(path)));
    } else {
        early_log::say(&format!("warning: skipping {}: {reason}", path.display()));
    }
    Ok(())
}
