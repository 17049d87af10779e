//! The kernel's physical memory: the one frame allocator, behind one lock.
//!
//! Physical memory is managed by the portable [`FrameAllocator`]; the machine
//! layer builds it at start-up from the boot memory map and stores it here.

use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

use crate::vm::frame::FrameAllocator;

/// The frame allocator, once start-up has built it.
pub static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

static PHYSICAL_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where all of physical memory is mapped.
pub fn set_physical_offset(offset: u64) {
    PHYSICAL_OFFSET.store(offset, Ordering::Relaxed);
}

/// The virtual address at which physical address 0 is mapped.
pub fn physical_offset() -> u64 {
    PHYSICAL_OFFSET.load(Ordering::Relaxed)
}

/// Runs `f` with the frame allocator. Panics if memory is not set up yet.
pub fn with_frames<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    let mut frames = FRAMES.lock();
    f(frames.as_mut().expect("with_frames: memory not initialised"))
}

/// Logs the frame counts and what the `VmPage` array costs.
pub fn log_summary() {
    use crate::vm::page::{PAGE_SIZE, VM_PAGE_BYTES};
    let counters = with_frames(|frames| frames.counters());
    let ram = counters.total as u64 * PAGE_SIZE;
    let metadata = (counters.total * VM_PAGE_BYTES) as u64;
    log::info!(
        "memory: {} frames ({} KiB) usable, {} free; VmPage {} B/frame = {} KiB ({}.{:02}% of usable RAM)",
        counters.total,
        ram / 1024,
        counters.free,
        VM_PAGE_BYTES,
        metadata / 1024,
        metadata * 100 / ram.max(1),
        metadata * 10000 / ram.max(1) % 100,
    );
}
