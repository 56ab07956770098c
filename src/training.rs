//! `fpgan train`: the Projected GAN training loop (reference section 7) around the networks.
//! Each iteration: a G phase (hinge -mean D(G(z))) then a D phase (fake, then real, in separate
//! D calls), each summing the gradients of `batch/batch_gpu` chunks, Adam steps on
//! non-finite-cleaned gradients, then the G EMA. Ticks, snapshots, stats.jsonl and resume live
//! here; the run directory layout follows reference section 11.
use crate::checkpoint;
use crate::dataset::stream::BatchStream;
use crate::dataset::{ImageSet, PrepareOptions};
use crate::discriminator::Discriminator;
use crate::ema::{Ema, EmaSchedule};
use crate::features::{frozen_feature_network, FeatureNetwork};
use crate::generator::{GenCfg, Generator, GeneratorConfig};
use crate::loss::{discriminator_fake_loss, discriminator_real_loss, generator_loss};
use crate::metrics::{metric_line, parse_metrics, Evaluator, Metric};
use crate::optim::{Adam, AdamConfig};
use crate::rng::SplitMix;
use crate::stats::Stats;
use crate::{grid, home, progress};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
fn reseed(seed: u64, batch_idx: i64) {
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
        let real = reals.to_device(dev).to_kind(Kind::Float) / 127.5 - 1.0;
        let z_all = Tensor::randn([2 * batch, self.g.config.z_dim], (Kind::Float, dev));
        let timer = PhaseTimer::new(dev);

        // G phase: D frozen, gradients flow through it into G.
        self.opt_d.set_requires_grad(false);
        self.opt_g.zero_grad();
        let mut g_sum = Tensor::zeros([], (Kind::Float, dev));
        for c in 0..chunks {
            let img = self.g.forward_t(&z_all.narrow(0, c * chunk, chunk), true);
            let logits = self.d.forward_t(&self.features, &img, true);
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
            let fake = tch::no_grad(|| self.g.forward_t(&z, true));
            let lf = self.d.forward_t(&self.features, &fake, true);
            self.report_scores("fake", &lf);
            let loss_gen = discriminator_fake_loss(&lf);
            loss_gen.backward();
            let lr = self
                .d
                .forward_t(&self.features, &real.narrow(0, c * chunk, chunk), true);
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

    /// Restore everything from a snapshot made with the same configuration.
    pub fn restore(&mut self, path: &Path) -> Result<()> {
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

// ---------------------------------------------------------------------------------------------
// The run: directory, resume, ticks, snapshots, logs.

/// What `--resume` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumeFrom {
    /// Continue the matching run in --outdir if it has a snapshot, else start a new one.
    Auto,
    /// Always start a new run directory.
    Never,
    /// A snapshot file, or a run directory (its newest snapshot).
    Path(PathBuf),
}

impl std::str::FromStr for ResumeFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => ResumeFrom::Auto,
            "none" | "never" => ResumeFrom::Never,
            p => ResumeFrom::Path(PathBuf::from(p)),
        })
    }
}

pub const SNAPSHOT_PREFIX: &str = "network-snapshot-";

/// `network-snapshot-<kimg with 3 decimals, zero-padded>.safetensors`, e.g.
/// `network-snapshot-000200.000.safetensors`: unique per snapshot and sorted by progress.
pub fn snapshot_name(cur_nimg: i64) -> String {
    format!(
        "{SNAPSHOT_PREFIX}{:010.3}.safetensors",
        cur_nimg as f64 / 1000.0
    )
}

/// Snapshots in `dir`, newest first.
pub fn snapshots_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SNAPSHOT_PREFIX) && n.ends_with(".safetensors"))
        })
        .collect();
    v.sort();
    v.reverse();
    v
}

/// Existing run directories `NNNNN-<desc>` in `outdir`.
fn run_dirs(outdir: &Path) -> Vec<(u32, PathBuf)> {
    std::fs::read_dir(outdir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id: u32 = name.get(..5)?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect()
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Ctrl-C: the first stops after the current iteration with a snapshot, the second at once.
fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nfpgan: interrupted again, quitting without a snapshot");
            std::process::exit(130);
        }
        eprintln!("\nfpgan: stopping after this iteration and writing a snapshot (Ctrl-C again to quit now)");
    });
}

/// Appends lines to log.txt and prints them without tearing the progress bar.
struct Log {
    file: std::fs::File,
    pb: indicatif::ProgressBar,
}

impl Log {
    fn line(&mut self, s: &str) {
        self.pb.suspend(|| println!("{s}"));
        let _ = writeln!(self.file, "{s}");
    }
}

