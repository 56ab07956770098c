//! Snapshot files, one home: names (`network-snapshot-<kimg>.safetensors`, newest first), pruning,
//! headers and loading G_ema; the full training state is written and restored by `train::state`.
mod files;
mod network;

pub use files::{
    newest_snapshot, prune, read_header, snapshot_kimg, snapshot_name, snapshots_in,
    SnapshotHeader, FORMAT, SNAPSHOT_PREFIX, VERSION,
};
pub use network::Network;
