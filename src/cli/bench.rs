//! `fpgan bench`: training speed and memory of generator configurations side by side.
use crate::fastpath::FastPath;
use crate::nets::generator::{GenCfg, GeneratorConfig};
use crate::train::bench;
use crate::train::bench::BENCH_JSON_FILE;
use crate::util::device::parse_device;
use crate::util::files::check_writable_file;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma list of configurations; ratios are against the first.
    #[arg(long, default_value = "fastgan,faster,fastgan_lite,faster_lite")]
    pub cfgs: String,
    /// Image resolution (128, 256, 512 or 1024).
    #[arg(long, default_value_t = 256)]
    pub res: i64,
    /// Images per iteration.
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Images per forward pass (default: batch).
    #[arg(long)]
    pub batch_gpu: Option<i64>,
    /// Generator width (reference 128).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
    /// Class-conditional networks with C classes (random labels; 0: unconditional).
    #[arg(long, value_name = "C", default_value_t = 0)]
    pub classes: i64,
    /// Measured iterations.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Iterations run before measuring.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto", help_heading = "Device and speed")]
    pub device: String,
    #[command(flatten)]
    pub fast: FastPath,
    /// Also write the results as JSON here.
    #[arg(long, help_heading = "Output")]
    pub json: Option<PathBuf>,
    /// Run 2 more iterations of each configuration under libtorch's profiler: a Chrome trace
    /// DIR/<cfg>-<settings>.trace.json (chrome://tracing, ui.perfetto.dev) and a summary of
    /// operator calls, CUDA kernels, GPU busy time and the heaviest kernels.
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub profile: Option<PathBuf>,
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.fast.deterministic {
        crate::fastpath::fix_cublas_workspace(); // before any CUDA work
    }
    let specs = specs(&a)?;
    // the JSON is rewritten after each configuration: a bench stopped early keeps its figures
    let outcome = bench::run_all(&specs, |results| {
        let written = a.json.as_ref().map(|p| bench::write_json(results, p));
        if let Some(Err(e)) = written {
            eprintln!("warning: {e:#} (the next configurations still run)");
        }
    })?;
    if !outcome.results.is_empty() {
        print!("{}", bench::render(&outcome.results));
        if let Some(p) = &a.json {
            println!("bench: results written to {}", p.display());
        }
    }
    if let Some((cfg, e)) = outcome.failures.first() {
        let (failed, all) = (outcome.failures.len(), specs.len());
        match (failed, all) {
            (_, 1) => anyhow::bail!("{cfg}: {e}"),
            (f, a) if f == a => anyhow::bail!("all {a} configurations failed; {cfg}: {e}"),
            (f, a) => {
                anyhow::bail!("{f} of {a} configurations failed (the others are above); {cfg}: {e}")
            }
        }
    }
    Ok(())
}

/// One spec per `--cfgs` entry, after checking every argument (before anything is spawned).
fn specs(a: &BenchArgs) -> Result<Vec<bench::BenchSpec>> {
    check_args(a)?;
    let batch_gpu = a.batch_gpu.unwrap_or(a.batch);
    if a.batch < 1 {
        anyhow::bail!("--batch {} must be at least 1", a.batch);
    }
    if batch_gpu < 1 || a.batch % batch_gpu != 0 {
        anyhow::bail!(
            "--batch {} must be a positive multiple of --batch-gpu {batch_gpu}",
            a.batch
        );
    }
    let mut specs = Vec::new();
    for name in a.cfgs.split(',').map(str::trim) {
        let cfg = <GenCfg as clap::ValueEnum>::from_str(name, true).map_err(|_| {
            anyhow::anyhow!(
                "unknown --cfgs entry '{name}': use fastgan, fastgan_lite, faster, faster_lite"
            )
        })?;
        GeneratorConfig {
            ngf: a.ngf,
            classes: a.classes,
            ..GeneratorConfig::new(cfg, a.res)
        }
        .validate()?;
        specs.push(bench::BenchSpec {
            cfg,
            res: a.res,
            batch: a.batch,
            batch_gpu,
            ngf: a.ngf,
            classes: a.classes,
            iters: a.iters,
            warmup: a.warmup,
            device: a.device.clone(),
            fast: a.fast,
            profile: a.profile.clone(),
        });
    }
    Ok(specs)
}

/// The device, iteration counts and output paths (the `--profile` folder is created).
fn check_args(a: &BenchArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    if a.fast.cuda_graphs {
        crate::fastpath::cuda_graph::check_supported(Some(device), false)?;
    }
    if a.iters == 0 {
        anyhow::bail!("--iters must be at least 1");
    }
    let first_replay = crate::train::graphed::EAGER_ITERATIONS + 1;
    if a.fast.cuda_graphs && a.warmup < first_replay {
        anyhow::bail!(
            "--warmup {} is too short for --cuda-graphs: at least {first_replay} (the eager iterations and the capture)",
            a.warmup
        );
    }
    if let Some(p) = &a.json {
        check_writable_file(p, "--json", &BENCH_JSON_FILE)?;
    }
    if let Some(dir) = &a.profile {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create --profile folder {}: pick a writable folder",
                dir.display()
            )
        })?;
    }
    Ok(())
}
