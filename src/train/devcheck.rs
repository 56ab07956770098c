//! `fpgan check`: one G phase and one D phase (losses and every gradient), and Adam and EMA
//! updates, on a device against the CPU from the same weights and inputs, to show that CUDA
//! computes what the CPU does; and the step with `--cuda-graphs` against the eager step.
use super::ema::Ema;
use super::graphed::EAGER_ITERATIONS;
use super::loss::{discriminator_fake_loss, discriminator_real_loss, generator_loss};
use super::optim::{Adam, AdamConfig};
use super::options::TrainOptions;
use super::trainer::Trainer;
use crate::fastpath::FastPath;
use crate::util::device::device_name;
use crate::util::files::FileKind;
use crate::util::panics;
use anyhow::{Context, Result};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

/// What `check --json` writes: a JSON object with the check's `graphs_floor`.
pub const CHECK_JSON_FILE: FileKind = FileKind {
    what: "a check JSON file",
    is: |p| {
        std::fs::read(p).is_ok_and(|b| {
            serde_json::from_slice::<serde_json::Value>(&b)
                .is_ok_and(|v| v.get("graphs_floor").is_some())
        })
    },
};

/// The largest relative differences found, and where.
#[derive(Debug, Serialize)]
pub struct DeviceCheck {
    pub device: String,
    /// |L_dev - L_cpu| / |L_cpu| of the G loss and the D loss.
    pub loss_g: f64,
    pub loss_d: f64,
    /// ||grad_dev - grad_cpu|| / ||grad_cpu|| over all of G's gradients, and over all of D's
    /// ([`network_error`]).
    pub grad_g: f64,
    pub grad_d: f64,
    /// The parameter whose gradient differs most (the largest ||grad_dev - grad_cpu||).
    pub worst: String,
    pub parameters: usize,
    /// ||p_dev - p_cpu|| / ||p_cpu|| after two Adam steps and an EMA update of the same
    /// parameters from the same gradients (the multi-tensor kernels of csrc/foreach.cpp).
    pub update: f64,
    /// The eager step against itself on the device (two runs from the same weights, seed and
    /// images, with deterministic kernels), measured as [`DeviceCheck::graphs`]: 0 when every
    /// kernel is deterministic, which the graphs comparison needs; infinite when that failed.
    pub graphs_floor: f64,
    /// Per iteration, as [`DeviceCheck::graphs_losses`].
    pub graphs_floor_losses: Vec<f64>,
    /// The step as `--cuda-graphs` runs it against the eager step on the device, from the same
    /// weights, seed and images (both with deterministic kernels): the largest relative
    /// difference of the losses of every iteration and of G's and D's updates over the run
    /// ([`network_error`]; the CPU runs the replays without graphs); infinite when that failed,
    /// with the reason (and which of the three runs) in `graphs_error`.
    pub graphs: f64,
    /// Per iteration, the larger relative difference of its G and D losses: 0 through the eager
    /// iterations; a difference that starts small at the first graphed iteration and grows
    /// tenfold per iteration is rounding that training amplifies (Adam's early steps follow
    /// the gradients' signs), one that starts large is a fault.
    pub graphs_losses: Vec<f64>,
    pub graphs_error: Option<String>,
}

/// Losses and gradients (on the CPU) of one G phase and one D phase without optimizer steps.
/// DiffAugment is off and the NoiseInjection weights (G's only scalar parameters) are left out:
/// both depend on random draws, which differ between devices. Their initial weight is 0, so the
/// noise changes neither the losses nor any other gradient. Parameters without a gradient (G's
/// unused 256-px blocks below 256) are left out too.
pub type PhaseGrads = (f64, f64, Vec<(String, Tensor)>);

pub fn phase_grads(t: &mut Trainer, z: &Tensor, real: &Tensor) -> Result<PhaseGrads> {
    let dev = t.device;
    let (z, real) = (z.to_device(dev), real.to_device(dev));
    t.d.diffaug = false;
    t.opt_g.zero_grad()?;
    t.opt_d.zero_grad()?;
    let lg = generator_loss(&t.d.forward_t(&t.features, &t.g.forward_t(&z, true), true));
    lg.backward();
    t.opt_d.zero_grad()?;
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
    Ok((lg.double_value(&[]), ld, grads))
}

