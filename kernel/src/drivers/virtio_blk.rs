//! The swap disk: a virtio-blk device on the PCI bus, as a [`SwapDevice`].
//!
//! The runner attaches one with `--swap SIZE` (QEMU's `virtio-blk-pci`). At
//! start-up [`init`] looks for it on the PCI bus (vendor 0x1af4, device
//! 0x1001 transitional or 0x1042 modern), opens it and keeps it until the VM
//! takes it ([`take_swap_disk`]). Slot `n` is bytes `n * 4096 .. (n + 1) *
//! 4096` of the disk, eight 512-byte sectors; the disk keeps no other state,
//! so a discarded slot needs no work.
//!
//! The device itself is driven by the `virtio-drivers` crate: virtqueues,
//! feature negotiation and the PCI transport's capability walk are written and
//! tested once there (it is kept up by the rCore project and used by rCore,
//! ArceOS and other kernels), where a hand-written driver would be one more
//! copy of the same ring code to get wrong. The kernel gives it what it cannot
//! know (`virtio_hal`): DMA memory, mapped device registers, and physical
//! addresses of buffers. Requests are synchronous: the driver polls the used
//! ring until the device is done (no interrupts), so a swap request is over
//! when `read` or `write` returns.
//!
//! Pages move by DMA straight from and into the frame named, with no copy:
//! frames lie in the mapping of physical memory, whose physical addresses the
//! device is given. Everything a request needs (the virtqueue, the bounce page
//! for its header and status) is taken when the disk is opened, so `read` and
//! `write` take no lock but the disk's own, and may be called with the VM lock
//! held, as the VM does.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, DeviceFunction, DeviceFunctionInfo, PciRoot,
};

use super::pci::{self, PortConfiguration};
use super::virtio_hal::{self, KernelHal};
use crate::memory::{self, physical_offset};
use crate::vm::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::{PAGE_SIZE, Pfn};
use crate::vm::swap::SwapDevice;

/// The virtio vendor's PCI id.
const VIRTIO_VENDOR: u16 = 0x1af4;
/// A transitional (legacy and modern) virtio-blk device.
const BLOCK_TRANSITIONAL: u16 = 0x1001;
/// A modern-only virtio-blk device (0x1040 + device type 2).
const BLOCK_MODERN: u16 = 0x1042;
/// Sectors in a slot (a page).
const SECTORS_PER_SLOT: u64 = PAGE_SIZE / SECTOR_SIZE as u64;

/// The disk found at start-up, until the VM takes it.
static SWAP_DISK: Mutex<Option<SwapDisk>> = Mutex::new(None);

/// Whether a disk was opened: a device must have one driver.
static OPENED: AtomicBool = AtomicBool::new(false);

/// A virtio-blk disk used as swap (see the module documentation).
///
/// Dropping it gives its DMA frames back, which takes the VM lock: drop it
/// only where that lock is free.
pub struct SwapDisk {
    device: VirtIOBlk<KernelHal, PciTransport>,
    location: DeviceFunction,
    slots: u32,
    /// One bit per slot: written and not discarded since.
    stored: Vec<u64>,
}

/// Whether `info` is a virtio-blk function.
fn is_virtio_block(info: &DeviceFunctionInfo) -> bool {
    info.vendor_id == VIRTIO_VENDOR && matches!(info.device_id, BLOCK_TRANSITIONAL | BLOCK_MODERN)
}

/// Looks for a virtio-blk disk on the PCI bus and opens it; logs what it found
/// (`swap: virtio-blk disk at 00:04.0, 4096 slots (16 MiB)`). `None` without
/// one, if it cannot be opened (said in the log), or if a disk was opened
/// before: [`init`] calls this at start-up, and [`take_swap_disk`] hands out
/// what it found. Needs the VM lock free.
pub fn find_swap_disk() -> Option<SwapDisk> {
    let mut root = PciRoot::new(PortConfiguration);
    let (location, _) = pci::find(&root, is_virtio_block)?;
    if OPENED.swap(true, Ordering::Relaxed) {
        log::warn!("swap: virtio-blk disk at {location} is driven already");
        return None;
    }
    match SwapDisk::open(&mut root, location) {
        Ok(disk) => {
            let mib = (u64::from(disk.slots) * PAGE_SIZE) >> 20;
            log::info!("swap: virtio-blk disk at {location}, {} slots ({mib} MiB)", disk.slots);
            Some(disk)
        }
        Err(why) => {
            log::warn!("swap: virtio-blk disk at {location} not used: {why}");
            None
        }
    }
}

/// Finds the swap disk at start-up and keeps it for [`take_swap_disk`].
pub fn init() {
    if let Some(disk) = find_swap_disk() {
        keep_swap_disk(disk);
    }
}

/// The disk [`init`] found, if no one took it yet.
pub fn take_swap_disk() -> Option<SwapDisk> {
    SWAP_DISK.lock().take()
}

/// Keeps `disk` for the next [`take_swap_disk`] (a test gives back the disk it
/// took).
pub fn keep_swap_disk(disk: SwapDisk) {
    let previous = SWAP_DISK.lock().replace(disk);
    assert!(previous.is_none(), "keep_swap_disk: a disk is kept already");
}

