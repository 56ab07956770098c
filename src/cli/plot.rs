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

/// Runs of the same name (`00000-faster-...` in two --outdir folders) are named with their
/// parent folder too, so that the legend tells them apart.
fn distinct_names(runs: &mut [RunCurves], dirs: &[PathBuf]) {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for (r, dir) in runs.iter_mut().zip(dirs) {
        if names.iter().filter(|n| **n == r.name).count() > 1 {
            let parent = dir.canonicalize().ok().and_then(|d| {
                let p = d.parent()?.file_name()?.to_string_lossy().into_owned();
                Some(p)
            });
            if let Some(p) = parent {
                r.name = format!("{p}/{}", r.name);
            }
        }
    }
}

pub fn run(a: PlotArgs) -> Result<()> {
    check_writable_file(&a.out, "--out")?;
    let mut runs = a
        .runs
        .iter()
        .map(|d| RunCurves::read(d))
        .collect::<Result<Vec<_>>>()?;
    distinct_names(&mut runs, &a.runs);
    draw(&runs, &a.out)?;
    println!("plot: {} run(s) -> {}", runs.len(), a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves(name: &str) -> RunCurves {
        RunCurves {
            name: name.into(),
            g_loss: Vec::new(),
            d_loss: Vec::new(),
            sec_per_kimg: Vec::new(),
            fid: None,
        }
    }

    #[test]
    fn runs_of_the_same_name_are_told_apart_by_their_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["a/00000-faster", "b/00000-faster", "a/00001-faster"]
            .iter()
            .map(|d| tmp.path().join(d))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut runs: Vec<RunCurves> = ["00000-faster", "00000-faster", "00001-faster"]
            .map(curves)
            .into_iter()
            .collect();
        distinct_names(&mut runs, &dirs);
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a/00000-faster", "b/00000-faster", "00001-faster"]);
    }
}
