//! Where a run goes and what it continues: `--resume`, `--resume-mode`, the run directory in
//! `--outdir`, and the training images.
use super::options::TrainOptions;
use super::state::check_snapshot_header;
use crate::data::{ImageSet, RawFit};
use crate::snapshot::{snapshots_in, SNAPSHOT_PREFIX};
use crate::util::files::{check_output_dir, create_output_dir};
use crate::util::safetensors::read_meta;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What `--resume` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumeFrom {
    /// Continue the newest matching run in --outdir that has a snapshot (from its newest
    /// snapshot), else the newest matching run from its start; a new run if none matches.
    Auto,
    /// Always start a new run directory.
    Never,
    /// A snapshot file, or a run directory (its newest snapshot).
    Path(PathBuf),
}

impl std::str::FromStr for ResumeFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => ResumeFrom::Auto,
            "none" | "never" => ResumeFrom::Never,
            p => ResumeFrom::Path(PathBuf::from(p)),
        })
    }
}

/// How `--resume` continues a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ResumeMode {
    /// Everything as it was: kimg, tick, EMA, Adam moments, data order (fpgan's default).
    #[default]
    Exact,
    /// The reference's: weights only, into a new run directory; kimg 0, fresh Adam, no EMA rampup.
    Reference,
}

/// `--resume-mode reference` copies the weights of a snapshot named by `--resume <path>`.
pub fn check_mode(resume: &ResumeFrom, mode: ResumeMode) -> Result<()> {
    match (mode, resume) {
        (ResumeMode::Reference, ResumeFrom::Auto | ResumeFrom::Never) => {
            bail!("--resume-mode reference needs --resume <snapshot file or run dir>")
        }
        _ => Ok(()),
    }
}

