//! A training run around the [`Trainer`], as named steps from start or resume to the stop
//! (reference sections 7.5-7.7 and 11).
use super::options::{TrainOptions, OPTIONS_FILE};
use super::resume::{check_mode, resolve_run, ResumeFrom, ResumeMode, RunChoice};
use super::rewind;
use super::signals;
use super::state::{check_resumable, CannotContinue};
use super::tick::{self, Log, TickTiming};
use super::trainer::Trainer;
use crate::data::stream::BatchStream;
use crate::data::ImageSet;
use crate::dist::launch::Membership;
use crate::dist::{Backend, ProcessGroup, Timeouts};
use crate::eval::evaluator::Evaluator;
use crate::eval::metrics::{parse_metrics, Metric};
use crate::eval::report::metric_files;
use crate::monitor::board::Board;
use crate::monitor::plot;
use crate::snapshot::{self, grid_name, snapshot_kimg, snapshot_name, snapshots_in};
use crate::util::atomic::{atomic_write, TMP_TAG};
use crate::util::clock::format_time;
use crate::util::device::{device_name, parse_device};
use crate::util::early_log;
use crate::util::files::{keep_lines, lock_dir, shell_word};
use crate::util::images;
use crate::util::progress;
use crate::util::rng::SplitMix;
use crate::util::tempfiles;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::Device;

mod metrics;

/// Train with `opts`; returns the run directory.
pub fn train(opts: &TrainOptions, set: ImageSet, resume: &ResumeFrom) -> Result<PathBuf> {
    train_with(opts, set, resume, ResumeMode::Exact)
}

/// Train with `opts` in this process alone, continuing a snapshot as `mode` says; returns the
/// run directory.
pub fn train_with(
    opts: &TrainOptions,
    set: ImageSet,
    resume: &ResumeFrom,
    mode: ResumeMode,
) -> Result<PathBuf> {
    train_as(opts, set, resume, mode, None)
}

/// Train with `opts` as one process of a data-parallel run (`member`) or alone; returns the run
/// directory. The steps: start or resume, iterate to the end of a tick (with the live line and
/// the divergence guard), report the tick, snapshot with pruning, evaluate the metrics (keeping
/// the best snapshot), and stop on request or at `--kimg`. In a data-parallel run every rank
/// trains its share of each batch; rank 0 alone writes (log, stats, grids, snapshots, metrics).
pub fn train_as(
    opts: &TrainOptions,
    set: ImageSet,
    resume: &ResumeFrom,
    mode: ResumeMode,
    member: Option<&Membership>,
) -> Result<PathBuf> {
    let (mut run, rank0) = open_run(opts, set, resume, mode, member)?;
    if run.reached_end() {
        return Ok(run.dir);
    }
    if rank0 {
        run.announce_metrics()?;
    }
    signals::install(match member {
        Some(_) => signals::Role::Worker,
        None => signals::Role::Alone,
    });
    run.score_missed()?;
    run.start_stream();
    run_ticks(run, opts.snap, rank0)
}

