//! CUDA graphs (`--cuda-graphs`): work captured once and replayed as one launch, on a side
//! stream, graphs sharing one memory pool (csrc/cuda_graph.cpp).
use crate::util::shim::check;
use anyhow::{bail, Result};
use std::ffi::c_void;
use tch::Device;

extern "C" {
    fn fpgan_cuda_side_stream(device: i32) -> i32;
    fn fpgan_cuda_graph_pool(a: *mut u64, b: *mut u64) -> i32;
    fn fpgan_cuda_graph_new(out: *mut *mut c_void) -> i32;
    fn fpgan_cuda_graph_begin(graph: *mut c_void, a: u64, b: u64) -> i32;
    fn fpgan_cuda_graph_end(graph: *mut c_void) -> i32;
    fn fpgan_cuda_graph_replay(graph: *mut c_void) -> i32;
    fn fpgan_cuda_graph_free(graph: *mut c_void);
}

/// Refuse `--cuda-graphs` where it cannot run: in a data-parallel run (the gradient all-reduce
/// is not captured) or on a `device` other than CUDA (when known).
pub fn check_supported(device: Option<Device>, data_parallel: bool) -> Result<()> {
    if data_parallel {
        bail!("--cuda-graphs trains in one process: leave it out for data-parallel training");
    }
    match device {
        Some(d) if !d.is_cuda() => {
            bail!(
                "--cuda-graphs needs a CUDA device (--device cuda), not {}",
                crate::util::device::device_name(d)
            )
        }
        _ => Ok(()),
    }
}

/// Run this thread's later CUDA work on `device` on a new stream from libtorch's pool (a graph
/// cannot be captured on the default stream; warm-up, capture and replays then share a stream).
pub fn use_side_stream(device: usize) -> Result<()> {
    // SAFETY: sets libtorch's thread-local current stream; the shim catches exceptions.
    check("CUDA side stream", unsafe {
        fpgan_cuda_side_stream(device as i32)
    })
}

/// A memory pool for graphs replayed in the order they were captured.
#[derive(Clone, Copy, Debug)]
pub struct Pool(u64, u64);

impl Pool {
    pub fn new() -> Result<Self> {
        let (mut a, mut b) = (0, 0);
        // SAFETY: writes two integers.
        check("CUDA graph memory pool", unsafe {
            fpgan_cuda_graph_pool(&mut a, &mut b)
        })?;
        Ok(Pool(a, b))
    }
}

/// A captured CUDA graph (freed on drop).
pub struct CudaGraph(*mut c_void);

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: made by fpgan_cuda_graph_new and freed once, here.
        unsafe { fpgan_cuda_graph_free(self.0) }
    }
}

impl CudaGraph {
    /// Capture what `f` launches on the current stream (which must not be the default one:
    /// [`use_side_stream`]) into a graph using `pool`, with `f`'s result. Nothing captured runs
    /// until [`CudaGraph::replay`]; what `f` computes on the host (shapes, flags) is frozen.
    pub fn capture<T>(pool: Pool, f: impl FnOnce() -> Result<T>) -> Result<(Self, T)> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: a plain constructor; the handle is owned by `graph` from here.
        check("CUDA graph", unsafe { fpgan_cuda_graph_new(&mut raw) })?;
        let graph = CudaGraph(raw);
        // SAFETY: a live graph.
        check("CUDA graph capture", unsafe {
            fpgan_cuda_graph_begin(graph.0, pool.0, pool.1)
        })?;
        let out = f();
        // SAFETY: a live graph under capture; ended even when `f` failed.
        let end = check("CUDA graph capture", unsafe {
            fpgan_cuda_graph_end(graph.0)
        });
        let out = out?;
        end?;
        Ok((graph, out))
    }

    /// Launch the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: a live, captured graph.
        check("CUDA graph replay", unsafe {
            fpgan_cuda_graph_replay(self.0)
        })
    }
}
