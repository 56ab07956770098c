//! The command line: the top-level parser and one module per command, each holding its
//! arguments beside the code that runs them.
mod bench;
mod check;
mod dataset;
pub mod demo;
mod export;
mod generate;
mod import;
mod info;
mod metrics;
mod parse;
mod phases;
mod plot;
mod train;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
    Dataset(dataset::DatasetArgs),
    /// Train a generator on a dataset (prepared, or any folder/zip of images).
    Train(Box<train::TrainArgs>),
    /// Generate images (and latent walks) from a trained network.
    Generate(generate::GenerateArgs),
    /// Export a trained generator (G_ema) as TorchScript for PyTorch.
    Export(export::ExportArgs),
    /// Convert an official Projected GAN pickle into an fpgan snapshot (read as data, never run).
    Import(import::ImportArgs),
    /// FID/KID of a trained network against its dataset, or between two image folders.
    Metrics(metrics::MetricsArgs),
    /// Plot G/D loss, FID and sec/kimg of one or several runs side by side (PNG).
    Plot(plot::PlotArgs),
    /// Measure training speed and memory of generator configurations side by side.
    Bench(bench::BenchArgs),
    /// Compare Chrome traces of training iterations (bench --profile, the official code's)
    /// phase by phase.
    Phases(phases::PhasesArgs),
    /// (internal) measure one configuration given as JSON; used by `bench`.
    #[command(hide = true)]
    BenchWorker { spec: String },
    /// Compare one G/D forward-backward on a device (CUDA) with the CPU: losses and gradients.
    Check(check::CheckArgs),
    /// Summarise the networks of a configuration: modules, output shapes, parameters, GMACs.
    Info(info::InfoArgs),
    /// A first run: prepare a built-in (or given) image set, train briefly, sample, score.
    Demo(demo::DemoArgs),
}

/// Parse the command line. A negative number is read as a flag's value in every command, so
/// that `--batch -4` gets the flag's own message, not "unexpected argument '-4'".
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let cmd = Cli::command().mut_subcommands(|s| s.mut_args(|a| a.allow_negative_numbers(true)));
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

pub fn run(cli: Cli) -> Result<()> {
    // float32 is true float32 in every command, as in the reference's training loop and
    // calc_metrics.py (libtorch lets cuDNN use TF32); train and bench opt in with --tf32
    crate::fastpath::set_tf32(false);
    match cli.command {
        Command::Dataset(a) => dataset::run(a),
        Command::Train(a) => train::run(*a),
        Command::Generate(a) => generate::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Phases(a) => phases::run(a),
        Command::BenchWorker { spec } => {
            let spec: crate::train::bench::BenchSpec =
                serde_json::from_str(&spec).context("bad bench spec")?;
            let result = crate::train::bench::run_one(&spec)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Command::Info(a) => info::run(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Check(a) => check::run(a),
        Command::Demo(a) => demo::run(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own checks of every command (names, headings, defaults), which a release build
    /// does not run.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The heading of the section of `command --help` that lists `flag`.
    fn section(command: &str, flag: &str) -> String {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut(command)
            .expect("a command")
            .render_help()
            .to_string();
        let mut heading = String::new();
        for line in help.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                heading = line.trim_end_matches(':').to_string();
            }
            // `  -n, --dry-run  ...` or `      --data <DATA>  ...`
            let mut names = line.trim_start().split([' ', ',']).take(3);
            if line.trim_start().starts_with('-') && names.any(|w| w == flag) {
                return heading;
            }
        }
        panic!("{flag} is not in `{command} --help`:\n{help}");
    }

    /// `train --help` lists its many flags in sections by what they set; `bench` shares the
    /// speed section.
    #[test]
    fn train_help_groups_its_flags() {
        let want = [
            ("--data", "Data"),
            ("--cond", "Data"),
            ("--cfg", "Model"),
            ("--kimg", "Training"),
            ("--snap", "Progress and output"),
            ("--num-gen", "Metrics"),
            ("--resume-mode", "Resume"),
            ("--device", "Device and speed"),
            ("--amp", "Device and speed"),
            ("--deterministic", "Device and speed"),
            ("--stall-timeout", "Several GPUs or machines"),
            ("--dry-run", "Options"),
        ];
        for (flag, heading) in want {
            assert_eq!(section("train", flag), heading, "{flag}");
        }
        assert_eq!(section("bench", "--tf32"), "Device and speed");
        assert_eq!(section("bench", "--json"), "Output");
    }
}
