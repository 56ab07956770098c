//! Command line: `fpgan dataset` prepares training sets, `fpgan demo` runs the small default job.
use crate::dataset::{
    prepare, Background, DatasetWriter, ImageSet, PrepareOptions, Source, Transform,
};
use crate::discriminator::Discriminator;
use crate::features::frozen_feature_network;
use crate::generator::{GenCfg, Generator, GeneratorConfig};
use crate::{grid, home, info};
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
    /// Summarise the networks of a configuration: modules, output shapes, parameters, GMACs.
    Info(InfoArgs),
    /// The small default job: prepare a built-in (or given) image set and check the set-up.
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
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dataset(a) => run_dataset(a),
        Command::Info(a) => run_info(a),
        Command::Demo(a) => run_demo(a),
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
    };
    let summary = make_dataset(&a.source, &a.dest, &opts, a.force)?;
    println!(
        "dataset: {summary} -> {} ({width}x{width} RGB)",
        a.dest.display()
    );
    if summary.skipped > 0 {
        println!(
            "dataset: the {} skipped files are named in the warnings above",
            summary.skipped
        );
    }
    Ok(())
}

/// Prepare `source` into `dest` atomically.
pub fn make_dataset(
    source: &std::path::Path,
    dest: &std::path::Path,
    opts: &PrepareOptions,
    force: bool,
) -> Result<crate::dataset::Summary> {
    let src = Source::open(source)?;
    let mut writer = DatasetWriter::create(dest, force)?;
    let summary = prepare(&src, opts, |img| writer.add(&img))?;
    writer.finish()?;
    Ok(summary)
}

/// One forward of G and D (pretrained features) on a small batch; prints the hinge losses.
fn smoke_pass(set: &ImageSet, res: i64) -> Result<()> {
    use tch::nn::VarStore;
    use tch::{Device, Kind, Tensor};
    let _guard = tch::no_grad_guard();
    tch::manual_seed(0);
    let device = Device::cuda_if_available();
    let gvs = VarStore::new(device);
    let g = Generator::new(&gvs.root(), &GeneratorConfig::new(GenCfg::Faster, res))?;
    let weights = home::weight_file(home::EFFNET_FILE)?;
    let (_fvs, f) = frozen_feature_network(device, res, 0, &weights)?;
    let dvs = VarStore::new(device);
    let d = Discriminator::new(&dvs.root());
    let n = set.num_images().min(4);
    let real = set
        .batch(&(0..n).collect::<Vec<_>>())
        .to_device(device)
        .to_kind(Kind::Float)
        / 127.5
        - 1.0;
    let z = Tensor::randn([n as i64, 256], (Kind::Float, device));
    let fake = g.forward_t(&z, true);
    let (lr, lf) = (d.forward_t(&f, &real, true), d.forward_t(&f, &fake, true));
    let hinge = |t: Tensor| t.relu().mean(Kind::Float).double_value(&[]);
    println!(
        "demo: G -> D pass on {device:?}: fake {:?}, logits {:?}; untrained losses: D real {:.3}, D fake {:.3}, G {:.3}",
        fake.size(),
        lr.size(),
        hinge(-&lr + 1.0),
        hinge(&lf + 1.0),
        -lf.mean(Kind::Float).double_value(&[])
    );
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

fn run_demo(a: DemoArgs) -> Result<()> {
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
    let summary = make_dataset(&source, &dest, &opts, true)?;
    println!(
        "demo: dataset {} -> {}: {summary}",
        source.display(),
        dest.display()
    );

    let set = ImageSet::open(&dest)?.with_mirror(true);
    let reals = set.batch(&(0..set.num_images().min(32)).collect::<Vec<_>>());
    grid::save_grid(&reals, 8, &out.join("reals.png"))?;
    println!(
        "demo: loaded {} images of {}x{} ({} with x-flips), grid in {}",
        set.num_images(),
        set.resolution,
        set.resolution,
        set.len(),
        out.join("reals.png").display()
    );

    let fid = home::weight_file(home::FID_FILE)?;
    tch::CModule::load(&fid).with_context(|| format!("cannot load {}", fid.display()))?;
    println!("demo: FID Inception-v3 loads ({})", fid.display());

    // both generator variants side by side, then one G -> D pass on real and fake images
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
    smoke_pass(&set, a.res as i64)?;
    println!("demo: CUDA available: {}", tch::Cuda::is_available());
    Ok(())
}
