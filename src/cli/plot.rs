//! `fpgan plot`: G/D loss, FID and sec/kimg of one or several runs side by side, as a PNG.
use crate::monitor::plot::PLOT_FILE;
use crate::monitor::plot::{draw, RunCurves};
use crate::util::files::check_writable_file;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fpgan plot runs/00000-faster-pokemon256-batch64 \
runs/00001-fastgan-pokemon256-batch64 --out faster-vs-fastgan.png\n\n\
Each training run also keeps its own plot up to date in <run dir>/progress.png."
)]
pub struct PlotArgs {
    /// Run directories (each with a stats.jsonl), or their stats.jsonl files.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "progress.png")]
    pub out: PathBuf,
}

/// Runs of the same name (`00000-faster-...` in two --outdir folders) are named with as many of
/// their parent folders as it takes to tell them apart in the legend.
fn distinct_names(runs: &mut [RunCurves], dirs: &[PathBuf]) {
    let paths: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            let d = d.canonicalize().unwrap_or_else(|_| d.clone());
            let parts = d.components().rev();
            parts
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let label = |i: usize, depth: usize| -> String {
        let p = &paths[i];
        let mut parts: Vec<&str> = p.iter().take(depth).map(String::as_str).collect();
        parts.reverse();
        parts.join("/")
    };
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let twins: Vec<usize> = (0..names.len())
            .filter(|&j| j != i && names[j] == names[i])
            .collect();
        if twins.is_empty() {
            continue;
        }
        let deepest = paths[i].len().max(1);
        let depth = (2..=deepest)
            .find(|&k| twins.iter().all(|&j| label(j, k) != label(i, k)))
            .unwrap_or(deepest);
        run.name = label(i, depth);
    }
}

pub fn run(a: PlotArgs) -> Result<()> {
    let png = (a.out.extension()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        bail!(
            "--out {}: the plot is a PNG; give a .png name",
            a.out.display()
        );
    }
    check_writable_file(&a.out, "--out", &PLOT_FILE)?;
    // a run's stats.jsonl given for its directory
    let dirs: Vec<PathBuf> = a
        .runs
        .iter()
        .map(|p| match p.file_name() {
            Some(n) if n == "stats.jsonl" && p.is_file() => {
                p.parent().map_or_else(|| ".".into(), Path::to_path_buf)
            }
            _ => p.clone(),
        })
        .collect();
    let mut runs = dirs
        .iter()
        .map(|d| RunCurves::read(d))
        .collect::<Result<Vec<_>>>()?;
    distinct_names(&mut runs, &dirs);
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
        let case = |dirs: [&str; 3]| -> Vec<String> {
            let dirs: Vec<PathBuf> = dirs.iter().map(|d| tmp.path().join(d)).collect();
            for d in &dirs {
                std::fs::create_dir_all(d).unwrap();
            }
            let mut runs: Vec<RunCurves> = (dirs.iter())
                .map(|d| curves(&d.file_name().unwrap().to_string_lossy()))
                .collect();
            distinct_names(&mut runs, &dirs);
            runs.into_iter().map(|r| r.name).collect()
        };
        let names = case(["a/00000-faster", "b/00000-faster", "a/00001-faster"]);
        assert_eq!(names, ["a/00000-faster", "b/00000-faster", "00001-faster"]);
        // the default --outdir twice: one folder more
        let names = case(["x/runs/00000-f", "y/runs/00000-f", "x/runs/00001-f"]);
        assert_eq!(names, ["x/runs/00000-f", "y/runs/00000-f", "00001-f"]);
    }
}
