//! FID and KID exactly as the reference computes them (reference section 10): features of the
//! [`Detector`], float64 statistics with the biased (1/n) covariance, FID with a matrix square root
//! that stays exact when the covariance is rank-deficient (few-shot sets have far fewer images
//! than 2048 dimensions), KID with the cubic polynomial kernel over 100 subsets. Real features
//! are cached on disk, keyed by the image content and the detector's hash.
use crate::checkpoint;
use crate::dataset::ImageSet;
use crate::detector::Detector;
use crate::generate::to_uint8;
use crate::generator::Generator;
use crate::home;
use crate::progress;
use crate::rng::SplitMix;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// A metric of the reference: which statistic and how many generated images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Fid50kFull,
    Kid50kFull,
    Fid10kFull,
}

impl Metric {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fid50k_full" => Metric::Fid50kFull,
            "kid50k_full" => Metric::Kid50kFull,
            "fid10k_full" => Metric::Fid10kFull,
            _ => bail!("unknown metric '{s}': use fid50k_full, kid50k_full or fid10k_full"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Metric::Fid50kFull => "fid50k_full",
            Metric::Kid50kFull => "kid50k_full",
            Metric::Fid10kFull => "fid10k_full",
        }
    }
    pub fn num_gen(self) -> usize {
        match self {
            Metric::Fid10kFull => 10_000,
            _ => 50_000,
        }
    }
}

/// Parse a comma list of metrics; `none` (or nothing) is the empty list.
pub fn parse_metrics(s: &str) -> Result<Vec<Metric>> {
    s.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "none")
        .map(Metric::parse)
        .collect()
}

/// Mean and biased covariance (float64) of features (N, D).
pub struct FeatureStats {
    pub n: i64,
    pub mu: Tensor,
    pub sigma: Tensor,
}

pub fn feature_stats(features: &Tensor) -> FeatureStats {
    let x = features.to_kind(Kind::Double);
    let n = x.size()[0];
    let mu = x.mean_dim(0, false, Kind::Double);
    let sigma = x.tr().matmul(&x) / n as f64 - mu.unsqueeze(1).matmul(&mu.unsqueeze(0));
    FeatureStats { n, mu, sigma }
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped).
fn sqrtm_psd(s: &Tensor) -> Tensor {
    let sym = (s + s.tr()) / 2.0;
    let (vals, vecs) = sym.linalg_eigh("L");
    (&vecs * vals.clamp_min(0.0).sqrt().unsqueeze(0)).matmul(&vecs.tr())
}

/// |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrtm(S_g S_r)), with Tr sqrtm(S_g S_r) computed as the
/// sum of the square roots of the eigenvalues of sqrt(S_r) S_g sqrt(S_r) (the same number, but
/// well defined when S_r is singular).
pub fn fid(gen: &FeatureStats, real: &FeatureStats) -> f64 {
    let d = (&gen.mu - &real.mu)
        .square()
        .sum(Kind::Double)
        .double_value(&[]);
    let r = sqrtm_psd(&real.sigma);
    let m = r.matmul(&gen.sigma).matmul(&r);
    let m = (&m + m.tr()) / 2.0;
    let tr_sqrt = m
        .linalg_eigvalsh("L")
        .clamp_min(0.0)
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[]);
    let tr = gen.sigma.trace().double_value(&[]) + real.sigma.trace().double_value(&[]);
    (d + tr - 2.0 * tr_sqrt).max(0.0)
}

/// KID: `subsets` subsets of m = min(n_real, n_gen, 1000) rows drawn without replacement
/// (fpgan's seeded generator), kernel k(x, y) = (x.y / D + 1)^3, unbiased MMD estimate.
pub fn kid(real: &Tensor, gen: &Tensor, subsets: usize, seed: u64) -> f64 {
    let (real, gen) = (real.to_kind(Kind::Double), gen.to_kind(Kind::Double));
    let (nr, ng, dim) = (real.size()[0], gen.size()[0], real.size()[1] as f64);
    let m = nr.min(ng).min(1000);
    let mut rng = SplitMix(seed);
    let mut pick = |n: i64| -> Tensor {
        let mut idx: Vec<i64> = (0..n).collect();
        for i in 0..m as usize {
            let j = i + rng.below((n as usize - i) as u32) as usize;
            idx.swap(i, j);
        }
        Tensor::from_slice(&idx[..m as usize])
    };
    let k = |a: &Tensor, b: &Tensor| (a.matmul(&b.tr()) / dim + 1.0).pow_tensor_scalar(3);
    let mut t = 0.0;
    for _ in 0..subsets {
        let x = gen.index_select(0, &pick(ng));
        let y = real.index_select(0, &pick(nr));
        let a = k(&x, &x) + k(&y, &y);
        let b = k(&x, &y);
        let off_diag = a.sum(Kind::Double).double_value(&[]) - a.trace().double_value(&[]);
        t += off_diag / (m - 1) as f64 - b.sum(Kind::Double).double_value(&[]) * 2.0 / m as f64;
    }
    t / subsets as f64 / m as f64
}

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
/// detector before. Returns the features and whether they came from the cache.
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
    if let Ok((t, meta)) = checkpoint::load(&path) {
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
    if let Err(e) = checkpoint::save(&path, &[("features".into(), f.shallow_clone())], &meta) {
        eprintln!("warning: {e:#}");
    }
    Ok((f, false))
}

