//! A c10d process group (TCPStore rendezvous; Gloo for CPU tensors, or NCCL for CUDA ones) over
//! `csrc/c10d.cpp`: in-place all-reduce (sum), broadcast and barrier of tensors, and the
//! timeouts of its waits.
use super::stall::StallWatch;
use crate::util::shim::{last_error, millis};
use anyhow::{bail, Result};
use std::ffi::{c_char, c_void, CString};
use std::time::Duration;
use tch::Tensor;

extern "C" {
    fn fpgan_c10d_gloo_new(
        host: *const c_char,
        port: i32,
        rank: i32,
        world: i32,
        join_ms: i64,
        collective_ms: i64,
    ) -> *mut c_void;
    fn fpgan_c10d_nccl_new(
        host: *const c_char,
        port: i32,
        rank: i32,
        world: i32,
        join_ms: i64,
        collective_ms: i64,
        device: i32,
    ) -> *mut c_void;
    fn fpgan_c10d_allreduce_sum(g: *mut c_void, t: *mut torch_sys::C_tensor) -> i32;
    fn fpgan_c10d_broadcast(g: *mut c_void, t: *mut torch_sys::C_tensor, root: i32) -> i32;
    fn fpgan_c10d_barrier(g: *mut c_void) -> i32;
    fn fpgan_c10d_free(g: *mut c_void);
}

/// The c10d backend of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// CPU tensors (CUDA ones are staged through the host by Gloo itself).
    Gloo,
    /// CUDA tensors on the given device.
    Nccl(usize),
}

/// How long a process of a group waits: for every process to join, then for the others in one
/// collective, and for the group to make progress (see [`StallWatch`]; None: no watch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub join: Duration,
    pub collective: Duration,
    pub stall: Option<Duration>,
}

impl Timeouts {
    /// The same wait for joining and in a collective, no stall watch.
    pub fn both(d: Duration) -> Self {
        Timeouts {
            join: d,
            collective: d,
            stall: None,
        }
    }
}

/// A collective that failed: mostly because another process of the group failed first (its
/// connection closed), which that process tells itself.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed on rank {rank} of {world}: {cause}")]
pub struct CollectiveFailed {
    pub what: &'static str,
    pub rank: usize,
    pub world: usize,
    pub cause: String,
}

/// One process's membership of a group of `world` processes.
pub struct ProcessGroup {
    handle: *mut c_void,
    pub rank: usize,
    pub world: usize,
    pub backend: Backend,
    /// Ends this process when the group stops making progress (see [`Timeouts`]).
    stall: Option<StallWatch>,
}

// SAFETY: the group is used from one thread at a time (&mut self for collectives is not needed:
// c10d serialises the collectives of a backend).
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Join the group through the TCPStore at `host:port` (rank 0 serves it) with `backend`
    /// (for NCCL, its CUDA device becomes the current one), waiting as `timeouts` say.
    pub fn join(
        backend: Backend,
        host: &str,
        port: u16,
        rank: usize,
        world: usize,
        timeouts: Timeouts,
    ) -> Result<Self> {
        if world == 0 || rank >= world {
            bail!("rank {rank} is not in a group of {world} processes");
        }
        let c_host = CString::new(host)?;
        let (h, port_, rank_, world_) = (c_host.as_ptr(), port as i32, rank as i32, world as i32);
        let (join, coll) = (millis(timeouts.join), millis(timeouts.collective));
        // SAFETY: valid C string; the shim catches every C++ exception.
        let handle = unsafe {
            match backend {
                Backend::Gloo => fpgan_c10d_gloo_new(h, port_, rank_, world_, join, coll),
                Backend::Nccl(i) => {
                    fpgan_c10d_nccl_new(h, port_, rank_, world_, join, coll, i as i32)
                }
            }
        };
        if handle.is_null() {
            bail!(
                "cannot join the process group at {host}:{port} as rank {rank} of {world} ({backend:?}): {}",
                last_error()
            );
        }
        Ok(ProcessGroup {
            handle,
            rank,
            world,
            backend,
            stall: timeouts
                .stall
                .map(|t| StallWatch::start(host, port, rank, t)),
        })
    }

    /// Run `op` on `t`, or with NCCL for a CPU tensor, on a copy on the group's GPU that is
    /// copied back.
    fn on_device(&self, t: &mut Tensor, op: impl FnOnce(&mut Tensor) -> i32) -> i32 {
        match self.backend {
            Backend::Nccl(i) if !t.device().is_cuda() => {
                let mut d = t.to_device(tch::Device::Cuda(i));
                let rc = op(&mut d);
                if rc == 0 {
                    t.copy_(&d);
                }
                rc
            }
            _ => op(t),
        }
    }

    fn check(&self, what: &'static str, rc: i32) -> Result<()> {
        if rc != 0 {
            return Err(CollectiveFailed {
                what,
                rank: self.rank,
                world: self.world,
                cause: last_error(),
            }
            .into());
        }
        Ok(())
    }

    /// Sum `t` (contiguous, on the CPU) over every rank, in place.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<()> {
        // SAFETY: `t` outlives the call, which waits for the collective.
        let rc = self.on_device(t, |t| unsafe {
            fpgan_c10d_allreduce_sum(self.handle, t.as_mut_ptr())
        });
        self.check("all-reduce", rc)
    }

    /// Overwrite `t` on every rank with rank `root`'s.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<()> {
        // SAFETY: as in all_reduce_sum.
        let rc = self.on_device(t, |t| unsafe {
            fpgan_c10d_broadcast(self.handle, t.as_mut_ptr(), root as i32)
        });
        self.check("broadcast", rc)
    }

    /// Average `t` over the group in place (the reference's all-reduce of the flat gradients,
    /// then `/= world`).
    pub fn average(&self, t: &mut Tensor) -> Result<()> {
        self.all_reduce_sum(t)?;
        let _ = t.g_div_scalar_(self.world as f64);
        Ok(())
    }

    /// Copy rank 0's values of `vars` (parameters and buffers, in an order shared by every rank)
    /// into every rank's.
    pub fn broadcast_from_rank0(&self, vars: &[&Tensor]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for v in vars {
            let mut t = v.detach().contiguous();
            self.broadcast(&mut t, 0)?;
            v.detach().copy_(&t);
        }
        Ok(())
    }

    /// Wait until every rank gets here.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the handle is live.
        let rc = unsafe { fpgan_c10d_barrier(self.handle) };
        self.check("barrier", rc)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // the group's end is no stall
        self.stall.take();
        // SAFETY: made by fpgan_c10d_gloo_new, freed once.
        unsafe { fpgan_c10d_free(self.handle) }
    }
}
