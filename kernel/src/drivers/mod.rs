//! Device drivers: PCI enumeration and the virtio-blk swap disk.
//!
//! Compiled for the bare-metal target only, like `arch`: everything here
//! touches I/O ports or device memory.

pub mod pci;
pub mod virtio_blk;
mod virtio_hal;
