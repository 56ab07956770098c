//! glibc's allocator kept from returning libtorch's freed CPU tensors to the kernel after every
//! step: on a CPU, refaulting those pages cost ~40 % of a training step (docs/benchmarks.md).
//!
//! By default glibc serves blocks above an adaptive threshold (at most 32 MiB) with their own
//! mmap and unmaps them when freed, and trims the heap top above 128 KiB: every iteration's
//! activations then come back as fresh zeroed pages. The settings below keep freed memory in the
//! heap for the next iteration (2-5 % more peak memory at 256, up to the 256 MiB padding on small
//! runs). GPU tensors are untouched (CUDA's caching allocator); on other C libraries this does
//! nothing.

/// Blocks up to this size come from the heap (glibc's largest accepted mmap threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap top is returned to the kernel only above this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = i32::MAX;
/// Each growth of the heap asks the kernel for this much more than needed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 256 << 20;

/// Apply the settings (call once, before the work starts); whether glibc accepted all of them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() -> bool {
    [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (libc::M_TOP_PAD, TOP_PAD),
    ]
    .into_iter()
    // SAFETY: mallopt only sets allocator parameters; glibc serialises it with allocations.
    .all(|(param, value)| unsafe { libc::mallopt(param, value) } == 1)
}

/// Not glibc: nothing to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    true
}

#[cfg(test)]
mod tests {
    /// glibc refuses values out of its ranges (an mmap threshold above 32 MiB, say).
    #[test]
    fn the_c_library_accepts_the_settings() {
        assert!(super::keep_freed_memory());
    }
}
