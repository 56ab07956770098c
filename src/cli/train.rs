//! `fpgan train`: the options of a run from the command line, then the run itself.
use super::parse::parse_grid;
use crate::data::loader::dataset_name;
use crate::data::{Background, ImageSet, RawFit, Source, Transform};
use crate::dist::launch::{
    free_port, launch_local, LocalWorkers, Membership, DEFAULT_JOIN_TIMEOUT, DEFAULT_STALL_TIMEOUT,
};
use crate::eval::metrics::parse_metrics;
use crate::fastpath::FastPath;
use crate::nets::generator::{GenCfg, RESOLUTIONS};
use crate::train::options::{TrainOptions, DEFAULT_LR, OPTIONS_FILE};
use crate::train::resume::{
    check_mode, earlier_options, inherited_note, load_training_set, preview_run, ResumeFrom,
    ResumeMode,
};
use crate::train::rewind::later_snapshots;
use crate::train::run::train_as;
use crate::train::signals;
use crate::train::state::check_resumable;
use crate::util::device::{device_name, parse_device};
use crate::util::progress::count;
use crate::util::safetensors::read_meta;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    after_help = "Resume: by default (--resume auto) re-running the same command with the same \
--outdir continues the matching run directory (the newest, if several match) from its newest \
snapshot, with the same kimg, tick, EMA and Adam moments; --resume none starts a new run \
directory; --resume <snapshot|run dir> \
continues that run; add --resume-mode reference for the official train.py semantics (weights only, \
new run directory, kimg 0, fresh Adam). Ctrl-C writes a snapshot (without metrics) and exits; a \
second Ctrl-C quits at once."
)]
pub struct TrainArgs {
    /// Print the resolved options and exit.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Training images: a prepared dataset (dir/zip) or any folder/zip of images (prepared on the fly).
    #[arg(long, help_heading = "Data")]
    pub data: PathBuf,
    /// Resolution (default: the dataset's; for raw images 256, or the run's on a resume).
    #[arg(long, help_heading = "Data")]
    pub res: Option<i64>,
    /// Raw images only: how non-square ones become square, as `fpgan dataset --transform`
    /// (default center-crop, or the run's on a resume).
    #[arg(long, value_parser = Transform::square_parser(), help_heading = "Data")]
    pub transform: Option<Transform>,
    /// Raw images only: the colour behind transparent pixels (and padding), as `fpgan dataset
    /// --background` (default white, or the run's on a resume).
    #[arg(long, help_heading = "Data")]
    pub background: Option<Background>,
    /// Add x-flipped copies of the images.
    #[arg(long, help_heading = "Data")]
    pub mirror: bool,
    /// Class-conditional model: one class per label of the dataset (its dataset.json `labels`,
    /// made by `fpgan dataset --labels` or the official dataset_tool.py).
    #[arg(long, help_heading = "Data")]
    pub cond: bool,
    /// Generator configuration.
    #[arg(long, value_enum, default_value_t = GenCfg::Faster, help_heading = "Model")]
    pub cfg: GenCfg,
    /// Generator width (reference 128; smaller for quick experiments).
    #[arg(long, default_value_t = 128, help_heading = "Model")]
    pub ngf: i64,
    /// Latent size z (reference 256).
    #[arg(long, default_value_t = 256, help_heading = "Model")]
    pub z_dim: i64,
    /// Total batch size.
    #[arg(long, default_value_t = 64, help_heading = "Training")]
    pub batch: i64,
    /// Images per forward pass; gradients of the chunks of a process's share are summed
    /// (default: batch / gpus).
    #[arg(long, help_heading = "Training")]
    pub batch_gpu: Option<i64>,
    /// Training length in thousands of real images shown.
    #[arg(long, default_value_t = 25000.0, help_heading = "Training")]
    pub kimg: f64,
    /// Adam learning rate of G and D (the reference's 0.0002; D's is scaled by 16/17 as there).
    #[arg(long, default_value_t = DEFAULT_LR, help_heading = "Training")]
    pub lr: f64,
    /// Random seed (weights, projections, data order, latents).
    #[arg(long, default_value_t = 0, help_heading = "Training")]
    pub seed: u64,
    /// Where run directories are created.
    #[arg(long, default_value = "runs", help_heading = "Progress and output")]
    pub outdir: PathBuf,
    /// Suffix for the run directory name.
    #[arg(long, help_heading = "Progress and output")]
    pub desc: Option<String>,
    /// Progress line (and stats.jsonl) every this many kimg.
    #[arg(long, default_value_t = 4.0, help_heading = "Progress and output")]
    pub tick: f64,
    /// Snapshot and sample grid every this many ticks (and at the end).
    #[arg(long, default_value_t = 50, help_heading = "Progress and output")]
    pub snap: i64,
    /// Number of recent snapshots to keep (at least 1).
    #[arg(long, default_value_t = 3, help_heading = "Progress and output")]
    pub keep: usize,
    /// Sample grid as COLSxROWS, or auto (the reference's 30x16 at 256 on CUDA, 8x4 on CPU).
    #[arg(long, default_value = "auto", help_heading = "Progress and output")]
    pub grid: String,
    /// Metrics at snapshot ticks (not tick 0) and at the end: fid50k_full, kid50k_full,
    /// fid10k_full (comma list) or none. fid50k_full generates 50,000 images: hours on a CPU
    /// (the run measures and says how long at its start; --num-gen for quick looks).
    #[arg(long, default_value = "fid50k_full", help_heading = "Metrics")]
    pub metrics: String,
    /// Generated images per evaluation instead of 50k/10k (quick looks; not comparable).
    #[arg(long, help_heading = "Metrics")]
    pub num_gen: Option<usize>,
    /// auto | none | <snapshot file or run dir> (see below).
    #[arg(long, default_value = "auto", help_heading = "Resume")]
    pub resume: ResumeFrom,
    /// exact (continue everything) or reference (weights only into a new run: kimg 0, fresh
    /// Adam, no EMA rampup, as the official train.py --resume).
    #[arg(long, value_enum, default_value_t = ResumeMode::Exact, help_heading = "Resume")]
    pub resume_mode: ResumeMode,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto", help_heading = "Device and speed")]
    pub device: String,
    #[command(flatten)]
    pub fast: FastPath,
    /// Data-parallel worker processes on this machine, one per GPU (on a CPU, processes;
    /// default 1). Each of the gpus x nnodes processes trains its share of every batch.
    #[arg(long, help_heading = "Several GPUs or machines")]
    pub gpus: Option<i64>,
    /// Machines of a data-parallel run (start the same command on each, with its --node-rank).
    #[arg(long, default_value_t = 1, help_heading = "Several GPUs or machines")]
    pub nnodes: usize,
    /// This machine's number among --nnodes (0 hosts the rendezvous and writes the run).
    #[arg(long, default_value_t = 0, help_heading = "Several GPUs or machines")]
    pub node_rank: usize,
    /// Address of machine 0 for the rendezvous.
    #[arg(
        long,
        default_value = "127.0.0.1",
        help_heading = "Several GPUs or machines"
    )]
    pub master_addr: String,
    /// TCP port of the rendezvous on machine 0 (default: 29500 with --nnodes, else a free one).
    #[arg(long, help_heading = "Several GPUs or machines")]
    pub master_port: Option<u16>,
    /// Seconds the processes of a data-parallel run wait for each other to start (every
    /// machine's command must start within it).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_JOIN_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..), help_heading = "Several GPUs or machines")]
    pub join_timeout: u64,
    /// Seconds a data-parallel run may go without progress in any process (a GPU that stopped
    /// answering, a process stopped or cut off) before its processes give up, instead of
    /// waiting in a collective for hours; 0: never.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_TIMEOUT.as_secs(), help_heading = "Several GPUs or machines")]
    pub stall_timeout: u64,
}

