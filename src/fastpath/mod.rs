//! The opt-in fast path: bf16 autocast (`--amp bf16`), channels-last layout
//! (`--channels-last`), TF32 (`--tf32`) and CUDA graphs (`--cuda-graphs`); the defaults keep the
//! reference's fp32 NCHW, launched operator by operator.
pub mod cuda_events;
pub mod cuda_graph;
pub mod cuda_memory;

use tch::nn::VarStore;
use tch::{Device, Tensor};

/// The fast-path settings of a run (train, bench): one struct for the command line (flattened
/// into `train` and `bench`), `training_options.json`, snapshots and the bench JSON (flattened,
/// so the keys stay `amp`, `channels_last`, `tf32`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args, serde::Serialize, serde::Deserialize,
)]
#[command(next_help_heading = "Device and speed")]
pub struct FastPath {
    /// Forward-pass precision: none (fp32, the reference) or bf16 autocast (faster on recent
    /// GPUs, changes the numbers; see docs/benchmarks.md).
    #[arg(long, value_enum, default_value_t = Amp::None)]
    #[serde(default)]
    pub amp: Amp,
    /// Lay weights and images out channels_last (NHWC); same numbers up to rounding order.
    #[arg(long)]
    #[serde(default)]
    pub channels_last: bool,
    /// Allow TF32 for float32 convolutions and matrix products on CUDA (faster on Ampere and
    /// later, changes the numbers); off by default, as the reference's training loop.
    #[arg(long)]
    #[serde(default)]
    pub tf32: bool,
    /// Capture the G and D phases in CUDA graphs after 3 eager iterations and replay them: one
    /// launch per phase instead of thousands of kernel launches (one process on CUDA; Adam then
    /// reads its bias corrections from the GPU, which may round the update differently in the
    /// last bits).
    #[arg(long)]
    #[serde(default)]
    pub cuda_graphs: bool,
    /// Deterministic kernels on CUDA: the same command repeats a run bit for bit on the same
    /// GPU (cuDNN's deterministic algorithms, chosen without timing them, and a fixed cuBLAS
    /// workspace; may be slower). Without it cuDNN picks its fastest algorithms by timing, which
    /// changes the rounding from run to run.
    #[arg(long)]
    #[serde(default)]
    pub deterministic: bool,
}

impl FastPath {
    /// A short tag of the settings for file names: fp32 | bf16, then -tf32, -cl, -graphs, -det.
    pub fn tag(&self) -> String {
        let amp = match self.amp {
            Amp::None => "fp32",
            Amp::Bf16 => "bf16",
        };
        let tf32 = if self.tf32 { "-tf32" } else { "" };
        let cl = if self.channels_last { "-cl" } else { "" };
        let graphs = if self.cuda_graphs { "-graphs" } else { "" };
        let det = if self.deterministic { "-det" } else { "" };
        format!("{amp}{tf32}{cl}{graphs}{det}")
    }

    /// The settings in words, for tables: e.g. `fp32 (TF32 off)`, `bf16 autocast, TF32,
    /// channels_last, CUDA graphs`.
    pub fn describe(&self) -> String {
        let amp = match self.amp {
            Amp::None => "fp32",
            Amp::Bf16 => "bf16 autocast",
        };
        let tf32 = if self.tf32 { ", TF32" } else { " (TF32 off)" };
        let cl = if self.channels_last {
            ", channels_last"
        } else {
            ""
        };
        let graphs = if self.cuda_graphs {
            ", CUDA graphs"
        } else {
            ""
        };
        let det = if self.deterministic {
            ", deterministic"
        } else {
            ""
        };
        format!("{amp}{tf32}{cl}{graphs}{det}")
    }

    /// libtorch's process-wide kernel settings for these options on `device`: TF32, and
    /// deterministic kernels or cuDNN's timed choice of algorithms (cudnn.benchmark, as the
    /// reference's training loop). [`fix_cublas_workspace`] must come earlier, before any CUDA
    /// work.
    pub fn apply(&self, device: tch::Device) {
        set_tf32(self.tf32);
        set_deterministic(self.deterministic);
        if device.is_cuda() {
            tch::Cuda::cudnn_set_benchmark(!self.deterministic);
        }
    }
}

/// Precision of the forward passes (`--amp`). With `bf16`, forward passes of G and D run under
/// bfloat16 autocast on the training device (csrc/autocast.cpp); parameters, gradients, optimizer
/// state, losses and EMA stay float32.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Amp {
    /// float32 everywhere (the reference).
    #[default]
    None,
    /// bfloat16 autocast for the G and D forward passes.
    Bf16,
}

