//! The kernel's memory: the one VM, with the frame allocator inside it, behind
//! one lock.
//!
//! Physical memory is managed by the portable [`FrameAllocator`], which the
//! machine layer builds at start-up from the boot memory map and hands to the
//! kernel's [`Vm`] together with the machine's MMU implementation. Everything
//! about memory — frames, address spaces, page tables — is reached through
//! [`with_vm`].
//!
//! # Locking rules
//! - The VM lock is never held while touching user memory: a page fault takes
//!   the lock itself (with `try_lock`, so breaking this rule is a panic naming it,
//!   not a hang).
//! - The heap may grow while the lock is held; its grow hook then draws on a
//!   reserve of frames that [`with_vm`] refills before it releases the lock (see
//!   `arch::x86_64::memory`).

use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

use crate::arch;
use crate::vm::frame::FrameAllocator;
use crate::vm::{Vm, VmError};

/// The kernel's VM: the portable VM on this machine's MMU.
pub type KernelVm = Vm<'static, arch::MachineMmu>;

/// The VM, once start-up has built it.
pub static VM: Mutex<Option<KernelVm>> = Mutex::new(None);

static PHYSICAL_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where all of physical memory is mapped.
pub fn set_physical_offset(offset: u64) {
    PHYSICAL_OFFSET.store(offset, Ordering::Relaxed);
}

/// The virtual address at which physical address 0 is mapped.
pub fn physical_offset() -> u64 {
    PHYSICAL_OFFSET.load(Ordering::Relaxed)
}

static PHYSICAL_END: AtomicU64 = AtomicU64::new(0);

/// Records where the mapping of physical memory ends (physical address).
pub fn set_physical_end(end: u64) {
    PHYSICAL_END.store(end, Ordering::Relaxed);
}

/// The physical address that the kernel address `address` reaches, if it lies
/// in the mapping of physical memory (heap, stacks and the kernel image lie
/// elsewhere).
pub fn physical_address_of(address: u64) -> Option<u64> {
    address
        .checked_sub(physical_offset())
        .filter(|physical| *physical < PHYSICAL_END.load(Ordering::Relaxed))
}

/// Runs `f` with the VM locked, then refills the heap's frame reserve. Panics if
/// memory is not set up yet. `f` must not touch user memory.
pub fn with_vm<R>(f: impl FnOnce(&mut KernelVm) -> R) -> R {
    let mut vm = VM.lock();
    let _hold = crate::lockstat::VM_LOCK.start();
    let vm = vm.as_mut().expect("with_vm: memory not initialised");
    vm.enter();
    // Before as well as after: `f` then sees frame counts the refill will not
    // change behind its back.
    arch::refill_heap_reserve(vm.frames_mut());
    let result = f(vm);
    arch::refill_heap_reserve(vm.frames_mut());
    result
}

/// Like [`with_vm`], for work a process asked for that allocates kernel heap:
/// first makes sure `heap` bytes of heap are free (growing it from the frame
/// allocator), and fails with `OutOfMemory` without running `f` if they cannot
/// be had. Heap allocations have no error path (`BTreeMap::insert`), so this is
/// what turns "the kernel heap is exhausted" into an error that unwinds instead
/// of a panic; `heap` must bound what `f` allocates.
///
/// A VM operation that fails changes nothing, so one that runs out of frames
/// is tried again after reclaim (see `vm::reclaim`), while reclaim finds some.
pub fn with_vm_room<R>(
    heap: usize,
    mut f: impl FnMut(&mut KernelVm) -> Result<R, VmError>,
) -> Result<R, VmError> {
    let mut vm = VM.lock();
    let _hold = crate::lockstat::VM_LOCK.start();
    let vm = vm.as_mut().expect("with_vm_room: memory not initialised");
    vm.enter();
    let roomy = arch::refill_heap_reserve(vm.frames_mut()) && heap <= arch::HEAP_HEADROOM;
    if !roomy && !heap_room_or_reclaim(vm, heap) {
        log::warn!("kernel heap: {heap} bytes needed, not to be had: refused");
        return Err(VmError::OutOfMemory);
    }
    // The reserve was just filled: only a retry, after reclaim, refills it.
    let mut retry = false;
    let result = vm.retry_after_reclaim(RECLAIM_ON_FAILURE, |vm| {
        if retry {
            arch::refill_heap_reserve(vm.frames_mut());
        }
        retry = true;
        f(vm)
    });
    arch::refill_heap_reserve(vm.frames_mut());
    result
}

