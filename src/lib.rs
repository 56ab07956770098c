//! fpgan: Faster Projected GAN (arXiv 2403.08778) in Rust on libtorch.
//!
//! Modules follow the pipeline: `dataset` turns image folders into training sets and loads them;
//! `generator`, `features` (frozen EfficientNet-Lite0 + random projections), `discriminator` and
//! `diffaug` are the networks, built from `layers`; `training` holds the state and one iteration
//! (`loss`, `optim`, `ema`, `stats`), `run` the run around it (`checkpoint` files); `generate`,
//! `detector`/`metrics`, `bench`, `info` and `demo` are the other commands, `cli` parses them.
//! `fastpath` (bf16 autocast, channels_last) and `cuda_memory` wrap the C++ shims in csrc/;
//! `home` locates the pretrained weights installed by `scripts/setup.sh`.
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod cuda_memory;
pub mod dataset;
pub mod demo;
pub mod detector;
pub mod diffaug;
pub mod discriminator;
pub mod ema;
pub mod fastpath;
pub mod features;
pub mod generate;
pub mod generator;
pub mod grid;
pub mod home;
pub mod info;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod rng;
pub mod run;
pub mod stats;
pub mod summary;
pub mod tempfiles;
pub mod training;