pub fn run(a: TrainArgs) -> Result<()> {
    if a.fast.deterministic {
        crate::fastpath::fix_cublas_workspace(); // before any CUDA work, in workers too
    }
    let join_timeout = Duration::from_secs(a.join_timeout);
    let stall_timeout = (a.stall_timeout > 0).then(|| Duration::from_secs(a.stall_timeout));
    let member = Membership::from_env()?.map(|m| Membership {
        join_timeout,
        stall_timeout,
        ..m
    });
    let gpus = a.processes(member.as_ref())?;
    let (grid, earlier) = a.check_options(gpus)?;
    if member.is_none() && gpus > 1 && !a.dry_run {
        return a.launch_workers(gpus);
    }
    // each machine's first worker says what its data preparation found, for all
    crate::util::early_log::set_echo(member.as_ref().is_none_or(|m| m.local_rank == 0));
    let device = parse_device(&a.device)?;
    let rank0 = member.as_ref().is_none_or(|m| m.rank == 0);
    let set = a.training_set(earlier.as_ref(), rank0)?;
    let opts = a.resolved_options(&set, grid, device, gpus, rank0)?;
    if a.dry_run {
        return dry_run(&opts, &set, device, &a.resume, a.resume_mode);
    }
    train_as(&opts, set, &a.resume, a.resume_mode, member.as_ref())?;
    Ok(())
}

