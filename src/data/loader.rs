//! A prepared dataset (ours or the official dataset_tool.py's; a raw folder or zip is prepared on
//! the fly) in memory as uint8 NCHW RGB, with the reference's optional x-flip mirroring.
use super::image_ops::{decode, flatten, Background, Transform};
use super::labels::{label_entry, label_vector_len};
use super::prepare::{prepare, PrepareOptions, RawFit};
use super::source::Source;
use crate::util::progress;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Tensor;

/// A dataset in memory. Indices [0, N) are the images, [N, 2N) the same images flipped
/// horizontally when mirrored. Reads the reference layout (a directory or zip with
/// `dataset.json`, made by fpgan or the official dataset_tool.py); a raw folder or zip without
/// `dataset.json` is prepared on the fly instead.
pub struct ImageSet {
    /// Dataset name: the file or folder name without extension (used in run directory names).
    pub name: String,
    /// Side of the square images.
    pub resolution: usize,
    /// Whether x-flipped copies follow the originals.
    pub mirror: bool,
    count: usize,
    /// CHW uint8 pixels of every original image, back to back.
    pixels: Vec<u8>,
    /// The class of every image (dataset.json's `labels`), or None for an unlabelled set.
    pub labels: Option<Vec<i64>>,
    /// The length of dataset.json's label vectors (0 for class indices).
    label_dim: i64,
    /// How the images were fitted when prepared in memory (None: read from a prepared dataset).
    pub fit: Option<(Transform, Background)>,
}

/// The class of each file of `source` from its dataset.json's reference-format `labels`; None
/// for an unlabelled set, and for labels that leave an image without a non-negative class (an
/// unconditional run does not need them; `fpgan dataset --labels` never writes such a set).
/// With them, the length of its label vectors (0 for class indices, or vectors of mixed length).
fn read_labels(source: &Source) -> Result<(Option<Vec<i64>>, i64)> {
    let Some(json) = source.dataset_json()? else {
        return Ok((None, 0));
    };
    let Some(entries) = json["labels"].as_array() else {
        return Ok((None, 0));
    };
    let by_name: std::collections::HashMap<String, i64> =
        entries.iter().filter_map(label_entry).collect();
    let labels = (0..source.len())
        .map(|i| by_name.get(source.name(i)).copied().filter(|l| *l >= 0))
        .collect();
    Ok((
        labels,
        label_vector_len(entries).ok().flatten().unwrap_or(0),
    ))
}

/// What a run trained on, to notice on resume that the data changed: the number of images, a
/// checksum of their size and pixels, and one of their labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPrint {
    pub images: usize,
    pub pixels_crc32c: u32,
    pub labels_crc32c: u32,
}

impl DataPrint {
    /// How the data of `self` differs from `before`'s (labels only where `labels_matter`: a
    /// conditional run), or None.
    pub fn change_from(&self, before: &DataPrint, labels_matter: bool) -> Option<String> {
        if self.images != before.images {
            Some(format!("{} images, {} before", self.images, before.images))
        } else if self.pixels_crc32c != before.pixels_crc32c {
            Some(format!(
                "the same number of images ({}), other pixels",
                self.images
            ))
        } else if labels_matter && self.labels_crc32c != before.labels_crc32c {
            Some("the same images, other labels".to_string())
        } else {
            None
        }
    }
}

/// A dataset's name: its file or folder name without extension (`.` or `..`: the folder's own
/// name).
pub fn dataset_name(path: &Path) -> String {
    let named = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
    named(path)
        .or_else(|| path.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| "dataset".into())
}

fn push_chw(pixels: &mut Vec<u8>, img: &image::RgbImage) {
    let hw = (img.width() * img.height()) as usize;
    let start = pixels.len();
    pixels.resize(start + 3 * hw, 0);
    let raw = img.as_raw();
    for p in 0..hw {
        for c in 0..3 {
            pixels[start + c * hw + p] = raw[3 * p + c];
        }
    }
}

