//! Command line: `fpgan dataset` prepares training sets, `fpgan demo` runs the small default job.
use crate::dataset::{prepare_into, Background, PrepareOptions, Transform};
use crate::fastpath::Amp;
use crate::generate::{latent_walk, parse_seeds, seed_latent, Network, WalkFormat};
use crate::generator::{GenCfg, GeneratorConfig};
use crate::run::{load_training_set, train_with, ResumeFrom, ResumeMode};
use crate::training::{parse_device, TrainOptions};
use crate::{grid, info};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "fpgan",
    version,
    about = "Faster Projected GAN: few-shot image generation on libtorch",
    long_about = "Faster Projected GAN (arXiv 2403.08778) in Rust: a FastGAN generator with \
depthwise-separable up-sampling convolutions, judged by four discriminators on frozen \
EfficientNet-Lite0 features.\n\nPretrained weights live in $FPGAN_HOME/weights \
(default ~/.cache/fpgan/weights); `make setup` installs them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Turn a folder or zip of images into a training set (reference layout, PNG in zip or dir).
    Dataset(DatasetArgs),
    /// Train a generator on a dataset (prepared, or any folder/zip of images).
    Train(Box<TrainArgs>),
    /// Generate images (and latent walks) from a trained network.
    Generate(GenerateArgs),
    /// FID/KID of a trained network against its dataset, or between two image folders.
    Metrics(MetricsArgs),
    /// Measure training speed and memory of generator configurations side by side.
    Bench(BenchArgs),
    /// (internal) measure one configuration given as JSON; used by `bench`.
    #[command(hide = true)]
    BenchWorker { spec: String },
    /// Summarise the networks of a configuration: modules, output shapes, parameters, GMACs.
    Info(InfoArgs),
    /// The small default job: prepare a built-in (or given) image set, train briefly, sample.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// Folder (searched recursively) or .zip of images: PNG, JPEG, WebP, BMP, TIFF, GIF.
    #[arg(long)]
    pub source: PathBuf,
    /// Output: a path ending in .zip (STORED archive) or a directory.
    #[arg(long)]
    pub dest: PathBuf,
    /// Output size: a power of two (e.g. 256), or WxH with center-crop-wide.
    #[arg(long, default_value = "256")]
    pub resolution: String,
    /// How non-square images become square.
    #[arg(long, value_enum, default_value_t = Transform::CenterCrop)]
    pub transform: Transform,
    /// Colour behind transparent pixels (and padding): white, black, R,G,B or #RRGGBB.
    #[arg(long, default_value = "white")]
    pub background: Background,
    /// Stop after writing this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Replace an existing non-empty destination (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Compress the PNGs (lossless, about 4x smaller; the reference writes them uncompressed).
    #[arg(long)]
    pub compress: bool,
    /// Skip images with more pixels than this (decompression bombs); default 512 MiB of RGB.
    #[arg(long, default_value_t = crate::dataset::image_ops::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Resume: by default (--resume auto) re-running the same command with the same \