/// Existing run directories `NNNNN-<desc>` in `outdir`.
fn run_dirs(outdir: &Path) -> Vec<(u32, PathBuf)> {
    std::fs::read_dir(outdir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id: u32 = name.get(..5)?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect()
}

/// Load the training images: a prepared dataset as it is, anything else prepared as `fit` and
/// `res` (`--res`, checked before) say, else as the run being continued (`earlier`) prepared
/// them (its resolution, and its fit where it records one), else at 256 with `fpgan dataset`'s
/// defaults.
pub fn load_training_set(
    data: &Path,
    res: Option<i64>,
    mirror: bool,
    fit: RawFit,
    earlier: Option<&TrainOptions>,
) -> Result<ImageSet> {
    let raw_res = res.or(earlier.map(|o| o.resolution)).unwrap_or(256);
    let fallback = earlier.map_or(RawFit::default(), TrainOptions::fit);
    let set = ImageSet::open_or_fit(data, raw_res as u32, fit, fallback)?;
    if let Some(r) = res {
        if set.resolution as i64 != r {
            bail!(
                "{} holds {}x{} images, not {r}x{r}; prepare it again with `fpgan dataset --resolution {r}`, or train at its size by dropping --res",
                data.display(),
                set.resolution,
                set.resolution
            );
        }
    }
    Ok(set.with_mirror(mirror))
}

/// A note naming the flags of raw preparation that [`load_training_set`] took from the run it
/// continues (`earlier`) because `res` and `fit` leave them out, where they differ from the
/// defaults; None for a prepared dataset or when nothing was taken.
pub fn inherited_note(
    set: &ImageSet,
    data: &Path,
    res: Option<i64>,
    fit: RawFit,
    earlier: Option<&TrainOptions>,
) -> Option<String> {
    let (earlier, _) = (earlier?, set.fit?);
    let defaults = RawFit::default().resolved();
    let mut taken = Vec::new();
    if res.is_none() && set.resolution != 256 {
        taken.push(format!("--res {}", set.resolution));
    }
    match (fit.transform, earlier.transform) {
        (None, Some(t)) if t != defaults.0 => taken.push(format!("--transform {t}")),
        _ => {}
    }
    match (fit.background, earlier.background) {
        (None, Some(b)) if b != defaults.1 => taken.push(format!("--background {b}")),
        _ => {}
    }
    (!taken.is_empty()).then(|| {
        format!(
            "train: {} prepared as the run it continues prepared it: {} (not given here)",
            data.display(),
            taken.join(" ")
        )
    })
}

/// The options of the snapshot that `resume` continues with these options (an unreadable one:
/// the next older readable one of its run, as an auto-resume falls back), if there is one;
/// nothing is created.
pub fn earlier_options(opts: &TrainOptions, resume: &ResumeFrom) -> Option<TrainOptions> {
    let run = preview_run(opts, resume).ok()?;
    let snap = run.snapshot?;
    let older = snapshots_in(&run.dir)
        .into_iter()
        .skip_while(|s| *s != snap);
    std::iter::once(snap.clone())
        .chain(older.skip(1))
        .find_map(|s| serde_json::from_value(read_meta(&s).ok()?.get("options")?.clone()).ok())
}

/// Where a run goes: its directory, the snapshot it continues (if any), and a note for the log
/// when `--resume auto` chose among several matching runs.
pub struct RunChoice {
    pub dir: PathBuf,
    pub snapshot: Option<PathBuf>,
    pub note: Option<String>,
}

/// Pick the run directory (`NNNNN-<cfg>-<dataset>-batch<B>` in `--outdir`, created for a new
/// run) and the snapshot to resume from (if any).
pub fn resolve_run(opts: &TrainOptions, resume: &ResumeFrom) -> Result<RunChoice> {
    choose_run(opts, resume, true)
}

/// [`resolve_run`] without creating anything (`--dry-run`).
pub fn preview_run(opts: &TrainOptions, resume: &ResumeFrom) -> Result<RunChoice> {
    choose_run(opts, resume, false)
}

fn choose_run(opts: &TrainOptions, resume: &ResumeFrom, create: bool) -> Result<RunChoice> {
    let dirs = run_dirs(&opts.outdir);
    let next_id = dirs.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let new_run = || -> Result<RunChoice> {
        match create {
            true => create_output_dir(&opts.outdir, "--outdir")?,
            false => check_output_dir(&opts.outdir, "--outdir")?,
        }
        let dir = opts
            .outdir
            .join(format!("{next_id:05}-{}", opts.run_desc()));
        Ok(chosen(dir, None))
    };
    match resume {
        ResumeFrom::Never => new_run(),
        ResumeFrom::Path(p) if p.is_dir() => {
            let snap = snapshots_in(p).into_iter().next().with_context(|| {
                format!(
                    "{} holds no {SNAPSHOT_PREFIX}*.safetensors to resume from",
                    p.display()
                )
            })?;
            Ok(chosen(p.clone(), Some(snap)))
        }
        ResumeFrom::Path(p) => {
            if !p.is_file() {
                bail!(
                    "--resume {}: no such snapshot file or run directory",
                    p.display()
                );
            }
            check_snapshot_header(p)?;
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            Ok(chosen(dir, Some(p.clone())))
        }
        ResumeFrom::Auto => match newest_matching(opts, &dirs) {
            Some(c) => Ok(c),
            None => new_run(),
        },
    }
}

fn chosen(dir: PathBuf, snapshot: Option<PathBuf>) -> RunChoice {
    RunChoice {
        dir,
        snapshot,
        note: None,
    }
}

/// `--resume auto`: of the run directories named for these options, the newest with a snapshot
/// (else the newest), with a note when there were several; None when there is none.
fn newest_matching(opts: &TrainOptions, dirs: &[(u32, PathBuf)]) -> Option<RunChoice> {
    let desc = opts.run_desc();
    let mut matching: Vec<&(u32, PathBuf)> = dirs
        .iter()
        .filter(|(_, d)| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().get(6..) == Some(desc.as_str()))
        })
        .collect();
    matching.sort();
    let with_snapshot = matching.iter().rev().find_map(|(_, d)| {
        let snap = snapshots_in(d).into_iter().next()?;
        Some((d.clone(), Some(snap)))
    });
    let newest = matching.last().map(|(_, d)| (d.clone(), None));
    let (dir, snapshot) = with_snapshot.or(newest)?;
    let note = (matching.len() > 1).then(|| {
        format!(
            "note: {} runs in {} match these options; continuing {}, the newest {} (--resume DIR picks another, --resume none starts a new one)",
            matching.len(),
            opts.outdir.display(),
            dir.display(),
            if snapshot.is_some() { "with a snapshot" } else { "(none has a snapshot)" }
        )
    });
    Some(RunChoice {
        dir,
        snapshot,
        note,
    })
}
