//! Training: options, state and one iteration (`trainer`, with `loss`, `optim`, `ema`, `stats`),
//! snapshots (`state`, with each rank's own buffers in `rank_state`), the run (`resume`, `rewind`, `run`, `tick`, `signals`) and `bench`, which times it.
pub mod bench;
pub mod devcheck;
pub mod ema;
pub mod graphed;
pub mod import;
pub mod loss;
pub mod optim;
pub mod options;
pub mod rank_state;
pub mod resume;
pub mod rewind;
pub mod run;
pub mod signals;
pub mod state;
pub mod stats;
pub mod tick;
pub mod trainer;