impl ImageSet {
    /// Read a prepared dataset: every file with an image extension, sorted by path. All images
    /// must be square and of one size; gray images become RGB, transparency goes onto white.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_source(Source::open(path)?, path)
    }

    /// [`ImageSet::open`] of `source`, opened from `path` already.
    fn open_source(mut source: Source, path: &Path) -> Result<Self> {
        source.retain_image_extensions();
        if source.is_empty() {
            bail!("{} holds no images", path.display());
        }
        let (labels, label_dim) = read_labels(&source)?;
        let pb = progress::bar(source.len() as u64, "loading");
        let images: Vec<image::RgbImage> = (0..source.len())
            .into_par_iter()
            .map(|i| {
                let bytes = source.read(i)?;
                let img = decode(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: {e}; re-create the dataset with `fpgan dataset`",
                        source.display_name(i)
                    )
                })?;
                pb.inc(1);
                Ok(flatten(&img, Background([255; 3])))
            })
            .collect::<Result<_>>()?;
        pb.finish_and_clear();
        let (w, h) = images[0].dimensions();
        let mut pixels = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
        for (i, img) in images.iter().enumerate() {
            if img.dimensions() != (w, h) || w != h {
                bail!(
                    "{} is {}x{} but a prepared dataset{} needs square images of one size \
                     ({}x{} first); prepare it with `fpgan dataset --resolution N`",
                    source.display_name(i),
                    img.width(),
                    img.height(),
                    match source.has_dataset_json() {
                        true => " (it has dataset.json)",
                        false => "",
                    },
                    w,
                    h
                );
            }
            push_chw(&mut pixels, img);
        }
        Ok(ImageSet {
            name: dataset_name(path),
            resolution: w as usize,
            mirror: false,
            count: images.len(),
            pixels,
            labels,
            label_dim,
            fit: None,
        })
    }

    /// A prepared dataset (it has `dataset.json`) is read as is; any other folder or zip of
    /// images is prepared in memory with `opts` first.
    pub fn open_or_prepare(path: &Path, opts: &PrepareOptions) -> Result<Self> {
        let source = Source::open(path)?;
        if source.has_dataset_json() {
            return Self::open_source(source, path);
        }
        let mut pixels = Vec::new();
        let mut count = 0;
        let summary = prepare(&source, opts, |_, img| {
            push_chw(&mut pixels, &img);
            count += 1;
            Ok(())
        })
        .with_context(|| format!("preparing {} on the fly", path.display()))?;
        crate::util::early_log::say(&format!(
            "prepared {} in memory: {}",
            path.display(),
            summary.counts("")
        ));
        Ok(ImageSet {
            name: dataset_name(path),
            resolution: opts.width as usize,
            mirror: false,
            count,
            pixels,
            labels: None,
            label_dim: 0,
            fit: Some((opts.transform, opts.background)),
        })
    }

    /// The images' count and checksums (x-flips aside: `--mirror` is an option of its own).
    pub fn fingerprint(&self) -> DataPrint {
        let crc = crc32c::crc32c(&(self.resolution as u64).to_le_bytes());
        let mut labels = crc32c::crc32c(&[self.labels.is_some() as u8]);
        for l in self.labels.iter().flatten() {
            labels = crc32c::crc32c_append(labels, &l.to_le_bytes());
        }
        DataPrint {
            images: self.count,
            pixels_crc32c: crc32c::crc32c_append(crc, &self.pixels),
            labels_crc32c: labels,
        }
    }

    /// [`ImageSet::open_or_prepare`] at `resolution` with the `given` fit, else `fallback`'s; a
    /// prepared dataset refuses a given one (the fallback does not apply to it).
    pub fn open_or_fit(
        path: &Path,
        resolution: u32,
        given: RawFit,
        fallback: RawFit,
    ) -> Result<Self> {
        let set = Self::open_or_prepare(path, &given.or(fallback).prepare_options(resolution))?;
        given.check_not_prepared(path, set.fit.is_none())?;
        Ok(set)
    }

    /// Add (or remove) the x-flipped copies.
    pub fn with_mirror(mut self, mirror: bool) -> Self {
        self.mirror = mirror;
        self
    }

    /// Number of distinct images on disk.
    pub fn num_images(&self) -> usize {
        self.count
    }

    /// Number of training items: twice the images with mirroring.
    pub fn len(&self) -> usize {
        self.count * if self.mirror { 2 } else { 1 }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn image_size(&self) -> usize {
        3 * self.resolution * self.resolution
    }

    /// Item `idx` as CHW uint8 (flipped along W for idx >= num_images()).
    pub fn item(&self, idx: usize) -> Vec<u8> {
        assert!(idx < self.len(), "item {idx} out of range {}", self.len());
        let n = self.image_size();
        let src = &self.pixels[(idx % self.count) * n..][..n];
        if idx < self.count {
            return src.to_vec();
        }
        let r = self.resolution;
        src.chunks_exact(r)
            .flat_map(|row| row.iter().rev().copied())
            .collect()
    }

    /// Items `indices` as a uint8 tensor of shape (B, 3, R, R).
    pub fn batch(&self, indices: &[usize]) -> Tensor {
        let mut buf = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            buf.extend_from_slice(&self.item(i));
        }
        let r = self.resolution as i64;
        Tensor::from_slice(&buf).view([indices.len() as i64, 3, r, r])
    }

    /// Number of classes of a labelled set (largest label + 1, or the length of its label
    /// vectors, as the reference's `c_dim`), else 0.
    pub fn classes(&self) -> i64 {
        self.labels
            .as_ref()
            .and_then(|l| l.iter().max())
            .map_or(0, |m| (m + 1).max(self.label_dim))
    }

    /// The classes of items `indices` as an int64 tensor (B), or None for an unlabelled set.
    pub fn batch_labels(&self, indices: &[usize]) -> Option<Tensor> {
        let labels = self.labels.as_ref()?;
        let v: Vec<i64> = indices.iter().map(|&i| labels[i % self.count]).collect();
        Some(Tensor::from_slice(&v))
    }

    /// Every item as one uint8 tensor (len(), 3, R, R).
    pub fn to_tensor(&self) -> Tensor {
        let all: Vec<usize> = (0..self.len()).collect();
        self.batch(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_given_as_dot_is_named_by_its_folder() {
        let here = std::env::current_dir().unwrap();
        let name = here.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(dataset_name(Path::new(".")), name);
        assert_eq!(dataset_name(Path::new("pics/pokemon.zip")), "pokemon");
        assert_eq!(dataset_name(Path::new("pics/")), "pics");
    }
}
