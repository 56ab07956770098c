//! Features for the metrics: the [`Detector`] over real images (cached on disk) and over generated
//! images, and the [`Evaluator`] that scores a generator on a list of metrics.
use super::detector::Detector;
use super::metrics::{check_image_count, check_num_gen, evaluate, Metric};
use crate::data::labels::{class_table, draw_classes};
use crate::data::ImageSet;
use crate::dist::ProcessGroup;
use crate::nets::generator::Generator;
use crate::util::clock::format_time;
use crate::util::device::device_name;
use crate::util::images::to_uint8;
use crate::util::rng_state::with_rng_kept;
use crate::util::{home, progress, safetensors};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// Images per detector call: large on a GPU; small on a CPU, where batches of 64 at 299x299
/// were measured 1.3x slower than batches of 8 (cache-bound).
pub fn detector_batch(device: Device) -> usize {
    if device.is_cuda() {
        64
    } else {
        8
    }
}

/// Features of uint8 batches (each (B, 3, H, W)), with a progress bar.
pub fn features_of(detector: &Detector, batches: &[Tensor], what: &str) -> Result<Tensor> {
    let total: i64 = batches.iter().map(|b| b.size()[0]).sum();
    let pb = progress::bar(total as u64, what);
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        out.push(detector.features(b)?);
        pb.inc(b.size()[0] as u64);
        progress::beat();
    }
    pb.finish_and_clear();
    Ok(Tensor::cat(&out, 0))
}

/// sha256 over the size and bytes of every image of uint8 batches (independent of how the
/// images are batched).
pub fn content_digest(batches: &[Tensor]) -> String {
    let mut h = Sha256::new();
    for b in batches {
        let b = b.contiguous();
        let size = b.size();
        let mut buf = vec![0u8; b.numel()];
        b.copy_data_u8(&mut buf, b.numel());
        for image in buf.chunks(buf.len() / size[0].max(1) as usize) {
            h.update(format!("{:?};", &size[1..]).as_bytes());
            h.update(image);
        }
    }
    format!("{:x}", h.finalize())
}

/// Real features, from `$FPGAN_HOME/metrics-cache` when this content was seen with this
/// detector before (the cache is keyed by the image content and the detector's hash). Returns
/// the features and whether they came from the cache.
pub fn real_features(
    detector: &Detector,
    name: &str,
    batches: &[Tensor],
) -> Result<(Tensor, bool)> {
    let digest = content_digest(batches);
    let key = format!(
        "{:x}",
        Sha256::digest(format!("fpgan-real-v1|{}|{digest}", detector.sha256))
    );
    let dir = home::fpgan_home().join("metrics-cache");
    let path: PathBuf = dir.join(format!("{name}-{}.safetensors", &key[..16]));
    if let Ok((t, meta)) = safetensors::load(&path) {
        if meta["key"] == key {
            if let Some(f) = t.get("features") {
                return Ok((f.shallow_clone(), true));
            }
        }
    }
    let f = features_of(detector, batches, "real images")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta =
        serde_json::json!({"key": key, "detector_sha256": detector.sha256, "images": f.size()[0]});
    // a cache that cannot be written only costs time next run
    if let Err(e) = safetensors::save(&path, &[("features".into(), f.shallow_clone())], &meta) {
        eprintln!("warning: {e:#}");
    }
    Ok((f, false))
}

/// uint8 batches of all images of a dataset (no x-flips), `batch` at a time.
pub fn dataset_batches(set: &ImageSet, batch: usize) -> Vec<Tensor> {
    let idx: Vec<usize> = (0..set.num_images()).collect();
    idx.chunks(batch).map(|c| set.batch(c)).collect()
}

/// The table that a `classes`-class generator's metric images draw their classes from: the
/// dataset's `labels` (None for an unconditional generator); a conditional one refuses data
/// without labels or with labels it lacks.
pub fn metric_classes(
    classes: i64,
    labels: Option<&[i64]>,
    device: Device,
) -> Result<Option<Tensor>> {
    match (classes, labels) {
        (0, _) => Ok(None),
        (c, Some(l)) => Ok(Some(class_table(l, c, device)?)),
        (c, None) => bail!(
            "the dataset has no labels, but the generator is class-conditional ({}): its metrics draw classes from the labels of the dataset it was trained on; give that one",
            progress::count(c as u64, "class")
        ),
    }
}