/// Two Adam steps and an EMA update of a few parameters (zeros, so that the updates are not lost
/// in their rounding) from the same gradients (NaN and inf included) on `device` and on the CPU;
/// the largest relative difference of the results.
fn update_check(device: Device) -> Result<f64> {
    let run = |dev: Device| -> Result<Vec<Tensor>> {
        let (vs, ema) = (nn::VarStore::new(dev), nn::VarStore::new(dev));
        let shapes: [&[i64]; 3] = [&[8, 4, 3, 3], &[16], &[5, 7]];
        let params: Vec<Tensor> = (shapes.iter().enumerate())
            .map(|(i, s)| vs.root().zeros(&format!("p{i}"), s))
            .collect();
        for (i, s) in shapes.iter().enumerate() {
            let _ = ema.root().zeros(&format!("p{i}"), s);
        }
        let mut opt = Adam::new(&vs, AdamConfig::generator(2e-4));
        tch::manual_seed(1);
        for _ in 0..2 {
            opt.zero_grad()?;
            let grads: Vec<Tensor> = (shapes.iter())
                .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)))
                .collect();
            let _ = grads[0].view([-1]).narrow(0, 3, 1).fill_(f64::NAN);
            let _ = grads[1].narrow(0, 2, 1).fill_(f64::INFINITY);
            let loss = (params.iter().zip(&grads))
                .map(|(p, g)| (p * g.to_device(dev)).sum(Kind::Float))
                .reduce(|a, b| a + b)
                .expect("three parameters");
            loss.backward();
            opt.step()?;
        }
        Ema::new(&vs, &ema)?.update(0.5)?;
        let e = ema.variables();
        Ok((params.iter().map(Tensor::shallow_clone))
            .chain((0..shapes.len()).map(|i| e[&format!("p{i}")].shallow_clone()))
            .map(|t| t.to_device(Device::Cpu))
            .collect())
    };
    let (cpu, dev) = (run(Device::Cpu)?, run(device)?);
    let each = cpu.iter().zip(&dev);
    let per_tensor =
        each.map(|(c, d)| network_error(std::slice::from_ref(c), std::slice::from_ref(d)).0);
    Ok(per_tensor.fold(0.0, worse))
}

/// Iterations of [`graphs_check`]: the eager ones, the capture and two more replays.
const GRAPH_CHECK_ITERATIONS: usize = EAGER_ITERATIONS + 3;

/// What [`train_steps`] leaves: every iteration's G and D losses, and G's and D's parameters
/// before the first iteration and after the last (on the CPU).
pub struct StepsRun {
    pub losses: Vec<f64>,
    pub before: [Vec<Tensor>; 2],
    pub after: [Vec<Tensor>; 2],
}

impl StepsRun {
    /// G's and D's parameter updates (after - before).
    pub fn updates(&self) -> [Vec<Tensor>; 2] {
        let diff = |i: usize| -> Vec<Tensor> {
            let pairs = self.after[i].iter().zip(&self.before[i]);
            pairs.map(|(a, b)| a - b).collect()
        };
        [diff(0), diff(1)]
    }
}

/// [`GRAPH_CHECK_ITERATIONS`] training iterations of fresh networks for `opts` on `device`, with
/// `--cuda-graphs` or eagerly with the update the graphs capture, on random reals drawn after
/// the seed.
pub fn train_steps(opts: &TrainOptions, device: Device, graphs: bool) -> Result<StepsRun> {
    let mut t = Trainer::new(opts, device)?;
    if graphs {
        t.use_graphs()?;
    } else {
        // the update the graphs capture, so that only the graphs differ
        t.opt_g.make_capturable();
        t.opt_d.make_capturable();
    }
    let params = |t: &Trainer| -> [Vec<Tensor>; 2] {
        let on_cpu = |opt: &Adam| -> Vec<Tensor> {
            // a copy: on a CPU to_device is the tensor itself
            let each = opt
                .slots
                .iter()
                .map(|s| s.param.to_device(Device::Cpu).copy());
            each.collect()
        };
        [on_cpu(&t.opt_g), on_cpu(&t.opt_d)]
    };
    let before = params(&t);
    tch::manual_seed(opts.seed as i64 + 1);
    let r = opts.resolution;
    let mut losses = Vec::new();
    for _ in 0..GRAPH_CHECK_ITERATIONS {
        let reals = Tensor::randint(256, [opts.batch, 3, r, r], (Kind::Uint8, Device::Cpu));
        let (g, d) = t.step(&reals, None)?.values();
        losses.extend([g, d]);
    }
    let after = params(&t);
    Ok(StepsRun {
        losses,
        before,
        after,
    })
}

