//! x86_64 page tables as a discardable cache, driven through the kernel's VM:
//! kernel-created address spaces in the lower half, touched from kernel mode
//! through the checked user-memory accessors after `Vm::activate`. Booted with
//! one shared root, with 2 and 16 retained roots, with and without PCIDs, in
//! chaos mode, and on one, two (the default) and four processors, the others
//! idle (they take the heap's shootdowns); every test returns every frame it took.
//!
//! QEMU's TCG has no PCIDs, so the runs with them are Bochs's (`--bochs`, a
//! Haswell); `pcid_follows_the_processor` fails a run whose kernel does not use
//! PCIDs when the processor offers them. Those runs, and one without PCIDs, also
//! check every CR3 load against a shadow TLB (`tlb_check`) that keeps what an
//! emulator would drop.
//! Without swap (`swap_pool=0`): running out of frames is the point here.
//! run: --kernel-arg pt_cache=1 --kernel-arg swap_pool=0
//! run: --kernel-arg pt_cache=2 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --kernel-arg pt_cache=16 --kernel-arg swap_pool=0
//! run: --kernel-arg pt_cache=2 --kernel-arg chaos --kernel-arg swap_pool=0
//! run: --kernel-arg pt_cache=1 --kernel-arg chaos=3 --kernel-arg swap_pool=0
//! run: --smp 1 --kernel-arg pt_cache=2 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --smp 4 --kernel-arg pt_cache=2 --kernel-arg chaos --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --bochs --kernel-arg pt_cache=1 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --bochs --kernel-arg pt_cache=16 --kernel-arg tlb_check --kernel-arg swap_pool=0
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg chaos --kernel-arg tlb_check --kernel-arg swap_pool=0
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::paging::table;
use kernel::arch::paging::tlb::Tlb;
use kernel::arch::{self, user_memory};
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::{Mmu, PAGE_SIZE, PageFlags, Placement, Protection, SpaceId, VirtAddr, VmError};
use kernel_tests::{
    READ_WRITE, accounted_free, activate, change_behind_the_layers_back, destroy, read, space_with,
    write,
};
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::structures::paging::PageTableFlags;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up();
    testing::run(&kernel::tests![
        map_write_read,
        pcid_follows_the_processor,
        unmap_then_access_is_bad_address,
        write_protect_faults_on_write,
        changes_to_a_retained_space_apply_when_it_runs_again,
        fork_copies_on_write,
        shared_region_is_seen_by_both,
        round_robin_switching_keeps_data,
        retained_spaces_switch_without_faults,
        pinned_translations_survive_eviction,
        pinned_translations_keep_their_protection_through_eviction,
        many_changed_pages_flush_the_whole_root,
        capacity_changes_at_run_time,
        rebuild_faults_are_counted_apart,
        usage_bits_reach_the_page_records,
        usage_bits_set_while_a_walk_looks_are_kept,
        heap_grows_while_the_vm_lock_is_held,
        pressure_frees_idle_page_tables,
        unresolved_kernel_fault_panics_with_report,
    ])
}

/// Where test mappings go: 1 GiB up, so that several tables are needed.
const BASE: u64 = 0x4000_0000;

/// Makes the page-table roots and gives the heap room, so that what the tests
/// count afterwards is theirs alone.
fn warm_up() {
    let space = with_vm(|vm| vm.create_space());
    activate(space);
    with_vm(|vm| vm.destroy(space)).expect("destroy");
    let room: Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
    with_vm(|vm| {
        let mmu = vm.mmu();
        log::info!("capacity {}, PCID {}, chaos {}", mmu.capacity(), mmu.has_pcid(), mmu.chaos());
    });
}

/// The address of word `word` of page `page` above `start`.
fn at(start: u64, page: u64, word: u64) -> VirtAddr {
    VirtAddr(start + page * PAGE_SIZE + word * 8)
}

/// The value test data puts in `page` of `space` at `round`.
fn pattern(space: SpaceId, page: u64, round: u64) -> u64 {
    (u64::from(space.0) << 32) | (page << 8) | round
}

