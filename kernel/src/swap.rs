//! Swap devices: the stores behind the VM's [`SwapDevice`](crate::vm::SwapDevice)
//! contract.
//!
//! The VM decides what leaves memory and talks to a device only through that
//! trait; the devices themselves are not part of the portable VM, so they live
//! here. [`pool`] is a compressed pool in memory: its logic is portable and
//! tested on the host through its [`PhysicalPages`](pool::PhysicalPages) trait;
//! on the machine it reaches frames through the physical-memory map
//! (`arch::PhysicalMap`).

pub mod pool;

pub use pool::{CompressedPool, PhysicalPages, PoolStatistics};

/// The compressed pool as the kernel uses it, on the physical-memory map.
#[cfg(target_os = "none")]
pub type KernelPool = CompressedPool<crate::arch::PhysicalMap>;

#[cfg(target_os = "none")]
impl CompressedPool<crate::arch::PhysicalMap> {
    /// A pool of `slots` slots holding at most `capacity_frames` frames (the
    /// caller sizes both, e.g. a quarter of RAM and four slots a frame).
    /// `OutOfMemory` if the heap cannot hold its metadata.
    pub fn new(capacity_frames: usize, slots: u32) -> Result<KernelPool, crate::vm::VmError> {
        // SAFETY: the pool asks only for its own storage frames and for the
        // frame the VM hands to `write` or `read`, which the VM keeps from
        // everyone else for the call; the map is the pool's alone.
        let memory = unsafe { crate::arch::PhysicalMap::new() };
        CompressedPool::with_memory(memory, capacity_frames, slots)
    }
}
