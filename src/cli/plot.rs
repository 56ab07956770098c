//! `fpgan plot`: G/D loss, FID and sec/kimg of one or several runs side by side, as a PNG.
use crate::monitor::plot::{draw, RunCurves};
use crate::util::files::check_writable_file;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fpgan plot runs/00000-faster-pokemon256-batch64 \
runs/00001-fastgan-pokemon256-batch64 --out faster-vs-fastgan.png\n\n\
Each training run also keeps its own plot up to date in <run dir>/progress.png."
)]
pub struct PlotArgs {
    /// Run directories (each with a stats.jsonl).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "progress.png")]
    pub out: PathBuf,
}

pub fn run(a: PlotArgs) -> Result<()> {
    check_writable_file(&a.out, "--out")?;
    let runs = a
        .runs
        .iter()
        .map(|d| RunCurves::read(d))
        .collect::<Result<Vec<_>>>()?;
    draw(&runs, &a.out)?;
    println!("plot: {} run(s) -> {}", runs.len(), a.out.display());
    Ok(())
}