/// `--dry-run`: the resolved options, the data, the device and the run directory.
fn dry_run(
    opts: &TrainOptions,
    set: &ImageSet,
    device: tch::Device,
    resume: &ResumeFrom,
    mode: ResumeMode,
) -> Result<()> {
    let run = preview_run(opts, resume)?;
    if let Some(s) = &run.snapshot {
        check_resumable(&opts.generator_config(), s, mode == ResumeMode::Exact)?;
    }
    println!("{}", serde_json::to_string_pretty(opts)?);
    if let Some(n) = &run.note {
        println!("{n}");
    }
    match (&run.snapshot, mode) {
        (None, _) => println!("run: a new run in {}", run.dir.display()),
        (Some(s), ResumeMode::Exact) => {
            // the snapshot's own count of images (a best-snapshot's name has none)
            let meta = read_meta(s).unwrap_or_default();
            let used_nimg = meta["progress"]["cur_nimg"].as_i64().unwrap_or(i64::MAX);
            let later = later_snapshots(&run.dir, s, used_nimg).len();
            let aside = match later {
                0 => String::new(),
                n => format!(" (its {n} later snapshot(s) would be set aside)"),
            };
            println!(
                "run: continues {} from {}{aside}",
                run.dir.display(),
                s.display()
            )
        }
        (Some(s), ResumeMode::Reference) => println!(
            "run: a new run in {} with the weights of {}",
            preview_run(opts, &ResumeFrom::Never)?.dir.display(),
            s.display()
        ),
    }
    println!(
        "dataset: {}{} of {r}x{r}; device {}",
        count(set.num_images() as u64, "image"),
        match set.mirror {
            true => format!(" ({} with x-flips)", set.len()),
            false => String::new(),
        },
        device_name(device),
        r = set.resolution
    );
    Ok(())
}

/// A sample grid: columns, rows.
type Grid = (i64, i64);

/// torchrun's default rendezvous port.
const DEFAULT_MASTER_PORT: u16 = 29500;

/// The classes of the run: the dataset's (largest label + 1, as the reference) with --cond, else
/// 0 (with a hint when the dataset has labels and `say`).
fn training_classes(cond: bool, set: &ImageSet, data: &Path, say: bool) -> Result<i64> {
    match (cond, set.classes()) {
        (false, 0) => Ok(0),
        (false, c) => {
            if say {
                crate::util::early_log::say(&format!(
                    "note: {} has labels of {c} classes; add --cond for a class-conditional model",
                    data.display()
                ));
            }
            Ok(0)
        }
        (true, 0) => Err(no_labels(data)),
        (true, c) => Ok(c),
    }
}

/// `--cond` on data without class labels: how to make a labelled copy.
fn no_labels(data: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "--cond: {} has no class labels; prepare a labelled copy with `fpgan dataset --source DIR --dest labelled.zip --labels folders` (a folder per class; or `--labels FILE.json`) and train on labelled.zip",
        data.display()
    )
}

