//! The options of a training run, with the reference's defaults and their validation: one
//! `TrainOptions`, saved as `training_options.json` and in every snapshot.
use crate::data::{Background, DataPrint, RawFit, Transform};
use crate::eval::metrics::{check_num_gen, parse_metrics};
use crate::fastpath::{cuda_graph, FastPath};
use crate::nets::generator::{GenCfg, GeneratorConfig};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in a run directory holding the options of its latest start or resume.
pub const OPTIONS_FILE: &str = "training_options.json";

/// Everything that defines a run (saved as training_options.json and in every snapshot).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub dataset_name: String,
    /// The images' count and checksum when the run (re)started (none for made-up data and for
    /// runs written before it was recorded, or in another layout).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub dataset: Option<DataPrint>,
    /// How raw images were fitted when prepared in memory (`--transform`, `--background`; none
    /// for a prepared dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
    pub outdir: PathBuf,
    pub cfg: GenCfg,
    pub resolution: i64,
    pub ngf: i64,
    /// Latent size (reference 256).
    #[serde(default = "default_z_dim")]
    pub z_dim: i64,
    /// Classes of a class-conditional model (0: unconditional).
    #[serde(default)]
    pub classes: i64,
    /// Adam learning rate of G and D (D's scaled by 16/17 as the reference's).
    #[serde(default = "default_lr")]
    pub lr: f64,
    pub batch: i64,
    pub batch_gpu: i64,
    /// Data-parallel processes, one per GPU (the reference's `--gpus`): each takes
    /// `batch / gpus` images of every batch.
    #[serde(default = "default_gpus")]
    pub gpus: i64,
    pub kimg: f64,
    pub tick: f64,
    pub snap: i64,
    pub mirror: bool,
    pub seed: u64,
    pub keep: usize,
    pub metrics: Vec<String>,
    /// Generated images per evaluation instead of the metric's count (quick looks).
    #[serde(default)]
    pub metrics_num_gen: Option<usize>,
    pub device: String,
    pub desc: Option<String>,
    /// Columns and rows of the sample grids.
    pub grid: (i64, i64),
    /// bf16 autocast, channels_last, TF32, CUDA graphs, deterministic kernels (all off: the
    /// reference's fp32 NCHW, cuDNN picking its algorithms by timing).
    #[serde(flatten)]
    pub fast: FastPath,
}

/// A field that reads as None where it does not parse (an earlier layout of it).
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

impl TrainOptions {
    /// The reference's defaults (batch 64, 25000 kimg, tick 4, snap 50, fid50k_full, seed 0) for
    /// `cfg` at `resolution` on `data`, written under `runs`.
    pub fn reference(data: &Path, dataset_name: &str, cfg: GenCfg, resolution: i64) -> Self {
        TrainOptions {
            data: data.to_path_buf(),
            dataset_name: dataset_name.to_string(),
            dataset: None,
            transform: None,
            background: None,
            outdir: PathBuf::from("runs"),
            cfg,
            resolution,
            ngf: 128,
            z_dim: 256,
            classes: 0,
            lr: DEFAULT_LR,
            batch: 64,
            batch_gpu: 64,
            gpus: 1,
            kimg: 25000.0,
            tick: 4.0,
            snap: 50,
            mirror: false,
            seed: 0,
            keep: 3,
            metrics: vec!["fid50k_full".into()],
            metrics_num_gen: None,
            device: "auto".into(),
            desc: None,
            grid: Self::reference_grid(resolution),
            fast: FastPath::default(),
        }
    }

    /// The reference's settings for networks run on made-up data (bench, check, tests): no
    /// dataset (`what` names it) and no metrics.
    pub fn without_data(what: &str, cfg: GenCfg, resolution: i64) -> Self {
        TrainOptions {
            metrics: vec!["none".into()],
            ..Self::reference(Path::new(what), what, cfg, resolution)
        }
    }

    pub fn generator_config(&self) -> GeneratorConfig {
        GeneratorConfig {
            ngf: self.ngf,
            z_dim: self.z_dim,
            classes: self.classes,
            ..GeneratorConfig::new(self.cfg, self.resolution)
        }
    }

    /// Images of every batch that one process trains on.
    pub fn batch_per_process(&self) -> i64 {
        self.batch / self.gpus
    }

    /// The run directory name without its numeric prefix.
    pub fn run_desc(&self) -> String {
        let gpus = match self.gpus {
            1 => String::new(),
            n => format!("-gpus{n}"),
        };
        let mut d = format!(
            "{}-{}{gpus}-batch{}",
            self.cfg, self.dataset_name, self.batch
        );
        if self.classes > 0 {
            d.push_str("-cond");
        }
        if let Some(x) = &self.desc {
            d.push('-');
            d.push_str(x);
        }
        d
    }

