//! Swap devices: the stores behind the VM's [`SwapDevice`](crate::vm::SwapDevice)
//! contract.
//!
//! The VM decides what leaves memory and talks to a device only through that
//! trait; the devices themselves are not part of the portable VM, so they live
//! here. [`pool`] is a compressed pool in memory: its logic is portable and
//! tested on the host through its [`PhysicalPages`](pool::PhysicalPages) trait.

pub mod pool;

pub use pool::{CompressedPool, PhysicalPages, PoolStatistics};
