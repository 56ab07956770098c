//! `fpgan dataset`: any folder or zip of images into a training set in the reference layout.
use crate::data::labels::LabelSource;
use crate::data::{prepare_into, Background, PrepareOptions, Transform};
use crate::nets::generator::RESOLUTIONS;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// Folder (searched recursively) or .zip of images: PNG, JPEG, WebP, BMP, TIFF, GIF.
    #[arg(long)]
    pub source: PathBuf,
    /// Output: a path ending in .zip (STORED archive) or a directory.
    #[arg(long)]
    pub dest: PathBuf,
    /// Output size: a power of two (e.g. 256), or WxH with center-crop-wide.
    #[arg(long, default_value = "256")]
    pub resolution: String,
    /// How non-square images become square.
    #[arg(long, value_enum, default_value_t = Transform::CenterCrop)]
    pub transform: Transform,
    /// Colour behind transparent pixels (and padding): white, black, R,G,B or #RRGGBB.
    #[arg(long, default_value = "white")]
    pub background: Background,
    /// Stop after writing this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Replace an existing non-empty destination (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Compress the PNGs (lossless, about 4x smaller; the reference writes them uncompressed).
    #[arg(long)]
    pub compress: bool,
    /// Skip images with more pixels than this (decompression bombs); default 512 MiB of RGB.
    #[arg(long, default_value_t = crate::data::image_ops::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Class labels for conditional training: `folders` (the first folder under the source
    /// names the class; sorted names -> 0, 1, ...) or a FILE in the reference's dataset.json
    /// format ({"labels": [["relative/name.png", class], ...]}).
    #[arg(long, value_name = "folders|FILE")]
    pub labels: Option<LabelSource>,
}

pub fn run(a: DatasetArgs) -> Result<()> {
    let (width, height) = PrepareOptions::parse_resolution(&a.resolution, a.transform)?;
    let opts = PrepareOptions {
        width,
        height,
        transform: a.transform,
        background: a.background,
        max_images: a.max_images,
        compress: a.compress,
        max_pixels: a.max_pixels,
        labels: a.labels,
    };
    // `x.zip/` is x.zip (its trailing slash would hide that it exists)
    let dest: PathBuf = a.dest.components().collect();
    let summary = prepare_into(&a.source, &dest, &opts, a.force)?;
    let classes = match summary.classes {
        0 => String::new(),
        c => format!(
            ", {} in dataset.json",
            crate::util::progress::count(c as u64, "class")
        ),
    };
    println!(
        "dataset: {summary} -> {} ({width}x{width} RGB{classes})",
        a.dest.display()
    );
    if let Some(note) = summary.skipped_note() {
        println!("dataset: {note}");
    }
    if !RESOLUTIONS.contains(&width) {
        eprintln!(
            "warning: {width}x{width} images cannot be trained: `fpgan train` accepts 128, 256, 512 \
             or 1024 (the dataset is still written, e.g. for metrics)"
        );
    }
    Ok(())
}
