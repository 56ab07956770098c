//! A training run around the [`Trainer`]: the run directory (`NNNNN-<cfg>-<dataset>-batch<B>`),
//! resume (auto, explicit, fallback past an unreadable snapshot), the iteration loop with its
//! progress line, ticks with log.txt and stats.jsonl, snapshots with pruning, metrics with the
//! best snapshot, Ctrl-C and the divergence guard (reference sections 7.5-7.7 and 11).
use crate::checkpoint;
use crate::dataset::stream::BatchStream;
use crate::dataset::{ImageSet, PrepareOptions};
use crate::metrics::{metric_line, parse_metrics, Evaluator, Metric};
use crate::rng::SplitMix;
use crate::training::{parse_device, reseed, TrainOptions, Trainer};
use crate::{grid, progress};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
/// What `--resume` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumeFrom {
    /// Continue the matching run in --outdir if it has a snapshot, else start a new one.
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

pub const SNAPSHOT_PREFIX: &str = "network-snapshot-";

/// `network-snapshot-<kimg with 3 decimals, zero-padded>.safetensors`, e.g.
/// `network-snapshot-000200.000.safetensors`: unique per snapshot and sorted by progress.
pub fn snapshot_name(cur_nimg: i64) -> String {
    format!(
        "{SNAPSHOT_PREFIX}{:010.3}.safetensors",
        cur_nimg as f64 / 1000.0
    )
}

/// Snapshots in `dir`, newest first.
pub fn snapshots_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SNAPSHOT_PREFIX) && n.ends_with(".safetensors"))
        })
        .collect();
    v.sort();
    v.reverse();
    v
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

static STOP: AtomicBool = AtomicBool::new(false);

/// Ctrl-C: the first stops after the current iteration with a snapshot, the second at once.
fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nfpgan: interrupted again, quitting without a snapshot");
            std::process::exit(130);
        }
        eprintln!("\nfpgan: stopping after this iteration and writing a snapshot (Ctrl-C again to quit now)");
    });
}

/// Appends lines to log.txt and prints them without tearing the progress bar.
struct Log {
    file: std::fs::File,
    pb: indicatif::ProgressBar,
}

impl Log {
    fn line(&mut self, s: &str) {
        self.pb.suspend(|| println!("{s}"));
        let _ = writeln!(self.file, "{s}");
    }
}

fn format_time(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60),
        _ => format!("{}d {:02}h {:02}m", s / 86400, s / 3600 % 24, s / 60 % 60),
    }
}

fn cpu_mem_gb() -> f64 {
    progress::proc_memory_gb("VmRSS")
}

/// Load the training images: a prepared dataset as it is, anything else prepared at `res`.
pub fn load_training_set(data: &Path, res: Option<i64>, mirror: bool) -> Result<ImageSet> {
    let opts = PrepareOptions::square(res.unwrap_or(256) as u32);
    let set = ImageSet::open_or_prepare(data, &opts)?;
    if let Some(r) = res {
        if set.resolution as i64 != r {
            bail!(
                "{} holds {}x{} images but --res is {r}; prepare it again with `fpgan dataset --resolution {r}` or drop --res",
                data.display(),
                set.resolution,
                set.resolution
            );
        }
    }
    Ok(set.with_mirror(mirror))
}

