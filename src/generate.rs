//! `fpgan generate`: images from a trained generator (G_ema in eval mode). Latents come from
//! numpy's `RandomState(seed).randn(1, z_dim)` as in the reference's gen_images.py, and torch's RNG
//! (NoiseInjection) is seeded per image, so one seed always gives the same image. Images are
//! `clamp(x*127.5 + 128, 0, 255)` truncated to uint8 (reference section 11). A latent walk
//! (spherical interpolation through the seeds, looping) is written as GIF or PNG frames.
use crate::checkpoint;
use crate::generator::Generator;
use crate::grid;
use crate::rng::NumpyRandomState;
use crate::run::snapshots_in;
use crate::training::SnapshotMeta;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Parse `0-63`, `1,5,9` or a mix like `0-3,10`.
pub fn parse_seeds(s: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("bad --seeds '{s}': use e.g. 0-63 or 1,5,9");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if b < a {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        bail!("--seeds is empty");
    }
    Ok(out)
}

/// The latent of `seed`: numpy RandomState(seed).randn(1, z_dim), as float32.
pub fn seed_latent(seed: u32, z_dim: i64) -> Tensor {
    let mut rs = NumpyRandomState::new(seed);
    let v: Vec<f32> = (0..z_dim).map(|_| rs.randn() as f32).collect();
    Tensor::from_slice(&v).view([1, z_dim])
}

/// Generator output to uint8 as the reference's metrics and gen_images: trunc(clamp(x*127.5+128)).
pub fn to_uint8(x: &Tensor) -> Tensor {
    (x * 127.5 + 128.0).clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// A trained generator (G_ema) loaded from a snapshot or the newest snapshot of a run directory.
pub struct Network {
    pub g: Generator,
    pub source: PathBuf,
    vs: VarStore,
}

impl Network {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let file = if path.is_dir() {
            newest_snapshot(path).with_context(|| {
                format!(
                    "{} holds no network-snapshot-*.safetensors (nor do its run directories)",
                    path.display()
                )
            })?
        } else if path.is_file() {
            path.to_path_buf()
        } else {
            bail!(
                "--network {}: no such snapshot file or run directory",
                path.display()
            );
        };
        let (t, meta) = checkpoint::load(&file)?;
        let snap = SnapshotMeta::from_json(&meta, &file)?;
        let mut vs = VarStore::new(device);
        let g = Generator::new(&vs.root(), &snap.generator)?;
        checkpoint::import(&vs, "G_ema.", &t, |_| true, &file)?;
        vs.freeze();
        Ok(Network {
            g,
            source: file,
            vs,
        })
    }

    /// One image (uint8 3xRxR) for latent `z`, with the noise seeded by `noise_seed`.
    pub fn image(&self, z: &Tensor, noise_seed: i64) -> Tensor {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(noise_seed);
        let dev = self.vs.device();
        to_uint8(&self.g.forward_t(&z.to_device(dev), false)).get(0)
    }
}

/// The newest snapshot of a run directory, or of the newest run (highest `NNNNN-` prefix) with
/// snapshots in an output directory.
pub fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    if let Some(s) = snapshots_in(dir).into_iter().next() {
        return Some(s);
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    runs.iter()
        .rev()
        .find_map(|r| snapshots_in(r).into_iter().next())
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

/// Write the frames of a looping walk through `seeds`, `frames` per transition.
pub fn latent_walk(
    net: &Network,
    seeds: &[u32],
    frames: usize,
    format: WalkFormat,
    outdir: &Path,
) -> Result<PathBuf> {
    let z_dim = net.g.config.z_dim;
    let zs: Vec<Tensor> = seeds.iter().map(|&s| seed_latent(s, z_dim)).collect();
    let n = zs.len();
    let mut images = Vec::with_capacity(n * frames);
    let pb = crate::progress::bar((n * frames) as u64, "frames");
    for i in 0..n {
        for f in 0..frames {
            let z = slerp(&zs[i], &zs[(i + 1) % n], f as f64 / frames as f64);
            images.push(grid::to_image(&net.image(&z, 0))?);
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
                grid::save_png(img, &dir.join(format!("frame{k:05}.png")))?;
            }
            Ok(dir)
        }
        WalkFormat::Gif => {
            use image::codecs::gif::{GifEncoder, Repeat};
            let path = outdir.join("walk.gif");
            checkpoint::atomic_write(&path, |w| {
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
