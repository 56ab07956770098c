//! An official Projected GAN pickle as an fpgan training state: G, G_ema, the D heads and the
//! CCM/CSM projections copied by name into fresh networks of the configuration it holds.
use super::options::TrainOptions;
use super::trainer::Trainer;
use crate::snapshot::official::{OfficialSnapshot, Tensors};
use crate::util::safetensors::import_by;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Tensor};

impl Trainer {
    /// The training state an official snapshot `pkl` holds (on the CPU). The frozen trunk is
    /// fpgan's own pretrained EfficientNet-Lite0, as the official one.
    pub fn from_official(snap: &OfficialSnapshot, pkl: &Path) -> Result<Self> {
        let g = &snap.generator;
        let data = snap.dataset.clone().unwrap_or_else(|| "imported".into());
        let name = Path::new(&data)
            .file_stem()
            .map_or("imported".into(), |s| s.to_string_lossy().into_owned());
        let opts = TrainOptions {
            data: PathBuf::from(&data),
            ngf: g.ngf,
            z_dim: g.z_dim,
            classes: g.classes,
            ..TrainOptions::without_data(&name, g.cfg, g.resolution)
        };
        let mut t = Trainer::new(&opts, Device::Cpu)?;
        let all: (&str, fn(&str) -> bool) = ("", |_| true);
        copy_all(&t.gvs, &snap.g, all, pkl, "G")?;
        copy_all(&t.ema_vs, &snap.g_ema, all, pkl, "G_ema")?;
        let heads = only(&snap.d, "discriminator.");
        copy_all(&t.dvs, &heads, all, pkl, "D")?;
        let proj = only(&snap.d, "feature_network.scratch.");
        let scratch: (&str, fn(&str) -> bool) = ("feature_network.", |n| n.starts_with("scratch."));
        copy_all(&t.fvs, &proj, scratch, pkl, "D")?;
        t.progress.cur_nimg = snap.cur_nimg.unwrap_or(0);
        t.imported_from = Some(pkl.display().to_string());
        Ok(t)
    }
}

/// The tensors whose names start with `prefix`.
fn only(t: &Tensors, prefix: &str) -> Tensors {
    t.iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, x)| (n.clone(), x.shallow_clone()))
        .collect()
}

/// Copy `tensors[prefix + name]` into every variable of `vs` that `select` picks; each must be
/// there with its shape, and every tensor of `tensors` must find its variable (BN's
/// num_batches_tracked aside, which fpgan does not keep).
fn copy_all(
    vs: &VarStore,
    tensors: &Tensors,
    (prefix, select): (&str, fn(&str) -> bool),
    pkl: &Path,
    what: &str,
) -> Result<()> {
    let map: BTreeMap<String, Tensor> = tensors
        .iter()
        .filter(|(n, _)| !n.ends_with(".num_batches_tracked"))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let hint = format!("its {what} is not the official network fpgan knows");
    let key = |n: &str| select(n).then(|| format!("{prefix}{n}"));
    let filled = import_by(vs, key, &map, pkl, &hint)?;
    if filled != map.len() {
        bail!(
            "{}: {what} holds {} tensors, fpgan's {filled}; {hint}",
            pkl.display(),
            map.len()
        );
    }
    Ok(())
}
