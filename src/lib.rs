//! fpgan: Faster Projected GAN (arXiv 2403.08778) in Rust on libtorch. Imports point only down:
//! cli -> train -> eval -> snapshot, data -> nets -> fastpath (C++ shims in csrc/), util.
pub mod cli;
pub mod data;
pub mod dist;
pub mod eval;
pub mod fastpath;
pub mod monitor;
pub mod nets;
pub mod snapshot;
pub mod train;
pub mod util;
