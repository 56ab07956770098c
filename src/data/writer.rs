//! Atomic output of a prepared dataset in the reference layout, in a STORED zip or a directory,
//! renamed into place only when complete.
use super::dest::{clean_leftovers, not_a_dataset};
use crate::util::tempfiles;
use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Relative name of image `idx` in the reference layout.
pub fn image_name(idx: usize) -> String {
    format!("{:05}/img{:08}.png", idx / 1000, idx)
}

/// The zip's file. After its first failed operation (a full disk) writes are dropped and only
/// the position moves on: the zip crate finishes an unfinished archive when it is dropped and
/// prints a Debug error if that fails too, while the error that matters has been returned
/// already. The positions stay those of the real file, which the zip's bookkeeping relies on.
struct Sink {
    file: Option<BufWriter<File>>,
    /// The file without its buffer, once writing failed.
    failed: Option<File>,
}

impl Sink {
    fn new(file: File) -> Self {
        Sink {
            file: Some(BufWriter::new(file)),
            failed: None,
        }
    }

    fn checked<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            if let Some(buffered) = self.file.take() {
                let (mut file, unwritten) = buffered.into_parts();
                let pending = unwritten.map_or(0, |b| b.len()) as i64;
                let _ = file.seek(SeekFrom::Current(pending)); // where the zip believes it is
                self.failed = Some(file);
            }
        }
        r
    }

    /// The file with everything written to it, or the reason it is not.
    fn into_file(mut self) -> io::Result<File> {
        let buffered = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("an earlier write failed"))?;
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = self.file.as_mut() {
            let r = f.write(buf);
            return self.checked(r);
        }
        match self.failed.as_mut() {
            Some(f) => f
                .seek(SeekFrom::Current(buf.len() as i64))
                .map(|_| buf.len()),
            None => Err(io::Error::other("zip file closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => {
                let r = f.flush();
                self.checked(r)
            }
            None => Ok(()),
        }
    }
}

impl Seek for Sink {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if let Some(f) = self.file.as_mut() {
            let r = f.seek(to);
            return self.checked(r);
        }
        match self.failed.as_mut() {
            Some(f) => f.seek(to),
            None => Err(io::Error::other("zip file closed")),
        }
    }
}

enum Out {
    Zip(Box<ZipWriter<Sink>>),
    Dir,
}

/// Writes `{idx/1000:05}/img{idx:08}.png` plus `dataset.json` (`{"labels": null}`). Everything
/// goes under a temporary name beside the destination and is renamed into place only by
/// `finish`, so an interrupted run never leaves a half-written dataset there (the next run removes
/// such leftovers, see [`super::dest`]).
pub struct DatasetWriter {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<Out>,
    count: usize,
    compress: bool,
    /// The content of dataset.json (the reference's `{"labels": null}` by default).
    metadata: serde_json::Value,
}

/// Whether `path` exists and holds something (a file, or a non-empty directory).
fn occupied(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Err(_) => false,
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true),
        Ok(_) => true,
    }
}

fn sibling(dest: &Path, tag: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    dest.with_file_name(format!("{name}.{tag}-{}", std::process::id()))
}

impl DatasetWriter {
    /// Start writing to `dest` (a `.zip` file, otherwise a directory). An existing non-empty
    /// destination is an error unless `force`, and even then unless it is a dataset; it is
    /// replaced only when `finish` succeeds. Leftovers of dead earlier runs are cleaned up first.
    pub fn create(dest: &Path, force: bool) -> Result<Self> {
        clean_leftovers(dest)?;
        if occupied(dest) {
            if let Some(reason) = not_a_dataset(dest) {
                bail!(
                    "refusing to replace {}: {reason} (--force replaces only datasets); choose another --dest or move it away first",
                    dest.display()
                );
            }
            if !force {
                bail!(
                    "destination {} already exists and is not empty; choose another --dest or pass --force to replace it",
                    dest.display()
                );
            }
        }
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create directory {}", parent.display()))?;
        }
        let tmp = sibling(dest, "partial");
        let is_zip = dest
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        let out = if is_zip {
            let f =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            Out::Zip(Box::new(ZipWriter::new(Sink::new(f))))
        } else {
            std::fs::create_dir_all(&tmp)
                .with_context(|| format!("cannot create directory {}", tmp.display()))?;
            Out::Dir
        };
        Ok(DatasetWriter {
            dest: dest.to_path_buf(),
            tmp,
            out: Some(out),
            count: 0,
            compress: false,
            metadata: serde_json::json!({ "labels": null }),
        })
    }

    /// Write deflate-compressed PNGs instead of the reference's uncompressed ones.
    pub fn compressed(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// Append the next image (as an uncompressed PNG, numbered consecutively).
    pub fn add(&mut self, img: &RgbImage) -> Result<()> {
        let png =
            super::image_ops::encode_png(img, self.compress).context("PNG encoding failed")?;
        let name = image_name(self.count);
        self.put(&name, &png)?;
        self.count += 1;
        Ok(())
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let ctx = || {
            format!(
                "cannot write {name} into {} (disk full?)",
                self.dest.display()
            )
        };
        match self.out.as_mut().context("writer already finished")? {
            Out::Zip(z) => {
                let opts = SimpleFileOptions::default()
                    .compression_method(CompressionMethod::Stored)
                    .large_file(bytes.len() as u64 >= u32::MAX as u64);
                z.start_file(name, opts).with_context(ctx)?;
                z.write_all(bytes).with_context(ctx)?;
            }
            Out::Dir => {
                let path = self.tmp.join(name);
                if let Some(p) = path.parent() {
                    std::fs::create_dir_all(p).with_context(ctx)?;
                }
                std::fs::write(&path, bytes).with_context(ctx)?;
            }
        }
        Ok(())
    }

    /// What `finish` writes as dataset.json (labels of a conditional dataset).
    pub fn set_metadata(&mut self, metadata: serde_json::Value) {
        self.metadata = metadata;
    }

    /// Write `dataset.json`, flush to disk and move the result to the destination
    /// (replacing what was there, which `create` allowed only with `force`).
    pub fn finish(mut self) -> Result<PathBuf> {
        let json = serde_json::to_vec(&self.metadata)?;
        self.put("dataset.json", &json)?;
        let ctx = || format!("cannot write {} (disk full?)", self.dest.display());
        if let Some(Out::Zip(z)) = self.out.take() {
            let f = z
                .finish()
                .with_context(ctx)?
                .into_file()
                .with_context(ctx)?;
            f.sync_all().with_context(ctx)?;
        }
        let old = sibling(&self.dest, "old");
        let replaced = occupied(&self.dest);
        if replaced {
            std::fs::rename(&self.dest, &old)
                .with_context(|| format!("cannot move old {} aside", self.dest.display()))?;
        } else if self.dest.is_dir() {
            std::fs::remove_dir(&self.dest).ok(); // empty directory: make room for the rename
        }
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.tmp.display(),
                self.dest.display()
            )
        })?;
        if replaced {
            tempfiles::remove_path(&old).ok(); // what is left is removed by the next run
        }
        Ok(self.dest.clone())
    }
}

impl Drop for DatasetWriter {
    /// An unfinished writer (error or panic) removes its temporary output.
    fn drop(&mut self) {
        drop(self.out.take()); // close the zip before its file goes
        tempfiles::remove_path(&self.tmp).ok();
    }
}