extern "C" {
    fn fpgan_autocast_enter(cuda: i32) -> i32;
    fn fpgan_autocast_exit(cuda: i32, was_enabled: i32) -> i32;
    fn fpgan_channels_last(t: *mut torch_sys::C_tensor) -> *mut torch_sys::C_tensor;
    fn fpgan_set_tf32(allow: i32) -> i32;
    fn fpgan_tf32_state() -> i32;
    fn fpgan_set_deterministic(on: i32) -> i32;
}

/// Allow (`--tf32`) or forbid (the default, as the reference's training loop) TF32 for float32
/// convolutions (cuDNN) and matrix products (cuBLAS); csrc/tf32.cpp. No effect on a CPU.
pub fn set_tf32(allow: bool) {
    // SAFETY: sets two flags of libtorch's global context.
    let r = unsafe { fpgan_set_tf32(i32::from(allow)) };
    assert!(r == 0, "libtorch refused to set TF32");
}

/// Whether TF32 is allowed for (cuDNN convolutions, cuBLAS matrix products).
pub fn tf32_state() -> (bool, bool) {
    // SAFETY: reads two flags of libtorch's global context.
    let s = unsafe { fpgan_tf32_state() };
    assert!(s >= 0, "libtorch refused to report TF32");
    (s & 1 != 0, s & 2 != 0)
}

/// Deterministic kernels (`on`) or libtorch's defaults: cuDNN's deterministic algorithms
/// (torch.backends.cudnn.deterministic) and torch.use_deterministic_algorithms(True,
/// warn_only=True), which warns, naming it, of an operator without a deterministic kernel (but
/// not its NaN filling of new tensors, a debugging aid); returns the previous setting
/// (csrc/tf32.cpp). The step's own operators are deterministic on CUDA without it, except for
/// cuDNN's algorithm choice. For cuBLAS, set `CUBLAS_WORKSPACE_CONFIG` before the first CUDA
/// work ([`fix_cublas_workspace`]).
pub fn set_deterministic(on: bool) -> bool {
    // SAFETY: sets four flags of libtorch's global context.
    let was = unsafe { fpgan_set_deterministic(i32::from(on)) };
    assert!(was >= 0, "libtorch refused to set deterministic kernels");
    was == 1
}

/// cuBLAS's workspace fixed as torch.use_deterministic_algorithms asks (`:4096:8`), unless the
/// environment sets it: cuBLAS may pick other kernels with another workspace, and without it
/// deterministic mode warns at every matrix product. Call before any CUDA work (libtorch reads
/// it once).
pub fn fix_cublas_workspace() {
    if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
}

/// A channels_last (NHWC) copy of a 4-D tensor (csrc/memory_format.cpp). With
/// `--channels-last`, 4-D weights and image batches use this layout, which cuDNN and oneDNN may
/// run faster; same numbers up to summation order.
pub fn channels_last(t: &Tensor) -> Tensor {
    let mut t = t.shallow_clone();
    // SAFETY: the shim returns a new heap tensor handle (or null on error), owned by the result.
    let p = unsafe { fpgan_channels_last(t.as_mut_ptr()) };
    assert!(
        !p.is_null(),
        "channels_last conversion failed for {:?}",
        t.size()
    );
    unsafe { Tensor::from_ptr(p) }
}

/// Whether a 4-D tensor is laid out channels_last (NHWC strides; dimensions of size 1 may have
/// any stride, as PyTorch's own check).
pub fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    if size.len() != 4 {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    let want = [h * w * c, 1, w * c, c];
    (0..4).all(|i| size[i] == 1 || stride[i] == want[i])
}

/// Re-lay every 4-D variable of `vs` (weights; not the 1-D BN and SN buffers) as channels_last.
pub fn vars_to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let nhwc = channels_last(&v);
                v.set_data(&nhwc);
            }
        }
    });
}

/// Run `f` under bf16 autocast for `device` when `amp` is `Bf16`, else as it is.
pub fn autocast<T>(amp: Amp, device: Device, f: impl FnOnce() -> T) -> T {
    if amp == Amp::None {
        return f();
    }
    let cuda = device.is_cuda() as i32;
    // SAFETY: plain C calls into libtorch's autocast state; exceptions are caught there.
    let was = unsafe { fpgan_autocast_enter(cuda) };
    assert!(
        was >= 0,
        "cannot enable bf16 autocast on {}",
        crate::util::device::device_name(device)
    );
    let out = f();
    // SAFETY: as above; restores the state saved by the matching enter.
    unsafe { fpgan_autocast_exit(cuda, was) };
    out
}