/// Features of `n` images of G (eval mode): z ~ N(0, I) from torch's RNG seeded with `seed`,
/// quantised as the reference (trunc(clamp(x*127.5 + 128))). A conditional G makes each image
/// of the class of a random dataset image (`labels`: the class of every dataset image), as the
/// reference's metrics draw labels.
pub fn generated_features(
    detector: &Detector,
    g: &Generator,
    device: Device,
    n: usize,
    batch: usize,
    seed: i64,
    labels: Option<&[i64]>,
) -> Result<Tensor> {
    let table = metric_classes(g.config.classes, labels, device)?;
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed);
    let pb = progress::bar(n as u64, "generated images");
    let mut out = Vec::new();
    let mut done = 0;
    while done < n {
        let b = batch.min(n - done) as i64;
        let z = Tensor::randn([b, g.config.z_dim], (Kind::Float, device));
        let c = table.as_ref().map(|t| draw_classes(t, b));
        out.push(detector.features(&to_uint8(&g.forward_c(&z, c.as_ref(), false)))?);
        done += b as usize;
        pb.inc(b as u64);
        progress::beat();
    }
    pb.finish_and_clear();
    Ok(Tensor::cat(&out, 0))
}

/// [`generated_features`] shared by the ranks of `group`: rank r makes its share of the `n`
/// images (torch's RNG seeded with seed * ranks + r), and every rank gets all the features
/// (rank 0's first), gathered with one all-reduce. Alone, exactly `generated_features`.
#[allow(clippy::too_many_arguments)]
pub fn generated_features_in(
    group: Option<&ProcessGroup>,
    detector: &Detector,
    g: &Generator,
    device: Device,
    n: usize,
    batch: usize,
    seed: i64,
    labels: Option<&[i64]>,
) -> Result<Tensor> {
    let Some(group) = group.filter(|gr| gr.world > 1) else {
        return generated_features(detector, g, device, n, batch, seed, labels);
    };
    let (rank, world) = (group.rank, group.world);
    if n < world {
        bail!("{n} generated images cannot be shared by {world} processes; use --num-gen {world} or more");
    }
    let share = |r: usize| n / world + usize::from(r < n % world);
    let first: usize = (0..rank).map(share).sum();
    let rank_seed = seed * world as i64 + rank as i64;
    let own = generated_features(detector, g, device, share(rank), batch, rank_seed, labels)?;
    let mut all = Tensor::zeros([n as i64, own.size()[1]], (Kind::Float, tch::Device::Cpu));
    all.narrow(0, first as i64, share(rank) as i64)
        .copy_(&own.to_device(tch::Device::Cpu).to_kind(Kind::Float));
    group.all_reduce_sum(&mut all)?;
    Ok(all)
}

/// Generated images one evaluation of `metrics` needs: consecutive metrics with the same count
/// share their images, as in [`Evaluator::run`].
pub fn images_per_evaluation(metrics: &[Metric], num_gen: Option<usize>) -> usize {
    let counts: Vec<usize> = metrics
        .iter()
        .map(|m| num_gen.unwrap_or(m.num_gen()))
        .collect();
    let mut total = 0;
    for (i, &n) in counts.iter().enumerate() {
        if i == 0 || counts[i - 1] != n {
            total += n;
        }
    }
    total
}

/// What one evaluation costs on a device: its generated images, the measured rate of generating
/// and extracting their features, and so its time. Shown as `N generated images, about T at
/// R img/s on DEVICE` by training and by `fpgan metrics`.
pub struct Estimate {
    pub images: usize,
    /// Images per second.
    pub rate: f64,
    pub device: Device,
}

impl Estimate {
    /// Time `images` generated images with `g` and `detector` on `device`, from a second batch
    /// (the first pays one-time costs). Training's random stream is left as it was.
    pub fn measure(
        detector: &Detector,
        g: &Generator,
        device: Device,
        images: usize,
    ) -> Result<Self> {
        let batch = detector_batch(device);
        let rate = with_rng_kept(device, || {
            let _guard = tch::no_grad_guard();
            let mut secs = 0.0;
            for _ in 0..2 {
                let t0 = std::time::Instant::now();
                let z = Tensor::randn([batch as i64, g.config.z_dim], (Kind::Float, device));
                let f = detector.features(&to_uint8(&g.forward_t(&z, false)))?;
                f.sum(Kind::Float).double_value(&[]); // wait for the device
                secs = t0.elapsed().as_secs_f64();
            }
            Ok::<_, anyhow::Error>(batch as f64 / secs.max(1e-9))
        })?;
        Ok(Estimate {
            images,
            rate,
            device,
        })
    }

    /// Seconds one evaluation takes.
    pub fn secs(&self) -> f64 {
        self.images as f64 / self.rate
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} generated images, about {} at {:.1} img/s on {}",
            self.images,
            format_time(self.secs()),
            self.rate,
            device_name(self.device)
        )
    }
}

/// Real features of a dataset and the detector, ready to score generators.
pub struct Evaluator {
    pub metrics: Vec<Metric>,
    pub detector: Detector,
    /// Features of the real images (None on the ranks after 0 of a data-parallel run, which
    /// only generate their share).
    pub real: Option<Tensor>,
    /// Whether the real features came from the cache.
    pub cached: bool,
    /// Generated images per evaluation instead of the metric's own count (quick looks).
    pub num_gen: Option<usize>,
    /// The class of every dataset image (a conditional generator's classes are drawn from them).
    pub labels: Option<Vec<i64>>,
}