/// Pick the run directory and the snapshot to resume from (if any).
fn resolve_run(opts: &TrainOptions, resume: &ResumeFrom) -> Result<(PathBuf, Option<PathBuf>)> {
    std::fs::create_dir_all(&opts.outdir)
        .with_context(|| format!("cannot create --outdir {}", opts.outdir.display()))?;
    let desc = opts.run_desc();
    let dirs = run_dirs(&opts.outdir);
    let next_id = dirs.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let new_dir = opts.outdir.join(format!("{next_id:05}-{desc}"));
    match resume {
        ResumeFrom::Never => Ok((new_dir, None)),
        ResumeFrom::Path(p) if p.is_dir() => {
            let snap = snapshots_in(p).into_iter().next().with_context(|| {
                format!(
                    "{} holds no {SNAPSHOT_PREFIX}*.safetensors to resume from",
                    p.display()
                )
            })?;
            Ok((p.clone(), Some(snap)))
        }
        ResumeFrom::Path(p) => {
            if !p.is_file() {
                bail!(
                    "--resume {}: no such snapshot file or run directory",
                    p.display()
                );
            }
            let dir = p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok((dir, Some(p.clone())))
        }
        ResumeFrom::Auto => {
            let matching: Vec<&PathBuf> = dirs
                .iter()
                .map(|(_, d)| d)
                .filter(|d| {
                    d.file_name()
                        .is_some_and(|n| n.to_string_lossy().get(6..) == Some(desc.as_str()))
                })
                .collect();
            match matching.as_slice() {
                [d] => {
                    let snap = snapshots_in(d).into_iter().next();
                    Ok(((*d).clone(), snap))
                }
                _ => Ok((new_dir, None)),
            }
        }
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

/// Train with `opts`; returns the run directory.
pub fn train(opts: &TrainOptions, set: ImageSet, resume: &ResumeFrom) -> Result<PathBuf> {
    train_with(opts, set, resume, ResumeMode::Exact)
}

/// Train with `opts`, continuing a snapshot as `mode` says; returns the run directory.
pub fn train_with(
    opts: &TrainOptions,
    set: ImageSet,
    resume: &ResumeFrom,
    mode: ResumeMode,
) -> Result<PathBuf> {
    opts.validate()?;
    let device = parse_device(&opts.device)?;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut trainer = Trainer::new(opts, device)?;
    let (run_dir, mut snapshot) = resolve_run(opts, resume)?;
    if mode == ResumeMode::Reference {
        let ResumeFrom::Path(_) = resume else {
            bail!("--resume-mode reference needs --resume <snapshot file or run dir>");
        };
        let snap = snapshot.take().context("no snapshot to resume from")?;
        trainer.restore_weights_only(&snap)?;
        eprintln!(
            "Copied the weights of {} (reference resume: kimg 0, fresh Adam, no EMA rampup)",
            snap.display()
        );
        let (new_dir, _) = resolve_run(opts, &ResumeFrom::Never)?;
        return run_loop(opts, set, trainer, new_dir, None, resume, device);
    }
    run_loop(opts, set, trainer, run_dir, snapshot, resume, device)
}

fn run_loop(
    opts: &TrainOptions,
    set: ImageSet,
    mut trainer: Trainer,
    run_dir: PathBuf,
    snapshot: Option<PathBuf>,
    resume: &ResumeFrom,
    device: tch::Device,
) -> Result<PathBuf> {
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let fresh = snapshot.is_none();
    let pb = progress::bar((opts.kimg * 1000.0).ceil() as u64, "training");
    pb.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("log.txt"))
        .with_context(|| format!("cannot write {}", run_dir.join("log.txt").display()))?;
    let mut log = Log {
        file,
        pb: pb.clone(),
    };
    if let Some(snap) = &snapshot {
        trainer.restore(snap).or_else(|e| {
            // an unreadable newest snapshot: fall back to the previous one in auto mode
            let older = snapshots_in(&run_dir).into_iter().find(|p| p != snap);
            match (resume, older) {
                (ResumeFrom::Auto, Some(prev)) => {
                    log.line(&format!(
                        "warning: {e:#}; resuming from {} instead",
                        prev.display()
                    ));
                    trainer.restore(&prev)
                }
                _ => Err(e),
            }
        })?;
        log.line(&format!(
            "Resuming {} at kimg {:.3} (tick {}) from {}",
            run_dir.display(),
            trainer.progress.cur_nimg as f64 / 1e3,
            trainer.progress.cur_tick,
            snap.display()
        ));
    } else {
        log.line(&format!("Starting {} on {device:?}", run_dir.display()));
        let json = serde_json::to_string_pretty(opts)?;
        checkpoint::atomic_write(&run_dir.join("training_options.json"), |w| {
            Ok(w.write_all(json.as_bytes())?)
        })?;
    }
    if trainer.progress.cur_nimg as f64 >= opts.kimg * 1000.0 {
        log.line(&format!(
            "Nothing to do: this run already reached kimg {:.3} (--kimg {}). Raise --kimg to continue.",
            trainer.progress.cur_nimg as f64 / 1e3,
            opts.kimg
        ));
        return Ok(run_dir);
    }
    let set = Arc::new(set);
    let (gw, gh) = opts.grid;
    if fresh {
        let mut order: Vec<usize> = (0..set.len()).collect();
        let mut rng = SplitMix(0);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u32 + 1) as usize);
        }
        let idx: Vec<usize> = (0..(gw * gh) as usize)
            .map(|k| order[k % order.len()])
            .collect();
        grid::save_grid(&set.batch(&idx), gw as usize, &run_dir.join("reals.png"))?;
        grid::save_grid(
            &trainer.fakes(),
            gw as usize,
            &run_dir.join("fakes_init.png"),
        )?;
    }
    install_ctrlc();
    STOP.store(false, Ordering::SeqCst);

    let stream = BatchStream::start(
        set.clone(),
        opts.batch as usize,
        opts.seed,
        (trainer.progress.batch_idx * opts.batch) as usize,
        2,
    );
    let total_nimg = (opts.kimg * 1000.0).ceil() as i64;
    let start = Instant::now();
    let sec0 = trainer.progress.total_sec;
    let mut tick_start_nimg = trainer.progress.cur_nimg;
    let mut tick_start = Instant::now();
    let mut maintenance = 0.0;
    let mut bad_iters = 0;
    let mut last_good = snapshot.clone();
    let metrics = parse_metrics(&opts.metrics.join(","))?;
    let mut evaluator: Option<Evaluator> = None;
    loop {
        let reals = stream.next_batch();
        let losses = trainer.step(&reals)?;
        let p = &trainer.progress;
        if losses.g.is_finite() && losses.d.is_finite() {
            bad_iters = 0;
        } else {
            bad_iters += 1;
            if bad_iters >= 10 {
                pb.finish_and_clear();
                bail!(
                    "training diverged at kimg {:.3}: losses were not finite for 10 iterations (G {}, D {}); \
                     the last good snapshot is {}; try another --seed or a smaller --batch-gpu",
                    p.cur_nimg as f64 / 1e3,
                    losses.g,
                    losses.d,
                    last_good.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into())
                );
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        pb.set_position(p.cur_nimg.min(total_nimg) as u64);
        if !pb.is_hidden() {
            // the live line (terminals only: no formatting or /proc read otherwise)
            let rate = (p.cur_nimg - tick_start_nimg) as f64
                / tick_start.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!(
                "kimg {:.2}/{} | {:.1} img/s | {:.1} s/kimg | ETA {} | G {:.3} D {:.3} | cpu {:.1} GB",
                p.cur_nimg as f64 / 1e3,
                opts.kimg,
                rate,
                1000.0 / rate.max(1e-9),
                format_time((total_nimg - p.cur_nimg) as f64 / rate.max(1e-9)),
                losses.g,
                losses.d,
                cpu_mem_gb()
            ));
        }
        let done = p.cur_nimg >= total_nimg;
        let stop = STOP.load(Ordering::SeqCst);
        let tick_nimg = (opts.tick * 1000.0).ceil() as i64;
        if !done && !stop && p.cur_tick != 0 && p.cur_nimg < tick_start_nimg + tick_nimg {
            continue;
        }

        // Maintenance: tick line, stats, snapshot.
        let tick_time = tick_start.elapsed().as_secs_f64();
        let total_sec = sec0 + elapsed;
        let kimg = p.cur_nimg as f64 / 1e3;
        let sec_per_kimg = tick_time / ((p.cur_nimg - tick_start_nimg).max(1) as f64 / 1e3);
        let cpu = cpu_mem_gb();
        let tick = p.cur_tick;
        let gpu = crate::cuda_memory::stats(device, true);
        let (gpu_alloc, gpu_reserved) = match gpu {
            Some(m) => (
                crate::cuda_memory::gb(m.peak_allocated),
                crate::cuda_memory::gb(m.peak_reserved),
            ),
            None => (0.0, 0.0),
        };
        log.line(&format!(
            "tick {tick:<5} kimg {kimg:<8.1} time {:<12} sec/tick {tick_time:<7.1} sec/kimg {sec_per_kimg:<7.2} maintenance {maintenance:<6.1} cpumem {cpu:<6.2} gpumem {gpu_alloc:<6.2} reserved {gpu_reserved:<6.2}",
            format_time(total_sec)
        ));
        let m0 = Instant::now();
        for (name, v) in [
            ("Progress/tick", tick as f64),
            ("Progress/kimg", kimg),
            ("Timing/total_sec", total_sec),
            ("Timing/sec_per_tick", tick_time),
            ("Timing/sec_per_kimg", sec_per_kimg),
            ("Timing/maintenance_sec", maintenance),
            ("Timing/total_hours", total_sec / 3600.0),
            ("Timing/total_days", total_sec / 86400.0),
            ("Resources/cpu_mem_gb", cpu),
            ("Resources/peak_gpu_mem_gb", gpu_alloc),
            ("Resources/peak_gpu_mem_reserved_gb", gpu_reserved),
        ] {
            trainer.stats.report_scalar(name, v);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let line = trainer.stats.tick(now);
        let mut stats_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join("stats.jsonl"))
            .with_context(|| format!("cannot write {}", run_dir.join("stats.jsonl").display()))?;
        writeln!(stats_file, "{line}").context("cannot append to stats.jsonl (disk full?)")?;

        trainer.progress.cur_tick += 1;
        trainer.progress.total_sec = total_sec;
        if done || stop || tick % opts.snap == 0 {
            let nimg = trainer.progress.cur_nimg;
            let fakes = run_dir.join(format!("fakes{:06}.png", nimg / 1000));
            grid::save_grid(&trainer.fakes(), gw as usize, &fakes)?;
            let path = run_dir.join(snapshot_name(nimg));
            trainer.save(&path)?;
            last_good = Some(path.clone());
            prune_snapshots(&run_dir, opts.keep, &path);
            if !metrics.is_empty() && tick != 0 {
                if evaluator.is_none() {
                    let e = pb.suspend(|| {
                        Evaluator::new(metrics.clone(), &set, device, opts.metrics_num_gen)
                    })?;
                    if e.cached {
                        log.line("Real-image features for the metrics: from the cache");
                    }
                    evaluator = Some(e);
                }
                let e = evaluator.as_ref().expect("set above");
                let scores = pb.suspend(|| e.run(&trainer.g_ema, device, opts.seed as i64))?;
                evaluate_and_keep_best(&run_dir, &path, &scores, &mut trainer, &mut log)?;
            }
            reseed(opts.seed, trainer.progress.batch_idx);
        }
        tick_start_nimg = trainer.progress.cur_nimg;
        tick_start = Instant::now();
        maintenance = m0.elapsed().as_secs_f64();
        if stop {
            pb.finish_and_clear();
            log.line(&format!(
                "Stopped at kimg {:.3}; snapshot {}. Run the same command again to resume.",
                trainer.progress.cur_nimg as f64 / 1e3,
                last_good
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
            return Ok(run_dir);
        }
        if done {
            break;
        }
    }
    pb.finish_and_clear();
    log.line(&format!(
        "Done: kimg {:.3} in {}. Samples: {}, snapshot: {}",
        trainer.progress.cur_nimg as f64 / 1e3,
        format_time(start.elapsed().as_secs_f64()),
        run_dir.join("fakes*.png").display(),
        last_good
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
    Ok(run_dir)
}

/// Append each score to `metric-<name>.jsonl`; when the first metric (FID) improves, copy the
/// snapshot to `best-snapshot.safetensors` and note its kimg in `best_nimg.txt`.
fn evaluate_and_keep_best(
    run_dir: &Path,
    snapshot: &Path,
    scores: &[crate::metrics::Score],
    trainer: &mut Trainer,
    log: &mut Log,
) -> Result<()> {
    let snap_name = snapshot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for s in scores {
        let path = run_dir.join(format!("metric-{}.jsonl", s.metric.name()));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(f, "{}", metric_line(s, &snap_name))
            .with_context(|| format!("cannot append to {}", path.display()))?;
        log.line(&format!(
            "{} {:.4} ({} generated images, {:.0} s)",
            s.metric.name(),
            s.value,
            s.num_gen,
            s.seconds
        ));
    }
    let Some(fid) = scores
        .iter()
        .find(|s| matches!(s.metric, Metric::Fid50kFull | Metric::Fid10kFull))
    else {
        return Ok(());
    };
    if trainer.progress.best_fid.is_none_or(|b| fid.value < b) {
        trainer.progress.best_fid = Some(fid.value);
        let best = run_dir.join("best-snapshot.safetensors");
        let bytes = std::fs::read(snapshot)
            .with_context(|| format!("cannot read {}", snapshot.display()))?;
        checkpoint::atomic_write(&best, |w| Ok(w.write_all(&bytes)?))?;
        let nimg = trainer.progress.cur_nimg.to_string();
        checkpoint::atomic_write(&run_dir.join("best_nimg.txt"), |w| {
            Ok(w.write_all(nimg.as_bytes())?)
        })?;
        log.line(&format!(
            "New best {} {:.4}: {}",
            fid.metric.name(),
            fid.value,
            best.display()
        ));
    }
    Ok(())
}

/// Keep the newest `keep` snapshots (and `current`); older ones are removed only after the
/// new one is complete.
fn prune_snapshots(dir: &Path, keep: usize, current: &Path) {
    for old in snapshots_in(dir).into_iter().skip(keep.max(1)) {
        if old != current {
            std::fs::remove_file(old).ok();
        }
    }
}
