//! libtorch operators that tch exposes without an argument fpgan needs, or with a backward
//! pass fpgan needs deterministic on CUDA (csrc/ops.cpp).
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn fpgan_leaky_relu(x: *const C_tensor, slope: f64) -> *mut C_tensor;
    fn fpgan_bilinear_resize(
        x: *const C_tensor,
        out_h: i64,
        out_w: i64,
        align_corners: i32,
    ) -> *mut C_tensor;
}

/// LeakyReLU with negative slope `slope` (PyTorch's `F.leaky_relu(x, slope)`), recorded by
/// autograd: one kernel forward and one backward, and only `x` kept for the backward.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    // SAFETY: `x` is a live handle; the shim catches C++ exceptions and returns a new handle or
    // null.
    let p = unsafe { fpgan_leaky_relu(x.as_ptr(), slope) };
    owned(p, || format!("leaky_relu of {:?}", x.size()))
}

/// Bilinear resize of (B, C, H, W) to (B, C, out_h, out_w), PyTorch's
/// `F.interpolate(x, mode="bilinear", align_corners=...)`: its forward kernel (the same bits),
/// and a backward pass as two matrix products, which sum in a fixed order. libtorch's CUDA
/// backward adds with atomics, so that two runs of the same step differ in the last bits, and
/// training makes any such difference grow.
pub fn bilinear_resize(x: &Tensor, out_h: i64, out_w: i64, align_corners: bool) -> Tensor {
    // SAFETY: as in leaky_relu.
    let p = unsafe { fpgan_bilinear_resize(x.as_ptr(), out_h, out_w, i32::from(align_corners)) };
    owned(p, || {
        format!("bilinear resize of {:?} to {out_h}x{out_w}", x.size())
    })
}

/// The tensor a shim returned; a null handle (a libtorch error: a programming error, as for
/// tch's own operators) panics with `what` and libtorch's message.
fn owned(p: *mut C_tensor, what: impl FnOnce() -> String) -> Tensor {
    if p.is_null() {
        panic!("{}: {}", what(), super::shim::last_error());
    }
    // SAFETY: a new handle owned by the result.
    unsafe { Tensor::from_ptr(p) }
}

/// Value and gradient of `f` at `x` for the upstream gradient `up` (tests of operators that
/// stand in for the reference's).
#[cfg(test)]
pub(crate) fn value_and_grad(
    x: &Tensor,
    up: &Tensor,
    f: impl Fn(&Tensor) -> Tensor,
) -> (Tensor, Tensor) {
    let x = x.detach().set_requires_grad(true);
    let y = f(&x);
    (&y * up).sum(tch::Kind::Double).backward();
    (y.detach(), x.grad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// `bilinear_resize` of `kind` against libtorch's upsample_bilinear2d for one case.
    fn assert_matches_upsample(
        (kind, tol): (Kind, f64),
        (h, w, oh, ow): (i64, i64, i64, i64),
        align: bool,
        cl: bool,
    ) {
        let mut x = Tensor::randn([2, 3, h, w], (kind, Device::Cpu));
        if cl {
            x = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        }
        let up = Tensor::randn([2, 3, oh, ow], (kind, Device::Cpu));
        let (y0, g0) = value_and_grad(&x, &up, |x| {
            x.upsample_bilinear2d([oh, ow], align, None, None)
        });
        let (y1, g1) = value_and_grad(&x, &up, |x| bilinear_resize(x, oh, ow, align));
        let case = format!("{kind:?} {h}x{w}->{oh}x{ow} align {align} cl {cl}");
        assert!(y0.equal(&y1), "{case}: forward differs");
        let err = (&g1 - &g0).abs().max().double_value(&[]);
        let scale = g0.abs().max().double_value(&[]);
        assert!(err <= tol * scale, "{case}: gradient {err} off ({scale})");
        assert_eq!(g1.stride(), g0.stride(), "{case}: gradient layout");
        assert_eq!(g1.kind(), kind, "{case}: gradient kind");
    }

    /// libtorch's own upsample_bilinear2d forward, and its backward up to summation order (the
    /// gradient in the input's kind and layout), for up- and down-sizing, from and to a single
    /// pixel, both corner conventions, both layouts and three float kinds.
    #[test]
    fn bilinear_resize_is_upsample_bilinear2d() {
        tch::manual_seed(3);
        let kinds = [
            (Kind::Float, 1e-5),
            (Kind::Double, 1e-12),
            (Kind::BFloat16, 1e-2),
        ];
        let sizes = [
            (8, 8, 16, 16),
            (5, 7, 224, 224),
            (13, 9, 6, 4),
            (1, 1, 4, 4),
            (4, 4, 1, 1),
        ];
        for kind in kinds {
            for size in sizes {
                for (align, cl) in [(true, false), (true, true), (false, false), (false, true)] {
                    assert_matches_upsample(kind, size, align, cl);
                }
            }
        }
    }
}
