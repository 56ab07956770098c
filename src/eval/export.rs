//! G_ema as TorchScript for PyTorch users: `torch.jit.load("G.pt")(z)` with z of shape (1, 256)
//! (normalised inside, as in training), or `G(z, c)` with c one-hot (1, C) for a class-conditional
//! generator (the official `G(z, c)`), returns the generator's image in [-1, 1], (1, 3, R, R).
use crate::snapshot::Network;
use crate::util::atomic::atomic_write_path;
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Trace `net` (on its device) for one latent (and one one-hot class) and save the module to
/// `out` atomically. NoiseInjection draws from torch's generator when the module runs, so
/// `torch.manual_seed(s)` before a call reproduces `fpgan generate`'s image for seed s.
pub fn export_torchscript(net: &Network, out: &Path) -> Result<()> {
    let dev = net.device();
    let mut inputs = vec![Tensor::randn([1, net.g.config.z_dim], (Kind::Float, dev))];
    if net.classes() > 0 {
        inputs.push(Tensor::zeros([1, net.classes()], (Kind::Float, dev)));
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
