//! Input files for the dataset tool and the loader: every regular file of a directory tree or a
//! zip archive, sorted by path (as the reference's `sorted()`), readable from many threads.
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

enum Backing {
    Dir(PathBuf),
    Zip(PathBuf, Mutex<ZipArchive<File>>),
}

/// A sorted list of the files in a directory or zip. Hidden entries (a path component starting
/// with '.', or `__MACOSX`) and `dataset.json` are left out.
pub struct Source {
    backing: Backing,
    names: Vec<String>,
    has_dataset_json: bool,
}

fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|c| c.starts_with('.') || c == "__MACOSX")
}

impl Source {
    /// Open a directory (scanned recursively) or a `.zip` file.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!("source {} does not exist or cannot be read", path.display())
        })?;
        let mut names = Vec::new();
        let backing = if meta.is_dir() {
            walk(path, path, &mut names)?;
            Backing::Dir(path.to_path_buf())
        } else {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut zip = ZipArchive::new(file).with_context(|| {
                format!(
                    "{} is neither a directory nor a readable zip archive",
                    path.display()
                )
            })?;
            for i in 0..zip.len() {
                let entry = zip
                    .by_index_raw(i)
                    .with_context(|| format!("{}: bad zip entry {i}", path.display()))?;
                if entry.is_file() {
                    names.push(entry.name().to_string());
                }
            }
            Backing::Zip(path.to_path_buf(), Mutex::new(zip))
        };
        let has_dataset_json = names.iter().any(|n| n == "dataset.json");
        names.retain(|n| !is_hidden(n) && n != "dataset.json");
        names.sort();
        Ok(Source {
            backing,
            names,
            has_dataset_json,
        })
    }

    /// Keep only files whose extension is an image extension (the reference reader's rule).
    pub fn retain_image_extensions(&mut self) {
        self.names.retain(|n| has_image_extension(n));
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

    /// Name for messages: the source path joined with the file's relative name.
    pub fn display_name(&self, i: usize) -> String {
        match &self.backing {
            Backing::Dir(root) => root.join(&self.names[i]).display().to_string(),
            Backing::Zip(zip, _) => format!("{}:{}", zip.display(), self.names[i]),
        }
    }

    /// The bytes of file `i`.
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        let name = &self.names[i];
        match &self.backing {
            Backing::Dir(root) => std::fs::read(root.join(name))
                .with_context(|| format!("cannot read {}", root.join(name).display())),
            Backing::Zip(path, zip) => {
                let mut zip = zip.lock().unwrap_or_else(|e| e.into_inner());
                let mut entry = zip
                    .by_name(name)
                    .with_context(|| format!("{}: cannot open entry {name}", path.display()))?;
                let mut buf = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut buf)
                    .with_context(|| format!("{}: cannot read entry {name}", path.display()))?;
                Ok(buf)
            }
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
            walk(root, &path, out)?;
        } else if ft.is_file() || ft.is_symlink() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(rel);
        }
    }
    if out.is_empty() && dir == root {
        // An empty folder is an error for every caller; say so here with the path.
        bail!("source {} contains no files", root.display());
    }
    Ok(())
}
