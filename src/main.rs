//! The `fpgan` binary: parse the command line, run it, print errors on one line.
use clap::Parser;

fn main() {
    let cli = fpgan::cli::Cli::parse();
    if let Err(e) = fpgan::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
