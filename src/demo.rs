//! `fpgan demo`, the README's main job on a small default: generated RGBA shapes (or `--data`)
//! prepared into a dataset, both generator variants side by side, a short CPU-sized training run
//! of the Faster generator, a grid of samples, and a summary of where to look.
use crate::cli::DemoArgs;
use crate::dataset::{prepare_into, PrepareOptions};
use crate::generate::{seed_latent, Network};
use crate::generator::{GenCfg, GeneratorConfig};
use crate::run::{load_training_set, train, ResumeFrom};
use crate::training::{parse_device, TrainOptions};
use crate::{grid, home, info};
use anyhow::{Context, Result};

/// Run the demo described by `a`.
pub fn run(a: &DemoArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let out = &a.outdir;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let source = match &a.data {
        Some(d) => d.clone(),
        None => {
            let dir = out.join("shapes");
            crate::dataset::synthetic::write_shapes(&dir, a.max_images, 0)?;
            println!(
                "demo: wrote {} generated RGBA images to {}",
                a.max_images,
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

    // both generator variants side by side
    for cfg in [GenCfg::Fastgan, GenCfg::Faster] {
        let config = GeneratorConfig::new(cfg, a.res as i64);
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

    // a short training run of the Faster generator (narrow, so that it is quick on a CPU)
    let train_dir = out.join("train");
    if train_dir.exists() {
        std::fs::remove_dir_all(&train_dir)
            .with_context(|| format!("cannot clear {}", train_dir.display()))?;
    }
    let device = parse_device(&a.device)?;
    let set = load_training_set(&dest, Some(a.res as i64), true)?;
    let opts = TrainOptions {
        outdir: train_dir,
        ngf: a.ngf,
        batch: 8,
        batch_gpu: 8,
        kimg: a.kimg,
        tick: a.kimg / 4.0,
        snap: 2,
        mirror: true,
        keep: 1,
        metrics: vec!["none".into()],
        device: a.device.clone(),
        grid: (8, 4),
        ..TrainOptions::reference(&dest, &set.name, GenCfg::Faster, a.res as i64)
    };
    println!(
        "demo: training faster (ngf {}) for {} kimg on {device:?}; progress below, full log in the run directory",
        a.ngf, a.kimg
    );
    let run_dir = train(&opts, set, &ResumeFrom::Never)?;
    let net = Network::load(&run_dir, device)?;
    let imgs: Vec<tch::Tensor> = (0..32u32)
        .map(|seed| net.image(&seed_latent(seed, net.g.config.z_dim), seed as i64))
        .collect();
    let samples = out.join("samples.png");
    grid::save_grid(&tch::Tensor::stack(&imgs, 0), 8, &samples)?;
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
