//! `fpgan generate`: images from a trained generator (G_ema in eval mode), one per seed, and a
//! looping latent walk through the seeds (reference section 11).
use crate::snapshot::Network;
use crate::util::atomic::atomic_write;
use crate::util::files::files_named;
use crate::util::rng::NumpyRandomState;
use crate::util::{images, progress};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The latent of `seed`: numpy's `RandomState(seed).randn(1, z_dim)` as float32, as in the
/// reference's gen_images.py. Torch's RNG (NoiseInjection) is also seeded per image, so one seed
/// always gives the same image; images are `clamp(x*127.5 + 128, 0, 255)` truncated to uint8.
pub fn seed_latent(seed: u32, z_dim: i64) -> Tensor {
    let mut rs = NumpyRandomState::new(seed);
    let v: Vec<f32> = (0..z_dim).map(|_| rs.randn() as f32).collect();
    Tensor::from_slice(&v).view([1, z_dim])
}

/// Spherical interpolation between two latents.
pub fn slerp(a: &Tensor, b: &Tensor, t: f64) -> Tensor {
    let (na, nb) = (a / a.norm(), b / b.norm());
    let dot = (&na * &nb)
        .sum(Kind::Float)
        .clamp(-1.0, 1.0)
        .double_value(&[]);
    let omega = dot.acos();
    if omega.abs() < 1e-6 {
        return a * (1.0 - t) + b * t;
    }
    let so = omega.sin();
    a * (((1.0 - t) * omega).sin() / so) + b * ((t * omega).sin() / so)
}

/// Output format of the latent walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WalkFormat {
    Gif,
    PngFrames,
}

/// The file of frame `k` of a walk written as PNG frames.
fn frame_name(k: usize) -> String {
    format!("frame{k:05}.png")
}

/// Whether `path` is a frame file as [`frame_name`] names them (five digits), numbered `count`
/// or more.
fn is_frame_past(path: &Path, count: usize) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let number = name
        .strip_prefix("frame")
        .and_then(|r| r.strip_suffix(".png")?.parse().ok());
    path.is_file()
        && number.is_some_and(|n: usize| n >= count && n < 100_000 && frame_name(n) == name)
}

/// Write the frames of a looping walk through `seeds` (spherical interpolation), `frames` per
/// transition, of `class` (a conditional network's), as GIF or PNG frames.
pub fn latent_walk(
    net: &Network,
    seeds: &[u32],
    class: Option<i64>,
    frames: usize,
    format: WalkFormat,
    outdir: &Path,
) -> Result<PathBuf> {
    let z_dim = net.g.config.z_dim;
    let zs: Vec<Tensor> = seeds.iter().map(|&s| seed_latent(s, z_dim)).collect();
    let n = zs.len();
    let mut images = Vec::with_capacity(n * frames);
    let pb = progress::bar((n * frames) as u64, "frames");
    for i in 0..n {
        for f in 0..frames {
            let z = slerp(&zs[i], &zs[(i + 1) % n], f as f64 / frames as f64);
            images.push(images::to_image(&net.image(&z, class, 0))?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    match format {
        WalkFormat::PngFrames => {
            let dir = outdir.join("walk");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (k, img) in images.iter().enumerate() {
                images::save_png(img, &dir.join(frame_name(k)))?;
            }
            // frames past these, of a longer earlier walk, would join this one as a sequence
            let stale: Vec<PathBuf> = files_named(&dir, "frame", ".png")
                .into_iter()
                .filter(|f| is_frame_past(f, images.len()))
                .collect();
            for f in &stale {
                std::fs::remove_file(f)
                    .with_context(|| format!("cannot remove {}", f.display()))?;
            }
            if !stale.is_empty() {
                println!(
                    "note: removed {} of an earlier, longer walk from {}",
                    progress::count(stale.len() as u64, "frame"),
                    dir.display()
                );
            }
            Ok(dir)
        }
        WalkFormat::Gif => {
            use image::codecs::gif::{GifEncoder, Repeat};
            let path = outdir.join("walk.gif");
            atomic_write(&path, |w| {
                let mut enc = GifEncoder::new_with_speed(w, 10);
                enc.set_repeat(Repeat::Infinite)?;
                for img in &images {
                    let rgba = image::DynamicImage::ImageRgb8(img.clone()).to_rgba8();
                    let delay = image::Delay::from_numer_denom_ms(1000, 25);
                    enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))?;
                }
                Ok(())
            })?;
            Ok(path)
        }
    }
}
