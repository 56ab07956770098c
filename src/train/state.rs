//! Snapshots of the whole training state in one safetensors file, restored exactly
//! (`--resume-mode exact`) or weights only as the reference's `--resume` (`reference`).
use super::options::{generator_flags, TrainOptions};
use super::rank_state::RANK_BUFFERS;
use super::trainer::{Progress, Trainer};
use crate::nets::generator::GeneratorConfig;
use crate::snapshot::{self, read_header};
use crate::util::safetensors::{self, NotSafetensors};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// A readable snapshot that this run cannot continue (other network options, or no optimizer
/// state): unlike a damaged file, an earlier snapshot of the same run would not do either.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotContinue(pub String);

impl Trainer {
    /// Write a snapshot of the whole state: G, G_ema, D heads, the random projections, Adam
    /// moments, counters and grid latents in one safetensors file, with every rank's own G/G_ema
    /// buffers of a data-parallel run (`rank_buffers`, from [`Trainer::gather_rank_buffers`]).
    pub fn save(&self, path: &Path, rank_buffers: Option<&Tensor>) -> Result<()> {
        let mut t = safetensors::export(&self.gvs, "G.");
        t.extend(safetensors::export(&self.ema_vs, "G_ema."));
        t.extend(safetensors::export(&self.dvs, "D."));
        t.extend(
            safetensors::export(&self.fvs, "F.")
                .into_iter()
                .filter(|(n, _)| n.starts_with("F.scratch.")),
        );
        for (p, opt) in [("opt_G.", &self.opt_g), ("opt_D.", &self.opt_d)] {
            for s in &opt.slots {
                t.push((format!("{p}exp_avg.{}", s.name), s.exp_avg.shallow_clone()));
                t.push((
                    format!("{p}exp_avg_sq.{}", s.name),
                    s.exp_avg_sq.shallow_clone(),
                ));
            }
        }
        t.push(("grid_z".into(), self.grid_z.shallow_clone()));
        if let Some(rows) = rank_buffers {
            t.push((RANK_BUFFERS.into(), rows.shallow_clone()));
        }
        let meta = json!({
            "format": snapshot::FORMAT,
            "version": snapshot::VERSION,
            "options": self.opts,
            "generator": self.g.config,
            "progress": self.progress,
            "opt_G": {"step": self.opt_g.step, "config": self.opt_g.config},
            "opt_D": {"step": self.opt_d.step, "config": self.opt_d.config},
            "ema": self.ema_schedule,
            "imported_from": self.imported_from,
        });
        safetensors::save(path, &t, &meta)
    }

    /// The reference's `--resume`: copy G, G_ema, the D heads and the projections by name and
    /// keep everything else fresh (Adam restarts, kimg 0), with the EMA rampup disabled.
    pub fn restore_weights_only(&mut self, path: &Path) -> Result<()> {
        self.restore_weights(path, false)?;
        self.ema_schedule.rampup = None;
        Ok(())
    }

    fn restore_weights(
        &mut self,
        path: &Path,
        exact: bool,
    ) -> Result<(BTreeMap<String, Tensor>, SnapshotMeta)> {
        let (t, meta) = safetensors::load(path).map_err(unreadable)?;
        let snap = SnapshotMeta::from_json(&meta, path)?;
        check_generator(&snap.generator, &self.g.config, path, exact)?;
        let all = |_: &str| true;
        safetensors::import(&self.gvs, "G.", &t, all, path)?;
        safetensors::import(&self.ema_vs, "G_ema.", &t, all, path)?;
        safetensors::import(&self.dvs, "D.", &t, all, path)?;
        safetensors::import(&self.fvs, "F.", &t, |n| n.starts_with("scratch."), path)?;
        Ok((t, snap))
    }

    /// Restore everything from a snapshot made with the same configuration: weights, buffers,
    /// projections, Adam moments, counters and grid latents (exact continuation). Returns the
    /// options the snapshot's run was trained with.
    pub fn restore(&mut self, path: &Path) -> Result<TrainOptions> {
        let (t, snap) = self.restore_weights(path, true)?;
        if let Some(pkl) = &snap.imported_from {
            return Err(imported(path, pkl));
        }
        tch::no_grad(|| -> Result<()> {
            for (p, opt) in [("opt_G.", &mut self.opt_g), ("opt_D.", &mut self.opt_d)] {
                for s in &mut opt.slots {
                    for (what, dst) in [
                        ("exp_avg", &mut s.exp_avg),
                        ("exp_avg_sq", &mut s.exp_avg_sq),
                    ] {
                        let key = format!("{p}{what}.{}", s.name);
                        let src = t
                            .get(&key)
                            .with_context(|| format!("{} lacks {key}", path.display()))?;
                        dst.copy_(src);
                    }
                }
            }
            Ok(())
        })?;
        self.opt_g.step = snap.opt_g_step;
        self.opt_d.step = snap.opt_d_step;
        if let Some(z) = t.get("grid_z") {
            self.grid_z = z.to_device(self.device);
        }
        self.progress = snap.progress;
        self.resumed_rank_buffers = t.get(RANK_BUFFERS).map(Tensor::shallow_clone);
        Ok(snap.options)
    }
}

