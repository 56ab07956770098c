//! libtorch operators that tch exposes without an argument fpgan needs (csrc/ops.cpp).
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn fpgan_leaky_relu(x: *const C_tensor, slope: f64) -> *mut C_tensor;
}

/// LeakyReLU with negative slope `slope` (PyTorch's `F.leaky_relu(x, slope)`), recorded by
/// autograd: one kernel forward and one backward, and only `x` kept for the backward.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    // SAFETY: `x` is a live handle; the shim catches C++ exceptions and returns a new handle or
    // null.
    let p = unsafe { fpgan_leaky_relu(x.as_ptr(), slope) };
    if p.is_null() {
        panic!(
            "leaky_relu of {:?}: {}",
            x.size(),
            super::shim::last_error()
        );
    }
    // SAFETY: a new handle owned by the result.
    unsafe { Tensor::from_ptr(p) }
}
