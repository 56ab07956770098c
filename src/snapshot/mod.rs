//! Snapshot files, one home: their names and how to find them (`network-snapshot-<kimg>.safetensors`,
//! newest first), which to keep, the header every snapshot carries, and loading the trained
//! generator (G_ema) for generation and metrics. The full training state in a snapshot is written
//! and restored by `train::state`.
mod files;
mod network;

pub use files::{
    newest_snapshot, prune, read_header, snapshot_name, snapshots_in, SnapshotHeader, FORMAT,
    SNAPSHOT_PREFIX, VERSION,
};
pub use network::Network;
