//! A small built-in image set for the demo: random coloured discs and boxes on a transparent
//! background, RGBA PNGs of assorted sizes, deterministic per seed (no real data needed).
use crate::util::rng::SplitMix;
use anyhow::{Context, Result};
use image::{Rgba, RgbaImage};
use std::path::Path;

/// Write `count` RGBA PNGs named `shape_NNNN.png` into `dir`.
pub fn write_shapes(dir: &Path, count: usize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = SplitMix(seed);
    for i in 0..count {
        let (w, h) = (96 + rng.below(64), 96 + rng.below(64));
        let mut img = RgbaImage::from_pixel(w, h, Rgba([0, 0, 0, 0]));
        for _ in 0..1 + rng.below(3) {
            let colour = Rgba([
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
                255,
            ]);
            let (cx, cy) = (rng.below(w) as i64, rng.below(h) as i64);
            let r = 10 + rng.below(w.min(h) / 3) as i64;
            let disc = rng.below(2) == 0;
            for (x, y, p) in img.enumerate_pixels_mut() {
                let (dx, dy) = (x as i64 - cx, y as i64 - cy);
                let inside = if disc {
                    dx * dx + dy * dy <= r * r
                } else {
                    dx.abs() <= r && dy.abs() <= r
                };
                if inside {
                    *p = colour;
                }
            }
        }
        let path = dir.join(format!("shape_{i:04}.png"));
        img.save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
