//! `fpgan metrics`: FID/KID of a trained network against its dataset, or between two image folders.
use crate::data::{Background, ImageSet, RawFit, Transform};
use crate::eval::detector::Detector;
use crate::eval::evaluator::{
    detector_batch, features_of, folder_batches, images_per_evaluation, metric_classes,
    real_features, Estimate, Evaluator, Score,
};
use crate::eval::metrics::{
    check_image_count, check_num_gen, feature_stats, fid, kid, parse_metrics, Metric,
};
use crate::eval::report::{append_metric, metric_line};
use crate::monitor::plot;
use crate::snapshot::{snapshot_kimg, Network, SNAPSHOT_PREFIX};
use crate::train::options::{TrainOptions, OPTIONS_FILE};
use crate::util::device::parse_device;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tch::Device;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fpgan metrics --network runs/00000-faster-pokemon256-batch64 --data pokemon256.zip\n  \
fpgan metrics --real photos/ --fake out/ --metrics fid,kid\n\nReal-image features are cached in \
$FPGAN_HOME/metrics-cache, keyed by the image content and the detector file."
)]
pub struct MetricsArgs {
    /// A snapshot or run directory to score (with --data).
    #[arg(long, requires = "data", conflicts_with_all = ["real", "fake"])]
    pub network: Option<PathBuf>,
    /// The dataset the network was trained on (all images, no x-flips).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A folder or zip of real images (any sizes and formats the dataset tool reads).
    #[arg(long, requires = "fake", conflicts_with_all = ["data", "num_gen", "transform", "background", "seed"])]
    pub real: Option<PathBuf>,
    /// A folder or zip of generated images.
    #[arg(long, requires = "real")]
    pub fake: Option<PathBuf>,
    /// With --network: fid50k_full, kid50k_full, fid10k_full (default fid50k_full); with
    /// --real/--fake: fid, kid (default fid,kid).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Generated images instead of the metric's 50k/10k (quick looks; not comparable).
    #[arg(long)]
    pub num_gen: Option<usize>,
    /// Raw images for --data only: how non-square ones become square, as `fpgan dataset
    /// --transform` (default: as the snapshot's run prepared them, else center-crop).
    #[arg(long, value_parser = Transform::square_parser())]
    pub transform: Option<Transform>,
    /// Raw images for --data only: the colour behind transparent pixels, as `fpgan dataset
    /// --background` (default: as the snapshot's run, else white).
    #[arg(long)]
    pub background: Option<Background>,
    /// Seed of the generated latents.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl MetricsArgs {
    /// How raw --data is fitted as given (--transform, --background).
    fn fit(&self) -> RawFit {
        RawFit {
            transform: self.transform,
            background: self.background,
        }
    }
}

pub fn run(a: MetricsArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    check_num_gen(a.num_gen)?;
    match (&a.network, &a.data, &a.real, &a.fake) {
        (Some(net), Some(data), _, _) => network_metrics(&a, net, data, device),
        (_, _, Some(real), Some(fake)) => folder_metrics(&a, real, fake, device),
        _ => bail!("give --network <snapshot|run dir> with --data <dataset>, or --real <images> with --fake <images>"),
    }
}

fn cache_note(cached: bool) -> &'static str {
    if cached {
        "features from the cache"
    } else {
        "features computed and cached"
    }
}

/// A trained network against its dataset, with the reference's metrics.
fn network_metrics(a: &MetricsArgs, net: &Path, data: &Path, device: Device) -> Result<()> {
    let list = parse_metrics(a.metrics.as_deref().unwrap_or("fid50k_full"))?;
    if list.is_empty() {
        bail!("--metrics names no metric");
    }
    let net = Network::load(net, device)?;
    // the options of the run that wrote the snapshot (None for other snapshots)
    let run = net
        .training_options
        .clone()
        .and_then(|o| serde_json::from_value::<TrainOptions>(o).ok());
    let set = real_set(a, data, net.g.config.resolution, run.as_ref())?;
    // checked before the real features are computed (the generation checks it again)
    metric_classes(net.classes(), set.labels.as_deref(), Device::Cpu)
        .with_context(|| data.display().to_string())?;
    let snap = net
        .source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match net.source.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let scoring = Scoring {
        args: a,
        asked: &list,
        opts: run.as_ref(),
        set: &set,
        dir,
        snap: &snap,
    };
    let target = scoring.announce_target();
    let eval = Evaluator::new(list, &set, device, a.num_gen)?;
    println!(
        "metrics: {} real images of {} ({})",
        set.num_images(),
        data.display(),
        cache_note(eval.cached)
    );
    // said up front, where no progress bar shows (a log file, a job's output)
    let n = images_per_evaluation(&eval.metrics, a.num_gen);
    let estimate = Estimate::measure(&eval.detector, &net.g, device, n)?;
    println!("metrics: {estimate}");
    let scores = eval.run(&net.g, device, a.seed)?;
    // one line per score, printed and appended alike (the reference's report_metric)
    let lines: Vec<serde_json::Value> = scores.iter().map(|s| metric_line(s, &snap)).collect();
    for (s, line) in scores.iter().zip(&lines) {
        println!("{line}");
        println!(
            "metrics: {} = {:.4} ({} generated images, {:.0} s)",
            s.metric.name(),
            s.value,
            s.num_gen,
            s.seconds
        );
    }
    match target {
        Some(run_now) => record_in_run(dir, &run_now, &scores, &lines),
        None => Ok(()),
    }
}

