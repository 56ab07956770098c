//! `fpgan check`: one G phase and one D phase (losses and every gradient) on a device against the
//! CPU, from the same weights and inputs, to show that CUDA computes what the CPU does.
use super::loss::{discriminator_fake_loss, discriminator_real_loss, generator_loss};
use super::options::TrainOptions;
use super::trainer::Trainer;
use anyhow::{Context, Result};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// The largest relative differences found, and where.
#[derive(Debug, Serialize)]
pub struct DeviceCheck {
    pub device: String,
    /// |L_dev - L_cpu| / |L_cpu| of the G loss and the D loss.
    pub loss_g: f64,
    pub loss_d: f64,
    /// max over parameters of ||grad_dev - grad_cpu|| / ||grad_cpu||, and that parameter.
    pub grad: f64,
    pub worst: String,
    pub parameters: usize,
}

/// Losses and gradients (on the CPU) of one G phase and one D phase without optimizer steps.
/// DiffAugment is off and the NoiseInjection weights (G's only scalar parameters) are left out:
/// both depend on random draws, which differ between devices. Their initial weight is 0, so the
/// noise changes neither the losses nor any other gradient. Parameters without a gradient (G's
/// unused 256-px blocks below 256) are left out too.
fn phase_grads(t: &mut Trainer, z: &Tensor, real: &Tensor) -> (f64, f64, Vec<(String, Tensor)>) {
    let dev = t.device;
    let (z, real) = (z.to_device(dev), real.to_device(dev));
    t.d.diffaug = false;
    t.opt_g.zero_grad();
    t.opt_d.zero_grad();
    let lg = generator_loss(&t.d.forward_t(&t.features, &t.g.forward_t(&z, true), true));
    lg.backward();
    t.opt_d.zero_grad();
    let fake = tch::no_grad(|| t.g.forward_t(&z, true));
    let lf = discriminator_fake_loss(&t.d.forward_t(&t.features, &fake, true));
    lf.backward();
    let lr = discriminator_real_loss(&t.d.forward_t(&t.features, real.as_ref(), true));
    lr.backward();
    let grads = (t.opt_g.slots.iter().map(|s| ("G.", s)))
        .chain(t.opt_d.slots.iter().map(|s| ("D.", s)))
        .filter(|(_, s)| s.param.numel() > 1 && s.param.grad().defined())
        .map(|(p, s)| {
            (
                format!("{p}{}", s.name),
                s.param.grad().to_device(Device::Cpu),
            )
        })
        .collect();
    let ld = (&lf + &lr).double_value(&[]);
    (lg.double_value(&[]), ld, grads)
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Compare `device` with the CPU for `opts` (its batch, resolution and configuration).
pub fn check(opts: &TrainOptions, device: Device) -> Result<DeviceCheck> {
    let mut cpu = Trainer::new(opts, Device::Cpu)?;
    let mut dev = Trainer::new(opts, device)?;
    for (d, c) in [
        (&mut dev.gvs, &cpu.gvs),
        (&mut dev.dvs, &cpu.dvs),
        (&mut dev.fvs, &cpu.fvs),
    ] {
        d.copy(c).context("copy the CPU weights to the device")?;
    }
    tch::manual_seed(opts.seed as i64);
    let z = Tensor::randn([opts.batch, cpu.g.config.z_dim], (Kind::Float, Device::Cpu));
    let r = opts.resolution;
    let real = Tensor::rand([opts.batch, 3, r, r], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (g_c, d_c, grads_c) = phase_grads(&mut cpu, &z, &real);
    let (g_d, d_d, grads_d) = phase_grads(&mut dev, &z, &real);
    let mut out = DeviceCheck {
        device: format!("{device:?}"),
        loss_g: rel(g_d, g_c),
        loss_d: rel(d_d, d_c),
        grad: 0.0,
        worst: String::new(),
        parameters: grads_c.len(),
    };
    let names = |g: &[(String, Tensor)]| g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&grads_c) != names(&grads_d) {
        anyhow::bail!("{device:?} and the CPU computed gradients for different parameters");
    }
    for ((name, gc), (_, gd)) in grads_c.iter().zip(&grads_d) {
        let err = (gd - gc).norm().double_value(&[]) / gc.norm().double_value(&[]).max(1e-30);
        if err > out.grad || !err.is_finite() {
            (out.grad, out.worst) = (err, name.clone());
        }
    }
    Ok(out)
}