fn map_write_read() {
    let baseline = accounted_free();
    let space = space_with(BASE, 8);
    activate(space);
    for page in 0..8 {
        assert_eq!(read(at(BASE, page, 5)), 0, "fresh page {page} not zero");
        write(at(BASE, page, 0), pattern(space, page, 1));
    }
    for page in 0..8 {
        assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1));
    }
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

fn unmap_then_access_is_bad_address() {
    let baseline = accounted_free();
    let space = space_with(BASE, 4);
    activate(space);
    (0..4).for_each(|page| write(at(BASE, page, 0), pattern(space, page, 1)));
    (0..4).for_each(|page| assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1)));
    with_vm(|vm| vm.unmap(space, VirtAddr(BASE + PAGE_SIZE), 2 * PAGE_SIZE)).expect("unmap");
    for page in [1, 2] {
        assert_eq!(user_memory::read_u64(at(BASE, page, 0)), Err(VmError::BadAddress));
        assert_eq!(user_memory::write_u64(at(BASE, page, 0), 1), Err(VmError::BadAddress));
    }
    for page in [0, 3] {
        assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1));
    }
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

fn write_protect_faults_on_write() {
    let baseline = accounted_free();
    let space = space_with(BASE, 2);
    activate(space);
    write(at(BASE, 0, 0), 41);
    with_vm(|vm| vm.protect(space, VirtAddr(BASE), PAGE_SIZE, Protection::READ)).expect("protect");
    assert_eq!(read(at(BASE, 0, 0)), 41);
    assert_eq!(user_memory::write_u64(at(BASE, 0, 0), 1), Err(VmError::Protection));
    write(at(BASE, 1, 0), 7);
    with_vm(|vm| vm.protect(space, VirtAddr(BASE), PAGE_SIZE, READ_WRITE)).expect("protect");
    write(at(BASE, 0, 0), 42);
    assert_eq!(read(at(BASE, 0, 0)), 42);
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

/// PCIDs are used exactly when the processor offers them (CPUID.01H:ECX bit
/// 17): CR4.PCIDE is on and every cached root runs under a PCID of its own. A
/// retained space that did not change since it last ran is loaded keeping its
/// PCID's translations; one changed meanwhile has its PCID flushed as it loads,
/// and the change holds.
fn pcid_follows_the_processor() {
    let offered = core::arch::x86_64::__cpuid(1).ecx & (1 << 17) != 0;
    let (pcid, capacity, chaos) =
        with_vm(|vm| (vm.mmu().has_pcid(), vm.mmu().capacity(), vm.mmu().chaos()));
    log::info!("PCIDs offered {offered}, used {pcid}");
    assert_eq!(pcid, offered, "PCIDs are used if and only if the processor has them");
    assert_eq!(Cr4::read().contains(Cr4Flags::PCID), offered, "CR4.PCIDE");
    let baseline = accounted_free();
    let (first, second) = (space_with(BASE, 2), space_with(BASE, 2));
    activate(first);
    write(at(BASE, 0, 0), pattern(first, 0, 1));
    let first_pcid = Cr3::read_raw().1;
    activate(second);
    (0..2).for_each(|page| write(at(BASE, page, 0), pattern(second, page, 1)));
    let second_pcid = Cr3::read_raw().1;
    if !offered {
        assert_eq!((first_pcid, second_pcid), (0, 0), "CR3's low bits without PCIDs");
    } else {
        assert_ne!(first_pcid, 0, "PCID 0 is the boot root's");
        assert_ne!(second_pcid, 0, "PCID 0 is the boot root's");
        if capacity == 1 {
            assert_eq!(first_pcid, second_pcid, "one slot, one PCID");
        } else {
            assert_ne!(first_pcid, second_pcid, "retained roots share a PCID");
        }
    }
    if offered && capacity >= 2 && !chaos {
        let flushes = || with_vm(|vm| vm.mmu().statistics().pcid_flushes);
        let before = flushes();
        activate(first);
        assert_eq!(Cr3::read_raw().1, first_pcid, "the slot's PCID changed");
        assert_eq!(flushes(), before, "an unchanged retained slot was flushed");
        assert_eq!(read(at(BASE, 0, 0)), pattern(first, 0, 1));
        with_vm(|vm| vm.unmap(second, VirtAddr(BASE), PAGE_SIZE)).expect("unmap");
        activate(second);
        assert_eq!(flushes(), before + 1, "a changed retained slot was not flushed");
        assert_eq!(user_memory::read_u64(at(BASE, 0, 0)), Err(VmError::BadAddress));
        assert_eq!(read(at(BASE, 1, 0)), pattern(second, 1, 1));
    }
    destroy(&[first, second]);
    assert_eq!(accounted_free(), baseline);
}

/// Changes made to a space while another runs (its slot retained, its PCID's
/// cached translations possibly still there) hold when it runs again.
fn changes_to_a_retained_space_apply_when_it_runs_again() {
    let baseline = accounted_free();
    let (first, second) = (space_with(BASE, 3), space_with(BASE, 1));
    activate(first);
    (0..3).for_each(|page| write(at(BASE, page, 0), pattern(first, page, 1)));
    activate(second);
    write(at(BASE, 0, 0), pattern(second, 0, 1));
    with_vm(|vm| {
        vm.protect(first, VirtAddr(BASE), PAGE_SIZE, Protection::READ).expect("protect");
        vm.unmap(first, VirtAddr(BASE + PAGE_SIZE), PAGE_SIZE).expect("unmap");
    });
    activate(first);
    assert_eq!(user_memory::write_u64(at(BASE, 0, 0), 1), Err(VmError::Protection));
    assert_eq!(read(at(BASE, 0, 0)), pattern(first, 0, 1));
    assert_eq!(user_memory::read_u64(at(BASE, 1, 0)), Err(VmError::BadAddress));
    assert_eq!(read(at(BASE, 2, 0)), pattern(first, 2, 1));
    activate(second);
    assert_eq!(read(at(BASE, 0, 0)), pattern(second, 0, 1));
    destroy(&[first, second]);
    assert_eq!(accounted_free(), baseline);
}

fn cow_copies() -> u64 {
    with_vm(|vm| vm.statistics().cow_copies)
}

fn fork_copies_on_write() {
    let baseline = accounted_free();
    let parent = space_with(BASE, 4);
    activate(parent);
    (0..4).for_each(|page| write(at(BASE, page, 0), pattern(parent, page, 1)));
    let child = with_vm(|vm| vm.fork(parent)).expect("fork");
    let copies = cow_copies();
    activate(child);
    (0..4).for_each(|page| assert_eq!(read(at(BASE, page, 0)), pattern(parent, page, 1)));
    assert_eq!(cow_copies(), copies, "reading copied a page");
    write(at(BASE, 0, 0), pattern(child, 0, 2));
    assert_eq!(cow_copies(), copies + 1, "the child's first write copies");
    activate(parent);
    assert_eq!(read(at(BASE, 0, 0)), pattern(parent, 0, 1), "parent sees the child's write");
    write(at(BASE, 1, 0), pattern(parent, 1, 2));
    assert_eq!(cow_copies(), copies + 2, "the parent's write copies");
    activate(child);
    assert_eq!(read(at(BASE, 0, 0)), pattern(child, 0, 2));
    assert_eq!(read(at(BASE, 1, 0)), pattern(parent, 1, 1), "child sees the parent's write");
    destroy(&[child]);
    activate(parent);
    write(at(BASE, 2, 0), pattern(parent, 2, 2));
    assert_eq!(cow_copies(), copies + 2, "the last holder writes without copying");
    assert_eq!(read(at(BASE, 0, 0)), pattern(parent, 0, 1));
    destroy(&[parent]);
    assert_eq!(accounted_free(), baseline);
}

fn shared_region_is_seen_by_both() {
    let baseline = accounted_free();
    let (first, second) = with_vm(|vm| (vm.create_space(), vm.create_space()));
    with_vm(|vm| {
        let object = vm.create_shared(2 * PAGE_SIZE).expect("create_shared");
        for (space, start) in [(first, BASE), (second, 2 * BASE)] {
            let placement = Placement::Exact(VirtAddr(start));
            vm.map_shared(space, placement, object, 0, 2 * PAGE_SIZE, READ_WRITE).expect("map");
        }
        vm.close_shared(object).expect("close_shared");
    });
    activate(first);
    write(at(BASE, 1, 3), 0x5ba7ed);
    activate(second);
    assert_eq!(read(at(2 * BASE, 1, 3)), 0x5ba7ed);
    write(at(2 * BASE, 0, 0), 99);
    activate(first);
    assert_eq!(read(at(BASE, 0, 0)), 99);
    destroy(&[first, second]);
    assert_eq!(accounted_free(), baseline);
}

fn round_robin_switching_keeps_data() {
    let baseline = accounted_free();
    let spaces: Vec<SpaceId> = (0..20).map(|index| space_with(BASE * (1 + index % 3), 4)).collect();
    for round in 1..=3 {
        for (index, &space) in spaces.iter().enumerate() {
            let start = BASE * (1 + index as u64 % 3);
            activate(space);
            for page in 0..4 {
                let expected = if round == 1 { 0 } else { pattern(space, page, round - 1) };
                assert_eq!(read(at(start, page, 0)), expected, "space {space:?} page {page}");
                write(at(start, page, 0), pattern(space, page, round));
            }
        }
    }
    destroy(&spaces);
    assert_eq!(accounted_free(), baseline);
}

/// As many spaces as the cache holds (at most 4) switch without a single fault
/// once their pages are in; with PCIDs, without a single TLB flush either. In
/// chaos mode every activation discards the activated space's translations, so
/// each space faults every one of its pages back: only rebuild faults, never a
/// page zero-filled or copied again, and the data holds.
fn retained_spaces_switch_without_faults() {
    let baseline = accounted_free();
    let (capacity, pcid, chaos) =
        with_vm(|vm| (vm.mmu().capacity(), vm.mmu().has_pcid(), vm.mmu().chaos()));
    let count = capacity.min(4) as u64;
    let spaces: Vec<SpaceId> = (0..count).map(|_| space_with(BASE, 16)).collect();
    let touch_all = |round: u64| {
        for &space in &spaces {
            activate(space);
            for page in 0..16 {
                let expected = if round == 1 { 0 } else { pattern(space, page, round - 1) };
                assert_eq!(read(at(BASE, page, 0)), expected, "space {space:?} page {page}");
                write(at(BASE, page, 0), pattern(space, page, round));
            }
        }
    };
    touch_all(1);
    let before = with_vm(|vm| (vm.statistics(), vm.mmu().statistics()));
    touch_all(2);
    let (vm_after, tables_after) = with_vm(|vm| (vm.statistics(), vm.mmu().statistics()));
    let faults = vm_after.faults - before.0.faults;
    let rebuilds = vm_after.rebuild_faults - before.0.rebuild_faults;
    let flushes = tables_after.tlb_flushes - before.1.tlb_flushes;
    let switches = tables_after.switches - before.1.switches;
    log::info!(
        "{count} spaces: {faults} faults ({rebuilds} rebuilds), {switches} switches, \
         {flushes} TLB flushes"
    );
    if chaos {
        // Every space's pages come back by rebuild faults (the first read
        // of a chunk maps the rest ahead) or by the restore of its working
        // set at activation: at least one page per space.
        let restored = vm_after.pages_restored - before.0.pages_restored;
        assert!(
            faults + restored >= count,
            "chaos discarded at activation, yet {faults} faults and {restored} pages restored"
        );
        assert_eq!(rebuilds, faults, "a fault under chaos that was not a rebuild");
        assert_eq!(vm_after.zero_fills, before.0.zero_fills, "a page zero-filled again");
        assert_eq!(vm_after.cow_copies, before.0.cow_copies, "a page copied again");
    } else {
        assert_eq!(faults, 0, "retained spaces faulted");
        if count > 1 {
            assert_eq!(flushes, if pcid { 0 } else { switches }, "TLB flushes");
        }
    }
    destroy(&spaces);
    assert_eq!(accounted_free(), baseline);
}

fn pinned_translations_survive_eviction() {
    let baseline = accounted_free();
    let pinned = space_with(BASE, 2);
    activate(pinned);
    write(at(BASE, 0, 0), 11);
    with_vm(|vm| vm.pin(pinned, VirtAddr(BASE), 2 * PAGE_SIZE)).expect("pin");
    let others: Vec<SpaceId> = (0..17).map(|_| space_with(BASE, 1)).collect();
    for &space in &others {
        activate(space);
        write(at(BASE, 0, 0), 1);
    }
    with_vm(|vm| {
        vm.discard(pinned).expect("discard");
        for page in 0..2 {
            let translation = vm.mmu().query(pinned, VirtAddr(BASE + page * PAGE_SIZE));
            assert!(translation.is_some(), "pinned translation of page {page} lost");
        }
    });
    activate(pinned);
    let faults = with_vm(|vm| vm.statistics().faults);
    assert_eq!(read(at(BASE, 0, 0)), 11);
    write(at(BASE, 1, 0), 12);
    assert_eq!(with_vm(|vm| vm.statistics().faults), faults, "pinned pages faulted");
    with_vm(|vm| vm.unpin(pinned, VirtAddr(BASE), 2 * PAGE_SIZE)).expect("unpin");
    destroy(&others);
    destroy(&[pinned]);
    assert_eq!(accounted_free(), baseline);
}

/// Faults resolved so far.
fn faults() -> u64 {
    with_vm(|vm| vm.statistics().faults)
}

/// Runs each of `others` (as many as the cache holds) so that `space`, run
/// before them all, loses its slot and its page tables.
fn evict(space: SpaceId, others: &[SpaceId]) {
    for &other in others {
        activate(other);
        write(at(BASE, 0, 0), 1);
    }
    assert!(!with_vm(|vm| vm.mmu().has_slot(space)), "{space:?} kept its slot");
}

/// Whether `space` has a translation of `page` above [`BASE`] that allows
/// writing, asserting that it has one at all.
fn writable_translation(space: SpaceId, page: u64) -> bool {
    let translation = with_vm(|vm| vm.mmu().query(space, at(BASE, page, 0)));
    let (_, protection) = translation.unwrap_or_else(|| panic!("page {page} lost its pin"));
    protection.contains(Protection::WRITE)
}

/// A protect that takes rights from pinned pages takes them from the record the
/// pinned translations are put back from when their space gets page tables
/// again: after an eviction they come back as the protect left them, and work
/// without a fault. Rights given back return at the next fault, pinned again,
/// and hold through the next eviction.
fn pinned_translations_keep_their_protection_through_eviction() {
    let baseline = accounted_free();
    let capacity = with_vm(|vm| vm.mmu().capacity());
    let pinned = space_with(BASE, 2);
    let others: Vec<SpaceId> = (0..capacity).map(|_| space_with(BASE, 1)).collect();
    activate(pinned);
    write(at(BASE, 0, 0), 21);
    write(at(BASE, 1, 0), 22);
    let first_page = VirtAddr(BASE);
    with_vm(|vm| vm.pin(pinned, first_page, 2 * PAGE_SIZE)).expect("pin");
    with_vm(|vm| vm.protect(pinned, first_page, PAGE_SIZE, Protection::READ)).expect("protect");
    evict(pinned, &others);
    assert!(!writable_translation(pinned, 0), "the record kept the right protect took");
    assert!(writable_translation(pinned, 1), "the record lost a right");
    activate(pinned);
    assert!(!writable_translation(pinned, 0), "put back with the right protect took");
    let before = faults();
    assert_eq!(read(at(BASE, 0, 0)), 21);
    write(at(BASE, 1, 0), 23);
    assert_eq!(faults(), before, "pinned pages faulted after the eviction");
    assert_eq!(user_memory::write_u64(at(BASE, 0, 0), 1), Err(VmError::Protection));
    with_vm(|vm| vm.protect(pinned, first_page, PAGE_SIZE, READ_WRITE)).expect("protect");
    write(at(BASE, 0, 0), 24);
    evict(pinned, &others);
    assert!(writable_translation(pinned, 0), "the right given back was not recorded");
    activate(pinned);
    let before = faults();
    write(at(BASE, 0, 0), 25);
    assert_eq!(read(at(BASE, 1, 0)), 23);
    assert_eq!(faults(), before, "pinned pages faulted after the second eviction");
    with_vm(|vm| vm.unpin(pinned, first_page, 2 * PAGE_SIZE)).expect("unpin");
    destroy(&others);
    destroy(&[pinned]);
    assert_eq!(accounted_free(), baseline);
}

/// Pages of the loaded root that one change invalidates one by one (`invlpg`);
/// past this many (`INVALIDATE_LIMIT` in `paging/slots.rs`) the whole PCID is
/// flushed instead (without PCIDs, CR3 is reloaded).
const INVALIDATE_LIMIT: u64 = 32;

/// A protect of more pages of the loaded root than are invalidated one by one
/// flushes the whole root: the first pages are invalidated, then the rest go
/// with one flush, and the change holds. The pages are loaded into the root
/// before the change, so that with `tlb_check` (and a retained root) the shadow
/// holds all of them as cached, and the next switch checks nothing stale was
/// left. Under chaos fewer pages may be present; the counts follow.
fn many_changed_pages_flush_the_whole_root() {
    const PAGES: u64 = INVALIDATE_LIMIT + 8;
    let baseline = accounted_free();
    let (space, other) = (space_with(BASE, PAGES), space_with(BASE, 1));
    activate(space);
    (0..PAGES).for_each(|page| write(at(BASE, page, 0), pattern(space, page, 1)));
    activate(other);
    activate(space);
    (0..PAGES).for_each(|page| assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1)));
    let present = with_vm(|vm| {
        let translated = |&page: &u64| vm.mmu().query(space, at(BASE, page, 0)).is_some();
        (0..PAGES).filter(translated).count() as u64
    });
    let before = with_vm(|vm| vm.mmu().statistics());
    let range = PAGES * PAGE_SIZE;
    with_vm(|vm| vm.protect(space, VirtAddr(BASE), range, Protection::READ)).expect("protect");
    let after = with_vm(|vm| vm.mmu().statistics());
    activate(other);
    log::info!("{present} of {PAGES} pages present when protected");
    if !with_vm(|vm| vm.mmu().chaos()) {
        assert_eq!(present, PAGES, "pages lost their translations without chaos");
    }
    let invalidations = after.page_invalidations - before.page_invalidations;
    assert_eq!(invalidations, present.min(INVALIDATE_LIMIT), "pages invalidated one by one");
    let flushes = after.tlb_flushes - before.tlb_flushes;
    assert_eq!(flushes, u64::from(present > INVALIDATE_LIMIT), "flushes of the whole root");
    activate(space);
    for page in 0..PAGES {
        assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1));
        assert_eq!(user_memory::write_u64(at(BASE, page, 0), 1), Err(VmError::Protection));
    }
    destroy(&[space, other]);
    assert_eq!(accounted_free(), baseline);
}

