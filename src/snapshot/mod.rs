//! Snapshot files, one home: names, finding, pruning, headers, loading G_ema (the training state
//! is `train::state`); official network pickles are read as data, never as code (`pickle`,
//! `torch_pickle`, `official`).
mod files;
mod network;
pub mod official;
pub mod pickle;
pub mod torch_pickle;

pub use files::{
    grid_kimg, grid_name, newest_snapshot, prune, read_header, snapshot_kimg, snapshot_name,
    snapshots_in, SnapshotHeader, BEST_NIMG, BEST_SNAPSHOT, FORMAT, SNAPSHOT_PREFIX, VERSION,
};
pub use network::Network;
