//! The `virtio-drivers` crate's [`Hal`] on this kernel.
//!
//! - DMA memory (the virtqueues) comes from the frame allocator, as aligned
//!   blocks of contiguous frames, and is reached through the mapping of
//!   physical memory. Taking and giving it back needs the VM lock: devices
//!   are made at start-up, and must not be dropped while that lock is held
//!   (the crate then panics, "failed to deallocate DMA").
//! - Device registers (BARs) are mapped uncached by the driver before the
//!   transport asks for them ([`add_mmio_window`]); [`Hal::mmio_phys_to_virt`]
//!   only looks them up, so that it takes no lock.
//! - A buffer the device reads or fills is given to it by physical address
//!   when it lies in the mapping of physical memory (a frame: no copy). Other
//!   buffers (the crate keeps request headers and statuses on the stack, which
//!   is not there) go through one bounce page taken at start-up
//!   ([`init_bounce_page`]): requests are synchronous, so the few small pieces
//!   of one request are all it ever holds. Neither path takes the VM lock, so
//!   a request may be made while it is held, as the VM does when it swaps.

use core::ptr::NonNull;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::memory::{self, physical_address_of, physical_offset};
use crate::vm::page::{PAGE_SIZE, Pfn};

/// The kernel's [`Hal`] (see the module documentation).
pub struct KernelHal;

/// Device registers mapped by [`crate::arch::map_device_memory`].
#[derive(Debug, Clone, Copy)]
struct MmioWindow {
    /// First physical address.
    physical: u64,
    /// Bytes mapped.
    length: u64,
    /// Kernel address of `physical`.
    address: u64,
}

/// Most device register ranges kept (a device has six BARs at most).
const MAX_WINDOWS: usize = 12;

/// The device register ranges mapped so far.
static WINDOWS: Mutex<[Option<MmioWindow>; MAX_WINDOWS]> = Mutex::new([None; MAX_WINDOWS]);

/// Records that physical `physical..physical + length` is mapped at kernel
/// address `address`, uncached, for good; false if the table is full.
pub fn add_mmio_window(physical: u64, length: u64, address: u64) -> bool {
    let mut windows = WINDOWS.lock();
    let Some(free) = windows.iter_mut().find(|window| window.is_none()) else {
        return false;
    };
    *free = Some(MmioWindow { physical, length, address });
    true
}

/// The page requests' small pieces are copied through.
struct Bounce {
    /// Its frame.
    pfn: Pfn,
    /// Bytes handed out since it was last empty.
    used: usize,
    /// Buffers shared through it and not yet unshared.
    shared: usize,
}

/// The bounce page, once taken.
static BOUNCE: Mutex<Option<Bounce>> = Mutex::new(None);

/// Alignment of the pieces in the bounce page.
const BOUNCE_ALIGN: usize = 16;

/// Takes the bounce page from the frame allocator, if not done yet; false if
/// no frame was to be had. Needs the VM lock free.
pub fn init_bounce_page() -> bool {
    let mut bounce = BOUNCE.lock();
    if bounce.is_none() {
        let Ok(pfn) = memory::with_frames(|frames| frames.alloc()) else {
            return false;
        };
        *bounce = Some(Bounce { pfn, used: 0, shared: 0 });
    }
    true
}

/// The kernel address of the start of a buffer.
fn address_of(buffer: NonNull<[u8]>) -> u64 {
    buffer.cast::<u8>().as_ptr() as u64
}

/// The physical address of `buffer` if it lies whole in the mapping of
/// physical memory.
fn physical_of(buffer: NonNull<[u8]>) -> Option<u64> {
    let start = address_of(buffer);
    let last = start.checked_add(buffer.len().checked_sub(1)? as u64)?;
    physical_address_of(last)?;
    physical_address_of(start)
}

/// The order of the smallest block of frames that holds `pages`.
fn order_of(pages: usize) -> u32 {
    pages.max(1).next_power_of_two().trailing_zeros()
}

// SAFETY: (1) `dma_alloc` returns zeroed, page-aligned frames fresh from the
// allocator, which hands each out once, through the mapping of physical
// memory, where nothing else refers to them until `dma_dealloc`. (2)
// `mmio_phys_to_virt` returns addresses from windows that map device
// registers alone (`map_device_memory` refuses RAM), uncached. (3) `share`
// returns the physical address of the very bytes of the buffer, or of a part
// of the bounce page that no other shared buffer holds until it is unshared.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let order = order_of(pages);
        let first = memory::try_with_vm(|vm| vm.frames_mut().alloc_contiguous(order));
        let Some(Ok(first)) = first else {
            log::warn!("virtio: no {pages} contiguous frames for DMA (or the VM lock is held)");
            return (0, NonNull::dangling());
        };
        for index in 0..1 << order {
            crate::arch::fill_frame(Pfn(first.0 + index), 0);
        }
        let address = (physical_offset() + first.addr()) as *mut u8;
        (first.addr(), NonNull::new(address).expect("dma_alloc: null frame address"))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        let first = Pfn::from_addr(paddr);
        match memory::try_with_vm(|vm| vm.frames_mut().free_contiguous(first, order_of(pages))) {
            Some(Ok(())) => 0,
            Some(Err(why)) => {
                log::error!("virtio: DMA frames at {paddr:#x} not freeable: {why}");
                -1
            }
            None => {
                log::error!("virtio: DMA frames at {paddr:#x} given back with the VM lock held");
                -1
            }
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let end = paddr + size as u64;
        let windows = WINDOWS.lock();
        let window = windows
            .iter()
            .flatten()
            .find(|w| w.physical <= paddr && end <= w.physical + w.length)
            .unwrap_or_else(|| panic!("mmio_phys_to_virt: {paddr:#x} is in no mapped BAR"));
        let address = window.address + (paddr - window.physical);
        NonNull::new(address as *mut u8).expect("mmio_phys_to_virt: null window")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        if let Some(physical) = physical_of(buffer) {
            return physical;
        }
        let mut bounce = BOUNCE.lock();
        let bounce = bounce.as_mut().expect("share: no bounce page (init_bounce_page)");
        let start = bounce.used.next_multiple_of(BOUNCE_ALIGN);
        assert!(start + buffer.len() <= PAGE_SIZE as usize, "share: the bounce page is full");
        bounce.used = start + buffer.len();
        bounce.shared += 1;
        let physical = bounce.pfn.addr() + start as u64;
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller gives a valid buffer no one else touches
            // meanwhile; the bounce bytes `start..used` are this buffer's
            // alone, in a frame the bounce page owns, mapped at the offset.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buffer.cast::<u8>().as_ptr(),
                    (physical_offset() + physical) as *mut u8,
                    buffer.len(),
                );
            }
        }
        physical
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        if physical_of(buffer).is_some() {
            return;
        }
        let mut bounce = BOUNCE.lock();
        let bounce = bounce.as_mut().expect("unshare: no bounce page");
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` is what `share` returned for this buffer: its
            // part of the bounce page, which the device has finished with;
            // the caller's buffer is valid and untouched by anyone else.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (physical_offset() + paddr) as *const u8,
                    buffer.cast::<u8>().as_ptr(),
                    buffer.len(),
                );
            }
        }
        bounce.shared -= 1;
        if bounce.shared == 0 {
            bounce.used = 0;
        }
    }
}
