//! Helpers under everything else: files (atomic writes, safetensors), images, devices, seeded
//! generators, libtorch's panics as text, the clock, progress bars, the lines kept for a run's log, libtorch's profiler,
//! multi-tensor updates and where the pretrained weights live.
pub mod atomic;
pub mod clock;
pub mod device;
pub mod early_log;
pub mod files;
pub mod foreach;
pub mod home;
pub mod images;
pub mod malloc;
pub mod ops;
pub mod panics;
pub mod phases;
pub mod profiler;
pub mod progress;
pub mod rng;
pub mod rng_state;
pub mod safetensors;
pub mod shim;
pub mod tempfiles;
