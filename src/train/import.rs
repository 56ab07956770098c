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
        copy_all(&t.gvs, &snap.g, ("", ""), pkl, "G")?;
        copy_all(&t.ema_vs, &snap.g_ema, ("", ""), pkl, "G_ema")?;
        let heads = "discriminator.";
        copy_all(&t.dvs, &snap.d, (heads, heads), pkl, "D")?;
        copy_all(
            &t.fvs,
            &snap.d,
            ("scratch.", "feature_network.scratch."),
            pkl,
            "D",
        )?;
        t.progress.cur_nimg = snap.cur_nimg.unwrap_or(0);
        t.imported_from = Some(pkl.display().to_string());
        Ok(t)
    }
}

/// Copy the pickled `tensors` named `theirs + rest` into the variables of `vs` named
/// `ours + rest`; each variable must find its tensor with its shape, and each such tensor its
/// variable (BN's num_batches_tracked aside, which fpgan does not keep).
fn copy_all(
    vs: &VarStore,
    tensors: &Tensors,
    (ours, theirs): (&str, &str),
    pkl: &Path,
    what: &str,
) -> Result<()> {
    let map: BTreeMap<String, Tensor> = tensors
        .iter()
        .filter(|(n, _)| n.starts_with(theirs) && !n.ends_with(".num_batches_tracked"))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let hint = format!("its {what} is not the official network fpgan knows");
    let key = |n: &str| n.strip_prefix(ours).map(|rest| format!("{theirs}{rest}"));
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