/// uint8 batches of all images of a dataset (no x-flips), `batch` at a time.
pub fn dataset_batches(set: &ImageSet, batch: usize) -> Vec<Tensor> {
    let idx: Vec<usize> = (0..set.num_images()).collect();
    idx.chunks(batch).map(|c| set.batch(c)).collect()
}

/// Features of `n` images of G (eval mode): z ~ N(0, I) from torch's RNG seeded with `seed`,
/// quantised as the reference (trunc(clamp(x*127.5 + 128))).
pub fn generated_features(
    detector: &Detector,
    g: &Generator,
    device: Device,
    n: usize,
    batch: usize,
    seed: i64,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed);
    let pb = progress::bar(n as u64, "generated images");
    let mut out = Vec::new();
    let mut done = 0;
    while done < n {
        let b = batch.min(n - done) as i64;
        let z = Tensor::randn([b, g.config.z_dim], (Kind::Float, device));
        out.push(detector.features(&to_uint8(&g.forward_t(&z, false)))?);
        done += b as usize;
        pb.inc(b as u64);
    }
    pb.finish_and_clear();
    Ok(Tensor::cat(&out, 0))
}

/// Value of `metric` between real and generated features.
pub fn evaluate(metric: Metric, real: &Tensor, gen: &Tensor) -> f64 {
    match metric {
        Metric::Fid50kFull | Metric::Fid10kFull => fid(&feature_stats(gen), &feature_stats(real)),
        Metric::Kid50kFull => kid(real, gen, 100, 0),
    }
}

/// Real features of a dataset and the detector, ready to score generators.
pub struct Evaluator {
    pub metrics: Vec<Metric>,
    pub detector: Detector,
    pub real: Tensor,
    /// Whether the real features came from the cache.
    pub cached: bool,
    /// Generated images per evaluation instead of the metric's own count (quick looks).
    pub num_gen: Option<usize>,
}

/// One metric value with its cost.
#[derive(Clone, Debug)]
pub struct Score {
    pub metric: Metric,
    pub value: f64,
    pub seconds: f64,
    pub num_gen: usize,
}

impl Evaluator {
    pub fn new(
        metrics: Vec<Metric>,
        set: &ImageSet,
        device: Device,
        num_gen: Option<usize>,
    ) -> Result<Self> {
        let detector = Detector::load(device)?;
        let batch = detector_batch(device);
        let (real, cached) = real_features(&detector, &set.name, &dataset_batches(set, batch))?;
        Ok(Evaluator {
            metrics,
            detector,
            real,
            cached,
            num_gen,
        })
    }

    /// Score G (eval mode) on every metric; metrics sharing a sample count share the images.
    pub fn run(&self, g: &Generator, device: Device, seed: i64) -> Result<Vec<Score>> {
        let mut scores = Vec::new();
        let mut gen: Option<(usize, Tensor, f64)> = None;
        for &m in &self.metrics {
            let n = self.num_gen.unwrap_or(m.num_gen());
            let t0 = std::time::Instant::now();
            if gen.as_ref().map(|(k, _, _)| *k) != Some(n) {
                let f =
                    generated_features(&self.detector, g, device, n, detector_batch(device), seed)?;
                gen = Some((n, f, t0.elapsed().as_secs_f64()));
            }
            let (_, f, gen_secs) = gen.as_ref().expect("generated above");
            let t1 = std::time::Instant::now();
            let value = evaluate(m, &self.real, f);
            scores.push(Score {
                metric: m,
                value,
                seconds: gen_secs + t1.elapsed().as_secs_f64(),
                num_gen: n,
            });
        }
        Ok(scores)
    }
}

/// The reference's metric line: `{"results": {name: value}, "metric", "total_time",
/// "total_time_str", "num_gpus", "snapshot_pkl", "timestamp"}`.
pub fn metric_line(score: &Score, snapshot: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    serde_json::json!({
        "results": { score.metric.name(): score.value },
        "metric": score.metric.name(),
        "total_time": score.seconds,
        "total_time_str": format!("{:.0}s", score.seconds),
        "num_gpus": 1,
        "snapshot_pkl": snapshot,
        "timestamp": now,
    })
}

/// uint8 batches of every readable image in a folder or zip, at their own sizes (consecutive
/// images of one size share a batch). Unreadable files are skipped with a warning.
pub fn folder_batches(path: &std::path::Path, batch: usize) -> Result<Vec<Tensor>> {
    use crate::dataset::image_ops::{decode, flatten, Background};
    use crate::dataset::Source;
    use rayon::prelude::*;
    let mut src = Source::open(path)?;
    src.retain_image_extensions();
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
