//! Work that draws random numbers without disturbing training's stream: libtorch's default
//! generators (CPU, and the CUDA device in use) are saved before and restored after (csrc/rng_state.cpp).
use std::ffi::c_void;
use tch::Device;

extern "C" {
    fn fpgan_rng_get(cuda_index: i32) -> *mut c_void;
    fn fpgan_rng_set(cuda_index: i32, state: *mut c_void) -> i32;
}

/// Run `f` and put the random generators of the CPU and of `device` back as they were.
pub fn with_rng_kept<T>(device: Device, f: impl FnOnce() -> T) -> T {
    let mut indices = vec![-1];
    if let Device::Cuda(i) = device {
        indices.push(i as i32);
    }
    // SAFETY: each handle comes from fpgan_rng_get and is consumed (freed) by fpgan_rng_set.
    let saved: Vec<(i32, *mut c_void)> = indices
        .into_iter()
        .map(|i| (i, unsafe { fpgan_rng_get(i) }))
        .collect();
    let out = f();
    for (i, state) in saved {
        assert!(
            !state.is_null(),
            "libtorch refused to save its random state"
        );
        let r = unsafe { fpgan_rng_set(i, state) };
        assert_eq!(r, 0, "libtorch refused to restore its random state");
    }
    out
}