--outdir continues the matching run directory from its newest snapshot, with the same kimg, tick, \
EMA and Adam moments; --resume none starts a new run directory; --resume <snapshot|run dir> \
continues that run; add --resume-mode reference for the official train.py semantics (weights only, \
new run directory, kimg 0, fresh Adam). Ctrl-C writes a snapshot and exits; a second Ctrl-C quits \
at once."
)]
pub struct TrainArgs {
    /// Training images: a prepared dataset (dir/zip) or any folder/zip of images (prepared on the fly).
    #[arg(long)]
    pub data: PathBuf,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub outdir: PathBuf,
    /// Generator configuration.
    #[arg(long, value_enum, default_value_t = GenCfg::Faster)]
    pub cfg: GenCfg,
    /// Resolution (default: the dataset's; 256 for raw images).
    #[arg(long)]
    pub res: Option<i64>,
    /// Total batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Images per forward pass; gradients of batch/batch-gpu chunks are summed (default: batch).
    #[arg(long)]
    pub batch_gpu: Option<i64>,
    /// Training length in thousands of real images shown.
    #[arg(long, default_value_t = 25000.0)]
    pub kimg: f64,
    /// Progress line (and stats.jsonl) every this many kimg.
    #[arg(long, default_value_t = 4.0)]
    pub tick: f64,
    /// Snapshot and sample grid every this many ticks (and at the end).
    #[arg(long, default_value_t = 50)]
    pub snap: i64,
    /// Add x-flipped copies of the images.
    #[arg(long)]
    pub mirror: bool,
    /// Random seed (weights, projections, data order, latents).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto | none | <snapshot file or run dir> (see below).
    #[arg(long, default_value = "auto")]
    pub resume: ResumeFrom,
    /// exact (continue everything) or reference (weights only into a new run: kimg 0, fresh
    /// Adam, no EMA rampup, as the official train.py --resume).
    #[arg(long, value_enum, default_value_t = ResumeMode::Exact)]
    pub resume_mode: ResumeMode,
    /// Metrics at snapshot ticks (not tick 0) and at the end: fid50k_full, kid50k_full,
    /// fid10k_full (comma list) or none. fid50k_full takes about an hour on a CPU.
    #[arg(long, default_value = "fid50k_full")]
    pub metrics: String,
    /// Generated images per evaluation instead of 50k/10k (quick looks; not comparable).
    #[arg(long)]
    pub num_gen: Option<usize>,
    /// Number of recent snapshots to keep.
    #[arg(long, default_value_t = 3)]
    pub keep: usize,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Suffix for the run directory name.
    #[arg(long)]
    pub desc: Option<String>,
    /// Generator width (reference 128; smaller for quick experiments).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
    /// Sample grid as COLSxROWS, or auto (the reference's 30x16 at 256 on CUDA, 8x4 on CPU).
    #[arg(long, default_value = "auto")]
    pub grid: String,
    /// Forward-pass precision: none (fp32, the reference) or bf16 autocast (faster on recent
    /// GPUs, changes the numbers; see docs/benchmarks.md).
    #[arg(long, value_enum, default_value_t = Amp::None)]
    pub amp: Amp,
    /// Lay weights and images out channels_last (NHWC); same numbers up to rounding order.
    #[arg(long)]
    pub channels_last: bool,
    /// Print the resolved options and exit.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A snapshot file or a run directory (its newest snapshot).
    #[arg(long)]
    pub network: PathBuf,
    /// Seeds: e.g. 0-63 or 1,5,9. Each seed gives the same image every time.
    #[arg(long, default_value = "0-63")]
    pub seeds: String,
    /// Output directory (seedNNNN.png per seed).
    #[arg(long, default_value = "out")]
    pub outdir: PathBuf,
    /// Also tile the images into grid.png, COLSxROWS (e.g. 8x8).
    #[arg(long)]
    pub grid: Option<String>,
    /// Truncation: FastGAN has no mapping network, so only `none` exists (as the reference).
    #[arg(long, default_value = "none")]
    pub trunc: String,
    /// Write a looping latent walk through the seeds instead of single images.
    #[arg(long)]
    pub interpolate: bool,
    /// Frames between consecutive seeds of the walk.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Format of the walk.
    #[arg(long, value_enum, default_value_t = WalkFormat::Gif)]
    pub format: WalkFormat,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// Parse `COLSxROWS`.
fn parse_grid(s: &str) -> Result<(i64, i64)> {
    let bad = || anyhow::anyhow!("bad grid '{s}': use COLSxROWS such as 8x4");
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (c, r): (i64, i64) = (
        c.trim().parse().map_err(|_| bad())?,
        r.trim().parse().map_err(|_| bad())?,
    );
    if c < 1 || r < 1 || c * r > 4096 {
        return Err(bad());
    }
    Ok((c, r))
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fpgan metrics --network runs/00000-faster-pokemon256-batch64 --data pokemon256.zip\n  \
fpgan metrics --real photos/ --fake out/ --metrics fid,kid\n\nReal-image features are cached in \
$FPGAN_HOME/metrics-cache, keyed by the image content and the detector file."
)]
pub struct MetricsArgs {
    /// A snapshot or run directory to score (with --data).
    #[arg(long, requires = "data", conflicts_with_all = ["real", "fake"])]
    pub network: Option<PathBuf>,
    /// The dataset the network was trained on (all images, no x-flips).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A folder or zip of real images (any sizes and formats the dataset tool reads).
    #[arg(long, requires = "fake")]
    pub real: Option<PathBuf>,
    /// A folder or zip of generated images.
    #[arg(long, requires = "real")]
    pub fake: Option<PathBuf>,
    /// With --network: fid50k_full, kid50k_full, fid10k_full; with --real/--fake: fid, kid.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Generated images instead of the metric's 50k/10k (quick looks; not comparable).
    #[arg(long)]
    pub num_gen: Option<usize>,
    /// Seed of the generated latents.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma list of configurations; ratios are against the first.
    #[arg(long, default_value = "fastgan,faster,fastgan_lite,faster_lite")]
    pub cfgs: String,
    #[arg(long, default_value_t = 256)]
    pub res: i64,
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Images per forward pass (default: batch).
    #[arg(long)]
    pub batch_gpu: Option<i64>,
    /// Generator width (reference 128).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
    /// Measured iterations.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Iterations run before measuring.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Forward-pass precision: none (fp32) or bf16 autocast.
    #[arg(long, value_enum, default_value_t = Amp::None)]
    pub amp: Amp,
    /// Lay weights and images out channels_last (NHWC).
    #[arg(long)]
    pub channels_last: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Generator configuration.
    #[arg(long, value_enum, default_value_t = GenCfg::Faster)]
    pub cfg: GenCfg,
    /// Image resolution: 128, 256, 512 or 1024.
    #[arg(long, default_value_t = 256)]
    pub res: i64,
    /// Generator width (reference 128).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Images to use instead of the built-in generated shapes (folder or zip).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the demo writes its files.
    #[arg(long, default_value = "runs/demo")]
    pub outdir: PathBuf,
    /// Resolution of the demo dataset and networks (128 or more).
    #[arg(long, default_value_t = 128)]
    pub res: u32,
    /// Use at most this many images.
    #[arg(long, default_value_t = 64)]
    pub max_images: usize,
    /// Length of the demo training run, in thousands of images.
    #[arg(long, default_value_t = 0.4)]
    pub kimg: f64,
    /// Generator width of the demo run (reference 128).
    #[arg(long, default_value_t = 32)]
    pub ngf: i64,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dataset(a) => run_dataset(a),
        Command::Train(a) => run_train(*a),
        Command::Generate(a) => run_generate(a),
        Command::Metrics(a) => run_metrics(a),
        Command::Bench(a) => run_bench(a),
        Command::BenchWorker { spec } => {
            let spec: crate::bench::BenchSpec =
                serde_json::from_str(&spec).context("bad bench spec")?;
            println!("{}", serde_json::to_string(&crate::bench::run_one(&spec)?)?);
            Ok(())
        }
        Command::Info(a) => run_info(a),
        Command::Demo(a) => crate::demo::run(&a),
    }
}

