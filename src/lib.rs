//! fpgan: Faster Projected GAN (arXiv 2403.08778) in Rust on libtorch.
//!
//! The folders follow a batch through the pipeline, and imports only point down the list:
//! `cli` (one file per command) -> `train` (options, the step, the run loop, bench) -> `eval`
//! (detector, FID/KID, sampling) -> `snapshot` (one home for snapshot files) -> `nets` (generator,
//! feature network, discriminator, DiffAugment) and `data` (images in, datasets out, loading) ->
//! `fastpath` (bf16 autocast, channels_last, CUDA memory: the C++ shims in csrc/) and `util`.
pub mod cli;
pub mod data;
pub mod eval;
pub mod fastpath;
pub mod nets;
pub mod snapshot;
pub mod train;
pub mod util;
