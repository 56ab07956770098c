//! Scale-out: libtorch's c10d process groups for data-parallel training, and the launchers of
//! its worker processes.
pub mod group;
pub mod launch;
pub mod stall;
pub mod store;
pub mod watch;

pub use group::{Backend, ProcessGroup, Timeouts};