impl TrainArgs {
    /// Every option checked before the (possibly long) preparation of the data: the --grid
    /// given (None: auto) and the options of the run this command continues, if any.
    fn check_options(&self, gpus: i64) -> Result<(Option<Grid>, Option<TrainOptions>)> {
        let grid = match self.grid.as_str() {
            "auto" => None,
            g => Some(parse_grid(g)?),
        };
        check_mode(&self.resume, self.resume_mode)?;
        if self.batch_gpu.is_none() && self.batch % gpus != 0 {
            bail!(
                "--batch {} must divide evenly over the {gpus} processes (--gpus x --nnodes)",
                self.batch
            );
        }
        let earlier = self.earlier_run(gpus);
        let inherited_res = earlier.as_ref().map(|o| o.resolution);
        // (the data's resolution is not known yet: the smallest, so that no check names another)
        let resolution = self.res.or(inherited_res).unwrap_or(128);
        self.options(String::new(), resolution, (1, 1), gpus)
            .validate()?;
        if self.data.join(OPTIONS_FILE).is_file() {
            bail!(
                "--data {d} is a training run's directory ({OPTIONS_FILE}), not a dataset: give the dataset it trained on, or continue the run with --resume {d}",
                d = self.data.display()
            );
        }
        Ok((grid, earlier))
    }

    /// The images to train on, prepared when raw, at a resolution fpgan trains at (`say`: this
    /// process tells what it kept of the earlier run's preparation).
    fn training_set(&self, earlier: Option<&TrainOptions>, say: bool) -> Result<ImageSet> {
        // raw images (no dataset.json) carry no labels: said before they are prepared
        if self.cond && !Source::open(&self.data)?.has_dataset_json() {
            return Err(no_labels(&self.data));
        }
        let set = load_training_set(&self.data, self.res, self.mirror, self.fit(), earlier)?;
        let resolution = set.resolution;
        if !RESOLUTIONS.contains(&(resolution as u32)) {
            bail!(
                "--data {}: its images are {resolution}x{resolution}; fpgan trains at 128, 256, 512 or 1024: prepare it with fpgan dataset --resolution 256 (or give the original images and --res)",
                self.data.display()
            );
        }
        match inherited_note(&set, &self.data, self.res, self.fit(), earlier) {
            Some(note) if say => crate::util::early_log::say(&note),
            _ => {}
        }
        Ok(set)
    }

    /// The run's options on `set`: its classes with --cond, the grid given or the reference's
    /// for the device (a conditional grid shows one row per class, at most 32 rows).
    fn resolved_options(
        &self,
        set: &ImageSet,
        grid: Option<Grid>,
        device: tch::Device,
        gpus: i64,
        say: bool,
    ) -> Result<TrainOptions> {
        let resolution = set.resolution as i64;
        // said now, not at the first snapshot's metrics hours later
        if set.num_images() < 2 && !parse_metrics(&self.metrics)?.is_empty() {
            bail!(
                "--data {}: {}; its metrics (FID, KID) need at least 2: add images, or train with --metrics none",
                self.data.display(),
                count(set.num_images() as u64, "image")
            );
        }
        let classes = training_classes(self.cond, set, &self.data, say)?;
        let (cols, rows) = match device.is_cuda() {
            true => TrainOptions::reference_grid(resolution),
            false => (8, 4),
        };
        let auto_grid = match classes {
            0 => (cols, rows),
            c => (cols, c.min(32)),
        };
        let opts = TrainOptions {
            classes,
            dataset: Some(set.fingerprint()),
            transform: set.fit.map(|f| f.0),
            background: set.fit.map(|f| f.1),
            ..self.options(
                set.name.clone(),
                resolution,
                grid.unwrap_or(auto_grid),
                gpus,
            )
        };
        opts.validate()?;
        Ok(opts)
    }

    /// How raw --data is fitted (--transform, --background).
    fn fit(&self) -> RawFit {
        RawFit {
            transform: self.transform,
            background: self.background,
        }
    }