/// The cache size can change while spaces run; their data stays, and the
/// number of roots follows at the next activation.
fn capacity_changes_at_run_time() {
    let original = with_vm(|vm| vm.mmu().capacity());
    let baseline = accounted_free();
    let spaces: Vec<SpaceId> = (0..4).map(|_| space_with(BASE, 2)).collect();
    for (round, capacity) in [3, 1, 4, 2, original].into_iter().enumerate() {
        with_vm(|vm| vm.mmu_mut().set_capacity(capacity));
        let round = round as u64 + 1;
        for &space in &spaces {
            activate(space);
            for page in 0..2 {
                let expected = if round == 1 { 0 } else { pattern(space, page, round - 1) };
                assert_eq!(read(at(BASE, page, 0)), expected, "capacity {capacity}");
                write(at(BASE, page, 0), pattern(space, page, round));
            }
        }
        let roots = with_vm(|vm| vm.mmu().statistics().roots);
        assert_eq!(roots, capacity as u64, "roots after switching at capacity {capacity}");
    }
    destroy(&spaces);
    assert_eq!(accounted_free(), baseline);
}

fn rebuild_faults_are_counted_apart() {
    let baseline = accounted_free();
    let space = space_with(BASE, 16);
    activate(space);
    (0..16).for_each(|page| write(at(BASE, page, 0), pattern(space, page, 1)));
    let tables = with_vm(|vm| vm.mmu().table_pages_of(space));
    log::info!("16 pages touched: {tables} page-table pages below the root");
    let before = with_vm(|vm| (vm.statistics(), vm.mmu().statistics().mapped_ahead));
    with_vm(|vm| vm.discard(space)).expect("discard");
    (0..16).for_each(|page| assert_eq!(read(at(BASE, page, 0)), pattern(space, page, 1)));
    let after = with_vm(|vm| (vm.statistics(), vm.mmu().statistics().mapped_ahead));
    // The first read rebuilds its page and maps the other 15 ahead.
    let rebuilds = after.0.rebuild_faults - before.0.rebuild_faults;
    let ahead = after.1 - before.1;
    log::info!("16 pages read back: {rebuilds} rebuild faults, {ahead} translations made ahead");
    assert!(rebuilds >= 1, "rebuilds not counted");
    assert!(rebuilds + ahead >= 16, "{rebuilds} rebuilds and {ahead} made ahead for 16 pages");
    assert_eq!(after.0.zero_fills, before.0.zero_fills, "rebuilding zero-filled");
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

/// The processor's accessed and dirty bits end up in the pages' records, both
/// when harvested and when the translations are forgotten.
fn usage_bits_reach_the_page_records() {
    let baseline = accounted_free();
    let space = space_with(BASE, 4);
    activate(space);
    write(at(BASE, 0, 0), 1);
    assert_eq!(read(at(BASE, 1, 0)), 0);
    write(at(BASE, 2, 0), 1);
    let flags = |page: u64| {
        with_vm(|vm| {
            let (pfn, _) = vm.permitted_translation(space, at(BASE, page, 0)).expect("resident");
            vm.frames().flags(pfn)
        })
    };
    with_vm(|vm| vm.harvest(space)).expect("harvest");
    assert!(flags(0).contains(PageFlags::REFERENCED | PageFlags::DIRTY), "written page");
    assert!(flags(1).contains(PageFlags::REFERENCED), "read page not referenced");
    assert!(!flags(1).contains(PageFlags::DIRTY), "read page dirty");
    write(at(BASE, 3, 0), 1);
    with_vm(|vm| vm.discard(space)).expect("discard");
    assert!(flags(3).contains(PageFlags::DIRTY), "dirty bit lost by discard");
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

/// A usage bit the processor sets in a leaf while a walk of the page-table
/// layer looks at it (as another processor writing the page does) is not
/// lost: the walk stores with a compare-exchange and looks again. Here the
/// dirty bit is set from inside the walk's visitor, between its look and
/// the store: a plain store would wipe it, and reclaim would then take a
/// written page for clean and keep an older copy.
fn usage_bits_set_while_a_walk_looks_are_kept() {
    let baseline = accounted_free();
    let space = space_with(BASE, 1);
    activate(space);
    let address = VirtAddr(BASE);
    write(address, 1);
    let root = Tlb::current_root();
    let (accessed, dirty) = (PageTableFlags::ACCESSED.bits(), PageTableFlags::DIRTY.bits());
    // Used but clean (as after the harvest that preceded a page-out): a
    // harvest has the accessed bit to clear, so it stores.
    with_vm(|vm| vm.harvest(space)).expect("harvest");
    change_behind_the_layers_back(root, address, |leaf| leaf | accessed);
    let mut seen = Vec::new();
    let mut visit = |_address: u64, leaf: u64| {
        if seen.is_empty() {
            change_behind_the_layers_back(root, address, |leaf| leaf | dirty);
        }
        seen.push(leaf);
        table::without_usage(leaf)
    };
    // Not under the VM lock, which the visitor's change takes: nothing else
    // uses this space.
    table::walk(
        root,
        BASE,
        BASE + PAGE_SIZE,
        &mut table::Walker { visit: &mut visit, emptied: None },
    );
    let left = table::lookup(root, BASE);
    let is_dirty = |leaf: &u64| table::usage(*leaf).1;
    assert!(
        seen.iter().any(is_dirty) || is_dirty(&left),
        "the dirty bit set during the walk was lost (the walk saw {seen:x?}, left {left:#x})"
    );
    // The translation this processor may cache has both bits: the leaf
    // gets them back, as far as a shadow TLB (`tlb_check`) can tell.
    change_behind_the_layers_back(root, address, |leaf| leaf | accessed | dirty);
    destroy(&[space]);
    assert_eq!(accounted_free(), baseline);
}

/// The VM allocates heap memory under its lock; the heap then grows from its
/// frame reserve instead of waiting for the lock, and the reserve is refilled.
fn heap_grows_while_the_vm_lock_is_held() {
    let (size, _) = kernel::heap::usage();
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(1024);
    let grown = with_vm(|_| {
        while kernel::heap::usage().0 == size && blocks.len() < blocks.capacity() {
            blocks.push(alloc::vec![1; 16 * 1024]);
        }
        kernel::heap::usage().0 > size
    });
    assert!(grown, "the heap did not grow under the VM lock");
    drop(blocks);
    let before = arch::heap_frames();
    // More than the heap has free (the VM keeps headroom), so it must grow.
    let (size, used) = kernel::heap::usage();
    let length = size - used + (1 << 20);
    let big: Vec<u8> = alloc::vec![2; length];
    assert!(arch::heap_frames() > before, "the heap did not grow after the lock was released");
    assert_eq!(big.iter().filter(|&&byte| byte == 2).count(), length);
}

/// With every frame but one taken, a fault that needs new page tables gets them
/// by freeing idle slots' tables; with one shared root there is nothing idle and
/// the fault fails cleanly, then succeeds once frames are back. The running
/// space maps 1 GiB above the idle one, so that the (empty) tables the idle
/// one may leave in a shared root do not serve it.
fn pressure_frees_idle_page_tables() {
    let baseline = accounted_free();
    let idle = space_with(BASE, 8 * 512);
    activate(idle);
    (0..8).for_each(|table| write(at(BASE, table * 512, 0), table + 1));
    let running = space_with(BASE + (1 << 30), 1);
    activate(running);
    let mut hoard: Vec<kernel::vm::Pfn> = Vec::with_capacity(accounted_free());
    let capacity = with_vm(|vm| {
        while vm.frames().counters().free > 1 {
            hoard.push(vm.frames_mut().alloc().expect("alloc"));
        }
        vm.mmu().capacity()
    });
    let running_page = at(BASE + (1 << 30), 0, 0);
    let result = user_memory::write_u64(running_page, 5);
    let reclaimed = with_vm(|vm| !vm.mmu().has_slot(idle));
    with_vm(|vm| hoard.iter().for_each(|&pfn| vm.frames_mut().free(pfn).expect("free")));
    if capacity > 1 {
        assert_eq!(result, Ok(()), "fault under pressure");
        assert!(reclaimed, "the idle space kept its page tables");
    } else {
        assert_eq!(result, Err(VmError::OutOfMemory));
        write(running_page, 5);
    }
    assert_eq!(read(running_page), 5);
    activate(idle);
    (0..8).for_each(|table| assert_eq!(read(at(BASE, table * 512, 0)), table + 1));
    destroy(&[idle, running]);
    assert_eq!(accounted_free(), baseline);
}

/// Last: a kernel touching an unmapped user address outside an accessor is a
/// kernel bug, reported with the fault (its address and kind) and the verdict;
/// the expected text names the address, so a fault anywhere else fails.
fn unresolved_kernel_fault_panics_with_report() {
    let space = space_with(BASE, 1);
    activate(space);
    let unmapped = 2 * BASE;
    testing::expect_panic(format!("cr2={unmapped:#x} [not-present read kernel]").leak());
    let pointer = unmapped as *const u64;
    // SAFETY: deliberately unsound: the read must fault, and the fault handler
    // never returns to this code.
    let value = unsafe { pointer.read_volatile() };
    panic!("read of unmapped user memory returned {value}");
}
