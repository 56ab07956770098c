//! `fpgan demo`: the README's main job on a small default, from a dataset to a grid of samples.
use crate::data::{prepare_into, synthetic, PrepareOptions, RawFit};
use crate::eval::detector::Detector;
use crate::eval::evaluator::{dataset_batches, features_of};
use crate::eval::generate::seed_latent;
use crate::eval::metrics::{feature_stats, fid};
use crate::nets::generator::{GenCfg, GeneratorConfig};
use crate::nets::info;
use crate::snapshot::Network;
use crate::train::options::TrainOptions;
use crate::train::resume::{load_training_set, ResumeFrom};
use crate::train::run::train;
use crate::util::device::{device_name, parse_device};
use crate::util::files::create_output_dir;
use crate::util::progress::count;
use crate::util::{home, images};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

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
    #[arg(long, default_value_t = 1.2)]
    pub kimg: f64,
    /// Batch size of the demo run (reference 64).
    #[arg(long, default_value_t = 8)]
    pub batch: i64,
    /// Adam learning rate of the demo run (5x the reference's 0.0002, so that a CPU sees
    /// something learned within minutes; 0.002 learns faster on some seeds, not on all).
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
    /// Generator width of the demo run (reference 128).
    #[arg(long, default_value_t = 16)]
    pub ngf: i64,
    /// Random seed of the demo run (initial weights, latents, data order, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// Run the demo described by `a`: generated RGBA shapes (or `--data`) prepared into a dataset,
/// both generator variants side by side, a short CPU-sized training run of the Faster generator,
/// a grid of samples, and a summary of where to look.
pub fn run(a: &DemoArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    // every option is checked before anything is written
    if a.max_images == 0 {
        bail!("--max-images 0: give 1 or more (default 64)");
    }
    options(a, &a.outdir.join("dataset.zip"), "").validate()?;
    let dest = prepare_data(a)?;
    compare_variants(a.res as i64)?;
    let device = parse_device(&a.device)?;
    let run_dir = train_briefly(a, &dest, device)?;
    sample_and_point(a, &run_dir, device, t0)
}

/// The built-in shapes (or `--data`) prepared into `<outdir>/dataset.zip`.
fn prepare_data(a: &DemoArgs) -> Result<PathBuf> {
    let out = &a.outdir;
    create_output_dir(out, "--outdir")?;
    let source = match &a.data {
        Some(d) => d.clone(),
        None => {
            let dir = out.join("shapes");
            synthetic::write_shapes(&dir, a.max_images, 0)?;
            println!(
                "demo: wrote {} to {}",
                count(a.max_images as u64, "generated RGBA image"),
                dir.display()
            );
            dir
        }
    };
    let dest = out.join("dataset.zip");
    let opts = PrepareOptions {
        max_images: Some(a.max_images),
        ..PrepareOptions::square(a.res)
    };
    let summary = prepare_into(&source, &dest, &opts, true)?;
    println!(
        "demo: dataset {} -> {}: {summary}",
        source.display(),
        dest.display()
    );
    Ok(dest)
}

/// Both generator variants side by side: parameters and multiply-accumulates.
fn compare_variants(res: i64) -> Result<()> {
    for cfg in [GenCfg::Fastgan, GenCfg::Faster] {
        let config = GeneratorConfig::new(cfg, res);
        let s = info::summarize(&config)?;
        println!(
            "demo: {:<8} G {:>11} params {:>6.2} GMAC/img | D heads {} params, one D call {:.2} GMAC/img",
            cfg.name(),
            s[0].params,
            s[0].macs as f64 / 1e9,
            s[2].params,
            (s[1].macs + s[2].macs) as f64 / 1e9
        );
    }
    let fid = home::weight_file(home::FID_FILE)?;
    tch::CModule::load(&fid).with_context(|| format!("cannot load {}", fid.display()))?;
    Ok(())
}

