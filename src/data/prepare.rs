//! The dataset tool's pipeline: every file of a [`Source`] is decoded, flattened onto the
//! background and fitted to the target size on all cores, then handed on in source order.
//! Unusable files are skipped with one warning line each and counted.
use super::image_ops::{decode, fit, flatten, Background, Transform};
use super::source::Source;
use crate::util::progress;
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
        }
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

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub written: usize,
    pub skipped: usize,
    /// Images whose shorter side was below the output size (enlarged, likely blurry).
    pub upscaled: usize,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images written, {} skipped, {} upscaled, in {:.1} s",
            self.written, self.skipped, self.upscaled, self.seconds
        )
    }
}

/// Process `source` and pass each usable image, in order, to `sink`.
/// Fails if no image at all could be used.
pub fn prepare(
    source: &Source,
    opts: &PrepareOptions,
    mut sink: impl FnMut(RgbImage) -> Result<()>,
) -> Result<Summary> {
    let start = Instant::now();
    let total = source.len();
    let limit = opts.max_images.unwrap_or(usize::MAX);
    let pb = progress::bar(total.min(limit) as u64, "preparing");
    let chunk = (rayon::current_num_threads() * 8).max(32);
    let mut summary = Summary::default();
    let mut next = 0;
    while next < total && summary.written < limit {
        let end = (next + chunk).min(total);
        let results: Vec<Result<(RgbImage, bool), String>> = (next..end)
            .into_par_iter()
            .map(|i| {
                let bytes = source.read(i).map_err(|e| format!("{e:#}"))?;
                let img = decode(&bytes)?;
                let upscaled = img.width().min(img.height()) < opts.width;
                let rgb = flatten(&img, opts.background);
                drop(img);
                Ok((
                    fit(
                        rgb,
                        opts.transform,
                        opts.width,
                        opts.height,
                        opts.background,
                    )?,
                    upscaled,
                ))
            })
            .collect();
        for (i, r) in (next..end).zip(results) {
            if summary.written >= limit {
                break;
            }
            match r {
                Ok((img, upscaled)) => {
                    sink(img)?;
                    summary.written += 1;
                    summary.upscaled += upscaled as usize;
                    pb.inc(1);
                }
                Err(reason) => {
                    progress::warn(
                        &pb,
                        &format!("skipping {}: {reason}", source.display_name(i)),
                    );
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
            "no usable image in {}: {} of {total} files skipped (see warnings above)",
            source.root().display(),
            summary.skipped
        );
    }
    Ok(summary)
}

/// Prepare the images of `source` (folder or zip) into the dataset `dest`, atomically
/// (see [`super::DatasetWriter`]).
pub fn prepare_into(
    source: &std::path::Path,
    dest: &std::path::Path,
    opts: &PrepareOptions,
    force: bool,
) -> Result<Summary> {
    let src = Source::open(source)?;
    let mut writer = super::DatasetWriter::create(dest, force)?.compressed(opts.compress);
    let summary = prepare(&src, opts, |img| writer.add(&img))?;
    writer.finish()?;
    Ok(summary)
}
