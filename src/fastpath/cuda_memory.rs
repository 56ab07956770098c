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

impl CudaMemory {
    /// These figures with each peak raised to `earlier`'s (peaks over two spans read in turn).
    pub fn max_peaks(self, earlier: Option<CudaMemory>) -> CudaMemory {
        let e = earlier.unwrap_or(self);
        CudaMemory {
            peak_allocated: self.peak_allocated.max(e.peak_allocated),
            peak_reserved: self.peak_reserved.max(e.peak_reserved),
            ..self
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_peaks_keeps_the_higher_peak_of_two_spans_and_the_later_current_figures() {
        let later = CudaMemory {
            allocated: 5,
            peak_allocated: 7,
            reserved: 9,
            peak_reserved: 20,
        };
        let earlier = CudaMemory {
            allocated: 1,
            peak_allocated: 11,
            reserved: 2,
            peak_reserved: 12,
        };
        let both = later.max_peaks(Some(earlier));
        assert_eq!((both.allocated, both.reserved), (5, 9));
        assert_eq!((both.peak_allocated, both.peak_reserved), (11, 20));
        assert_eq!(later.max_peaks(None), later);
    }
}
