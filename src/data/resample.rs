//! Resizing exactly as PIL's `Image.resize(..., LANCZOS)` on 8-bit RGB (Pillow's Resample.c): a
//! separable Lanczos-3 filter, horizontal pass first, with 22-bit fixed-point coefficients.
use image::RgbImage;

/// Fractional bits of PIL's fixed-point coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// The taps of one output pixel: the first input index and the fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for `in_size` -> `out_size`.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 3.0 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero, as here
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| lanczos((x as f64 - center + 0.5) * ss))
                .collect();
            let sum: f64 = w.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let weights = w
                .iter()
                .map(|&v| {
                    let v = if sum != 0.0 { v / sum } else { v };
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            Taps {
                first: xmin,
                weights,
            }
        })
        .collect()
}

/// PIL's `clip8`: round the fixed-point sum (which started at one half) to 0..=255.
fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass over `src` (`n` lines of `len` pixels, `stride` bytes between neighbours along the
/// line and `pitch` between lines) into `out_len` pixels per line of `dst` (same layout rules).
fn pass(src: &[u8], lines: usize, (stride, pitch): (usize, usize), t: &[Taps]) -> Vec<[u8; 3]> {
    let mut out = Vec::with_capacity(lines * t.len());
    for line in 0..lines {
        for tap in t {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (k, &w) in tap.weights.iter().enumerate() {
                let at = line * pitch + (tap.first + k) * stride;
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += i64::from(src[at + c]) * i64::from(w);
                }
            }
            out.push(acc.map(clip8));
        }
    }
    out
}

/// `img` resized to `width` x `height` as PIL's LANCZOS: horizontal pass (rounded to 8 bits),
/// then vertical; a pass whose size does not change is skipped, as in PIL.
pub fn resize_lanczos(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (tw, th) = (width as usize, height as usize);
    let mut cur = img.as_raw().clone();
    let mut cur_w = w;
    if tw != w {
        let rows = pass(&cur, h, (3, w * 3), &taps(w, tw));
        cur = rows.concat();
        cur_w = tw;
    }
    if th != h {
        // columns as lines: neighbours are a row apart, lines a pixel apart
        let cols = pass(&cur, cur_w, (cur_w * 3, 3), &taps(h, th));
        let mut out = vec![0u8; tw * th * 3];
        for (i, px) in cols.iter().enumerate() {
            let (x, y) = (i / th, i % th);
            out[(y * tw + x) * 3..][..3].copy_from_slice(px);
        }
        cur = out;
    }
    RgbImage::from_raw(width, height, cur).expect("buffer of width x height RGB pixels")
}