/// Refuse a snapshot of another generator than `now` ([`CannotContinue`]); the fix named is
/// the snapshot's options, and for an exact resume also a new run.
fn check_generator(
    theirs: &GeneratorConfig,
    now: &GeneratorConfig,
    path: &Path,
    exact: bool,
) -> Result<()> {
    if theirs == now {
        return Ok(());
    }
    let classes = |c: i64| match c {
        0 => String::new(),
        c => format!(" ({})", crate::util::progress::count(c as u64, "class")),
    };
    let or_new = if exact {
        ", or start a new run (--resume none)"
    } else {
        ""
    };
    bail!(CannotContinue(format!(
        "{} was trained with {}{}, not {}{}; pass those options and a dataset of its resolution{or_new}",
        path.display(),
        generator_flags(theirs),
        classes(theirs.classes),
        generator_flags(now),
        classes(now.classes),
    )))
}

/// Refuse, from its header alone and before anything is written, a snapshot that a generator
/// `now` cannot resume (`exact`ly, or weights only): one of another generator, or for an exact
/// resume an imported one. One whose header cannot be read is left to the resume (and its
/// fall-back).
pub fn check_resumable(now: &GeneratorConfig, path: &Path, exact: bool) -> Result<()> {
    let Ok(meta) = safetensors::read_meta(path) else {
        return Ok(());
    };
    if let Ok(h) = read_header(&meta, path) {
        check_generator(&h.generator, now, path, exact)?;
    }
    match meta["imported_from"].as_str() {
        Some(pkl) if exact => Err(imported(path, pkl)),
        _ => Ok(()),
    }
}

/// An imported snapshot given to an exact resume ([`CannotContinue`]).
fn imported(path: &Path, pkl: &str) -> anyhow::Error {
    CannotContinue(format!(
        "{} was imported from {pkl} and holds no optimizer state to continue exactly; continue it with --resume-mode reference",
        path.display()
    ))
    .into()
}

/// A snapshot that cannot be read, with what to give `--resume` instead.
fn unreadable(e: anyhow::Error) -> anyhow::Error {
    if e.is::<NotSafetensors>() {
        anyhow::anyhow!("{e:#}: --resume takes a snapshot file or a run directory")
    } else {
        anyhow::anyhow!("{e:#}; resume from an earlier snapshot (--resume <file>) or start a new run (--resume none)")
    }
}

/// Check from its header alone that `path` is an fpgan snapshot, before anything is written
/// beside it.
pub fn check_snapshot_header(path: &Path) -> Result<()> {
    let meta = safetensors::read_meta(path).map_err(unreadable)?;
    read_header(&meta, path).map(|_| ())
}

/// The parts of a snapshot's metadata that resume and generate need.
pub struct SnapshotMeta {
    pub options: TrainOptions,
    pub generator: GeneratorConfig,
    pub progress: Progress,
    pub opt_g_step: i64,
    pub opt_d_step: i64,
    /// The official pickle an `fpgan import` made it from.
    pub imported_from: Option<String>,
}

impl SnapshotMeta {
    pub fn from_json(meta: &serde_json::Value, path: &Path) -> Result<Self> {
        let header = read_header(meta, path)?;
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        let bad = |k: &str| format!("{}: bad '{k}' in the snapshot metadata", path.display());
        Ok(SnapshotMeta {
            options: serde_json::from_value(get("options")).with_context(|| bad("options"))?,
            generator: header.generator,
            progress: serde_json::from_value(get("progress")).with_context(|| bad("progress"))?,
            opt_g_step: meta["opt_G"]["step"]
                .as_i64()
                .with_context(|| bad("opt_G"))?,
            opt_d_step: meta["opt_D"]["step"]
                .as_i64()
                .with_context(|| bad("opt_D"))?,
            imported_from: meta["imported_from"].as_str().map(str::to_string),
        })
    }
}