fn run_dataset(a: DatasetArgs) -> Result<()> {
    let (width, height) = PrepareOptions::parse_resolution(&a.resolution, a.transform)?;
    let opts = PrepareOptions {
        width,
        height,
        transform: a.transform,
        background: a.background,
        max_images: a.max_images,
        compress: a.compress,
        max_pixels: a.max_pixels,
    };
    let summary = prepare_into(&a.source, &a.dest, &opts, a.force)?;
    println!(
        "dataset: {summary} -> {} ({width}x{width} RGB)",
        a.dest.display()
    );
    if let Some(note) = summary.skipped_note() {
        println!("dataset: {note}");
    }
    Ok(())
}

fn run_train(a: TrainArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let set = load_training_set(&a.data, a.res, a.mirror)?;
    let resolution = set.resolution as i64;
    let grid = match a.grid.as_str() {
        "auto" if device.is_cuda() => TrainOptions::reference_grid(resolution),
        "auto" => (8, 4),
        g => parse_grid(g)?,
    };
    let opts = TrainOptions {
        data: a.data.clone(),
        dataset_name: set.name.clone(),
        outdir: a.outdir,
        cfg: a.cfg,
        resolution,
        ngf: a.ngf,
        batch: a.batch,
        batch_gpu: a.batch_gpu.unwrap_or(a.batch),
        kimg: a.kimg,
        tick: a.tick,
        snap: a.snap,
        mirror: a.mirror,
        seed: a.seed,
        keep: a.keep,
        metrics: a.metrics.split(',').map(|m| m.trim().to_string()).collect(),
        metrics_num_gen: a.num_gen,
        amp: a.amp,
        channels_last: a.channels_last,
        device: a.device,
        desc: a.desc,
        grid,
    };
    opts.validate()?;
    if a.dry_run {
        println!("{}", serde_json::to_string_pretty(&opts)?);
        println!(
            "dataset: {} images ({} with x-flips) of {r}x{r}; device {device:?}",
            set.num_images(),
            set.len(),
            r = resolution
        );
        return Ok(());
    }
    train_with(&opts, set, &a.resume, a.resume_mode)?;
    Ok(())
}

