//! The dataset tool's pipeline: every file decoded, flattened and fitted on all cores, handed on
//! in source order; unusable files are skipped with one warning each and counted.
use super::image_ops::{decode_limited, fit, flatten, Background, Transform, DEFAULT_MAX_PIXELS};
use super::labels::{LabelSource, Labeling};
use super::source::{max_file_bytes, Source};
use crate::util::progress::{self, count};
use anyhow::{bail, Result};
use image::RgbImage;
use rayon::prelude::*;
use std::time::Instant;

#[derive(Clone, Debug, serde::Serialize)]
pub struct PrepareOptions {
    /// Output side (a power of two); images are `width` x `width`.
    pub width: u32,
    /// Content height; equals `width` except with `center-crop-wide`.
    pub height: u32,
    pub transform: Transform,
    #[serde(skip)]
    pub background: Background,
    pub max_images: Option<usize>,
    /// Deflate-compress the output PNGs (the reference writes them uncompressed).
    pub compress: bool,
    /// Larger images are skipped with a warning (decompression bombs).
    pub max_pixels: u64,
    /// Class labels to write into dataset.json (conditional training), or none.
    #[serde(skip)]
    pub labels: Option<LabelSource>,
}

impl PrepareOptions {
    /// Square output at `resolution` with the defaults (center-crop on white).
    pub fn square(resolution: u32) -> Self {
        PrepareOptions {
            width: resolution,
            height: resolution,
            transform: Transform::CenterCrop,
            background: Background([255; 3]),
            max_images: None,
            compress: false,
            max_pixels: DEFAULT_MAX_PIXELS,
            labels: None,
        }
    }

    /// Refuse options that cannot give a dataset.
    pub fn validate(&self) -> Result<()> {
        if self.max_images == Some(0) {
            bail!("--max-images 0 would write no image: give 1 or more, or leave it out to use every image");
        }
        if self.max_pixels == 0 {
            bail!("--max-pixels 0 would skip every image: give a positive limit (default {DEFAULT_MAX_PIXELS})");
        }
        Ok(())
    }

    /// Parse `--resolution` as `N` or `WxH` (H < W only with center-crop-wide).
    pub fn parse_resolution(spec: &str, transform: Transform) -> Result<(u32, u32)> {
        let bad = || {
            anyhow::anyhow!(
                "bad --resolution '{spec}': give a power of two such as 256 (or WxH with center-crop-wide)"
            )
        };
        let (w, h) = match spec.split_once(['x', 'X']) {
            Some((w, h)) => (
                w.trim().parse::<u32>().map_err(|_| bad())?,
                h.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let r = spec.trim().parse::<u32>().map_err(|_| bad())?;
                (r, r)
            }
        };
        if !w.is_power_of_two() || !(4..=4096).contains(&w) {
            bail!("--resolution {w} is not a power of two between 4 and 4096 (e.g. 128, 256, 512, 1024)");
        }
        if h == 0 || h > w || (h != w && transform != Transform::CenterCropWide) {
            bail!("--resolution {w}x{h}: non-square sizes need --transform center-crop-wide and height <= width");
        }
        Ok((w, h))
    }
}

/// How images that are not a prepared dataset are fitted when a command prepares them in memory
/// (`train`, `metrics`): `fpgan dataset`'s --transform and --background, None for its defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawFit {
    pub transform: Option<Transform>,
    pub background: Option<Background>,
}

impl RawFit {
    /// Square options at `resolution` with this fit.
    pub fn prepare_options(&self, resolution: u32) -> PrepareOptions {
        let mut opts = PrepareOptions::square(resolution);
        (opts.transform, opts.background) = self.resolved();
        opts
    }

    /// The transform and background in force: these, or `fpgan dataset`'s defaults.
    pub fn resolved(&self) -> (Transform, Background) {
        let defaults = PrepareOptions::square(1);
        (
            self.transform.unwrap_or(defaults.transform),
            self.background.unwrap_or(defaults.background),
        )
    }

    /// This fit where it is given, else `other`'s.
    pub fn or(self, other: RawFit) -> RawFit {
        RawFit {
            transform: self.transform.or(other.transform),
            background: self.background.or(other.background),
        }
    }

