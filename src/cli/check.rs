//! `fpgan check`: does a device (CUDA) compute the CPU's losses, gradients and updates for one
//! iteration, and the eager step's with `--cuda-graphs`?
use crate::nets::generator::GenCfg;
use crate::train::devcheck::{check, DeviceCheck, CHECK_JSON_FILE};
use crate::train::options::TrainOptions;
use crate::util::device::parse_device;
use crate::util::files::check_writable_file;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The device to compare with the CPU: cuda, cuda:N (or cpu, which compares it with itself).
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Generator configuration.
    #[arg(long, value_enum, default_value_t = GenCfg::Faster)]
    pub cfg: GenCfg,
    /// Image resolution (128, 256, 512 or 1024).
    #[arg(long, default_value_t = 256)]
    pub res: i64,
    /// Images per phase.
    #[arg(long, default_value_t = 4)]
    pub batch: i64,
    /// Generator width (reference 128).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
    /// Largest relative difference accepted for the losses and for parameters after Adam and
    /// EMA updates.
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Largest relative difference accepted for G's and D's gradients, each network's as one
    /// vector. A backward pass through D, the feature network and G amplifies rounding: the
    /// CPU's own AVX2 and AVX-512 kernels give gradients 3.7e-3 (G) and 9.2e-4 (D) apart at the
    /// default settings, with losses 4.9e-6 apart.
    #[arg(long, default_value_t = 2e-2)]
    pub grad_tol: f64,
    /// Largest relative difference accepted between the step with --cuda-graphs and the eager
    /// step on the device over a few iterations, both with deterministic kernels (a difference
    /// at rounding level grows about tenfold per iteration). Two runs of the eager step must
    /// agree to the bit.
    #[arg(long, default_value_t = 1e-3)]
    pub graphs_tol: f64,
    /// Also write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: CheckArgs) -> Result<()> {
    for (flag, v) in [
        ("--tol", a.tol),
        ("--grad-tol", a.grad_tol),
        ("--graphs-tol", a.graphs_tol),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{flag} {v}: give a finite tolerance, 0 or more");
        }
    }
    if let Some(p) = &a.json {
        check_writable_file(p, "--json", &CHECK_JSON_FILE)?;
    }
    // before any CUDA work: the graphs comparison runs with deterministic kernels
    crate::fastpath::fix_cublas_workspace();
    let device = parse_device(&a.device)?;
    let opts = TrainOptions {
        ngf: a.ngf,
        batch: a.batch,
        batch_gpu: a.batch,
        device: a.device.clone(),
        ..TrainOptions::without_data("check", a.cfg, a.res)
    };
    opts.validate()?;
    let r = check(&opts, device)?;
    println!(
        "check {} vs CPU ({} at {}, ngf {}, batch {}, TF32 off): G loss {:.2e}, D loss {:.2e}, gradients G {:.2e} D {:.2e} (most apart: {}; {} parameters), Adam and EMA updates {:.2e} relative; on {}, deterministic kernels: eager vs eager {:.2e}, --cuda-graphs vs eager {:.2e}",
        r.device, a.cfg, a.res, a.ngf, a.batch, r.loss_g, r.loss_d, r.grad_g, r.grad_d, if r.worst.is_empty() { "none" } else { &r.worst }, r.parameters, r.update, r.device, r.graphs_floor, r.graphs
    );
    if let Some(p) = &a.json {
        crate::util::atomic::atomic_write(p, |w| Ok(serde_json::to_writer_pretty(w, &r)?))?;
    }
    verdict(&r, &a)?;
    println!(
        "check: within {} (gradients {}, graphs {})",
        a.tol, a.grad_tol, a.graphs_tol
    );
    Ok(())
}

/// Fails naming the first comparison of `r` that is outside its tolerance in `a`.
fn verdict(r: &DeviceCheck, a: &CheckArgs) -> Result<()> {
    if !(r.loss_g <= a.tol && r.loss_d <= a.tol && r.update <= a.tol) {
        bail!(
            "{} differs from the CPU by more than --tol {}",
            r.device,
            a.tol
        );
    }
    if !(r.grad_g <= a.grad_tol && r.grad_d <= a.grad_tol) {
        bail!(
            "{}'s gradients differ from the CPU's by more than --grad-tol {}",
            r.device,
            a.grad_tol
        );
    }
    if let Some(e) = &r.graphs_error {
        bail!("the run-to-run comparison failed on {}: {e}", r.device);
    }
    let per = |l: &[f64]| {
        l.iter()
            .map(|e| format!("{e:.1e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if r.graphs_floor != 0.0 {
        bail!(
            "the eager step differs from itself between two runs on {} by {:.1e} (losses per iteration: {}), with deterministic kernels: some kernel is not (libtorch's warnings above name operators without a deterministic one), so --deterministic does not repeat a run and the --cuda-graphs comparison ({:.1e}) cannot be judged",
            r.device,
            r.graphs_floor,
            per(&r.graphs_floor_losses),
            r.graphs
        );
    }
    if r.graphs > a.graphs_tol {
        bail!(
            "the step with --cuda-graphs differs from the eager step on {} by more than --graphs-tol {} (losses per iteration: {}; the eager step against itself: {:.1e})",
            r.device,
            a.graphs_tol,
            per(&r.graphs_losses),
            r.graphs_floor
        );
    }
    Ok(())
}