fn run_generate(a: GenerateArgs) -> Result<()> {
    if a.trunc != "none" {
        anyhow::bail!("--trunc {}: FastGAN has no mapping network, so truncation does not exist; use --trunc none", a.trunc);
    }
    let seeds = parse_seeds(&a.seeds)?;
    let device = parse_device(&a.device)?;
    let net = Network::load(&a.network, device)?;
    std::fs::create_dir_all(&a.outdir)
        .with_context(|| format!("cannot create {}", a.outdir.display()))?;
    if a.interpolate {
        if seeds.len() < 2 || a.frames < 1 {
            anyhow::bail!("--interpolate needs at least two seeds and --frames >= 1");
        }
        let out = latent_walk(&net, &seeds, a.frames, a.format, &a.outdir)?;
        println!(
            "generate: latent walk through {} seeds -> {}",
            seeds.len(),
            out.display()
        );
        return Ok(());
    }
    let grid_spec = a.grid.as_deref().map(parse_grid).transpose()?;
    let pb = crate::progress::bar(seeds.len() as u64, "generating");
    let mut all = Vec::new();
    for &seed in &seeds {
        let img = net.image(&seed_latent(seed, net.g.config.z_dim), seed as i64);
        grid::save_png(
            &grid::to_image(&img)?,
            &a.outdir.join(format!("seed{seed:04}.png")),
        )?;
        if grid_spec.is_some() {
            all.push(img);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some((cols, rows)) = grid_spec {
        let n = (cols * rows) as usize;
        let imgs: Vec<tch::Tensor> = all.into_iter().take(n).collect();
        grid::save_grid(
            &tch::Tensor::stack(&imgs, 0),
            cols as usize,
            &a.outdir.join("grid.png"),
        )?;
    }
    println!(
        "generate: {} images from {} -> {}",
        seeds.len(),
        net.source.display(),
        a.outdir.display()
    );
    Ok(())
}

fn run_metrics(a: MetricsArgs) -> Result<()> {
    use crate::metrics::{self, Evaluator};
    let device = parse_device(&a.device)?;
    if let (Some(net_path), Some(data)) = (&a.network, &a.data) {
        let list = metrics::parse_metrics(a.metrics.as_deref().unwrap_or("fid50k_full"))?;
        if list.is_empty() {
            anyhow::bail!("--metrics names no metric");
        }
        let net = Network::load(net_path, device)?;
        let set = load_training_set(data, Some(net.g.config.resolution), false)?;
        let eval = Evaluator::new(list, &set, device, a.num_gen)?;
        println!(
            "metrics: {} real images of {} ({})",
            set.num_images(),
            data.display(),
            if eval.cached {
                "features from the cache"
            } else {
                "features computed and cached"
            }
        );
        let snap = net
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for s in eval.run(&net.g, device, a.seed)? {
            println!("{}", metrics::metric_line(&s, &snap));
            println!(
                "metrics: {} = {:.4} ({} generated images, {:.0} s)",
                s.metric.name(),
                s.value,
                s.num_gen,
                s.seconds
            );
        }
        return Ok(());
    }
    let (Some(real), Some(fake)) = (&a.real, &a.fake) else {
        anyhow::bail!("give --network <snapshot|run dir> with --data <dataset>, or --real <images> with --fake <images>");
    };
    let wanted = a.metrics.clone().unwrap_or_else(|| "fid,kid".into());
    let detector = crate::detector::Detector::load(device)?;
    let name = |p: &std::path::Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let real_b = metrics::folder_batches(real, metrics::detector_batch(device))?;
    let (fr, cached) = metrics::real_features(&detector, &name(real), &real_b)?;
    let ff = metrics::features_of(
        &detector,
        &metrics::folder_batches(fake, metrics::detector_batch(device))?,
        "fake images",
    )?;
    println!(
        "metrics: {} real images ({}), {} fake images",
        fr.size()[0],
        if cached {
            "features from the cache"
        } else {
            "features computed and cached"
        },
        ff.size()[0]
    );
    for m in wanted.split(',').map(str::trim) {
        let v = match m {
            "fid" => metrics::fid(&metrics::feature_stats(&ff), &metrics::feature_stats(&fr)),
            "kid" => metrics::kid(&fr, &ff, 100, 0),
            _ => anyhow::bail!("unknown metric '{m}' for --real/--fake: use fid, kid"),
        };
        println!("{m} {v:.6}");
    }
    Ok(())
}

fn run_bench(a: BenchArgs) -> Result<()> {
    parse_device(&a.device)?;
    if a.iters == 0 {
        anyhow::bail!("--iters must be at least 1");
    }
    let batch_gpu = a.batch_gpu.unwrap_or(a.batch);
    let mut specs = Vec::new();
    for name in a.cfgs.split(',').map(str::trim) {
        let cfg = <GenCfg as clap::ValueEnum>::from_str(name, true).map_err(|_| {
            anyhow::anyhow!(
                "unknown --cfgs entry '{name}': use fastgan, fastgan_lite, faster, faster_lite"
            )
        })?;
        let spec = crate::bench::BenchSpec {
            cfg,
            res: a.res,
            batch: a.batch,
            batch_gpu,
            ngf: a.ngf,
            iters: a.iters,
            warmup: a.warmup,
            device: a.device.clone(),
            amp: a.amp,
            channels_last: a.channels_last,
        };
        // validate before spawning anything
        GeneratorConfig {
            ngf: a.ngf,
            ..GeneratorConfig::new(cfg, a.res)
        }
        .validate()?;
        if a.batch < 1 || batch_gpu < 1 || a.batch % batch_gpu != 0 {
            anyhow::bail!(
                "--batch {} must be a positive multiple of --batch-gpu {batch_gpu}",
                a.batch
            );
        }
        specs.push(spec);
    }
    let results = crate::bench::run_all(&specs)?;
    print!("{}", crate::bench::render(&results));
    if let Some(p) = &a.json {
        crate::bench::write_json(&results, p)?;
        println!("bench: results written to {}", p.display());
    }
    Ok(())
}

fn run_info(a: InfoArgs) -> Result<()> {
    let config = GeneratorConfig {
        ngf: a.ngf,
        ..GeneratorConfig::new(a.cfg, a.res)
    };
    let sections = info::summarize(&config)?;
    print!("{}", info::render(&config, &sections));
    Ok(())
}