/// Frames a call that ran out reclaims each time before it tries again.
const RECLAIM_ON_FAILURE: usize = 64;

/// Makes sure `heap` bytes of kernel heap are free, growing the heap; if
/// there are no frames to grow it with, reclaims some (see `vm::reclaim`)
/// and tries again. False if they cannot be had.
pub fn heap_room_or_reclaim(vm: &mut KernelVm, heap: usize) -> bool {
    let grown = |vm: &mut KernelVm| {
        if arch::ensure_heap_free(vm.frames_mut(), heap) {
            Ok(())
        } else {
            Err(VmError::OutOfMemory)
        }
    };
    vm.retry_after_reclaim(heap.div_ceil(4096) + 8, grown).is_ok()
}

/// The page daemon's turn, for the idle task: if free frames are below the
/// low watermark, reclaims up to the high one (bounded work). Interrupts are
/// as the idle task has them: on in the boot processor's, off in the other
/// processors' (the VM lock is not one an interrupt handler takes either
/// way). Returns whether it freed anything.
pub fn page_daemon() -> bool {
    let Some(mut vm) = VM.try_lock() else { return false };
    let _hold = crate::lockstat::VM_LOCK.start();
    let Some(vm) = vm.as_mut() else { return false };
    vm.enter();
    let freed = vm.balance();
    arch::refill_heap_reserve(vm.frames_mut());
    freed > 0
}

/// Like [`with_vm`], but `None` instead of waiting if the lock is held (or the
/// VM does not exist yet): for the page-fault handler.
pub fn try_with_vm<R>(f: impl FnOnce(&mut KernelVm) -> R) -> Option<R> {
    let mut vm = VM.try_lock()?;
    let _hold = crate::lockstat::VM_LOCK.start();
    let vm = vm.as_mut()?;
    vm.enter();
    let result = f(vm);
    arch::refill_heap_reserve(vm.frames_mut());
    Some(result)
}

/// Runs `f` with the frame allocator. Panics if memory is not set up yet.
pub fn with_frames<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    with_vm(|vm| f(vm.frames_mut()))
}

/// Applies the command line's page-table options (`pt_cache`, `chaos`,
/// `tlb_check`).
pub fn configure_page_tables(options: &crate::cmdline::Options) {
    let (capacity, pcid) = with_vm(|vm| {
        let mmu = vm.mmu_mut();
        mmu.set_capacity(options.pt_cache);
        mmu.set_chaos_interval(options.chaos);
        mmu.set_tlb_check(options.tlb_check);
        (mmu.capacity(), mmu.has_pcid())
    });
    let pcid = if pcid { "on" } else { "off" };
    if options.tlb_check {
        log::info!("page tables: every CR3 load checked against a shadow TLB");
    }
    match options.chaos {
        0 => log::info!("page tables: cache of {capacity} address spaces, PCID {pcid}"),
        every => log::info!(
            "page tables: cache of {capacity} address spaces, PCID {pcid}, chaos every {every} faults"
        ),
    }
}

/// Applies the command line's `frame_cache`: how many free frames each
/// processor keeps for itself (see `vm::frame::cache`).
pub fn configure_frames(options: &crate::cmdline::Options) {
    with_vm(|vm| vm.frames_mut().set_frame_caches(options.frame_cache));
    match options.frame_cache {
        0 => log::info!("frames: no processor caches"),
        limit => log::info!("frames: each processor caches up to {limit} free frames"),
    }
}

