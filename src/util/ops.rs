//! libtorch operators that tch exposes without an argument fpgan needs (csrc/ops.cpp).
use std::ffi::{c_char, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn fpgan_ops_error() -> *const c_char;
    fn fpgan_leaky_relu(x: *const C_tensor, slope: f64) -> *mut C_tensor;
}

/// LeakyReLU with negative slope `slope` (PyTorch's `F.leaky_relu(x, slope)`), recorded by
/// autograd: one kernel forward and one backward, and only `x` kept for the backward.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    // SAFETY: `x` is a live handle; the shim catches C++ exceptions and returns a new handle or
    // null.
    let p = unsafe { fpgan_leaky_relu(x.as_ptr(), slope) };
    if p.is_null() {
        // SAFETY: the shim keeps the message in a thread-local string.
        let msg = unsafe { CStr::from_ptr(fpgan_ops_error()) };
        panic!("leaky_relu of {:?}: {}", x.size(), msg.to_string_lossy());
    }
    // SAFETY: a new handle owned by the result.
    unsafe { Tensor::from_ptr(p) }
}