/// Everything before the first tick: the device (this rank's GPU), the process group, the
/// trainer and its label distribution, the run directory (new, resumed, or a reference resume
/// into a new one), its files, and rank 0's weights on every rank. Also whether this is rank 0.
fn open_run<'a>(
    opts: &'a TrainOptions,
    set: ImageSet,
    resume: &ResumeFrom,
    mode: ResumeMode,
    member: Option<&Membership>,
) -> Result<(Run<'a>, bool)> {
    opts.validate()?;
    let device = match (parse_device(&opts.device)?, member) {
        (Device::Cuda(_), Some(m)) => Device::Cuda(m.local_rank),
        (d, _) => d,
    };
    let group = member.map(|m| join_group(opts, m, device)).transpose()?;
    let rank0 = member.is_none_or(|m| m.rank == 0);
    let mut trainer = Trainer::new(opts, device)?;
    if opts.classes > 0 {
        let labels = set.labels.as_deref().with_context(|| {
            format!(
                "{}: a class-conditional run needs a labelled dataset (fpgan dataset --labels)",
                opts.data.display()
            )
        })?;
        trainer.set_label_distribution(labels)?;
    }
    let RunChoice {
        dir: mut run_dir,
        mut snapshot,
        note,
    } = resolve_run(opts, resume)?;
    check_mode(resume, mode)?;
    if let Some(snap) = &snapshot {
        // before the run's log is written
        check_resumable(&trainer.g.config, snap, mode == ResumeMode::Exact)?;
    }
    if mode == ResumeMode::Reference {
        let snap = snapshot.take().context("no snapshot to resume from")?;
        trainer.restore_weights_only(&snap)?;
        early_log::say(&format!(
            "Copied the weights of {} (reference resume: kimg 0, fresh Adam, no EMA rampup)",
            snap.display()
        ));
        run_dir = resolve_run(opts, &ResumeFrom::Never)?.dir;
    }
    if let Some(g) = &group {
        g.barrier()?; // every rank has chosen the run directory before rank 0 creates it
    }
    let mut run = Run::open(opts, set, trainer, run_dir, device, rank0)?;
    if let Some(n) = note {
        run.log.line(&n);
    }
    match &snapshot {
        Some(snap) => run.resume(snap, resume)?,
        None => run.start()?,
    }
    if let Some(g) = group {
        run.trainer.join(g)?;
    }
    // every rank counts its first tick from rank 0's counts (after a join)
    run.set_tick_start();
    Ok((run, rank0))
}

/// Train tick after tick until the end or a stop signal: every `snap` ticks (and at the end) a
/// snapshot, metrics and plots, written by rank 0 only; on a stop signal before the end a
/// snapshot and plots, without metrics (they can take hours). Returns the run directory.
fn run_ticks(mut run: Run<'_>, snap: i64, rank0: bool) -> Result<PathBuf> {
    loop {
        let (done, stop) = run.iterate_tick()?;
        let tick = run.trainer.progress.cur_tick;
        let m0 = Instant::now();
        run.end_tick()?;
        if done || stop || tick % snap == 0 {
            let snap = run.snapshot()?;
            if tick != 0 && (done || !stop) {
                run.evaluate(snap.as_deref())?; // every rank generates its share
            }
            if rank0 {
                run.plot();
            }
            run.trainer.barrier()?; // the others wait for rank 0's snapshot and metrics
        }
        run.next_tick(m0.elapsed().as_secs_f64());
        if done {
            return run.finished();
        }
        if stop {
            return run.stopped();
        }
    }
}

