//! A trained generator (G_ema, frozen, eval mode) loaded from a snapshot file or from the newest
//! snapshot of a run directory: what `generate`, `metrics` and the demo use.
use super::files::{newest_snapshot, read_header};
use crate::nets::generator::Generator;
use crate::util::images::to_uint8;
use crate::util::safetensors::{self, NotSafetensors};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// A trained generator (G_ema) loaded from a snapshot or the newest snapshot of a run directory.
pub struct Network {
    pub g: Generator,
    pub source: PathBuf,
    /// The training options saved with a training snapshot (None in others).
    pub training_options: Option<serde_json::Value>,
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
        let (t, meta) = safetensors::load(&file).map_err(|e| {
            let pickle = file.extension().is_some_and(|x| x == "pkl");
            let advice = match (e.is::<NotSafetensors>(), pickle) {
                (true, true) => format!(
                    ": an official pickle is imported first (fpgan import --pkl {} --out DIR), then given as --network DIR",
                    file.display()
                ),
                (true, false) => {
                    ": --network takes a network-snapshot-*.safetensors file or a run directory".into()
                }
                (false, _) => "; give an earlier snapshot of the run (--network <file>)".into(),
            };
            anyhow::anyhow!("{e:#}{advice}")
        })?;
        let header = read_header(&meta, &file)?;
        let mut vs = VarStore::new(device);
        let g = Generator::new(&vs.root(), &header.generator)
            .with_context(|| format!("{}: unusable generator configuration", file.display()))?;
        safetensors::import(&vs, "G_ema.", &t, |_| true, &file)?;
        vs.freeze();
        Ok(Network {
            g,
            source: file,
            training_options: meta.get("options").cloned(),
            vs,
        })
    }

    /// The device the generator's weights are on.
    pub fn device(&self) -> tch::Device {
        self.vs.device()
    }

    /// One image (uint8 3xRxR) for latent `z` (of class `class` for a conditional generator),
    /// with the noise seeded by `noise_seed`.
    pub fn image(&self, z: &Tensor, class: Option<i64>, noise_seed: i64) -> Tensor {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(noise_seed);
        let dev = self.vs.device();
        let label = class.map(|c| Tensor::from_slice(&[c]).to_device(dev));
        let img = self.g.forward_c(&z.to_device(dev), label.as_ref(), false);
        to_uint8(&img).get(0)
    }

    /// Classes of a conditional generator (0: unconditional).
    pub fn classes(&self) -> i64 {
        self.g.config.classes
    }
}
