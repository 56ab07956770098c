//! FID/KID against tests/fixtures/fid.safetensors (scripts/fixtures/make_fid_fixture.py: the same
//! detector file with NVIDIA's preprocessing in python, scipy's sqrtm), plus invariants.
mod common;

use fpgan::eval::detector::Detector;
use fpgan::eval::metrics::{feature_stats, fid, kid};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

const SIZES: [(i64, i64); 6] = [
    (32, 32),
    (64, 48),
    (299, 299),
    (120, 200),
    (256, 256),
    (17, 31),
];

/// The python script's integer test image k (3 x H x W, uint8).
fn image(k: i64) -> Tensor {
    let (h, w) = SIZES[(k % 6) as usize];
    let mut v = Vec::with_capacity((3 * h * w) as usize);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                v.push(
                    ((x * (7 + k) + y * (13 + 2 * k) + c * 50 + k * 31 + (x * y) % (17 + k)) % 256)
                        as u8,
                );
            }
        }
    }
    Tensor::from_slice(&v).view([3, h, w])
}

fn fixture() -> HashMap<String, Tensor> {
    common::fixture("fid.safetensors")
}

fn features(det: &Detector, imgs: &[Tensor]) -> Tensor {
    let f: Vec<Tensor> = imgs
        .iter()
        .map(|i| det.features(&i.unsqueeze(0)).unwrap())
        .collect();
    Tensor::cat(&f, 0)
}

#[test]
fn features_fid_and_kid_match_the_python_reference() {
    let _rng = common::torch_rng();
    let fx = fixture();
    let det = Detector::load(Device::Cpu).unwrap();
    let imgs: Vec<Tensor> = (0..24).map(image).collect();
    let f = features(&det, &imgs);
    let diff = (&f - &fx["features"]).abs().max().double_value(&[]);
    assert!(diff <= 1e-3, "features: max abs diff {diff}");
    // with the python features, so that only the statistics are compared
    let (a, b) = (
        fx["features"].narrow(0, 0, 12),
        fx["features"].narrow(0, 12, 12),
    );
    let ours = fid(&feature_stats(&a), &feature_stats(&b));
    let theirs = fx["fid_ab"].double_value(&[0]);
    assert!(
        (ours - theirs).abs() <= 0.01,
        "FID {ours} vs scipy {theirs}"
    );
    // 12 vs 12: every KID subset is the whole set, so the value is deterministic
    let k = kid(&b, &a, 100, 0);
    let kt = fx["kid_ab"].double_value(&[0]);
    assert!(
        (k - kt).abs() <= 1e-6 * kt.abs().max(1.0),
        "KID {k} vs {kt}"
    );
    // and from our own features
    let ours2 = fid(
        &feature_stats(&f.narrow(0, 0, 12)),
        &feature_stats(&f.narrow(0, 12, 12)),
    );
    assert!(
        (ours2 - theirs).abs() <= 0.01,
        "FID from Rust features {ours2} vs {theirs}"
    );
}

#[test]
fn fid_is_zero_for_a_set_with_itself_and_grows_with_blur() {
    let _rng = common::torch_rng();
    let det = Detector::load(Device::Cpu).unwrap();
    tch::manual_seed(0);
    // blocky random images at 64x64 (rank-deficient: 16 images, 2048 dimensions)
    let base = (Tensor::rand([16, 3, 16, 16], (Kind::Float, Device::Cpu)) * 255.0)
        .upsample_nearest2d([64, 64], None, None);
    let q = |t: &Tensor| t.clamp(0.0, 255.0).to_kind(Kind::Uint8);
    let f0 = det.features(&q(&base)).unwrap();
    let s0 = feature_stats(&f0);
    let same = fid(&s0, &s0);
    assert!(same.abs() < 1e-3, "FID(A, A) = {same}");
    let (mut last, mut last_kid) = (0.0, kid(&f0, &f0, 10, 0));
    for r in [1, 3, 7] {
        let k = 2 * r + 1;
        let blurred = base.avg_pool2d([k, k], [1, 1], [r, r], false, false, None::<i64>);
        let fb = det.features(&q(&blurred)).unwrap();
        let v = fid(&feature_stats(&fb), &s0);
        assert!(
            v.is_finite() && v > last,
            "FID with blur radius {r}: {v} (previous {last})"
        );
        let kv = kid(&f0, &fb, 10, 0);
        assert!(
            kv > last_kid,
            "KID with blur radius {r}: {kv} (previous {last_kid})"
        );
        (last, last_kid) = (v, kv);
    }
}
