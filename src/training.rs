//! The training state and one Projected GAN iteration (reference section 7): a G phase (hinge
//! -mean D(G(z))) then a D phase (fake, then real, in separate D calls), each summing the
//! gradients of `batch/batch_gpu` chunks, Adam steps on non-finite-cleaned gradients, then the
//! G EMA; snapshots of the whole state and their exact restore. The run around it is `run.rs`.
use crate::checkpoint;
use crate::discriminator::Discriminator;
use crate::ema::{Ema, EmaSchedule};
use crate::fastpath::{self, Amp};
use crate::features::{frozen_feature_network, FeatureNetwork};
use crate::generator::{GenCfg, Generator, GeneratorConfig};
use crate::home;
use crate::loss::{discriminator_fake_loss, discriminator_real_loss, generator_loss};
use crate::metrics::parse_metrics;
use crate::optim::{Adam, AdamConfig};
use crate::rng::SplitMix;
use crate::stats::Stats;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Everything that defines a run (saved as training_options.json and in every snapshot).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub dataset_name: String,
    pub outdir: PathBuf,
    pub cfg: GenCfg,
    pub resolution: i64,
    pub ngf: i64,
    pub batch: i64,
    pub batch_gpu: i64,
    pub kimg: f64,
    pub tick: f64,
    pub snap: i64,
    pub mirror: bool,
    pub seed: u64,
    pub keep: usize,
    pub metrics: Vec<String>,
    /// Generated images per evaluation instead of the metric's count (quick looks).
    #[serde(default)]
    pub metrics_num_gen: Option<usize>,
    pub device: String,
    pub desc: Option<String>,
    /// Columns and rows of the sample grids.
    pub grid: (i64, i64),
    /// Precision of the G and D forward passes (`none` = fp32, the reference).
    #[serde(default)]
    pub amp: Amp,
    /// Lay weights and image batches out channels_last (NHWC).
    #[serde(default)]
    pub channels_last: bool,
}

impl TrainOptions {
    /// The reference's defaults (batch 64, 25000 kimg, tick 4, snap 50, fid50k_full, seed 0) for
    /// `cfg` at `resolution` on `data`, written under `runs`.
    pub fn reference(data: &Path, dataset_name: &str, cfg: GenCfg, resolution: i64) -> Self {
        TrainOptions {
            data: data.to_path_buf(),
            dataset_name: dataset_name.to_string(),
            outdir: PathBuf::from("runs"),
            cfg,
            resolution,
            ngf: 128,
            batch: 64,
            batch_gpu: 64,
            kimg: 25000.0,
            tick: 4.0,
            snap: 50,
            mirror: false,
            seed: 0,
            keep: 3,
            metrics: vec!["fid50k_full".into()],
            metrics_num_gen: None,
            device: "auto".into(),
            desc: None,
            grid: Self::reference_grid(resolution),
            amp: Amp::None,
            channels_last: false,
        }
    }

    pub fn generator_config(&self) -> GeneratorConfig {
        GeneratorConfig {
            ngf: self.ngf,
            ..GeneratorConfig::new(self.cfg, self.resolution)
        }
    }

    /// The run directory name without its numeric prefix.
    pub fn run_desc(&self) -> String {
        let mut d = format!("{}-{}-batch{}", self.cfg, self.dataset_name, self.batch);
        if let Some(x) = &self.desc {
            d.push('-');
            d.push_str(x);
        }
        d
    }

    pub fn validate(&self) -> Result<()> {
        self.generator_config().validate()?;
        if self.batch < 1 || self.batch_gpu < 1 || self.batch % self.batch_gpu != 0 {
            bail!(
                "--batch {} must be a positive multiple of --batch-gpu {}",
                self.batch,
                self.batch_gpu
            );
        }
        if !(self.kimg > 0.0 && self.tick > 0.0 && self.snap >= 1) {
            bail!("--kimg and --tick must be positive and --snap at least 1");
        }
        parse_metrics(&self.metrics.join(","))?;
        Ok(())
    }

    /// The reference grid: clip(7680 // R, 7, 32) x clip(4320 // R, 4, 32) images.
    pub fn reference_grid(resolution: i64) -> (i64, i64) {
        (
            (7680 / resolution).clamp(7, 32),
            (4320 / resolution).clamp(4, 32),
        )
    }
}

/// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    let cuda_ok = |i: usize| -> Result<Device> {
        if !tch::Cuda::is_available() || i >= tch::Cuda::device_count() as usize {
            bail!("--device {s}: CUDA device {i} is not available (no GPU, or libtorch without CUDA); use --device cpu");
        }
        Ok(Device::Cuda(i))
    };
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_ok(0),
        _ => match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda_ok(i),
            None => bail!("--device '{s}': use auto, cpu, cuda or cuda:N"),
        },
    }
}

/// Counters saved in snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub cur_nimg: i64,
    /// Number of the next tick.
    pub cur_tick: i64,
    pub batch_idx: i64,
    pub best_fid: Option<f64>,
    /// Training seconds before this process (for Timing/total_sec across resumes).
    pub total_sec: f64,
}

/// Losses of one iteration (means over chunks) and the wall time of its phases in seconds.
#[derive(Clone, Copy, Debug)]
pub struct StepLosses {
    pub g: f64,
    pub d: f64,
    pub g_phase_sec: f64,
    pub d_phase_sec: f64,
    pub ema_sec: f64,
}

/// The whole training state.
pub struct Trainer {
    pub opts: TrainOptions,
    pub device: Device,
    pub gvs: VarStore,
    pub g: Generator,
    pub ema_vs: VarStore,
    pub g_ema: Generator,
    pub fvs: VarStore,
    pub features: FeatureNetwork,
    pub dvs: VarStore,
    pub d: Discriminator,
    pub opt_g: Adam,
    pub opt_d: Adam,
    ema: Ema,
    pub ema_schedule: EmaSchedule,
    pub grid_z: Tensor,
    pub progress: Progress,
    pub stats: Stats,
}