    /// Refuse a fit given for `data` when it is a prepared dataset: its images are used as
    /// they are.
    pub fn check_not_prepared(&self, data: &std::path::Path, prepared: bool) -> Result<()> {
        let flags: Vec<&str> = [
            self.transform.map(|_| "--transform"),
            self.background.map(|_| "--background"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if prepared && !flags.is_empty() {
            let flags = flags.join(" and ");
            bail!(
                "{flags}: {} is a prepared dataset (it has dataset.json), so its images are used as they are; drop {flags}, or give the original images",
                data.display()
            );
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub written: usize,
    pub skipped: usize,
    /// Images the transform enlarged (likely blurry).
    pub upscaled: usize,
    pub seconds: f64,
    /// Classes of a labelled dataset (0 when unlabelled).
    pub classes: usize,
}

impl std::fmt::Display for Summary {
    /// `12 images written, 1 skipped, 9 upscaled, in 0.4 s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.counts(" written"))
    }
}

impl Summary {
    /// The counts and time, `done` after the images' count (` written`, or nothing).
    pub fn counts(&self, done: &str) -> String {
        format!(
            "{}{done}, {} skipped, {} upscaled, in {:.1} s",
            count(self.written as u64, "image"),
            self.skipped,
            self.upscaled,
            self.seconds
        )
    }

    /// Where the skipped files are named, `None` when there are none.
    pub fn skipped_note(&self) -> Option<String> {
        match self.skipped {
            0 => None,
            1 => Some("the skipped file is named in the warning above".into()),
            n => Some(format!(
                "the {n} skipped files are named in the warnings above"
            )),
        }
    }
}

/// Process `source` and pass each usable image, in order, to `sink` with its index in `source`.
/// Fails if no image at all could be used.
pub fn prepare(
    source: &Source,
    opts: &PrepareOptions,
    mut sink: impl FnMut(usize, RgbImage) -> Result<()>,
) -> Result<Summary> {
    opts.validate()?;
    let start = Instant::now();
    let total = source.len();
    if total == 0 {
        bail!(
            "{} holds no files to prepare (hidden files and dataset.json are not images)",
            source.root().display()
        );
    }
    let limit = opts.max_images.unwrap_or(usize::MAX);
    let pb = progress::bar(total.min(limit) as u64, "preparing");
    let chunk = (rayon::current_num_threads() * 8).max(32);
    let mut summary = Summary::default();
    let mut next = 0;
    while next < total && summary.written < limit {
        let end = (next + chunk).min(total);
        let results: Vec<Prepared> = (next..end)
            .into_par_iter()
            .map(|i| prepare_one(source, i, opts))
            .collect();
        for (i, r) in (next..end).zip(results) {
            if summary.written >= limit {
                break;
            }
            match r {
                Ok((img, upscaled)) => {
                    sink(i, img)?;
                    summary.written += 1;
                    summary.upscaled += upscaled as usize;
                    pb.inc(1);
                }
                Err(reason) => {
                    let name = source.display_name(i);
                    progress::warn(&pb, &format!("skipping {name}: {reason}"));
                    summary.skipped += 1;
                }
            }
        }
        next = end;
    }
    pb.finish_and_clear();
    summary.seconds = start.elapsed().as_secs_f64();
    if summary.written == 0 {
        bail!(
            "no usable image in {}: {} of {} skipped (see the {} above)",
            source.root().display(),
            summary.skipped,
            count(total as u64, "file"),
            if summary.skipped == 1 {
                "warning"
            } else {
                "warnings"
            }
        );
    }
    Ok(summary)
}

/// One file made ready to write, and whether it was enlarged; or why it is skipped.
type Prepared = Result<(RgbImage, bool), String>;

/// Read, decode (within `--max-pixels`), flatten and fit file `i` of `source`.
fn prepare_one(source: &Source, i: usize, opts: &PrepareOptions) -> Prepared {
    let bytes = source
        .read_at_most(i, max_file_bytes(opts.max_pixels))
        .map_err(|e| format!("{e:#}"))?;
    let img = decode_limited(&bytes, opts.max_pixels)?;
    let upscaled = opts
        .transform
        .enlarges(img.width(), img.height(), opts.width);
    let rgb = flatten(&img, opts.background);
    drop(img);
    let fitted = fit(
        rgb,
        opts.transform,
        opts.width,
        opts.height,
        opts.background,
    )?;
    Ok((fitted, upscaled))
}

/// Prepare the images of `source` (folder or zip) into the dataset `dest`, atomically
/// (see [`super::DatasetWriter`]). With `force` an existing dataset at `dest` is replaced;
/// anything else there, and the source itself, never is. A destination inside the source is
/// not read as input.
pub fn prepare_into(
    source: &std::path::Path,
    dest: &std::path::Path,
    opts: &PrepareOptions,
    force: bool,
) -> Result<Summary> {
    opts.validate()?;
    let mut src = Source::open(source)?;
    super::dest::check_not_source(dest, source)?;
    if let Some(rel) = super::dest::inside_source(dest, source) {
        let before = src.len();
        src.retain_names(|n| !super::dest::is_output(n, &rel));
        if src.len() < before {
            eprintln!(
                "note: leaving out {} and its temporaries: the destination is inside the source",
                dest.display()
            );
        }
    }
    let labeling = match &opts.labels {
        Some(spec) => Some(Labeling::of(&src, spec)?),
        None => Labeling::carried(&src, source)?,
    };
    let mut writer = super::DatasetWriter::create(dest, force)?.compressed(opts.compress);
    let (mut written, mut sources) = (Vec::new(), Vec::new());
    let mut summary = prepare(&src, opts, |i, img| {
        let name = super::writer::image_name(sources.len());
        if let Some(l) = &labeling {
            let Some(class) = l.of_file[i] else {
                bail!(
                    "{} is an image without a class; give it an image extension (and a class folder or label), or move it out of the source",
                    src.display_name(i)
                );
            };
            written.push((name.clone(), class));
        }
        sources.push((name, src.name(i).to_string()));
        writer.add(&img)
    })?;
    let mut metadata = serde_json::json!({ "labels": null });
    if let Some(l) = &labeling {
        let classes: Vec<i64> = written.iter().map(|(_, c)| *c).collect();
        // the cut left files unread (not: the source held just that many)
        let capped = summary.written + summary.skipped < src.len();
        l.check_every_class_used(&classes, capped)?;
        metadata = l.dataset_json(&written);
        summary.classes = l.classes.len();
    }
    // which file each image came from (the reference's readers look at `labels` only)
    metadata["sources"] = serde_json::json!(sources);
    writer.set_metadata(metadata);
    writer.finish()?;
    Ok(summary)
}