/// A short training run of the Faster generator (narrow, so that it is quick on a CPU).
fn train_briefly(a: &DemoArgs, dest: &Path, device: Device) -> Result<PathBuf> {
    let train_dir = a.outdir.join("train");
    if train_dir.exists() {
        std::fs::remove_dir_all(&train_dir)
            .with_context(|| format!("cannot clear {}", train_dir.display()))?;
    }
    let set = load_training_set(dest, Some(a.res as i64), true, RawFit::default(), None)?;
    let opts = TrainOptions {
        dataset: Some(set.fingerprint()),
        ..options(a, dest, &set.name)
    };
    println!(
        "demo: training faster (ngf {}) for {} kimg on {}; progress below, full log in the run directory",
        a.ngf,
        a.kimg,
        device_name(device)
    );
    train(&opts, set, &ResumeFrom::Never)
}

/// The demo's training options: faster, batch 8, metrics off, four ticks.
fn options(a: &DemoArgs, dest: &Path, dataset_name: &str) -> TrainOptions {
    TrainOptions {
        outdir: a.outdir.join("train"),
        ngf: a.ngf,
        z_dim: 256,
        classes: 0,
        lr: a.lr,
        batch: a.batch,
        batch_gpu: a.batch,
        kimg: a.kimg,
        tick: a.kimg / 4.0,
        snap: 2,
        mirror: true,
        keep: 1,
        metrics: vec!["none".into()],
        device: a.device.clone(),
        grid: (8, 4),
        seed: a.seed,
        ..TrainOptions::reference(dest, dataset_name, GenCfg::Faster, a.res as i64)
    }
}

/// FID of the samples before training (fakes_init.png) and after, against the demo's training
/// images: 32 generated images, so a rough figure that only shows the direction.
fn before_after_fid(
    a: &DemoArgs,
    run_dir: &Path,
    after: &tch::Tensor,
    device: Device,
) -> Result<(f64, f64)> {
    let detector = Detector::load(device)?;
    let set = load_training_set(
        &a.outdir.join("dataset.zip"),
        Some(a.res as i64),
        false,
        RawFit::default(),
        None,
    )?;
    let reals = features_of(
        &detector,
        &dataset_batches(&set, 16),
        "FID: training images",
    )?;
    let real = feature_stats(&reals);
    let init = run_dir.join("fakes_init.png");
    let grid = image::open(&init)
        .with_context(|| format!("cannot read {}", init.display()))?
        .to_rgb8();
    let before = images::grid_tiles(&grid, a.res as i64)?;
    let score = |x: &tch::Tensor, what: &str| -> Result<f64> {
        let f = features_of(&detector, &[x.shallow_clone()], what)?;
        Ok(fid(&feature_stats(&f), &real))
    };
    Ok((score(&before, "FID: before")?, score(after, "FID: after")?))
}

/// Samples of the trained G_ema, and where to look.
fn sample_and_point(a: &DemoArgs, run_dir: &Path, device: Device, t0: Instant) -> Result<()> {
    let net = Network::load(run_dir, device)?;
    let imgs: Vec<tch::Tensor> = (0..32u32)
        .map(|seed| net.image(&seed_latent(seed, net.g.config.z_dim), None, seed as i64))
        .collect();
    let samples = a.outdir.join("samples.png");
    let after = tch::Tensor::stack(&imgs, 0);
    images::save_grid(&after, 8, &samples)?;
    let (fid_before, fid_after) = before_after_fid(a, run_dir, &after, device)?;
    println!(
        "\ndemo: FID against the training images, 32 samples (indicative at this size): before \
         training {fid_before:.1}, after {fid_after:.1}"
    );
    println!(
        "\ndemo: done in {:.0} s. Where to look:",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "  {}  training images (real)",
        run_dir.join("reals.png").display()
    );
    println!(
        "  {}  samples before training",
        run_dir.join("fakes_init.png").display()
    );
    println!(
        "  {}  samples of G_ema after training, seeds 0-31",
        samples.display()
    );
    println!(
        "  {}  per-tick losses and timings (stats.jsonl)",
        run_dir.display()
    );
    println!(
        "  next: ./fpgan train --data <your images> --cfg faster   (see README; a GPU makes it practical)"
    );
    Ok(())
}