    /// The options recorded by the run this command continues, whose preparation of raw images
    /// it keeps where --res, --transform and --background are not given: its resolution (the
    /// snapshot's, which binds), and in an exact resume its fit (a reference resume may be on
    /// other data).
    fn earlier_run(&self, gpus: i64) -> Option<TrainOptions> {
        let name = dataset_name(&self.data);
        let opts = TrainOptions {
            // the run's name says whether it is conditional, not how many classes
            classes: self.cond as i64,
            ..self.options(name, 0, (1, 1), gpus)
        };
        let earlier = earlier_options(&opts, &self.resume)?;
        Some(match self.resume_mode {
            ResumeMode::Exact => earlier,
            ResumeMode::Reference => TrainOptions {
                transform: None,
                background: None,
                ..earlier
            },
        })
    }

    /// The processes of the whole run: --gpus x --nnodes, or WORLD_SIZE under a launcher.
    fn processes(&self, member: Option<&Membership>) -> Result<i64> {
        let per_node = self.gpus.unwrap_or(1);
        if self.nnodes == 0 || self.node_rank >= self.nnodes || per_node < 1 {
            bail!(
                "--gpus {per_node} --nnodes {} --node-rank {}: need --gpus >= 1 and --node-rank below --nnodes",
                self.nnodes,
                self.node_rank
            );
        }
        let total = per_node * self.nnodes as i64;
        match member {
            Some(m) if self.gpus.is_some() && total != m.world as i64 => bail!(
                "--gpus {per_node} x --nnodes {} but WORLD_SIZE={}: leave --gpus out under a launcher",
                self.nnodes,
                m.world
            ),
            Some(m) => Ok(m.world as i64),
            None => Ok(total),
        }
    }

    /// Start this machine's --gpus workers, each this same command under torchrun's
    /// variables, and wait for them.
    fn launch_workers(&self, world: i64) -> Result<()> {
        let per_node = self.gpus.unwrap_or(1) as usize;
        let workers = LocalWorkers {
            procs: per_node,
            first_rank: self.node_rank * per_node,
            world: world as usize,
            master_addr: self.master_addr.clone(),
            master_port: match (self.master_port, self.nnodes) {
                (Some(p), _) => p,
                (None, 1) => free_port()?,
                (None, _) => DEFAULT_MASTER_PORT,
            },
            join_timeout: Duration::from_secs(self.join_timeout),
            node: (self.nnodes > 1).then_some(self.node_rank),
        };
        if self.nnodes > 1 {
            // the workers wait silently until every node's have joined
            println!(
                "node {} of {}: {per_node} worker(s), waiting up to {} s (--join-timeout) for all {world} processes to meet at {}:{} (each other node runs this command with its --node-rank)",
                self.node_rank, self.nnodes, self.join_timeout, workers.master_addr, workers.master_port
            );
        }
        let args: Vec<String> = std::env::args().skip(1).collect();
        signals::install(signals::Role::Launcher);
        launch_local(
            &workers,
            &args,
            Duration::from_secs(30),
            signals::stop_requested,
            signals::quit_requested,
        )
    }

    /// The run's options for a dataset named `dataset_name` at `resolution` on `gpus` processes.
    fn options(
        &self,
        dataset_name: String,
        resolution: i64,
        grid: (i64, i64),
        gpus: i64,
    ) -> TrainOptions {
        TrainOptions {
            data: self.data.clone(),
            dataset_name,
            dataset: None,
            transform: None,
            background: None,
            outdir: self.outdir.clone(),
            cfg: self.cfg,
            resolution,
            ngf: self.ngf,
            z_dim: self.z_dim,
            classes: 0,
            lr: self.lr,
            batch: self.batch,
            batch_gpu: self.batch_gpu.unwrap_or(self.batch / gpus.max(1)),
            gpus,
            kimg: self.kimg,
            tick: self.tick,
            snap: self.snap,
            mirror: self.mirror,
            seed: self.seed,
            keep: self.keep,
            metrics: self
                .metrics
                .split(',')
                .map(|m| m.trim().to_string())
                .collect(),
            metrics_num_gen: self.num_gen,
            fast: self.fast,
            device: self.device.clone(),
            desc: self.desc.clone(),
            grid,
        }
    }
}