/// One metric value with its cost.
#[derive(Clone, Debug)]
pub struct Score {
    pub metric: Metric,
    pub value: f64,
    pub seconds: f64,
    pub num_gen: usize,
    /// Processes that generated the images (the reference's `num_gpus`).
    pub processes: usize,
}

impl Evaluator {
    pub fn new(
        metrics: Vec<Metric>,
        set: &ImageSet,
        device: Device,
        num_gen: Option<usize>,
    ) -> Result<Self> {
        check_num_gen(num_gen)?;
        check_image_count(set.num_images() as i64, &format!("dataset {}", set.name))?;
        let detector = Detector::load(device)?;
        let batch = detector_batch(device);
        let (real, cached) = real_features(&detector, &set.name, &dataset_batches(set, batch))?;
        Ok(Evaluator {
            metrics,
            detector,
            real: Some(real),
            cached,
            num_gen,
            labels: set.labels.clone(),
        })
    }

    /// An evaluator that generates only (a data-parallel rank after 0): no real features.
    pub fn generating_only(
        metrics: Vec<Metric>,
        set: &ImageSet,
        device: Device,
        num_gen: Option<usize>,
    ) -> Result<Self> {
        check_num_gen(num_gen)?;
        Ok(Evaluator {
            metrics,
            detector: Detector::load(device)?,
            real: None,
            cached: false,
            num_gen,
            labels: set.labels.clone(),
        })
    }

    /// Score G (eval mode) on every metric; metrics sharing a sample count share the images.
    pub fn run(&self, g: &Generator, device: Device, seed: i64) -> Result<Vec<Score>> {
        self.run_in(None, g, device, seed)
    }

    /// [`Evaluator::run`] with the images generated by every rank of `group` (each its share);
    /// the scores come out where the real features are (rank 0), an empty list elsewhere.
    pub fn run_in(
        &self,
        group: Option<&ProcessGroup>,
        g: &Generator,
        device: Device,
        seed: i64,
    ) -> Result<Vec<Score>> {
        let mut scores = Vec::new();
        let mut gen: Option<(usize, Tensor, f64)> = None;
        for &m in &self.metrics {
            let n = self.num_gen.unwrap_or(m.num_gen());
            let t0 = std::time::Instant::now();
            if gen.as_ref().map(|(k, _, _)| *k) != Some(n) {
                let batch = detector_batch(device);
                let labels = self.labels.as_deref();
                let det = &self.detector;
                let f = generated_features_in(group, det, g, device, n, batch, seed, labels)?;
                gen = Some((n, f, t0.elapsed().as_secs_f64()));
            }
            let (_, f, gen_secs) = gen.as_ref().expect("generated above");
            let Some(real) = &self.real else {
                continue;
            };
            let t1 = std::time::Instant::now();
            let value = evaluate(m, real, f);
            scores.push(Score {
                metric: m,
                value,
                seconds: gen_secs + t1.elapsed().as_secs_f64(),
                num_gen: n,
                processes: group.map_or(1, |g| g.world),
            });
        }
        Ok(scores)
    }
}

/// uint8 batches of every readable image in a folder or zip, at their own sizes (consecutive
/// images of one size share a batch). Unreadable files are skipped with a warning.
pub fn folder_batches(path: &std::path::Path, batch: usize) -> Result<Vec<Tensor>> {
    use crate::data::image_ops::{decode, flatten, Background};
    use crate::data::Source;
    use rayon::prelude::*;
    let mut src = Source::open(path)?;
    let others = src.retain_image_extensions();
    if let Some(first) = others.first() {
        eprintln!(
            "note: {}: leaving out {} without an image extension ({first}{})",
            path.display(),
            crate::util::progress::count(others.len() as u64, "file"),
            if others.len() > 1 { ", ..." } else { "" }
        );
    }
    let images: Vec<Option<image::RgbImage>> = (0..src.len())
        .into_par_iter()
        .map(|i| {
            let r = src
                .read(i)
                .map_err(|e| format!("{e:#}"))
                .and_then(|b| decode(&b));
            match r {
                Ok(img) => Some(flatten(&img, Background([255; 3]))),
                Err(e) => {
                    eprintln!("warning: skipping {}: {e}", src.display_name(i));
                    None
                }
            }
        })
        .collect();
    let images: Vec<image::RgbImage> = images.into_iter().flatten().collect();
    if images.is_empty() {
        bail!("no readable image in {}", path.display());
    }
    let mut batches: Vec<Tensor> = Vec::new();
    let mut group: Vec<Tensor> = Vec::new();
    for img in &images {
        let (w, h) = img.dimensions();
        let t = Tensor::from_slice(img.as_raw())
            .view([h as i64, w as i64, 3])
            .permute([2, 0, 1]);
        if group.len() == batch || group.first().is_some_and(|g| g.size() != t.size()) {
            batches.push(Tensor::stack(&group, 0));
            group.clear();
        }
        group.push(t);
    }
    batches.push(Tensor::stack(&group, 0));
    Ok(batches)
}
