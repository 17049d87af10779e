//! The page store under the real page tables: fork shares chunks and copies
//! no frame, the parent is write-protected per page-table page, the child
//! reads its inheritance with a fault per chunk, and running out of frames
//! or heap in the middle of a fork or of a first write to a shared chunk is
//! an error that changes nothing. Under QEMU with a shadow TLB, with one
//! shared root in chaos mode, and under Bochs (PCIDs) with the shadow TLB.
//! Without swap (`swap_pool=0`): running out of frames is the point here.
//! run: --kernel-arg pt_cache=2 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --kernel-arg pt_cache=1 --kernel-arg chaos --kernel-arg swap_pool=0
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check --kernel-arg swap_pool=0
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::{Access, Mmu, PAGE_SIZE, Protection, SpaceId, VirtAddr, VmError};
use kernel_tests::{
    READ_WRITE, activate, destroy, hold_frames_but, read, release_frames, space_with, write,
};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    // The page-table roots, and room in the heap, before anything is counted.
    let space = with_vm(|vm| vm.create_space());
    activate(space);
    destroy(&[space]);
    let room: Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
    testing::run(&kernel::tests![
        fork_shares_chunks_and_the_first_write_copies_one,
        fork_out_of_frames_changes_nothing,
        fork_gives_the_child_none_of_the_parents_pinned_translations,
        first_write_to_a_shared_chunk_out_of_frames_changes_nothing,
        first_write_to_a_shared_chunk_out_of_heap_changes_nothing,
    ])
}

/// Where the tests map: 1 GiB up, 2 MiB aligned.
const BASE: u64 = 0x4000_0000;
/// Pages mapped and written: two chunks.
const PAGES: u64 = 1024;

fn at(page: u64) -> VirtAddr {
    VirtAddr(BASE + page * PAGE_SIZE)
}

/// A space with [`PAGES`] written pages (page `n` holds `n + 1`), active.
fn written_space() -> SpaceId {
    let space = space_with(BASE, PAGES);
    activate(space);
    (0..PAGES).for_each(|page| write(at(page), page + 1));
    space
}

/// Frames allocated now, less page-table pages.
fn data_frames() -> usize {
    with_vm(|vm| vm.frames().counters().allocated - vm.mmu().statistics().table_pages as usize)
}

fn fork_shares_chunks_and_the_first_write_copies_one() {
    let parent = written_space();
    let before = (data_frames(), with_vm(|vm| vm.statistics()));
    let child = with_vm(|vm| vm.fork(parent)).expect("fork");
    assert_eq!(data_frames(), before.0, "fork allocated frames");
    // The parent lost write on every page it still has a translation of
    // (with one root, or chaos, it may have none).
    with_vm(|vm| {
        for page in 0..PAGES {
            if let Some((_, rights)) = vm.mmu().query(parent, at(page)) {
                assert!(!rights.contains(Protection::WRITE), "page {page} still writable");
            }
        }
    });
    activate(child);
    (0..PAGES).for_each(|page| assert_eq!(read(at(page)), page + 1));
    let reads = with_vm(|vm| vm.statistics());
    let faults = reads.faults - before.1.faults;
    log::info!("child read {PAGES} inherited pages with {faults} faults");
    assert!(faults <= 2 * (PAGES / 512), "{faults} faults for {PAGES} pages");
    write(at(3), 99);
    let written = with_vm(|vm| vm.statistics());
    assert_eq!(written.chunk_copies - reads.chunk_copies, 1, "one chunk copied");
    assert_eq!(written.cow_copies - reads.cow_copies, 1, "one page copied");
    activate(parent);
    assert_eq!(read(at(3)), 4, "the child's write reached the parent");
    write(at(600), 7);
    activate(child);
    assert_eq!((read(at(3)), read(at(600))), (99, 601));
    destroy(&[parent, child]);
}

fn fork_out_of_frames_changes_nothing() {
    let parent = written_space();
    // A pinned region, whose pages fork copies: it runs out in the middle.
    let pinned = VirtAddr(BASE + 4 * PAGES * PAGE_SIZE);
    with_vm(|vm| {
        vm.map_anonymous(parent, kernel::vm::Placement::Exact(pinned), 64 * PAGE_SIZE, READ_WRITE)?;
        vm.pin(parent, pinned, 64 * PAGE_SIZE)
    })
    .expect("pinned region");
    let held = hold_frames_but(16);
    let (frames, spaces) = (data_frames(), with_vm(|vm| vm.spaces().count()));
    assert_eq!(with_vm(|vm| vm.fork(parent)), Err(VmError::OutOfMemory));
    assert_eq!((data_frames(), with_vm(|vm| vm.spaces().count())), (frames, spaces));
    release_frames(held);
    (0..PAGES).for_each(|page| assert_eq!(read(at(page)), page + 1));
    write(at(0), 5);
    destroy(&[parent]);
}