    /// The options that shape training (not where it writes, how long it runs, what it
    /// measures) whose values differ from `before`'s, as `--flag now (was before)`.
    pub fn changes_from(&self, before: &TrainOptions) -> Vec<String> {
        // the data by its name: its path may be written another way (relative, a slash); its
        // content has a note of its own (data_change_from)
        const UNSHAPING: [&str; 12] = [
            "data",
            "dataset",
            "outdir",
            "kimg",
            "tick",
            "snap",
            "keep",
            "metrics",
            "metrics_num_gen",
            "device",
            "desc",
            "grid",
        ];
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::Bool(b) => (if *b { "on" } else { "off" }).to_string(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let (now, was) = (serde_json::json!(self), serde_json::json!(before));
        let (Some(now), Some(was)) = (now.as_object(), was.as_object()) else {
            return Vec::new();
        };
        // the fit of raw images compares where both runs say it (none: a prepared dataset, or
        // a run from before it was recorded)
        let unknown_fit = |k: &str, v: &serde_json::Value, w: &serde_json::Value| {
            ["transform", "background"].contains(&k) && (v.is_null() || w.is_null())
        };
        now.iter()
            .filter(|(k, _)| !UNSHAPING.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let w = was.get(k).unwrap_or(&serde_json::Value::Null);
                if unknown_fit(k, v, w) {
                    return None;
                }
                let flag = match k.as_str() {
                    "dataset_name" => "--data".to_string(),
                    k => format!("--{}", k.replace('_', "-")),
                };
                (v != w).then(|| format!("{flag} {} (was {})", show(v), show(w)))
            })
            .collect()
    }

    /// How raw --data was fitted (none for a prepared dataset).
    pub fn fit(&self) -> RawFit {
        RawFit {
            transform: self.transform,
            background: self.background,
        }
    }

    /// A note when the data's images differ from those `before` was recorded with: the same
    /// dataset by name, prepared the same way where both runs say how (another dataset or
    /// fit is named among the changed options, see [`TrainOptions::changes_from`]).
    pub fn data_change_from(&self, before: &TrainOptions) -> Option<String> {
        let (Some(now), Some(was)) = (self.dataset, before.dataset) else {
            return None;
        };
        let refit = matches!((self.transform, before.transform), (Some(x), Some(y)) if x != y)
            || matches!((self.background, before.background), (Some(x), Some(y)) if x != y);
        if self.dataset_name != before.dataset_name {
            return None;
        }
        // prepared another way (named among the changed options), the pixels differ anyway:
        // the count and labels still compare
        let was = match refit {
            true => DataPrint {
                pixels_crc32c: now.pixels_crc32c,
                ..was
            },
            false => was,
        };
        let how = now.change_from(&was, self.classes > 0)?;
        Some(format!(
            "note: {} changed since the snapshot was written ({how}): training goes on with the data as it is now (--resume none starts a new run on it)",
            self.data.display()
        ))
    }

    pub fn validate(&self) -> Result<()> {
        self.generator_config().validate()?;
        if !(1..=MAX_GPUS).contains(&self.gpus) {
            bail!("--gpus {} must be 1 to {MAX_GPUS}", self.gpus);
        }
        if self.fast.cuda_graphs {
            let device = crate::util::device::parse_device(&self.device).ok();
            cuda_graph::check_supported(device, self.gpus > 1)?;
        }
        if self.batch < 1 {
            bail!(
                "--batch {} must be at least 1 (the reference uses 64)",
                self.batch
            );
        }
        if self.batch_gpu < 1 {
            bail!("--batch-gpu {} must be at least 1", self.batch_gpu);
        }
        if self.batch % (self.gpus * self.batch_gpu) != 0 {
            let procs = match self.gpus {
                1 => String::new(),
                n => format!("{n} processes (--gpus x --nnodes) times "),
            };
            bail!(
                "--batch {} must be a positive multiple of {procs}--batch-gpu {}",
                self.batch,
                self.batch_gpu
            );
        }
        let batch_bytes = self.batch as f64 * 3.0 * (self.resolution * self.resolution) as f64;
        if self.batch > MAX_BATCH || batch_bytes > MAX_BATCH_BYTES {
            bail!(
                "--batch {} is too large at {r}x{r} (at most {MAX_BATCH} and {} GB of images per batch; the reference uses 64)",
                self.batch,
                MAX_BATCH_BYTES / 1e9,
                r = self.resolution
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            bail!("--lr {} must be a positive learning rate, at most 1 (the reference uses {DEFAULT_LR})", self.lr);
        }
        check_kimg("--kimg", self.kimg)?;
        check_kimg("--tick", self.tick)?;
        if self.keep < 1 {
            bail!("--keep 0 must be at least 1 (the newest snapshot is what a resume continues)");
        }
        if self.snap < 1 {
            bail!(
                "--snap {} must be at least 1 (ticks between snapshots)",
                self.snap
            );
        }
        parse_metrics(&self.metrics.join(","))?;
        check_num_gen(self.metrics_num_gen)?;
        if let Some(d) = &self.desc {
            check_desc(d)?;
        }
        Ok(())
    }

    /// The reference grid: clip(7680 // R, 7, 32) x clip(4320 // R, 4, 32) images.
    pub fn reference_grid(resolution: i64) -> (i64, i64) {
        (
            (7680 / resolution).clamp(7, 32),
            (4320 / resolution).clamp(4, 32),
        )
    }
}

/// `--desc` ends the run directory's name: anything but a path.
fn check_desc(desc: &str) -> Result<()> {
    if desc.is_empty() || desc.contains(['/', '\\', '\0']) {
        bail!("--desc '{desc}' must be a name for the run directory, without / or \\");
    }
    Ok(())
}

/// The reference's learning rate of G and D for the FastGAN generators.
pub const DEFAULT_LR: f64 = 2e-4;

fn default_gpus() -> i64 {
    1
}

/// Most data-parallel processes of one run.
pub const MAX_GPUS: i64 = 1024;

fn default_z_dim() -> i64 {
    256
}

fn default_lr() -> f64 {
    DEFAULT_LR
}

/// Largest `--batch` accepted, and most bytes of uint8 images in one batch (the loader holds a
/// few such batches in memory).
pub const MAX_BATCH: i64 = 4096;
pub const MAX_BATCH_BYTES: f64 = 8e9;

/// Longest run accepted: 10 billion images (the reference trains 25000 kimg).
pub const MAX_KIMG: f64 = 1e7;

/// A length in kimg: finite, positive and at most [`MAX_KIMG`].
pub fn check_kimg(flag: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0 && v <= MAX_KIMG) {
        let v = match v.abs() >= 1e9 {
            true => format!("{v:e}"), // 1e30, not 31 digits
            false => v.to_string(),
        };
        bail!("{flag} {v} must be a positive number of thousands of images, at most {MAX_KIMG}");
    }
    Ok(())
}

