//! Scale-out: libtorch's c10d process groups for data-parallel training.
pub mod group;
pub mod launch;

pub use group::{Backend, ProcessGroup, Timeouts};
