//! G_ema as TorchScript for PyTorch users: `torch.jit.load("G.pt")(z)` with z of shape (B, 256)
//! (normalised inside, as in training), or `G(z, c)` with c one-hot (B, C) for a class-conditional
//! generator (the official `G(z, c)`), returns the generator's images in [-1, 1], (B, 3, R, R).
use crate::snapshot::Network;
use crate::util::atomic::atomic_write_path;
use crate::util::files::FileKind;
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// What `export` writes: a TorchScript archive, a zip holding `<name>/constants.pkl` and
/// `<name>/code/...` as torch.jit.save lays it out (not any zip: a dataset, or a torch.save
/// checkpoint, which has no code).
pub const TORCHSCRIPT_FILE: FileKind = FileKind {
    what: "a TorchScript file",
    is: is_torchscript,
};

fn is_torchscript(path: &Path) -> bool {
    let Ok(Ok(zip)) = std::fs::File::open(path).map(zip::ZipArchive::new) else {
        return false;
    };
    let inside: Vec<&str> = zip
        .file_names()
        .filter_map(|n| Some(n.split_once('/')?.1))
        .collect();
    inside.contains(&"constants.pkl") && inside.iter().any(|r| r.starts_with("code/"))
}

/// Trace `net` (on its device) and save the module to `out` atomically. No size in G's forward
/// depends on the batch, so the module takes any batch. NoiseInjection draws from torch's
/// generator when the module runs, so `torch.manual_seed(s)` before a call with one latent
/// reproduces `fpgan generate`'s image for seed s.
pub fn export_torchscript(net: &Network, out: &Path) -> Result<()> {
    let dev = net.device();
    let batch = 2; // not 1: nothing may be traced as broadcasting over a batch of one
    let mut inputs = vec![Tensor::randn(
        [batch, net.g.config.z_dim],
        (Kind::Float, dev),
    )];
    if net.classes() > 0 {
        inputs.push(Tensor::zeros([batch, net.classes()], (Kind::Float, dev)));
    }
    let module = tch::no_grad(|| {
        tch::CModule::create_by_tracing("Generator", "forward", &inputs, &mut |x| {
            let labels = x.get(1).map(|c| c.argmax(1, false));
            vec![net.g.forward_c(&x[0], labels.as_ref(), false)]
        })
    })
    .context("tracing the generator failed")?;
    atomic_write_path(out, |tmp| Ok(module.save(tmp)?))
}
