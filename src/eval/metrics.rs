//! FID and KID exactly as the reference computes them (reference section 10).
use crate::util::rng::SplitMix;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// A metric of the reference: which statistic and how many generated images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Fid50kFull,
    Kid50kFull,
    Fid10kFull,
}

impl Metric {
    /// Whether it is an FID (the first FID of a run's metrics picks its best snapshot).
    pub fn is_fid(self) -> bool {
        matches!(self, Metric::Fid50kFull | Metric::Fid10kFull)
    }

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
    let names: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if names.contains(&"none") && names.len() > 1 {
        bail!("--metrics {s}: 'none' turns the metrics off; give it alone, or drop it");
    }
    (names.into_iter())
        .filter(|m| *m != "none")
        .map(Metric::parse)
        .collect()
}

/// `--num-gen`: FID and KID need at least two generated images.
pub fn check_num_gen(n: Option<usize>) -> Result<()> {
    if let Some(n) = n.filter(|&n| n < 2) {
        bail!("--num-gen {n}: the metrics need at least 2 generated images (e.g. --num-gen 1000)");
    }
    Ok(())
}

/// FID and KID need at least two images on each side (else the covariance or the unbiased
/// MMD estimate is undefined).
pub fn check_image_count(n: i64, what: &str) -> Result<()> {
    if n < 2 {
        bail!(
            "{what} has {n} readable image{}: FID and KID need at least 2",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
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

/// Value of `metric` between real and generated features: FID from float64 statistics with the
/// biased (1/n) covariance and a matrix square root that stays exact when the covariance is
/// rank-deficient (few-shot sets have far fewer images than 2048 dimensions); KID with the cubic
/// polynomial kernel over 100 subsets.
pub fn evaluate(metric: Metric, real: &Tensor, gen: &Tensor) -> f64 {
    match metric {
        Metric::Fid50kFull | Metric::Fid10kFull => fid(&feature_stats(gen), &feature_stats(real)),
        Metric::Kid50kFull => kid(real, gen, 100, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `none` alone turns the metrics off; beside a metric it is refused, not ignored.
    #[test]
    fn none_stands_alone() {
        assert!(parse_metrics("none").unwrap().is_empty());
        assert_eq!(parse_metrics("fid50k_full, kid50k_full").unwrap().len(), 2);
        let e = parse_metrics("fid50k_full,none").unwrap_err().to_string();
        assert!(e.contains("give it alone"), "{e}");
        assert!(parse_metrics("fid1k").is_err());
    }
}