/// A pinned region covering a whole 2 MiB block: fork copies its pages for
/// the child, so the child must not get the parent's translations of them
/// (neither leaf by leaf nor as a whole table).
fn fork_gives_the_child_none_of_the_parents_pinned_translations() {
    let parent = written_space();
    let block = VirtAddr(BASE + 4 * PAGES * PAGE_SIZE);
    with_vm(|vm| {
        vm.map_anonymous(parent, kernel::vm::Placement::Exact(block), 512 * PAGE_SIZE, READ_WRITE)?;
        vm.pin(parent, block, 512 * PAGE_SIZE)
    })
    .expect("pinned block");
    (0..512).for_each(|page| write(VirtAddr(block.0 + page * PAGE_SIZE), 7));
    let child = with_vm(|vm| vm.fork(parent)).expect("fork");
    with_vm(|vm| {
        for page in 0..512 {
            let at = VirtAddr(block.0 + page * PAGE_SIZE);
            let (own, _) = vm.permitted_translation(child, at).expect("the child's copy");
            if let Some((mapped, _)) = vm.mmu().query(child, at) {
                assert_eq!(mapped, own, "page {page}: the child maps the parent's frame");
            }
        }
    });
    write(VirtAddr(block.0), 8);
    activate(child);
    assert_eq!(read(VirtAddr(block.0)), 7, "the child sees the parent's write");
    destroy(&[parent, child]);
}

/// A parent and a child sharing [`PAGES`] written pages; the child active.
fn forked_pair() -> (SpaceId, SpaceId) {
    let parent = written_space();
    let child = with_vm(|vm| vm.fork(parent)).expect("fork");
    activate(child);
    (parent, child)
}

/// The child's page 5 is still shared and reads as before.
fn still_shared(parent: SpaceId, child: SpaceId) {
    with_vm(|vm| {
        let (mine, rights) = vm.permitted_translation(child, at(5)).expect("resident");
        let (theirs, _) = vm.permitted_translation(parent, at(5)).expect("resident");
        assert_eq!(mine, theirs, "the page was copied");
        assert!(!rights.contains(Protection::WRITE), "a shared page may be written");
    });
    assert_eq!(read(at(5)), 6);
}

fn first_write_to_a_shared_chunk_out_of_frames_changes_nothing() {
    let (parent, child) = forked_pair();
    // Nothing idle for the fault to reclaim: the parent's page tables go now.
    with_vm(|vm| vm.reclaim(0));
    let held = hold_frames_but(0);
    let frames = data_frames();
    let fault = with_vm(|vm| vm.fault(child, at(5), Access::Write));
    assert_eq!(fault, Err(VmError::OutOfMemory));
    assert_eq!(data_frames(), frames);
    release_frames(held);
    still_shared(parent, child);
    write(at(5), 50);
    activate(parent);
    assert_eq!(read(at(5)), 6);
    destroy(&[parent, child]);
}

fn first_write_to_a_shared_chunk_out_of_heap_changes_nothing() {
    let (parent, child) = forked_pair();
    // Nothing idle for the fault to reclaim: the parent's page tables go now.
    with_vm(|vm| vm.reclaim(0));
    // Fewer free frames than one heap arena takes, so the heap cannot grow;
    // then every block the heap has left is taken, down to 64 bytes.
    let mut blocks: Vec<Box<[u8]>> = Vec::with_capacity(4096);
    let held = hold_frames_but(16);
    let fault = x86_64::instructions::interrupts::without_interrupts(|| {
        for size in [65_536, 4_096, 512, 64] {
            while blocks.len() < blocks.capacity() {
                let mut block = Vec::new();
                if block.try_reserve_exact(size).is_err() {
                    break;
                }
                block.resize(size, 0u8);
                blocks.push(block.into_boxed_slice());
            }
        }
        let fault = with_vm(|vm| vm.fault(child, at(5), Access::Write));
        blocks.clear();
        fault
    });
    drop(blocks);
    release_frames(held);
    assert_eq!(fault, Err(VmError::OutOfMemory), "the chunk copy found heap");
    still_shared(parent, child);
    write(at(5), 50);
    activate(parent);
    assert_eq!(read(at(5)), 6);
    destroy(&[parent, child]);
}