impl SwapDisk {
    /// Opens the virtio-blk function at `location`: lets it decode memory and
    /// master the bus (with its INTx line off), maps its memory BARs, and
    /// starts the device.
    fn open(
        root: &mut PciRoot<PortConfiguration>,
        location: DeviceFunction,
    ) -> Result<Self, &'static str> {
        if !virtio_hal::init_bounce_page() {
            return Err("no frame for the bounce page");
        }
        let (_, command) = root.get_status_command(location);
        // Polled, so the device's interrupt line stays quiet.
        let wanted = Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE;
        root.set_command(location, command | wanted);
        let bars = root.bars(location).map_err(|_| "a BAR of an unknown type")?;
        for bar in bars.iter().flatten() {
            if let BarInfo::Memory { address, size, .. } = *bar
                && address != 0
                && size != 0
            {
                map_bar(address, size)?;
            }
        }
        let transport = PciTransport::new::<KernelHal, _>(root, location).map_err(|why| {
            log::warn!("swap: virtio PCI transport: {why}");
            "the virtio PCI transport did not start"
        })?;
        let device = VirtIOBlk::<KernelHal, _>::new(transport).map_err(|why| {
            log::warn!("swap: virtio-blk: {why}");
            "the virtio-blk device did not start"
        })?;
        if device.readonly() {
            return Err("the disk is read-only");
        }
        let slots = u32::try_from(device.capacity() / SECTORS_PER_SLOT).unwrap_or(u32::MAX);
        if slots == 0 {
            return Err("the disk holds less than a page");
        }
        let stored = vec![0; (slots as usize).div_ceil(64)];
        Ok(SwapDisk { device, location, slots, stored })
    }

    /// Where the disk is on the PCI bus.
    pub fn location(&self) -> DeviceFunction {
        self.location
    }

    /// The first sector of `slot`; `InvalidArgument` past the disk's end.
    fn sector(&self, slot: u32) -> Result<usize, VmError> {
        if slot >= self.slots {
            return Err(VmError::InvalidArgument);
        }
        Ok((u64::from(slot) * SECTORS_PER_SLOT) as usize)
    }

    /// Marks `slot` as holding a page or not.
    fn set_stored(&mut self, slot: u32, stored: bool) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if stored {
            self.stored[word] |= 1 << bit;
        } else {
            self.stored[word] &= !(1 << bit);
        }
    }
}

/// Maps a memory BAR uncached and records it for the transport.
fn map_bar(address: u64, size: u64) -> Result<(), &'static str> {
    let mapped =
        memory::with_frames(|frames| crate::arch::map_device_memory(frames, address, size));
    let mapped = mapped.ok_or("a BAR could not be mapped")?;
    log::debug!("swap: BAR at {address:#x}, {size:#x} bytes, mapped at {mapped:#x}");
    if !virtio_hal::add_mmio_window(address, size, mapped) {
        return Err("too many BARs mapped");
    }
    Ok(())
}

/// The bytes of frame `pfn`, through the mapping of physical memory.
///
/// # Safety
/// The caller must own the frame for the slice's lifetime: nothing else may
/// write it (nor, for a mutable use, read it) meanwhile.
unsafe fn frame_bytes<'a>(pfn: Pfn) -> &'a mut [u8] {
    let address = (physical_offset() + pfn.addr()) as *mut u8;
    // SAFETY: all physical memory is mapped at the offset, writable, so the
    // page is valid for reads and writes; exclusivity is the caller's promise.
    unsafe { core::slice::from_raw_parts_mut(address, PAGE_SIZE as usize) }
}

impl SwapDevice for SwapDisk {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn slots(&self) -> u32 {
        self.slots
    }

    /// Writes the frame to the slot's sectors by DMA. A failed write (the
    /// device reports an error) is `OutOfMemory`, as the contract asks of a
    /// device that cannot take the page now; a slot past the end is
    /// `InvalidArgument`.
    fn write(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        slot: u32,
        pfn: Pfn,
    ) -> Result<(), VmError> {
        let sector = self.sector(slot)?;
        debug_assert!(frames.contains(pfn), "SwapDisk::write: frame {pfn:?} is not RAM");
        self.set_stored(slot, false);
        // SAFETY: the VM hands over frame `pfn` for this call and changes
        // nothing in it until the call returns (it holds the VM lock); the
        // device only reads it.
        let page = unsafe { frame_bytes(pfn) };
        self.device.write_blocks(sector, page).map_err(|why| {
            log::warn!("swap: writing slot {slot} to the disk at {}: {why}", self.location);
            VmError::OutOfMemory
        })?;
        self.set_stored(slot, true);
        Ok(())
    }

    /// Reads the slot's sectors into the frame by DMA. A failed read is
    /// `BadAddress`: the page's contents cannot be had back, as if the page
    /// were not there (the frame's contents are then undefined); a slot past
    /// the end is `InvalidArgument`.
    fn read(&mut self, slot: u32, pfn: Pfn) -> Result<(), VmError> {
        let sector = self.sector(slot)?;
        // SAFETY: the VM hands over frame `pfn` to be filled, and neither
        // reads nor writes it until the call returns.
        let page = unsafe { frame_bytes(pfn) };
        self.device.read_blocks(sector, page).map_err(|why| {
            log::warn!("swap: reading slot {slot} from the disk at {}: {why}", self.location);
            VmError::BadAddress
        })
    }

    /// Nothing to give back: the disk keeps no state per slot but the
    /// bookkeeping of [`SwapDevice::bytes_stored`].
    fn discard(&mut self, _frames: &mut FrameAllocator<'_>, slot: u32) {
        if slot < self.slots {
            self.set_stored(slot, false);
        }
    }

    fn bytes_stored(&self) -> u64 {
        let pages: u32 = self.stored.iter().map(|word| word.count_ones()).sum();
        u64::from(pages) * PAGE_SIZE
    }
}