/// Two runs' largest relative difference (every iteration's losses, G's and D's updates over
/// the run, [`network_error`]), and per iteration the larger of its G and D loss differences.
fn compare_runs(a: &StepsRun, b: &StepsRun) -> (f64, Vec<f64>) {
    let iterations = a.losses.chunks(2).zip(b.losses.chunks(2));
    let per_iteration: Vec<f64> = iterations
        .map(|(x, y)| {
            [rel(y[0], x[0]), rel(y[1], x[1])]
                .into_iter()
                .fold(0.0, worse)
        })
        .collect();
    let (ua, ub) = (a.updates(), b.updates());
    let updates = ua.iter().zip(&ub).map(|(x, y)| network_error(x, y).0);
    let all = per_iteration
        .iter()
        .copied()
        .chain(updates)
        .fold(0.0, worse);
    (all, per_iteration)
}

/// The eager step twice, then the step with `--cuda-graphs`, on `device`, all with
/// deterministic kernels (`--deterministic`): the eager step against itself (0 when every
/// kernel is deterministic: training amplifies any rounding difference, see
/// `examples/kernel_spread.rs`, so that otherwise no comparison could tell a fault from chaos),
/// then the graphs against it (see [`DeviceCheck::graphs`]). A failure, libtorch's included
/// (tch raises its exceptions as panics), is recorded in `graphs_error`: it does not cost the
/// figures measured before.
fn graphs_check(out: &mut DeviceCheck, opts: &TrainOptions, device: Device) {
    let opts = &TrainOptions {
        fast: FastPath {
            deterministic: true,
            ..opts.fast
        },
        ..opts.clone()
    };
    let runs = panics::catch(|| -> Result<()> {
        let eager = train_steps(opts, device, false).context("the eager step")?;
        let again = train_steps(opts, device, false).context("the eager step, again")?;
        (out.graphs_floor, out.graphs_floor_losses) = compare_runs(&eager, &again);
        let graphed = train_steps(opts, device, true).context("the step with --cuda-graphs")?;
        (out.graphs, out.graphs_losses) = compare_runs(&eager, &graphed);
        Ok(())
    });
    let error = match runs {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(msg) => format!("libtorch: {msg}"),
    };
    out.graphs_error = Some(error);
}

