//! DiffAugment 'color,translation,cutout' (reference section 5): differentiable, with fresh
//! per-sample randomness from torch's RNG on every call, on the images' device.
use tch::{Device, Kind, Tensor};

/// brightness, saturation, contrast, translation (1/8), cutout (0.2), in this order; the result
/// made contiguous (NCHW) as the reference's, since translation leaves it NHWC-strided and the
/// convolutions after it sum in another order on such a layout.
pub fn diff_augment(x: &Tensor) -> Tensor {
    let x = brightness(x);
    let x = saturation(&x);
    let x = contrast(&x);
    let x = translation(&x, 0.125);
    cutout(&x, 0.2).contiguous()
}

fn per_sample_uniform(x: &Tensor) -> Tensor {
    Tensor::rand([x.size()[0], 1, 1, 1], (x.kind(), x.device()))
}

/// x + (U - 0.5): one offset per sample.
pub fn brightness(x: &Tensor) -> Tensor {
    x + (per_sample_uniform(x) - 0.5)
}

/// (x - mean_C) * 2U + mean_C.
pub fn saturation(x: &Tensor) -> Tensor {
    let m = x.mean_dim(1, true, x.kind());
    (x - &m) * (per_sample_uniform(x) * 2.0) + m
}

/// (x - mean_CHW) * (U + 0.5) + mean_CHW.
pub fn contrast(x: &Tensor) -> Tensor {
    let m = x.mean_dim([1i64, 2, 3].as_slice(), true, x.kind());
    (x - &m) * (per_sample_uniform(x) + 0.5) + m
}

/// Integer offsets in [lo, hi) per sample, shaped (B, 1, 1).
fn randint(lo: i64, hi: i64, b: i64, device: Device) -> Tensor {
    Tensor::randint_low(lo, hi, [b, 1, 1], (Kind::Int64, device))
}

/// Index grids (batch, row, column) of shape (B, H, W).
fn grids(b: i64, h: i64, w: i64, device: Device) -> (Tensor, Tensor, Tensor) {
    let opts = (Kind::Int64, device);
    let gb = Tensor::arange(b, opts)
        .view([b, 1, 1])
        .expand([b, h, w], false);
    let gy = Tensor::arange(h, opts)
        .view([1, h, 1])
        .expand([b, h, w], false);
    let gx = Tensor::arange(w, opts)
        .view([1, 1, w])
        .expand([b, h, w], false);
    (gb, gy, gx)
}

/// int(n * ratio + 0.5), the reference's rounding of shift and cutout sizes.
fn scaled(n: i64, ratio: f64) -> i64 {
    (n as f64 * ratio + 0.5) as i64
}

/// out[i, j] = x[i + tH, j + tW] inside the image, 0 outside; tH in [-sH, sH], sH = int(H*r + 0.5).
pub fn translation(x: &Tensor, ratio: f64) -> Tensor {
    let (b, _, h, w) = x.size4().expect("NCHW images");
    let (sh, sw) = (scaled(h, ratio), scaled(w, ratio));
    let dev = x.device();
    let th = randint(-sh, sh + 1, b, dev);
    let tw = randint(-sw, sw + 1, b, dev);
    let (gb, gy, gx) = grids(b, h, w, dev);
    let gy = (gy + th + 1).clamp(0, h + 1);
    let gx = (gx + tw + 1).clamp(0, w + 1);
    let padded = x.constant_pad_nd([1, 1, 1, 1]).permute([0, 2, 3, 1]);
    padded
        .index(&[Some(gb), Some(gy), Some(gx)])
        .permute([0, 3, 1, 2])
}

/// Zero one square of side s = int(H*r + 0.5) per sample, centred at a uniform integer position
/// in [0, H - 1 + (1 - s % 2)] and clipped at the borders.
pub fn cutout(x: &Tensor, ratio: f64) -> Tensor {
    let (b, _, h, w) = x.size4().expect("NCHW images");
    let (sh, sw) = (scaled(h, ratio), scaled(w, ratio));
    let dev = x.device();
    let oh = randint(0, h + (1 - sh % 2), b, dev);
    let ow = randint(0, w + (1 - sw % 2), b, dev);
    let (gb, gy, gx) = grids(b, sh, sw, dev);
    let gy = (gy + oh - sh / 2).clamp(0, h - 1);
    let gx = (gx + ow - sw / 2).clamp(0, w - 1);
    let mut mask = Tensor::ones([b, h, w], (x.kind(), dev));
    let zero = Tensor::zeros([], (x.kind(), dev));
    let _ = mask.index_put_(&[Some(gb), Some(gy), Some(gx)], &zero, false);
    x * mask.unsqueeze(1)
}
