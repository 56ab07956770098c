//! G_ema as TorchScript for PyTorch users: `torch.jit.load("G.pt")(z)` with z of shape (1, 256)
//! (normalised inside, as in training) returns the generator's image in [-1, 1], (1, 3, R, R).
use crate::snapshot::Network;
use crate::util::atomic::TMP_TAG;
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Trace `net` (on its device) for one latent and save the module to `out`, written under a
/// temporary name and renamed. NoiseInjection draws from torch's generator when the module
/// runs, so `torch.manual_seed(s)` before a call reproduces `fpgan generate`'s image for seed s.
pub fn export_torchscript(net: &Network, out: &Path) -> Result<()> {
    let z = Tensor::randn([1, net.g.config.z_dim], (Kind::Float, net.device()));
    let module = tch::no_grad(|| {
        tch::CModule::create_by_tracing("Generator", "forward", &[z], &mut |x| {
            vec![net.g.forward_t(&x[0], false)]
        })
    })
    .context("tracing the generator failed")?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.{TMP_TAG}-{}", std::process::id()));
    let saved = module
        .save(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|_| std::fs::rename(&tmp, out).map_err(anyhow::Error::from));
    if saved.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    saved.with_context(|| {
        format!(
            "cannot write {} (disk full or not writable?)",
            out.display()
        )
    })
}