/// A snapshot being scored: the command's arguments, the metrics asked, the options of the run
/// that wrote it (`opts`, None for other snapshots), the real images, its folder and file name.
struct Scoring<'a> {
    args: &'a MetricsArgs,
    asked: &'a [Metric],
    opts: Option<&'a TrainOptions>,
    set: &'a ImageSet,
    dir: &'a Path,
    snap: &'a str,
}

impl Scoring<'_> {
    /// Say up front whether (and which of) the scores will go to the run's metric files;
    /// returns the run's options when some will.
    fn announce_target(&self) -> Option<TrainOptions> {
        let run = match self.scored_as_its_run() {
            Ok(run) => run,
            Err(why) => {
                println!("metrics: the scores will not be added to a run's metric files: {why}");
                return None;
            }
        };
        let other: Vec<&str> = self
            .asked
            .iter()
            .filter(|&&m| !tracks(&run, m))
            .map(|m| m.name())
            .collect();
        if !other.is_empty() {
            println!(
                "metrics: {} will not be added to {}: the run tracks {}",
                other.join(", "),
                self.dir.display(),
                run.metrics.join(",")
            );
        }
        Some(run)
    }

    /// The options of the run directory when the snapshot is one of its training snapshots
    /// scored as the run scores (its data, `--num-gen` and `--seed`, and some of the asked
    /// metrics it tracks); else why not.
    fn scored_as_its_run(&self) -> Result<TrainOptions, String> {
        let (dir, snap) = (self.dir, self.snap);
        if snapshot_kimg(snap).is_none() {
            return Err(format!(
                "only a run's {SNAPSHOT_PREFIX}* files are (not {snap})"
            ));
        }
        let path = dir.join(OPTIONS_FILE);
        let bytes = std::fs::read(&path).map_err(|_| {
            format!(
                "{} is not a run directory (no {OPTIONS_FILE})",
                dir.display()
            )
        })?;
        let run = serde_json::from_slice::<TrainOptions>(&bytes)
            .map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
        let opts = self
            .opts
            .ok_or("the snapshot carries no training options")?;
        if (opts.generator_config(), &opts.dataset_name)
            != (run.generator_config(), &run.dataset_name)
        {
            return Err(format!(
                "the snapshot is not of the run in {}",
                dir.display()
            ));
        }
        if parse_metrics(&run.metrics.join(",")).map_or(true, |m| m.is_empty()) {
            return Err("the run tracks no metrics (--metrics none)".into());
        }
        if !self.asked.iter().any(|&m| tracks(&run, m)) {
            return Err(format!("the run tracks {}", run.metrics.join(",")));
        }
        let off = differences(self.args, opts, &run, self.set);
        match off.is_empty() {
            true => Ok(run),
            false => Err(off.join("; ")),
        }
    }
}

/// The real images: a prepared dataset as it is; other images prepared at `res` as the run
/// (`run`) prepared them, or as --transform/--background say.
fn real_set(
    a: &MetricsArgs,
    data: &Path,
    res: i64,
    run: Option<&TrainOptions>,
) -> Result<ImageSet> {
    let fallback = run.map_or(RawFit::default(), TrainOptions::fit);
    let set = ImageSet::open_or_fit(data, res as u32, a.fit(), fallback)?;
    if set.resolution as i64 != res {
        bail!(
            "{} holds {r}x{r} images but the network makes {res}x{res}; give the dataset it was trained on",
            data.display(),
            r = set.resolution
        );
    }
    if let (Some((t, b)), None, None) = (set.fit, a.transform, a.background) {
        if run.is_some_and(|r| r.transform.is_some()) {
            println!(
                "metrics: {} prepared as the run prepared it (--transform {t} --background {b})",
                data.display()
            );
        }
    }
    Ok(set)
}

