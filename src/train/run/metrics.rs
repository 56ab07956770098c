//! The run's metrics: what one evaluation costs, the scores of each snapshot with the best
//! snapshot kept, and a snapshot whose metrics a stop cut short, scored on resume.
use super::Run;
use crate::eval::detector::Detector;
use crate::eval::evaluator::{images_per_evaluation, Estimate, Evaluator, Score};
use crate::eval::report::{append_metric, has_line_for, lowest_recorded, metric_line};
use crate::snapshot::{BEST_NIMG, BEST_SNAPSHOT};
use crate::train::options::TrainOptions;
use crate::util::atomic::atomic_write;
use crate::util::files::shell_word;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

impl Run<'_> {
    /// Whether the run that wrote `snap` (with options `before`) was to score it with metrics
    /// that no line of this run's names: it stopped or was killed during them.
    pub(super) fn metrics_missed(&self, snap: &Path, before: &TrainOptions) -> bool {
        let p = &self.trainer.progress;
        // the tick the snapshot was written in: at its end, or inside it
        let tick = p.cur_tick - p.tick_start_nimg.is_none() as i64;
        let at_end = p.cur_nimg >= (before.kimg * 1000.0).ceil() as i64;
        let scheduled = p.tick_start_nimg.is_none() && tick % before.snap == 0;
        let name = snap.file_name().unwrap_or_default().to_string_lossy();
        tick > 0
            && (at_end || scheduled)
            && !self.metrics.is_empty()
            && !self
                .metrics
                .iter()
                .any(|&m| has_line_for(&self.dir, m, &name))
    }

    /// Before training on, the metrics of the snapshot resumed from where its run missed them
    /// (every rank generates its share): the metric files and the best snapshot are then the
    /// uninterrupted run's.
    pub(super) fn score_missed(&mut self) -> Result<()> {
        if !self.trainer.any_rank(self.unscored)? {
            return Ok(());
        }
        let snap = self.last_snapshot.clone().filter(|_| self.rank0);
        if let Some(s) = &snap {
            self.log.line(&format!(
                "Scoring {} first: the run stopped before its metrics were computed",
                s.display()
            ));
        }
        self.evaluate(snap.as_deref())?;
        self.trainer.barrier()
    }

    /// The best FID is the lowest of the kept metric lines too, while the best snapshot stays:
    /// a snapshot is written before its own metrics, so the best FID it holds misses its own
    /// (a resume from the best snapshot then took the next, worse FID for a new best).
    pub(super) fn keep_best_fid(&mut self) {
        let Some(fid) = self.metrics.iter().copied().find(|m| m.is_fid()) else {
            return;
        };
        if !self.dir.join(BEST_SNAPSHOT).is_file() {
            return; // set aside with the later snapshots: the next FID makes a new one
        }
        let p = &mut self.trainer.progress;
        p.best_fid = p
            .best_fid
            .into_iter()
            .chain(lowest_recorded(&self.dir, fid))
            .reduce(f64::min);
    }

    /// Say what one evaluation of the metrics will cost, measured on this device, and how to
    /// choose a quicker one when it is long; the estimate also shows in the live line.
    pub(super) fn announce_metrics(&mut self) -> Result<()> {
        if self.metrics.is_empty() {
            return Ok(());
        }
        let n = images_per_evaluation(&self.metrics, self.opts.metrics_num_gen);
        // the evaluator (and its detector) is made at the first evaluation
        let detector = Detector::load(self.device)?;
        let estimate = Estimate::measure(&detector, &self.trainer.g_ema, self.device, n)?;
        let secs = estimate.secs();
        let names: Vec<&str> = self.metrics.iter().map(|m| m.name()).collect();
        let mut line = format!(
            "Metrics {} at every snapshot, each {estimate}",
            names.join(",")
        );
        if secs > 600.0 {
            line += "; for quicker looks use --num-gen 2000 (not comparable) or --metrics none";
        }
        self.log.line(&line);
        self.eval_estimate = Some(secs);
        Ok(())
    }

    /// The metrics of G_ema (the real features are computed once per process) and the best
    /// snapshot `snap` (rank 0's; None on the other ranks, which generate their share).
    pub(super) fn evaluate(&mut self, snap: Option<&Path>) -> Result<()> {
        if self.metrics.is_empty() {
            return Ok(());
        }
        if self.evaluator.is_none() {
            let (metrics, num_gen) = (self.metrics.clone(), self.opts.metrics_num_gen);
            let (set, device) = (&self.set, self.device);
            let e = self.log.pb.suspend(|| match snap {
                Some(_) => Evaluator::new(metrics, set, device, num_gen),
                None => Evaluator::generating_only(metrics, set, device, num_gen),
            })?;
            if e.cached {
                self.log
                    .line("Real-image features for the metrics: from the cache");
            }
            self.evaluator = Some(e);
        }
        let e = self.evaluator.as_ref().expect("set above");
        let (g, device, seed) = (&self.trainer.g_ema, self.device, self.opts.seed as i64);
        let group = self.trainer.group();
        let scores = self.log.pb.suspend(|| e.run_in(group, g, device, seed))?;
        match snap {
            Some(snap) => self.record_scores(snap, &scores),
            None => Ok(()),
        }
    }

    /// Append each score to `metric-<name>.jsonl`; when the first FID improves, copy the snapshot
    /// to `best-snapshot.safetensors` and note its kimg in `best_nimg.txt`.
    fn record_scores(&mut self, snap: &Path, scores: &[Score]) -> Result<()> {
        let snap_name = snap
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for s in scores {
            append_metric(&self.dir, s.metric, &metric_line(s, &snap_name))?;
            if let Some(b) = &mut self.board {
                b.metric(s.metric.name(), s.value, self.trainer.progress.cur_nimg)?;
            }
            self.log.line(&format!(
                "{} {:.4} ({} generated images, {:.0} s)",
                s.metric.name(),
                s.value,
                s.num_gen,
                s.seconds
            ));
        }
        let Some(fid) = scores.iter().find(|s| s.metric.is_fid()) else {
            return Ok(());
        };
        let progress = &mut self.trainer.progress;
        if progress.best_fid.is_some_and(|b| fid.value >= b) {
            return Ok(());
        }
        progress.best_fid = Some(fid.value);
        let best = self.dir.join(BEST_SNAPSHOT);
        let bytes =
            std::fs::read(snap).with_context(|| format!("cannot read {}", snap.display()))?;
        atomic_write(&best, |w| Ok(w.write_all(&bytes)?))?;
        let nimg = progress.cur_nimg.to_string();
        atomic_write(&self.dir.join(BEST_NIMG), |w| {
            Ok(w.write_all(nimg.as_bytes())?)
        })?;
        self.log.line(&format!(
            "New best {} {:.4}: {}",
            fid.metric.name(),
            fid.value,
            best.display()
        ));
        Ok(())
    }

    /// The `fpgan metrics` command that scores `snap` as this run would have.
    pub(super) fn metrics_command(&self, snap: &Path) -> String {
        let o = self.opts;
        let mut cmd = format!(
            "fpgan metrics --network {} --data {} --metrics {}",
            shell_word(snap),
            shell_word(&o.data),
            o.metrics.join(",")
        );
        if let Some(n) = o.metrics_num_gen {
            cmd += &format!(" --num-gen {n}");
        }
        if o.seed != 0 {
            cmd += &format!(" --seed {}", o.seed);
        }
        cmd
    }
}
