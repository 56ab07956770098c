//! `fpgan phases`: Chrome traces of training iterations side by side, phase by phase.
use crate::util::phases::{differences, table, Phases};
use anyhow::{bail, Result};
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fpgan phases fpgan=prof/faster-fp32.trace.json \
official=prof/official-fastgan+dsc-fp32.trace.json\n\n\
Each TRACE is a Chrome trace with the phases labelled by the official loop's names \
(Gmain_forward, Gmain_backward, Gboth_opt, Dgen_forward, Dgen_backward, Dreal_forward, \
Dreal_backward, Dmain_opt, Gema): `fpgan bench --profile DIR` writes them, and \
scripts/gpu/pg_profile.py the official code's. Per phase and iteration it prints the wall time \
of the labelled spans, the operators' own time (less that of the operators they call) and \
calls, and on CUDA the GPU time (kernels, copies, fills) and kernels launched; an operator \
counts for the span in which it starts, a kernel for the span that launched it. With two or \
more traces, the operators (on CUDA kernels) whose time differs most between the first two."
)]
pub struct PhasesArgs {
    /// NAME=TRACE.json, one per trace (the name heads its columns).
    #[arg(required = true, value_name = "NAME=TRACE")]
    pub traces: Vec<String>,
    /// Differences shown per phase.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
}

pub fn run(args: PhasesArgs) -> Result<()> {
    let mut named: Vec<(String, Phases)> = Vec::new();
    for t in &args.traces {
        let Some((name, path)) = t.split_once('=') else {
            bail!(
                "{t}: give each trace as NAME=TRACE.json, e.g. fpgan=prof/faster-fp32.trace.json"
            );
        };
        named.push((name.to_string(), Phases::read(Path::new(path))?));
    }
    let counts: Vec<String> = (named.iter())
        .map(|(n, p)| format!("{n} {} iterations", p.iterations))
        .collect();
    println!("Per iteration: {}", counts.join(", "));
    println!("{}", table(&named));
    if let [(a_name, a), (b_name, b), ..] = named.as_slice() {
        println!("{}", differences((a_name, a), (b_name, b), args.top));
    }
    Ok(())
}