/// Torch's RNG is reseeded from (seed, batch_idx) after every snapshot, so a run resumed from a
/// snapshot draws exactly what the uninterrupted run drew.
pub(crate) fn reseed(seed: u64, batch_idx: i64) {
    let mut m = SplitMix(seed ^ (batch_idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    tch::manual_seed((m.next_u64() >> 1) as i64);
}

impl Trainer {
    /// Fresh networks, optimizers and EMA for `opts` on `device`.
    pub fn new(opts: &TrainOptions, device: Device) -> Result<Self> {
        opts.validate()?;
        tch::manual_seed(opts.seed as i64);
        let gcfg = opts.generator_config();
        let gvs = VarStore::new(device);
        let g = Generator::new(&gvs.root(), &gcfg)?;
        let mut ema_vs = VarStore::new(device);
        let g_ema = Generator::new(&ema_vs.root(), &gcfg)?;
        ema_vs.copy(&gvs).context("G_ema copy")?;
        ema_vs.freeze();
        let weights = home::weight_file(home::EFFNET_FILE)?;
        let (fvs, features) = frozen_feature_network(device, opts.resolution, opts.seed, &weights)?;
        let dvs = VarStore::new(device);
        let d = Discriminator::new(&dvs.root());
        if opts.channels_last {
            for vs in [&gvs, &ema_vs, &fvs, &dvs] {
                fastpath::vars_to_channels_last(vs);
            }
        }
        let opt_g = Adam::new(&gvs, AdamConfig::generator());
        let opt_d = Adam::new(&dvs, AdamConfig::discriminator());
        let ema = Ema::new(&gvs, &ema_vs)?;
        let (gw, gh) = opts.grid;
        let grid_z = Tensor::randn([gw * gh, gcfg.z_dim], (Kind::Float, device));
        Ok(Trainer {
            opts: opts.clone(),
            device,
            gvs,
            g,
            ema_vs,
            g_ema,
            fvs,
            features,
            dvs,
            d,
            opt_g,
            opt_d,
            ema,
            ema_schedule: EmaSchedule::for_batch(opts.batch),
            grid_z,
            progress: Progress::default(),
            stats: Stats::default(),
        })
    }

    fn report_scores(&mut self, kind: &str, logits: &Tensor) {
        self.stats.report(&format!("Loss/scores/{kind}"), logits);
        self.stats
            .report(&format!("Loss/signs/{kind}"), &logits.sign());
    }

    /// One iteration on a uint8 batch of `batch` real images.
    pub fn step(&mut self, reals: &Tensor) -> Result<StepLosses> {
        let (batch, chunk) = (self.opts.batch, self.opts.batch_gpu);
        let chunks = batch / chunk;
        let dev = self.device;
        let mut real = reals.to_device(dev).to_kind(Kind::Float) / 127.5 - 1.0;
        if self.opts.channels_last {
            real = fastpath::channels_last(&real);
        }
        let z_all = Tensor::randn([2 * batch, self.g.config.z_dim], (Kind::Float, dev));
        let timer = PhaseTimer::new(dev);

        // G phase: D frozen, gradients flow through it into G.
        self.opt_d.set_requires_grad(false);
        self.opt_g.zero_grad();
        let mut g_sum = Tensor::zeros([], (Kind::Float, dev));
        let amp = self.opts.amp;
        for c in 0..chunks {
            let z = z_all.narrow(0, c * chunk, chunk);
            let logits = fastpath::autocast(amp, dev, || {
                self.d
                    .forward_t(&self.features, &self.g.forward_t(&z, true), true)
            })
            .to_kind(Kind::Float);
            self.report_scores("fake", &logits);
            let loss = generator_loss(&logits);
            self.stats.report("Loss/G/loss", &loss);
            loss.backward();
            g_sum += loss.detach();
        }
        self.opt_g.step();
        self.opt_d.set_requires_grad(true);
        let t_g = timer.lap();

        // D phase: fakes from G in train mode without a graph; fake then real.
        self.opt_d.zero_grad();
        let mut d_sum = Tensor::zeros([], (Kind::Float, dev));
        for c in 0..chunks {
            let z = z_all.narrow(0, batch + c * chunk, chunk);
            let fake = tch::no_grad(|| fastpath::autocast(amp, dev, || self.g.forward_t(&z, true)));
            let lf = fastpath::autocast(amp, dev, || self.d.forward_t(&self.features, &fake, true))
                .to_kind(Kind::Float);
            self.report_scores("fake", &lf);
            let loss_gen = discriminator_fake_loss(&lf);
            loss_gen.backward();
            let real_c = real.narrow(0, c * chunk, chunk);
            let lr =
                fastpath::autocast(amp, dev, || self.d.forward_t(&self.features, &real_c, true))
                    .to_kind(Kind::Float);
            self.report_scores("real", &lr);
            let loss_real = discriminator_real_loss(&lr);
            loss_real.backward();
            let total = loss_gen.detach() + loss_real.detach();
            self.stats.report("Loss/D/loss", &total);
            d_sum += total;
        }
        self.opt_d.step();
        let t_d = timer.lap();
        self.stats.report_scalar("Timing/Gboth", t_g * 1e3);
        self.stats.report_scalar("Timing/Dmain", t_d * 1e3);

        let beta = self.ema_schedule.beta(self.progress.cur_nimg, batch);
        self.ema.update(beta);
        let t_ema = timer.lap();
        self.progress.cur_nimg += batch;
        self.progress.batch_idx += 1;
        Ok(StepLosses {
            g: g_sum.double_value(&[]) / chunks as f64,
            d: d_sum.double_value(&[]) / chunks as f64,
            g_phase_sec: t_g,
            d_phase_sec: t_d,
            ema_sec: t_ema,
        })
    }

    /// G_ema (eval mode) on the fixed grid latents, as uint8 images: rint((x+1)*127.5).
    pub fn fakes(&self) -> Tensor {
        let _guard = tch::no_grad_guard();
        let parts: Vec<Tensor> = self
            .grid_z
            .split(self.opts.batch_gpu, 0)
            .iter()
            .map(|z| to_uint8_grid(&self.g_ema.forward_t(z, false)))
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// Write a snapshot of the whole state.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut t = checkpoint::export(&self.gvs, "G.");
        t.extend(checkpoint::export(&self.ema_vs, "G_ema."));
        t.extend(checkpoint::export(&self.dvs, "D."));
        t.extend(
            checkpoint::export(&self.fvs, "F.")
                .into_iter()
                .filter(|(n, _)| n.starts_with("F.scratch.")),
        );
        for (p, opt) in [("opt_G.", &self.opt_g), ("opt_D.", &self.opt_d)] {
            for s in &opt.slots {
                t.push((format!("{p}exp_avg.{}", s.name), s.exp_avg.shallow_clone()));
                t.push((
                    format!("{p}exp_avg_sq.{}", s.name),
                    s.exp_avg_sq.shallow_clone(),
                ));
            }
        }
        t.push(("grid_z".into(), self.grid_z.shallow_clone()));
        let meta = json!({
            "format": "fpgan-snapshot",
            "version": 1,
            "options": self.opts,
            "generator": self.g.config,
            "progress": self.progress,
            "opt_G": {"step": self.opt_g.step, "config": self.opt_g.config},
            "opt_D": {"step": self.opt_d.step, "config": self.opt_d.config},
            "ema": self.ema_schedule,
        });
        checkpoint::save(path, &t, &meta)
    }

    /// The reference's `--resume`: copy G, G_ema, the D heads and the projections by name and
    /// keep everything else fresh (Adam restarts, kimg 0), with the EMA rampup disabled.
    pub fn restore_weights_only(&mut self, path: &Path) -> Result<()> {
        self.restore_weights(path)?;
        self.ema_schedule.rampup = None;
        Ok(())
    }

    fn restore_weights(&mut self, path: &Path) -> Result<(BTreeMap<String, Tensor>, SnapshotMeta)> {
        let (t, meta) = checkpoint::load(path)?;
        let snap = SnapshotMeta::from_json(&meta, path)?;
        let g_now = self.g.config.clone();
        if snap.generator != g_now {
            bail!(
                "{} was trained as {} at {} (ngf {}), not {} at {} (ngf {}); pass matching --cfg/--res or start a new run",
                path.display(),
                snap.generator.cfg,
                snap.generator.resolution,
                snap.generator.ngf,
                g_now.cfg,
                g_now.resolution,
                g_now.ngf
            );
        }
        let all = |_: &str| true;
        checkpoint::import(&self.gvs, "G.", &t, all, path)?;
        checkpoint::import(&self.ema_vs, "G_ema.", &t, all, path)?;
        checkpoint::import(&self.dvs, "D.", &t, all, path)?;
        checkpoint::import(&self.fvs, "F.", &t, |n| n.starts_with("scratch."), path)?;
        Ok((t, snap))
    }

    /// Restore everything from a snapshot made with the same configuration: weights, buffers,
    /// projections, Adam moments, counters and grid latents (exact continuation).
    pub fn restore(&mut self, path: &Path) -> Result<()> {
        let (t, snap) = self.restore_weights(path)?;
        tch::no_grad(|| -> Result<()> {
            for (p, opt) in [("opt_G.", &mut self.opt_g), ("opt_D.", &mut self.opt_d)] {
                for s in &mut opt.slots {
                    for (what, dst) in [
                        ("exp_avg", &mut s.exp_avg),
                        ("exp_avg_sq", &mut s.exp_avg_sq),
                    ] {
                        let key = format!("{p}{what}.{}", s.name);
                        let src = t
                            .get(&key)
                            .with_context(|| format!("{} lacks {key}", path.display()))?;
                        dst.copy_(src);
                    }
                }
            }
            Ok(())
        })?;
        self.opt_g.step = snap.opt_g_step;
        self.opt_d.step = snap.opt_d_step;
        if let Some(z) = t.get("grid_z") {
            self.grid_z = z.to_device(self.device);
        }
        self.progress = snap.progress;
        reseed(self.opts.seed, self.progress.batch_idx);
        Ok(())
    }
}

/// The parts of a snapshot's metadata that resume and generate need.
pub struct SnapshotMeta {
    pub options: TrainOptions,
    pub generator: GeneratorConfig,
    pub progress: Progress,
    pub opt_g_step: i64,
    pub opt_d_step: i64,
}

impl SnapshotMeta {
    pub fn from_json(meta: &serde_json::Value, path: &Path) -> Result<Self> {
        if meta["format"] != "fpgan-snapshot" {
            bail!(
                "{} is not an fpgan snapshot (no fpgan metadata)",
                path.display()
            );
        }
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        let bad = |k: &str| format!("{}: bad '{k}' in the snapshot metadata", path.display());
        Ok(SnapshotMeta {
            options: serde_json::from_value(get("options")).with_context(|| bad("options"))?,
            generator: serde_json::from_value(get("generator"))
                .with_context(|| bad("generator"))?,
            progress: serde_json::from_value(get("progress")).with_context(|| bad("progress"))?,
            opt_g_step: meta["opt_G"]["step"]
                .as_i64()
                .with_context(|| bad("opt_G"))?,
            opt_d_step: meta["opt_D"]["step"]
                .as_i64()
                .with_context(|| bad("opt_D"))?,
        })
    }
}

/// Generator output in [-1, 1] to uint8 for image files: rint((x + 1) * 127.5), clipped.
pub fn to_uint8_grid(x: &Tensor) -> Tensor {
    ((x + 1.0) * 127.5)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
}

/// Wall time of the training phases (synchronising CUDA so that the times are real).
struct PhaseTimer {
    device: Device,
    last: std::cell::Cell<Instant>,
}

impl PhaseTimer {
    fn new(device: Device) -> Self {
        PhaseTimer {
            device,
            last: std::cell::Cell::new(Instant::now()),
        }
    }
    fn lap(&self) -> f64 {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last.get()).as_secs_f64();
        self.last.set(now);
        dt
    }
}