/// The items of `reals.png`, as the reference's grid: a random choice of the training items; for
/// a labelled set used by a conditional run, row y holds items of the y-th class (cycling
/// through the classes present, each class's items shuffled once and taken in turn).
fn real_grid_indices(set: &ImageSet, cols: usize, rows: usize, conditional: bool) -> Vec<usize> {
    let mut rng = SplitMix(0);
    let mut shuffle = |v: &mut Vec<usize>| {
        for i in (1..v.len()).rev() {
            v.swap(i, rng.below(i as u32 + 1) as usize);
        }
    };
    let Some(labels) = set.labels.as_ref().filter(|_| conditional) else {
        let mut order: Vec<usize> = (0..set.len()).collect();
        shuffle(&mut order);
        return (0..cols * rows).map(|k| order[k % order.len()]).collect();
    };
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for i in 0..set.len() {
        groups
            .entry(labels[i % set.num_images()])
            .or_default()
            .push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.iter_mut().for_each(&mut shuffle);
    let mut taken = vec![0; groups.len()];
    let mut idx = Vec::with_capacity(cols * rows);
    for y in 0..rows {
        let g = y % groups.len();
        let items = &groups[g];
        idx.extend((0..cols).map(|x| items[(taken[g] + x) % items.len()]));
        taken[g] += cols;
    }
    idx
}

/// Join the data-parallel group of `member` (the TCPStore at MASTER_ADDR:MASTER_PORT): NCCL on
/// CUDA (FPGAN_DIST_BACKEND=gloo to use Gloo there too), Gloo on a CPU. Its collectives may wait
/// through rank 0's snapshot and metrics, hence the long timeout.
fn join_group(opts: &TrainOptions, m: &Membership, device: Device) -> Result<ProcessGroup> {
    if m.world as i64 != opts.gpus {
        bail!(
            "WORLD_SIZE={} but --gpus {}: give --gpus {} (or leave it out) under a launcher",
            m.world,
            opts.gpus,
            m.world
        );
    }
    let backend = match (device, std::env::var("FPGAN_DIST_BACKEND").as_deref()) {
        (_, Ok("gloo")) | (Device::Cpu, _) => Backend::Gloo,
        (Device::Cuda(i), Ok("nccl") | Err(_)) => Backend::Nccl(i),
        (_, Ok(other)) => bail!("FPGAN_DIST_BACKEND={other}: use gloo or nccl"),
        (d, _) => bail!(
            "data-parallel training on {} is not supported; use cpu or cuda",
            device_name(d)
        ),
    };
    let (addr, port) = (&m.master_addr, m.master_port);
    let timeouts = Timeouts {
        join: m.join_timeout,
        collective: GROUP_TIMEOUT,
        stall: m.stall_timeout,
    };
    ProcessGroup::join(backend, addr, port, m.rank, m.world, timeouts).map_err(|e| {
        let e = format!("{e:#}");
        anyhow::anyhow!(
            "{}. The {} processes must all start within --join-timeout {} s: start the same command on every machine, each with its --node-rank and the same --master-addr/--master-port (or give a longer --join-timeout)",
            e.trim_end_matches('.'),
            m.world,
            m.join_timeout.as_secs()
        )
    })
}

/// How long a rank waits for the others in one collective (rank 0's metrics included).
const GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// On CUDA, iterations between two read-backs of the losses (each one waits for the GPU).
const READBACK_EVERY: i64 = 16;

/// The state of a run between its steps.
struct Run<'a> {
    opts: &'a TrainOptions,
    set: Arc<ImageSet>,
    trainer: Trainer,
    dir: PathBuf,
    device: Device,
    log: Log,
    stream: Option<BatchStream>,
    total_nimg: i64,
    /// When this process started training, and the run's training seconds before it.
    start: Instant,
    sec0: f64,
    /// When and at which image count this process started timing the tick under way.
    tick_start: Instant,
    tick_clock_nimg: i64,
    /// Where the tick under way began (before this process, for a run resumed mid-tick).
    tick_start_nimg: i64,
    maintenance_sec: f64,
    /// Iterations in a row with non-finite losses.
    bad_iters: u32,
    /// The newest snapshot of the run, and the newest written with finite losses.
    last_snapshot: Option<PathBuf>,
    last_good: Option<PathBuf>,
    metrics: Vec<Metric>,
    evaluator: Option<Evaluator>,
    /// Seconds one evaluation of the metrics is expected to take.
    eval_estimate: Option<f64>,
    /// The snapshot resumed from lacks the metrics its run was to compute (rank 0).
    unscored: bool,
    /// The TensorBoard log (opened at start or resume).
    board: Option<Board>,
    /// Whether this process writes (alone, or rank 0 of a data-parallel run).
    rank0: bool,
    /// The lock on the run directory, held while the run lives (rank 0).
    _lock: Option<std::fs::File>,
}