fn format_time(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60),
        _ => format!("{}d {:02}h {:02}m", s / 86400, s / 3600 % 24, s / 60 % 60),
    }
}

fn cpu_mem_gb() -> f64 {
    progress::proc_memory_gb("VmRSS")
}

/// Load the training images: a prepared dataset as it is, anything else prepared at `res`.
pub fn load_training_set(data: &Path, res: Option<i64>, mirror: bool) -> Result<ImageSet> {
    let opts = PrepareOptions::square(res.unwrap_or(256) as u32);
    let set = ImageSet::open_or_prepare(data, &opts)?;
    if let Some(r) = res {
        if set.resolution as i64 != r {
            bail!(
                "{} holds {}x{} images but --res is {r}; prepare it again with `fpgan dataset --resolution {r}` or drop --res",
                data.display(),
                set.resolution,
                set.resolution
            );
        }
    }
    Ok(set.with_mirror(mirror))
}

/// Pick the run directory and the snapshot to resume from (if any).
fn resolve_run(opts: &TrainOptions, resume: &ResumeFrom) -> Result<(PathBuf, Option<PathBuf>)> {
    std::fs::create_dir_all(&opts.outdir)
        .with_context(|| format!("cannot create --outdir {}", opts.outdir.display()))?;
    let desc = opts.run_desc();
    let dirs = run_dirs(&opts.outdir);
    let next_id = dirs.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let new_dir = opts.outdir.join(format!("{next_id:05}-{desc}"));
    match resume {
        ResumeFrom::Never => Ok((new_dir, None)),
        ResumeFrom::Path(p) if p.is_dir() => {
            let snap = snapshots_in(p).into_iter().next().with_context(|| {
                format!(
                    "{} holds no {SNAPSHOT_PREFIX}*.safetensors to resume from",
                    p.display()
                )
            })?;
            Ok((p.clone(), Some(snap)))
        }
        ResumeFrom::Path(p) => {
            if !p.is_file() {
                bail!(
                    "--resume {}: no such snapshot file or run directory",
                    p.display()
                );
            }
            let dir = p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok((dir, Some(p.clone())))
        }
        ResumeFrom::Auto => {
            let matching: Vec<&PathBuf> = dirs
                .iter()
                .map(|(_, d)| d)
                .filter(|d| {
                    d.file_name()
                        .is_some_and(|n| n.to_string_lossy().get(6..) == Some(desc.as_str()))
                })
                .collect();
            match matching.as_slice() {
                [d] => {
                    let snap = snapshots_in(d).into_iter().next();
                    Ok(((*d).clone(), snap))
                }
                _ => Ok((new_dir, None)),
            }
        }
    }
}