/// The train options that set a generator configuration, as a user types them (the classes of
/// a `--cond` model come from its dataset).
pub fn generator_flags(g: &GeneratorConfig) -> String {
    let z = if g.z_dim == 256 {
        String::new()
    } else {
        format!(" --z-dim {}", g.z_dim)
    };
    let cond = if g.classes > 0 { " --cond" } else { "" };
    format!(
        "--cfg {} --res {} --ngf {}{z}{cond}",
        g.cfg, g.resolution, g.ngf
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_change_is_noted_by_count_pixels_or_labels_and_not_otherwise() {
        let with = |images, pixels, labels, classes| TrainOptions {
            dataset: Some(DataPrint {
                images,
                pixels_crc32c: pixels,
                labels_crc32c: labels,
            }),
            classes,
            ..TrainOptions::reference(Path::new("pics"), "pics", GenCfg::Faster, 256)
        };
        let a = with(10, 7, 1, 0);
        assert_eq!(a.data_change_from(&with(10, 7, 1, 0)), None);
        assert!(
            a.changes_from(&with(11, 8, 1, 0)).is_empty(),
            "not an option change"
        );
        let n = a.data_change_from(&with(11, 7, 1, 0)).unwrap();
        assert!(
            n.starts_with("note: pics changed") && n.contains("(10 images, 11 before)"),
            "{n}"
        );
        let n = a.data_change_from(&with(10, 8, 1, 0)).unwrap();
        assert!(
            n.contains("the same number of images (10), other pixels"),
            "{n}"
        );
        // labels count in a conditional run only
        assert_eq!(a.data_change_from(&with(10, 7, 2, 0)), None);
        let cond = with(10, 7, 1, 3);
        let n = cond.data_change_from(&with(10, 7, 2, 3)).unwrap();
        assert!(n.contains("the same images, other labels"), "{n}");
        // another dataset, or a run from before the checksums: no note
        let other = TrainOptions {
            dataset_name: "photos".into(),
            ..with(11, 8, 1, 0)
        };
        assert_eq!(a.data_change_from(&other), None);
        let old = TrainOptions {
            dataset: None,
            ..a.clone()
        };
        assert_eq!(a.data_change_from(&old), None);
        // a fit both runs record and that differs is an option change, not changed pixels; a run
        // that does not record one (older, or on a prepared dataset) compares the data alone
        let fitted = |t| TrainOptions {
            transform: Some(t),
            background: Some(Background([0; 3])),
            ..with(10, 7, 1, 0)
        };
        let pad = fitted(Transform::Pad);
        let refit = TrainOptions {
            dataset: Some(DataPrint {
                pixels_crc32c: 8,
                ..pad.dataset.unwrap()
            }),
            ..fitted(Transform::Stretch)
        };
        assert_eq!(refit.data_change_from(&pad), None);
        assert_eq!(refit.changes_from(&pad), ["--transform stretch (was pad)"]);
        // ... but a count that changed is said beside it
        let refit_more = TrainOptions {
            dataset: Some(DataPrint {
                images: 11,
                ..refit.dataset.unwrap()
            }),
            ..refit.clone()
        };
        let note = refit_more.data_change_from(&pad).unwrap_or_default();
        assert!(note.contains("11 images, 10 before"), "{note}");
        assert!(refit.changes_from(&with(10, 7, 1, 0)).is_empty());
        assert!(refit.data_change_from(&with(10, 7, 1, 0)).is_some());
        // a record in an earlier layout reads as none
        let mut json = serde_json::to_value(&a).unwrap();
        json["dataset"] = serde_json::json!({"images": 10, "crc32c": 7});
        let read: TrainOptions = serde_json::from_value(json).unwrap();
        assert_eq!(read.dataset, None);
    }
}