impl<'a> Run<'a> {
    /// Create the run directory, its log and the progress bar.
    fn open(
        opts: &'a TrainOptions,
        set: ImageSet,
        trainer: Trainer,
        dir: PathBuf,
        device: Device,
        rank0: bool,
    ) -> Result<Self> {
        let total_nimg = (opts.kimg * 1000.0).ceil() as i64;
        let (log, lock) = if rank0 {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let lock = lock_dir(&dir, "training")?;
            let owner = |n: &str| tempfiles::tagged_pid(n, TMP_TAG).map(|(_, pid)| pid);
            for p in tempfiles::remove_dead_leftovers(&dir, owner)? {
                early_log::say(&format!(
                    "Removed {}, left by an interrupted earlier run",
                    p.display()
                ));
            }
            let pb = progress::bar(total_nimg as u64, "training");
            pb.set_style(
                indicatif::ProgressStyle::with_template("[{bar:30}] {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            (Log::open(&dir, pb)?, Some(lock))
        } else {
            (Log::silent(), None)
        };
        Ok(Run {
            opts,
            set: Arc::new(set),
            trainer,
            log,
            dir,
            device,
            stream: None,
            total_nimg,
            start: Instant::now(),
            sec0: 0.0,
            tick_start: Instant::now(),
            tick_clock_nimg: 0,
            tick_start_nimg: 0,
            maintenance_sec: 0.0,
            bad_iters: 0,
            last_snapshot: None,
            last_good: None,
            metrics: parse_metrics(&opts.metrics.join(","))?,
            evaluator: None,
            eval_estimate: None,
            unscored: false,
            board: None,
            rank0,
            _lock: lock,
        })
    }

    /// `training_options.json`: the options of the latest start or resume.
    fn write_options(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(self.opts)?;
        atomic_write(&self.dir.join(OPTIONS_FILE), |w| {
            Ok(w.write_all(json.as_bytes())?)
        })
    }

    /// A new run: training_options.json, then reals.png and fakes_init.png (rank 0).
    fn start(&mut self) -> Result<()> {
        if !self.rank0 {
            return Ok(());
        }
        self.log.line(&format!(
            "Starting {} on {}",
            self.dir.display(),
            device_name(self.device)
        ));
        self.write_options()?;
        self.write_reals()?;
        let fakes = self.trainer.fakes();
        images::save_grid(
            &fakes,
            self.opts.grid.0 as usize,
            &self.dir.join("fakes_init.png"),
        )?;
        let mut board = Board::open(&self.dir, None)?;
        board.fakes(&fakes, 0)?;
        self.board = Some(board);
        Ok(())
    }

    /// `reals.png`: training images in the grid's shape (a row per class when conditional).
    fn write_reals(&self) -> Result<()> {
        let (gw, gh) = self.opts.grid;
        let idx = real_grid_indices(&self.set, gw as usize, gh as usize, self.opts.classes > 0);
        images::save_grid(
            &self.set.batch(&idx),
            gw as usize,
            &self.dir.join("reals.png"),
        )
    }

    /// Continue from `snap`; in auto mode an unreadable newest snapshot falls back to the
    /// previous one (not one this run cannot continue: other options, say). Rank 0 logs, sets
    /// aside what came after the snapshot and trims stats.jsonl and metric-*.jsonl to it.
    fn resume(&mut self, snap: &Path, resume: &ResumeFrom) -> Result<()> {
        let (used, before) = self.restore_or_older(snap, resume)?;
        (self.last_snapshot, self.last_good) = (Some(used.clone()), Some(used.clone()));
        if !self.rank0 {
            return Ok(());
        }
        let p = &self.trainer.progress;
        self.sec0 = p.total_sec;
        self.log.line(&format!(
            "Resuming {} at kimg {:.3} (tick {}) from {}",
            self.dir.display(),
            p.cur_nimg as f64 / 1e3,
            p.cur_tick,
            used.display()
        ));
        let goes_on = (p.cur_nimg as f64) < self.opts.kimg * 1000.0;
        self.unscored = self.metrics_missed(&used, &before);
        if goes_on {
            if let Some(aside) = rewind::set_aside_later(&self.dir, &used, p.cur_nimg)? {
                self.log.line(&aside.note);
                if aside.best_moved {
                    self.trainer.progress.best_fid = None;
                }
            }
        }
        if let Some(note) = self.opts.data_change_from(&before) {
            self.log.line(&note);
            if goes_on {
                self.write_reals()?; // the grids to come are of this data
            }
        }
        let changed = self.opts.changes_from(&before);
        if !changed.is_empty() {
            self.log.line(&format!(
                "note: continuing with other options than the snapshot's run: {}",
                changed.join(", ")
            ));
        }
        // a run with nothing left to do keeps what it trained with and logged
        if goes_on {
            self.continue_files()?;
        }
        Ok(())
    }

    /// Restore `snap`, or in auto mode the previous snapshot when `snap` cannot be read;
    /// the snapshot used and the options it was written with.
    fn restore_or_older(
        &mut self,
        snap: &Path,
        resume: &ResumeFrom,
    ) -> Result<(PathBuf, TrainOptions)> {
        match self.trainer.restore(snap) {
            Ok(before) => Ok((snap.to_path_buf(), before)),
            Err(e) if e.downcast_ref::<CannotContinue>().is_some() => Err(e),
            Err(e) => {
                let older = snapshots_in(&self.dir).into_iter().find(|p| p != snap);
                let (ResumeFrom::Auto, Some(prev)) = (resume, older) else {
                    return Err(e);
                };
                self.log.line(&format!(
                    "warning: {e:#}; resuming from {} instead",
                    prev.display()
                ));
                let before = self.trainer.restore(&prev)?;
                Ok((prev, before))
            }
        }
    }

    /// The run's files continue from the restored snapshot: the options rewritten, stats.jsonl
    /// and metric-*.jsonl without what was logged after it, TensorBoard from its image count.
    fn continue_files(&mut self) -> Result<()> {
        self.write_options()?;
        let p = &self.trainer.progress;
        tick::truncate_stats(&self.dir, p.cur_tick)?;
        let up_to_now = |v: &serde_json::Value| {
            let kimg = v["snapshot_pkl"].as_str().and_then(snapshot_kimg);
            kimg.is_none_or(|k| (k * 1000.0).round() as i64 <= p.cur_nimg)
        };
        for f in metric_files(&self.dir) {
            keep_lines(&f, up_to_now)?;
        }
        self.board = Some(Board::open(&self.dir, Some(p.cur_nimg))?);
        self.keep_best_fid();
        Ok(())
    }

    /// Whether the run already reached `--kimg` (then says so).
    fn reached_end(&mut self) -> bool {
        let nimg = self.trainer.progress.cur_nimg;
        if (nimg as f64) < self.opts.kimg * 1000.0 {
            return false;
        }
        let unscored = match (&self.last_snapshot, self.unscored) {
            (Some(snap), true) => format!(
                " Its last snapshot was not scored (the run stopped during its metrics): `{}` scores it.",
                self.metrics_command(snap)
            ),
            _ => String::new(),
        };
        self.log.line(&format!(
            "Nothing to do: this run already reached kimg {:.3} (--kimg {}). Raise --kimg to continue.{unscored}",
            nimg as f64 / 1e3,
            self.opts.kimg
        ));
        true
    }

    /// Start the background loader at the run's position in the data order, and the clocks.
    fn start_stream(&mut self) {
        let batch = self.opts.batch;
        self.stream = Some(BatchStream::start(
            self.set.clone(),
            self.opts.batch_per_process() as usize,
            self.opts.seed,
            (self.trainer.progress.batch_idx * batch) as usize,
            2,
            self.trainer.rank_world(),
        ));
        self.start = Instant::now();
        self.tick_start = Instant::now();
    }

    /// Train until the end of the tick (tick 0 is one iteration), `--kimg`, or a stop request;
    /// returns (done, stop). Each iteration reseeds torch's RNG from its batch index, so that a
    /// resume from any snapshot draws what the uninterrupted run drew. The losses are read back
    /// (a GPU synchronisation) and a stop request is looked at every [`READBACK_EVERY`]
    /// iterations on CUDA, every iteration on a CPU, and at the tick's end.
    fn iterate_tick(&mut self) -> Result<(bool, bool)> {
        loop {
            let b = self.stream.as_ref().expect("stream started").next_batch();
            self.trainer.reseed();
            let losses = self.trainer.step(&b.images, b.labels.as_ref())?;
            progress::beat();
            let p = &self.trainer.progress;
            self.log
                .pb
                .set_position(p.cur_nimg.min(self.total_nimg) as u64);
            let done = p.cur_nimg >= self.total_nimg;
            let tick_end = done || self.tick_complete();
            // the points where the host waits for the GPU anyway, the same on every rank
            let sync = tick_end || !self.device.is_cuda() || p.batch_idx % READBACK_EVERY == 0;
            if !sync {
                continue;
            }
            let (g, d) = losses.values();
            // every rank agrees whether any was asked to stop, and whether any diverged
            let finite = g.is_finite() && d.is_finite();
            let [stop, bad] = self
                .trainer
                .any_ranks([signals::stop_requested(), !finite])?;
            self.check_finite(bad, g, d)?;
            self.show_live_line(g, d);
            if tick_end || stop {
                return Ok((done, stop));
            }
        }
    }

    /// The divergence guard: ten readings in a row with non-finite losses (`bad`: on any rank)
    /// end the run, naming the last snapshot written with finite ones.
    fn check_finite(&mut self, bad: bool, g: f64, d: f64) -> Result<()> {
        if !bad {
            self.bad_iters = 0;
            return Ok(());
        }
        self.bad_iters += 1;
        if self.bad_iters < 10 {
            return Ok(());
        }
        self.log.pb.finish_and_clear();
        let fix = match &self.last_good {
            Some(p) => format!(
                "the last good snapshot is {}; continue it with a lower --lr (--resume {} --lr L) or start again with another --seed",
                p.display(),
                shell_word(p)
            ),
            None => "no snapshot was written with finite losses; start again with a lower --lr or another --seed".into(),
        };
        bail!(
            "training diverged at kimg {:.3}: losses were not finite 10 times in a row (G {g}, D {d}); {fix}",
            self.trainer.progress.cur_nimg as f64 / 1e3,
        )
    }

    /// The live line under the bar (terminals only: no formatting or /proc read otherwise).
    fn show_live_line(&self, g: f64, d: f64) {
        if self.log.pb.is_hidden() {
            return;
        }
        let p = &self.trainer.progress;
        let secs = self.tick_start.elapsed().as_secs_f64().max(1e-9);
        let rate = (p.cur_nimg - self.tick_clock_nimg) as f64 / secs;
        let mut line = tick::live_line(p.cur_nimg, self.opts.kimg, self.total_nimg, rate, g, d);
        if let Some(s) = self.eval_estimate {
            line += &format!(" | eval ~{} per snapshot", format_time(s));
        }
        self.log.pb.set_message(line);
    }

    /// Whether the tick under way is complete: tick 0 after one iteration, the others after
    /// `--tick` kimg from their start.
    fn tick_complete(&self) -> bool {
        let p = &self.trainer.progress;
        let tick_nimg = (self.opts.tick * 1000.0).ceil() as i64;
        p.cur_tick == 0 || p.cur_nimg >= self.tick_start_nimg + tick_nimg
    }

    /// The tick line and stats.jsonl (rank 0, with the statistics of every rank); counts the
    /// tick if it is complete, else (a stop, `--kimg` inside the tick) keeps where it began for
    /// the snapshot: a resume ends it, and logs it again from there.
    fn end_tick(&mut self) -> Result<()> {
        let total_sec = self.sec0 + self.start.elapsed().as_secs_f64();
        self.trainer.reduce_stats()?;
        if self.rank0 {
            self.report_tick(total_sec)?;
        } else {
            self.trainer.stats.tick(0.0); // rank 0 writes them
        }
        let complete = self.tick_complete();
        let p = &mut self.trainer.progress;
        p.total_sec = total_sec;
        if complete {
            p.cur_tick += 1;
            p.tick_start_nimg = None;
        } else {
            p.tick_start_nimg = Some(self.tick_start_nimg);
        }
        Ok(())
    }

    /// The tick line, stats.jsonl and TensorBoard scalars of the tick ending now.
    fn report_tick(&mut self, total_sec: f64) -> Result<()> {
        let timing = TickTiming {
            total_sec,
            tick_sec: self.tick_start.elapsed().as_secs_f64(),
            tick_nimg: self.trainer.progress.cur_nimg - self.tick_clock_nimg,
            maintenance_sec: self.maintenance_sec,
        };
        let line = tick::report(
            &mut self.trainer,
            &timing,
            self.device,
            &self.dir,
            &mut self.log,
        )?;
        if let Some(b) = &mut self.board {
            b.stats(&line, self.trainer.progress.cur_nimg)?;
        }
        Ok(())
    }

    /// The sample grid `fakesNNNNNN.png` and a snapshot (rank 0; returns its path); older
    /// snapshots beyond `--keep` go. Every rank notes it as the last good one unless the losses
    /// were not finite at the last reading.
    fn snapshot(&mut self) -> Result<Option<PathBuf>> {
        let nimg = self.trainer.progress.cur_nimg;
        let path = self.dir.join(snapshot_name(nimg));
        self.last_snapshot = Some(path.clone());
        if self.bad_iters == 0 {
            self.last_good = Some(path.clone());
        }
        let rank_buffers = self.trainer.gather_rank_buffers()?; // every rank's, a collective
        if !self.rank0 {
            return Ok(None);
        }
        let inside_tick = self.trainer.progress.tick_start_nimg.is_some();
        let fakes = self.dir.join(grid_name(nimg, inside_tick));
        let grid = self.trainer.fakes();
        images::save_grid(&grid, self.opts.grid.0 as usize, &fakes)?;
        if let Some(b) = &mut self.board {
            b.fakes(&grid, nimg)?;
        }
        self.trainer.save(&path, rank_buffers.as_ref())?;
        snapshot::prune(&self.dir, self.opts.keep, &path);
        Ok(Some(path))
    }

    /// `progress.png` with the curves so far (a failure is a warning: training goes on).
    fn plot(&mut self) {
        if let Err(e) = plot::progress_png(&self.dir) {
            self.log
                .line(&format!("warning: progress.png not drawn: {e:#}"));
        }
    }

    /// Start the clocks of the next tick; `maintenance_sec` is what this one's upkeep took.
    fn next_tick(&mut self, maintenance_sec: f64) {
        self.set_tick_start();
        self.tick_start = Instant::now();
        self.maintenance_sec = maintenance_sec;
    }

    /// The tick under way begins now, or where a snapshot written inside it says; this
    /// process's clock of it from now.
    fn set_tick_start(&mut self) {
        let p = &self.trainer.progress;
        self.tick_start_nimg = p.tick_start_nimg.unwrap_or(p.cur_nimg);
        self.tick_clock_nimg = p.cur_nimg;
    }

    /// Stopped on request (the snapshot is written, its metrics not computed).
    fn stopped(mut self) -> Result<PathBuf> {
        self.log.pb.finish_and_clear();
        let unscored = match (self.metrics.is_empty(), &self.last_snapshot) {
            (false, Some(snap)) => format!(
                " Its metrics were skipped: `{}` computes them.",
                self.metrics_command(snap)
            ),
            _ => String::new(),
        };
        self.log.line(&format!(
            "Stopped at kimg {:.3}; snapshot {}. Run the same command again to resume.{unscored}",
            self.trainer.progress.cur_nimg as f64 / 1e3,
            name_or_none(&self.last_snapshot)
        ));
        Ok(self.dir)
    }

    /// Reached `--kimg`.
    fn finished(mut self) -> Result<PathBuf> {
        self.log.pb.finish_and_clear();
        self.log.line(&format!(
            "Done: kimg {:.3} in {}. Samples: {}, snapshot: {}",
            self.trainer.progress.cur_nimg as f64 / 1e3,
            // over every session of the run, as the tick lines' time
            format_time(self.sec0 + self.start.elapsed().as_secs_f64()),
            self.dir.join("fakes*.png").display(),
            name_or_none(&self.last_snapshot)
        ));
        Ok(self.dir)
    }
}

/// A path for a message, or "none".
fn name_or_none(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "none".into(), |p| p.display().to_string())
}
