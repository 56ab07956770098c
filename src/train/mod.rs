//! Training: the options of a run, the training state and one iteration (`trainer`: G phase, D
//! phase, EMA, with `loss`, `optim`, `ema`, `stats`), its snapshots (`state`), the run around it
//! (`resume` picks the directory and snapshot, `run` the loop, `tick` its reports, `signals` the
//! stop requests) and `bench`, which times the same iteration.
pub mod bench;
pub mod ema;
pub mod loss;
pub mod optim;
pub mod options;
pub mod resume;
pub mod run;
pub mod signals;
pub mod state;
pub mod stats;
pub mod tick;
pub mod trainer;
