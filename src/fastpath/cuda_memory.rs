//! CUDA memory as PyTorch reports it (`max_memory_allocated`, `max_memory_reserved`), read from
//! libtorch's caching allocator by csrc/cuda_memory.cpp.
use tch::Device;

/// Bytes: current and peak allocated, current and peak reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CudaMemory {
    pub allocated: i64,
    pub peak_allocated: i64,
    pub reserved: i64,
    pub peak_reserved: i64,
}

extern "C" {
    fn fpgan_cuda_memory(device: i32, out: *mut i64, reset_peaks: i32) -> i32;
}

/// Statistics of `device` since the last reset; with `reset_peaks` the peaks restart afterwards.
/// `None` on the CPU or when libtorch has no CUDA allocator.
pub fn stats(device: Device, reset_peaks: bool) -> Option<CudaMemory> {
    let Device::Cuda(i) = device else {
        return None;
    };
    read(i as i32, reset_peaks)
}

fn read(device: i32, reset_peaks: bool) -> Option<CudaMemory> {
    let mut out = [0i64; 4];
    // SAFETY: `out` has the four slots the C++ side writes; it catches every exception.
    let rc = unsafe { fpgan_cuda_memory(device, out.as_mut_ptr(), reset_peaks as i32) };
    (rc == 0).then_some(CudaMemory {
        allocated: out[0],
        peak_allocated: out[1],
        reserved: out[2],
        peak_reserved: out[3],
    })
}

/// Bytes to GB (2^30), as PyTorch's reports.
pub fn gb(bytes: i64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
