//! G_ema as TorchScript for PyTorch users: `torch.jit.load("G.pt")(z)` with z of shape (1, 256)
//! (normalised inside, as in training) returns the generator's image in [-1, 1], (1, 3, R, R).
use crate::snapshot::Network;
use crate::util::atomic::atomic_write_path;
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Trace `net` (on its device) for one latent and save the module to `out` atomically. NoiseInjection draws from torch's generator when the module
/// runs, so `torch.manual_seed(s)` before a call reproduces `fpgan generate`'s image for seed s.
pub fn export_torchscript(net: &Network, out: &Path) -> Result<()> {
    let z = Tensor::randn([1, net.g.config.z_dim], (Kind::Float, net.device()));
    let module = tch::no_grad(|| {
        tch::CModule::create_by_tracing("Generator", "forward", &[z], &mut |x| {
            vec![net.g.forward_t(&x[0], false)]
        })
    })
    .context("tracing the generator failed")?;
    atomic_write_path(out, |tmp| Ok(module.save(tmp)?))
}
