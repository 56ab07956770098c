//! Mixed precision (opt-in, `--amp bf16`): forward passes of G and D run under bfloat16 autocast
//! on the training device; parameters, gradients, optimizer state, losses and EMA stay float32.
//! Default `none` keeps the reference's fp32 numbers. Implemented by csrc/autocast.cpp.
use tch::Device;

/// Precision of the forward passes.
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
}

/// Run `f` under bf16 autocast for `device` when `amp` is `Bf16`, else as it is.
pub fn forward<T>(amp: Amp, device: Device, f: impl FnOnce() -> T) -> T {
    if amp == Amp::None {
        return f();
    }
    let cuda = device.is_cuda() as i32;
    // SAFETY: plain C calls into libtorch's autocast state; exceptions are caught there.
    let was = unsafe { fpgan_autocast_enter(cuda) };
    assert!(was >= 0, "cannot enable bf16 autocast on {device:?}");
    let out = f();
    // SAFETY: as above; restores the state saved by the matching enter.
    unsafe { fpgan_autocast_exit(cuda, was) };
    out
}
