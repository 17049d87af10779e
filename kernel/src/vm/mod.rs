//! The portable virtual memory system.
//!
//! Nothing in this module knows how the machine translates addresses: it talks to
//! the MMU only through a documented contract, and it builds and runs its tests on
//! the host. It must never import `crate::arch`.

pub mod error;
pub mod fault;
pub mod fork;
pub mod frame;
pub mod metadata;
pub mod mmu;
pub mod object;
pub mod page;
pub mod pin;
pub mod reclaim;
pub mod restore;
pub mod space;
pub mod swap;
pub mod system;

#[cfg(test)]
mod sim;

pub use error::VmError;
pub use frame::{AccountingError, FrameAllocator, FrameCounters, PhysRange};
pub use mmu::{Access, Mmu, Protection, SpaceId, USER_END, USER_START, VirtAddr};
pub use object::ObjectId;
pub use page::{PAGE_SIZE, PageFlags, Pfn, VM_PAGE_BYTES, VmPage};
pub use swap::SwapDevice;
pub use system::{Placement, Vm, VmStatistics};