/// Slots of the compressed pool per frame it may hold: pages compress to a
/// quarter of a page or less often enough (zero-filled ones take no frame).
/// Each slot costs 18 bytes of tables (the pool's and the VM's).
const POOL_SLOTS_PER_FRAME: usize = 4;

/// Attaches the swap devices the machine has and the command line allows:
/// the compressed pool first (cheap), then the swap disk the runner's
/// `--swap` attached, if start-up found one.
pub fn configure_swap(options: &crate::cmdline::Options) {
    if options.swap_pool > 0 {
        let total = with_vm(|vm| vm.frames().counters().total);
        let capacity = total * usize::from(options.swap_pool) / 100;
        let slots = u32::try_from(capacity * POOL_SLOTS_PER_FRAME).unwrap_or(u32::MAX / 2);
        match crate::swap::CompressedPool::new(capacity, slots) {
            Ok(pool) => match attach(alloc::boxed::Box::new(pool), slots) {
                None => log::info!(
                    "swap: compressed pool of at most {} KiB ({}% of memory), {slots} slots",
                    capacity * 4,
                    options.swap_pool
                ),
                Some((error, _)) => log::warn!("swap: the pool cannot be attached: {error}"),
            },
            Err(error) => log::warn!("swap: no compressed pool: {error}"),
        }
    }
    let disk = if options.swap_disk { crate::drivers::virtio_blk::take_swap_disk() } else { None };
    if let Some(disk) = disk {
        let slots = crate::vm::SwapDevice::slots(&disk);
        match attach(alloc::boxed::Box::new(disk), slots) {
            None => log::info!("swap: disk of {} MiB attached", slots / 256),
            Some((error, device)) => {
                log::warn!("swap: the disk cannot be attached: {error}");
                // Dropped without the VM lock: its DMA frames go back through it.
                drop(device);
            }
        }
    }
}

/// Attaches a swap device of `slots` slots, with room in the heap for the
/// VM's tables of them; the device comes back if it cannot be attached.
fn attach(
    device: alloc::boxed::Box<dyn crate::vm::SwapDevice>,
    slots: u32,
) -> Option<(VmError, alloc::boxed::Box<dyn crate::vm::SwapDevice>)> {
    let mut device = Some(device);
    let mut refused = None;
    let room = slots as usize * crate::vm::swap::SLOT_TABLE_BYTES + 4096;
    // Tried again after reclaim if it runs out: the device refused last
    // time is the one to attach.
    let result = with_vm_room(room, |vm| {
        let next = device.take().or_else(|| refused.take()).expect("attach: the device");
        vm.attach_swap(next).map_err(|(error, back)| {
            refused = Some(back);
            error
        })
    });
    match (result, refused) {
        (Ok(()), _) => None,
        (Err(error), Some(device)) => Some((error, device)),
        (Err(error), None) => device.map(|device| (error, device)),
    }
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

/// Logs what the VM and the page tables have done (at power-off).
pub fn log_statistics() {
    let (vm, tables, free) =
        with_vm(|vm| (vm.statistics(), vm.mmu().statistics(), vm.frames().counters().free));
    log::info!(
        "vm: {} faults ({} rebuild, {} zero-fill, {} copy-on-write), {} free frames",
        vm.faults,
        vm.rebuild_faults,
        vm.zero_fills,
        vm.cow_copies,
        free
    );
    log::info!(
        "page tables: {} pages held ({} roots), {} activations, {} switches, {} evictions, \
         {} reclaims, {} PCID flushes, {} TLB flushes, {} invlpg, {} chaos discards",
        tables.table_pages,
        tables.roots,
        tables.activations,
        tables.switches,
        tables.evictions,
        tables.reclaims,
        tables.pcid_flushes,
        tables.tlb_flushes,
        tables.page_invalidations,
        tables.chaos_discards,
    );
    let caches = with_vm(|vm| vm.frames().cache_statistics());
    log::info!("frame caches: {caches}");
    if let Some(holds) = crate::lockstat::VM_LOCK.summary() {
        log::info!("vm lock: {holds}");
    }
}