/// As the reference's calc_metrics.py, a snapshot's scores go to its run directory's
/// `metric-<name>.jsonl` (`lines`, as printed; progress.png is redrawn), for the metrics the run
/// tracks.
fn record_in_run(
    dir: &Path,
    run: &TrainOptions,
    scores: &[Score],
    lines: &[serde_json::Value],
) -> Result<()> {
    let mut files = Vec::new();
    for (s, line) in scores
        .iter()
        .zip(lines)
        .filter(|(s, _)| tracks(run, s.metric))
    {
        append_metric(dir, s.metric, line)?;
        files.push(format!("metric-{}.jsonl", s.metric.name()));
    }
    println!(
        "metrics: added to {} in {}",
        files.join(", "),
        dir.display()
    );
    if let Err(e) = plot::progress_png(dir) {
        eprintln!("warning: progress.png not redrawn: {e:#}");
    }
    Ok(())
}

/// Whether `run` computes `metric` at its snapshots.
fn tracks(run: &TrainOptions, metric: Metric) -> bool {
    run.metrics.iter().any(|m| m == metric.name())
}

/// How this scoring differs from the run's (`opts`: the snapshot's, `run`: the run directory's),
/// all at once: the data (and how it was prepared), `--num-gen`, `--seed`.
fn differences(
    a: &MetricsArgs,
    opts: &TrainOptions,
    run: &TrainOptions,
    set: &ImageSet,
) -> Vec<String> {
    let mut off = Vec::new();
    if let Some(how) = opts
        .dataset
        .and_then(|p| set.fingerprint().change_from(&p, opts.classes > 0))
    {
        let as_run = match (set.fit, opts.fit().resolved()) {
            (Some(now), (t, b)) if now != (t, b) => {
                format!("; the run prepared it with --transform {t} --background {b}")
            }
            _ => String::new(),
        };
        off.push(format!(
            "--data is not the data the snapshot was trained on ({how}{as_run})"
        ));
    } else if opts.dataset.is_none() && opts.dataset_name != set.name {
        off.push(format!(
            "--data is not the run's dataset ({})",
            opts.dataset_name
        ));
    }
    if run.metrics_num_gen != a.num_gen {
        off.push(match run.metrics_num_gen {
            Some(n) => format!("the run scores with --num-gen {n}"),
            None => "the run scores without --num-gen".into(),
        });
    }
    if run.seed as i64 != a.seed {
        off.push(format!("the run scores with --seed {}", run.seed));
    }
    off
}

/// Two folders (or zips) of images: `fid`, `kid`.
fn folder_metrics(a: &MetricsArgs, real: &Path, fake: &Path, device: Device) -> Result<()> {
    let wanted: Vec<String> = a
        .metrics
        .as_deref()
        .unwrap_or("fid,kid")
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    if let Some(m) = wanted
        .iter()
        .find(|m| !["fid", "kid"].contains(&m.as_str()))
    {
        bail!("unknown metric '{m}' for --real/--fake: use fid, kid");
    }
    let name = real
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let batch = detector_batch(device);
    let (real_b, fake_b) = (folder_batches(real, batch)?, folder_batches(fake, batch)?);
    let count = |b: &[tch::Tensor]| b.iter().map(|t| t.size()[0]).sum::<i64>();
    check_image_count(count(&real_b), &format!("--real {}", real.display()))?;
    check_image_count(count(&fake_b), &format!("--fake {}", fake.display()))?;
    let detector = Detector::load(device)?;
    let (fr, cached) = real_features(&detector, &name, &real_b)?;
    let ff = features_of(&detector, &fake_b, "fake images")?;
    println!(
        "metrics: {} real images ({}), {} fake images",
        fr.size()[0],
        cache_note(cached),
        ff.size()[0]
    );
    for m in &wanted {
        let v = match m.as_str() {
            "fid" => fid(&feature_stats(&ff), &feature_stats(&fr)),
            _ => kid(&fr, &ff, 100, 0),
        };
        println!("{m} {v:.6}");
    }
    Ok(())
}
