//! DiffAugment: each operation's defining property, fresh randomness, differentiability.
use fpgan::nets::diffaug::{brightness, contrast, cutout, diff_augment, saturation, translation};
use tch::{Device, Kind, Tensor};

fn images(b: i64, h: i64, w: i64) -> Tensor {
    // strictly positive content so that zeros can only come from the augmentation
    Tensor::rand([b, 3, h, w], (Kind::Float, Device::Cpu)) + 0.5
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn brightness_adds_one_offset_per_sample_in_range() {
    let x = images(64, 8, 8);
    let d = brightness(&x) - &x;
    let per = d.amax([1i64, 2, 3].as_slice(), false);
    assert!(
        max_abs(&(&d - per.view([64, 1, 1, 1]))) < 1e-6,
        "one offset for every pixel and channel"
    );
    assert!(per.min().double_value(&[]) >= -0.5 && per.max().double_value(&[]) < 0.5);
    assert!(
        per.std(true).double_value(&[]) > 0.1,
        "offsets differ between samples"
    );
}

#[test]
fn saturation_keeps_the_channel_mean_and_contrast_keeps_the_image_mean() {
    let x = images(16, 8, 8);
    let s = saturation(&x);
    let m = |t: &Tensor| t.mean_dim(1, false, Kind::Float);
    assert!(max_abs(&(m(&s) - m(&x))) < 1e-5);
    assert!(max_abs(&(&s - &x)) > 1e-3);
    let c = contrast(&x);
    let mm = |t: &Tensor| t.mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float);
    assert!(max_abs(&(mm(&c) - mm(&x))) < 1e-5);
    // contrast factor in [0.5, 1.5): deviations scale by one factor per sample
    let dev_x = &x - mm(&x).view([16, 1, 1, 1]);
    let f = (&c - mm(&c).view([16, 1, 1, 1]))
        .flatten(1, -1)
        .norm_scalaropt_dim(2, [1i64].as_slice(), false)
        / dev_x
            .flatten(1, -1)
            .norm_scalaropt_dim(2, [1i64].as_slice(), false);
    assert!(f.min().double_value(&[]) >= 0.5 - 1e-5 && f.max().double_value(&[]) < 1.5 + 1e-5);
}

/// out[i, j] = x[i + th, j + tw] inside, 0 outside.
fn shifted(x: &Tensor, th: i64, tw: i64) -> Tensor {
    let (_, _, h, w) = x.size4().unwrap();
    let out = x.zeros_like();
    for i in 0..h {
        for j in 0..w {
            let (si, sj) = (i + th, j + tw);
            if (0..h).contains(&si) && (0..w).contains(&sj) {
                out.narrow(2, i, 1)
                    .narrow(3, j, 1)
                    .copy_(&x.narrow(2, si, 1).narrow(3, sj, 1));
            }
        }
    }
    out
}

#[test]
fn translation_shifts_content_and_fills_zeros() {
    let (h, w) = (16, 16);
    let s = (16.0f64 * 0.125 + 0.5) as i64; // 2
    let x = images(24, h, w);
    let y = translation(&x, 0.125);
    let mut seen = std::collections::HashSet::new();
    for b in 0..24 {
        let xb = x.narrow(0, b, 1);
        let yb = y.narrow(0, b, 1);
        let matches: Vec<(i64, i64)> = (-s..=s)
            .flat_map(|th| (-s..=s).map(move |tw| (th, tw)))
            .filter(|&(th, tw)| yb.equal(&shifted(&xb, th, tw)))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "sample {b} is exactly one shift of its input"
        );
        seen.insert(matches[0]);
    }
    assert!(seen.len() > 5, "shifts are drawn per sample: {seen:?}");
}

#[test]
fn cutout_zeroes_one_square_of_the_right_size() {
    for (res, side) in [(16, 3), (256, 51)] {
        let x = images(32, res, res);
        let y = cutout(&x, 0.2);
        let zero = y.eq(0.0).all_dim(1, false); // (B, H, W)
        let mut full = 0;
        for b in 0..32 {
            let z = zero.get(b);
            let rows = z.any_dim(1, false).nonzero().flatten(0, -1);
            let cols = z.any_dim(0, false).nonzero().flatten(0, -1);
            let (nr, nc) = (rows.size()[0], cols.size()[0]);
            assert!(
                nr >= 1 && nr <= side && nc >= 1 && nc <= side,
                "{res}: {nr}x{nc}"
            );
            // a filled rectangle: every pixel in the row and column span is zero
            assert_eq!(
                z.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]),
                nr * nc
            );
            full += (nr == side && nc == side) as i32;
            // everything else untouched
            let keep = z.logical_not().unsqueeze(0).expand([3, res, res], false);
            assert!(y
                .get(b)
                .masked_select(&keep)
                .equal(&x.get(b).masked_select(&keep)));
        }
        assert!(full > 10, "most squares are inside the image at {res}");
    }
}

#[test]
fn the_policy_is_random_per_call_and_differentiable() {
    let x = images(4, 32, 32).set_requires_grad(true);
    let a = diff_augment(&x);
    let b = diff_augment(&x);
    assert_eq!(a.size(), x.size());
    assert!(!a.equal(&b), "fresh randomness on every call");
    (a * 2.0).sum(Kind::Float).backward();
    let g = x.grad();
    assert!(g.defined() && max_abs(&g) > 0.0);
}