/// Train with `opts`; returns the run directory.
pub fn train(opts: &TrainOptions, set: ImageSet, resume: &ResumeFrom) -> Result<PathBuf> {
    opts.validate()?;
    let device = parse_device(&opts.device)?;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let (run_dir, snapshot) = resolve_run(opts, resume)?;
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let mut trainer = Trainer::new(opts, device)?;
    let fresh = snapshot.is_none();
    let pb = progress::bar((opts.kimg * 1000.0).ceil() as u64, "training");
    pb.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("log.txt"))
        .with_context(|| format!("cannot write {}", run_dir.join("log.txt").display()))?;
    let mut log = Log {
        file,
        pb: pb.clone(),
    };
    if let Some(snap) = &snapshot {
        trainer.restore(snap).or_else(|e| {
            // an unreadable newest snapshot: fall back to the previous one in auto mode
            let older = snapshots_in(&run_dir).into_iter().find(|p| p != snap);
            match (resume, older) {
                (ResumeFrom::Auto, Some(prev)) => {
                    log.line(&format!(
                        "warning: {e:#}; resuming from {} instead",
                        prev.display()
                    ));
                    trainer.restore(&prev)
                }
                _ => Err(e),
            }
        })?;
        log.line(&format!(
            "Resuming {} at kimg {:.3} (tick {}) from {}",
            run_dir.display(),
            trainer.progress.cur_nimg as f64 / 1e3,
            trainer.progress.cur_tick,
            snap.display()
        ));
    } else {
        log.line(&format!("Starting {} on {device:?}", run_dir.display()));
        let json = serde_json::to_string_pretty(opts)?;
        checkpoint::atomic_write(&run_dir.join("training_options.json"), |w| {
            Ok(w.write_all(json.as_bytes())?)
        })?;
    }
    if trainer.progress.cur_nimg as f64 >= opts.kimg * 1000.0 {
        log.line(&format!(
            "Nothing to do: this run already reached kimg {:.3} (--kimg {}). Raise --kimg to continue.",
            trainer.progress.cur_nimg as f64 / 1e3,
            opts.kimg
        ));
        return Ok(run_dir);
    }
    let set = Arc::new(set);
    let (gw, gh) = opts.grid;
    if fresh {
        let mut order: Vec<usize> = (0..set.len()).collect();
        let mut rng = SplitMix(0);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u32 + 1) as usize);
        }
        let idx: Vec<usize> = (0..(gw * gh) as usize)
            .map(|k| order[k % order.len()])
            .collect();
        grid::save_grid(&set.batch(&idx), gw as usize, &run_dir.join("reals.png"))?;
        grid::save_grid(
            &trainer.fakes(),
            gw as usize,
            &run_dir.join("fakes_init.png"),
        )?;
    }
    install_ctrlc();
    STOP.store(false, Ordering::SeqCst);

    let stream = BatchStream::start(
        set.clone(),
        opts.batch as usize,
        opts.seed,
        (trainer.progress.batch_idx * opts.batch) as usize,
        2,
    );
    let total_nimg = (opts.kimg * 1000.0).ceil() as i64;
    let start = Instant::now();
    let sec0 = trainer.progress.total_sec;
    let mut tick_start_nimg = trainer.progress.cur_nimg;
    let mut tick_start = Instant::now();
    let mut maintenance = 0.0;
    let mut bad_iters = 0;
    let mut last_good = snapshot.clone();
    let metrics = parse_metrics(&opts.metrics.join(","))?;
    let mut evaluator: Option<Evaluator> = None;
    loop {
        let reals = stream.next_batch();
        let losses = trainer.step(&reals)?;
        let p = &trainer.progress;
        if losses.g.is_finite() && losses.d.is_finite() {
            bad_iters = 0;
        } else {
            bad_iters += 1;
            if bad_iters >= 10 {
                pb.finish_and_clear();
                bail!(
                    "training diverged at kimg {:.3}: losses were not finite for 10 iterations (G {}, D {}); \
                     the last good snapshot is {}; try another --seed or a smaller --batch-gpu",
                    p.cur_nimg as f64 / 1e3,
                    losses.g,
                    losses.d,
                    last_good.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into())
                );
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let rate =
            (p.cur_nimg - tick_start_nimg) as f64 / tick_start.elapsed().as_secs_f64().max(1e-9);
        pb.set_position(p.cur_nimg.min(total_nimg) as u64);
        pb.set_message(format!(
            "kimg {:.2}/{} | {:.1} img/s | {:.1} s/kimg | ETA {} | G {:.3} D {:.3} | cpu {:.1} GB",
            p.cur_nimg as f64 / 1e3,
            opts.kimg,
            rate,
            1000.0 / rate.max(1e-9),
            format_time((total_nimg - p.cur_nimg) as f64 / rate.max(1e-9)),
            losses.g,
            losses.d,
            cpu_mem_gb()
        ));
        let done = p.cur_nimg >= total_nimg;
        let stop = STOP.load(Ordering::SeqCst);
        let tick_nimg = (opts.tick * 1000.0).ceil() as i64;
        if !done && !stop && p.cur_tick != 0 && p.cur_nimg < tick_start_nimg + tick_nimg {
            continue;
        }

        // Maintenance: tick line, stats, snapshot.
        let tick_time = tick_start.elapsed().as_secs_f64();
        let total_sec = sec0 + elapsed;
        let kimg = p.cur_nimg as f64 / 1e3;
        let sec_per_kimg = tick_time / ((p.cur_nimg - tick_start_nimg).max(1) as f64 / 1e3);
        let cpu = cpu_mem_gb();
        let tick = p.cur_tick;
        log.line(&format!(
            "tick {tick:<5} kimg {kimg:<8.1} time {:<12} sec/tick {tick_time:<7.1} sec/kimg {sec_per_kimg:<7.2} maintenance {maintenance:<6.1} cpumem {cpu:<6.2} gpumem n/a    reserved n/a",
            format_time(total_sec)
        ));
        let m0 = Instant::now();
        for (name, v) in [
            ("Progress/tick", tick as f64),
            ("Progress/kimg", kimg),
            ("Timing/total_sec", total_sec),
            ("Timing/sec_per_tick", tick_time),
            ("Timing/sec_per_kimg", sec_per_kimg),
            ("Timing/maintenance_sec", maintenance),
            ("Timing/total_hours", total_sec / 3600.0),
            ("Timing/total_days", total_sec / 86400.0),
            ("Resources/cpu_mem_gb", cpu),
        ] {
            trainer.stats.report_scalar(name, v);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let line = trainer.stats.tick(now);
        let mut stats_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join("stats.jsonl"))
            .with_context(|| format!("cannot write {}", run_dir.join("stats.jsonl").display()))?;
        writeln!(stats_file, "{line}").context("cannot append to stats.jsonl (disk full?)")?;

        trainer.progress.cur_tick += 1;
        trainer.progress.total_sec = total_sec;
        if done || stop || tick % opts.snap == 0 {
            let nimg = trainer.progress.cur_nimg;
            let fakes = run_dir.join(format!("fakes{:06}.png", nimg / 1000));
            grid::save_grid(&trainer.fakes(), gw as usize, &fakes)?;
            let path = run_dir.join(snapshot_name(nimg));
            trainer.save(&path)?;
            last_good = Some(path.clone());
            prune_snapshots(&run_dir, opts.keep, &path);
            if !metrics.is_empty() && tick != 0 {
                if evaluator.is_none() {
                    let e = pb.suspend(|| {
                        Evaluator::new(metrics.clone(), &set, device, opts.metrics_num_gen)
                    })?;
                    if e.cached {
                        log.line("Real-image features for the metrics: from the cache");
                    }
                    evaluator = Some(e);
                }
                let e = evaluator.as_ref().expect("set above");
                let scores = pb.suspend(|| e.run(&trainer.g_ema, device, opts.seed as i64))?;
                evaluate_and_keep_best(&run_dir, &path, &scores, &mut trainer, &mut log)?;
            }
            reseed(opts.seed, trainer.progress.batch_idx);
        }
        tick_start_nimg = trainer.progress.cur_nimg;
        tick_start = Instant::now();
        maintenance = m0.elapsed().as_secs_f64();
        if stop {
            pb.finish_and_clear();
            log.line(&format!(
                "Stopped at kimg {:.3}; snapshot {}. Run the same command again to resume.",
                trainer.progress.cur_nimg as f64 / 1e3,
                last_good
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
            return Ok(run_dir);
        }
        if done {
            break;
        }
    }
    pb.finish_and_clear();
    log.line(&format!(
        "Done: kimg {:.3} in {}. Samples: {}, snapshot: {}",
        trainer.progress.cur_nimg as f64 / 1e3,
        format_time(start.elapsed().as_secs_f64()),
        run_dir.join("fakes*.png").display(),
        last_good
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
    Ok(run_dir)
}

/// Append each score to `metric-<name>.jsonl`; when the first metric (FID) improves, copy the
/// snapshot to `best-snapshot.safetensors` and note its kimg in `best_nimg.txt`.
fn evaluate_and_keep_best(
    run_dir: &Path,
    snapshot: &Path,
    scores: &[crate::metrics::Score],
    trainer: &mut Trainer,
    log: &mut Log,
) -> Result<()> {
    let snap_name = snapshot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for s in scores {
        let path = run_dir.join(format!("metric-{}.jsonl", s.metric.name()));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(f, "{}", metric_line(s, &snap_name))
            .with_context(|| format!("cannot append to {}", path.display()))?;
        log.line(&format!(
            "{} {:.4} ({} generated images, {:.0} s)",
            s.metric.name(),
            s.value,
            s.num_gen,
            s.seconds
        ));
    }
    let Some(fid) = scores
        .iter()
        .find(|s| matches!(s.metric, Metric::Fid50kFull | Metric::Fid10kFull))
    else {
        return Ok(());
    };
    if trainer.progress.best_fid.is_none_or(|b| fid.value < b) {
        trainer.progress.best_fid = Some(fid.value);
        let best = run_dir.join("best-snapshot.safetensors");
        let bytes = std::fs::read(snapshot)
            .with_context(|| format!("cannot read {}", snapshot.display()))?;
        checkpoint::atomic_write(&best, |w| Ok(w.write_all(&bytes)?))?;
        let nimg = trainer.progress.cur_nimg.to_string();
        checkpoint::atomic_write(&run_dir.join("best_nimg.txt"), |w| {
            Ok(w.write_all(nimg.as_bytes())?)
        })?;
        log.line(&format!(
            "New best {} {:.4}: {}",
            fid.metric.name(),
            fid.value,
            best.display()
        ));
    }
    Ok(())
}

/// Keep the newest `keep` snapshots (and `current`); older ones are removed only after the
/// new one is complete.
fn prune_snapshots(dir: &Path, keep: usize, current: &Path) {
    for old in snapshots_in(dir).into_iter().skip(keep.max(1)) {
        if old != current {
            std::fs::remove_file(old).ok();
        }
    }
}