/// The larger of two differences, a NaN counting as infinite.
fn worse(m: f64, x: f64) -> f64 {
    if x.is_nan() {
        f64::INFINITY
    } else {
        m.max(x)
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// How far a network's tensors `dev` are from `cpu` (its gradients, or its parameters):
/// ||dev - cpu|| / ||cpu|| over all of them as one vector, and the index of the tensor with
/// the largest ||dev - cpu||. Per tensor the ratio says nothing where the CPU's value is
/// rounding: a conv's bias before a train-mode BN has a zero gradient up to rounding, which two
/// devices (or two CPU kernel families) round differently by 140 % of itself.
pub fn network_error(cpu: &[Tensor], dev: &[Tensor]) -> (f64, usize) {
    let sq = |t: Tensor| t.square().sum(Kind::Double).double_value(&[]);
    let diffs: Vec<f64> = cpu.iter().zip(dev).map(|(c, d)| sq(d - c)).collect();
    let norm: f64 = cpu.iter().map(|c| sq(c.shallow_clone())).sum();
    let worst = (0..diffs.len()).fold(0, |w, i| if diffs[i] > diffs[w] { i } else { w });
    let err = (diffs.iter().sum::<f64>() / norm.max(1e-300)).sqrt();
    (if err.is_nan() { f64::INFINITY } else { err }, worst)
}

/// A network's tensors (names starting with `prefix`: G's or D's gradients) on the CPU and on
/// the device: their [`network_error`] and the name of the tensor that differs most.
pub fn compare_network(
    prefix: &str,
    cpu: &[(String, Tensor)],
    dev: &[(String, Tensor)],
) -> (f64, String) {
    let of_net = |g: &[(String, Tensor)]| -> Vec<Tensor> {
        let mine = g.iter().filter(|(n, _)| n.starts_with(prefix));
        mine.map(|(_, t)| t.shallow_clone()).collect()
    };
    let (err, worst) = network_error(&of_net(cpu), &of_net(dev));
    let mut names = cpu.iter().map(|(n, _)| n).filter(|n| n.starts_with(prefix));
    let worst = names.nth(worst).filter(|_| err > 0.0);
    (err, worst.cloned().unwrap_or_default())
}

/// The latents and real images (in [-1, 1]) that [`check`] compares on, drawn on the CPU after
/// the run's seed.
pub fn check_inputs(opts: &TrainOptions, z_dim: i64) -> (Tensor, Tensor) {
    tch::manual_seed(opts.seed as i64);
    let z = Tensor::randn([opts.batch, z_dim], (Kind::Float, Device::Cpu));
    let r = opts.resolution;
    let real = Tensor::rand([opts.batch, 3, r, r], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    (z, real)
}

/// Compare `device` with the CPU for `opts` (its batch, resolution and configuration).
pub fn check(opts: &TrainOptions, device: Device) -> Result<DeviceCheck> {
    let name = device_name(device);
    eprintln!("check: one G phase and one D phase on the CPU and on {name} ...");
    let mut cpu = Trainer::new(opts, Device::Cpu)?;
    let mut dev = Trainer::new(opts, device)?;
    for (d, c) in [
        (&mut dev.gvs, &cpu.gvs),
        (&mut dev.dvs, &cpu.dvs),
        (&mut dev.fvs, &cpu.fvs),
    ] {
        d.copy(c).context("copy the CPU weights to the device")?;
    }
    let (z, real) = check_inputs(opts, cpu.g.config.z_dim);
    let (g_c, d_c, grads_c) = phase_grads(&mut cpu, &z, &real)?;
    let (g_d, d_d, grads_d) = phase_grads(&mut dev, &z, &real)?;
    let names = |g: &[(String, Tensor)]| g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&grads_c) != names(&grads_d) {
        anyhow::bail!("{name} and the CPU computed gradients for different parameters");
    }
    let (grad_g, worst_g) = compare_network("G.", &grads_c, &grads_d);
    let (grad_d, worst_d) = compare_network("D.", &grads_c, &grads_d);
    let worst = if grad_g >= grad_d { worst_g } else { worst_d };
    eprintln!("check: Adam and EMA updates ...");
    let mut out = DeviceCheck {
        device: name.clone(),
        loss_g: rel(g_d, g_c),
        loss_d: rel(d_d, d_c),
        grad_g,
        grad_d,
        worst,
        parameters: grads_c.len(),
        update: update_check(device)?,
        graphs_floor: f64::INFINITY,
        graphs_floor_losses: Vec::new(),
        graphs: f64::INFINITY,
        graphs_losses: Vec::new(),
        graphs_error: None,
    };
    // last, and without failing the check: a failed capture must not cost the figures above
    let capture = match device.is_cuda() {
        true => "",
        false => " (on a CPU: its fixed inputs, no capture)",
    };
    eprintln!("check: the step on {name}, twice eagerly and once with --cuda-graphs{capture} ...");
    graphs_check(&mut out, opts, device);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gradient that is zero up to rounding (a bias before a train-mode BN) differs between
    /// devices by as much as itself; over the network that is nothing.
    #[test]
    fn network_error_is_not_fooled_by_rounding_level_tensors() {
        let weight = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5]);
        let cpu = [weight.copy(), Tensor::from_slice(&[1e-9f32, -2e-9])];
        let dev = [&weight * 1.0001, Tensor::from_slice(&[-1e-9f32, 1e-9])];
        let (err, worst) = network_error(&cpu, &dev);
        assert!((err - 1e-4).abs() < 1e-6, "{err}");
        assert_eq!(worst, 0, "the weight's difference is the larger one");
        let nan = [weight.copy(), Tensor::from_slice(&[f32::NAN, 0.0])];
        assert_eq!(network_error(&cpu, &nan).0, f64::INFINITY);
        assert_eq!(network_error(&cpu, &cpu).0, 0.0);
    }
}
