//! Page-table cache benchmarks: what a switch between two address spaces costs
//! when their page tables are rebuilt every time (one shared root, N = 1) and
//! when they are retained (N = 2), and what one rebuild fault costs.
//!
//! Each space has 16 pages, touched (one word read) after every switch, so a
//! switch with N = 1 pays 16 rebuild faults plus the eviction of the other
//! space's tables. `rebuild_fault` is derived: the cost of discarding a space's
//! translations and touching its 16 pages again, divided by 16 (so it includes a
//! sixteenth of the discard, which frees three page-table pages).

use alloc::format;

use super::{measure, report};
use crate::arch::user_memory;
use crate::memory::with_vm;
use crate::println;
use crate::vm::{PAGE_SIZE, Placement, Protection, SpaceId, VirtAddr};

/// Pages each benchmark space touches after a switch.
const PAGES: u64 = 16;
/// Where the benchmark spaces map their pages.
const BASE: u64 = 0x4000_0000;

/// Reads one word of each of the space's pages.
fn touch() {
    for page in 0..PAGES {
        let address = VirtAddr(BASE + page * PAGE_SIZE);
        core::hint::black_box(user_memory::read_u64(address).expect("touch: read"));
    }
}

/// A space with `PAGES` resident pages.
fn space() -> SpaceId {
    let space = with_vm(|vm| {
        let space = vm.create_space();
        let protection = Protection::READ | Protection::WRITE;
        let placement = Placement::Exact(VirtAddr(BASE));
        vm.map_anonymous(space, placement, PAGES * PAGE_SIZE, protection).expect("map");
        vm.activate(space).expect("activate");
        space
    });
    touch();
    space
}

fn activate(space: SpaceId) {
    with_vm(|vm| vm.activate(space)).expect("activate");
}

/// Runs the page-table benchmarks, leaving the cache size as it found it.
pub fn run() {
    let capacity = with_vm(|vm| vm.mmu().capacity());
    let spaces = [space(), space()];
    let tables = with_vm(|vm| vm.mmu().table_pages_of(spaces[1]));
    println!("I page_table_pages_for_{PAGES}_pages={tables} (below the root)");
    for size in [1, 2] {
        with_vm(|vm| vm.mmu_mut().set_capacity(size));
        let mut turn = 0;
        measure(&format!("pt_switch_touch{PAGES}_cache{size}"), 2_000, || {
            turn ^= 1;
            activate(spaces[turn]);
            touch();
        });
        measure(&format!("pt_switch_cache{size}"), 2_000, || {
            turn ^= 1;
            activate(spaces[turn]);
        });
    }
    activate(spaces[0]);
    let discard_and_touch = measure(&format!("pt_discard_touch{PAGES}"), 2_000, || {
        with_vm(|vm| vm.discard(spaces[0])).expect("discard");
        touch();
    });
    report("pt_rebuild_fault", discard_and_touch / PAGES, 1.0);
    with_vm(|vm| {
        spaces.iter().for_each(|&space| vm.destroy(space).expect("destroy"));
        vm.mmu_mut().set_capacity(capacity);
    });
    zap_sparse_user_half();
}

/// `vm_zap_sparse_user_half`: the VM's and the page-table layer's part of a
/// `zap` of the whole user half, for a space with one resident page at each
/// end, with the two rebuild faults of reading them again (the `bench`
/// program's row of the same name adds the system call and its own pages).
fn zap_sparse_user_half() {
    use crate::vm::{USER_END, USER_START};
    let top = USER_END - PAGE_SIZE;
    let space = with_vm(|vm| {
        let space = vm.create_space();
        let protection = Protection::READ | Protection::WRITE;
        for start in [BASE, top] {
            let placement = Placement::Exact(VirtAddr(start));
            vm.map_anonymous(space, placement, PAGE_SIZE, protection).expect("map");
        }
        vm.activate(space).expect("activate");
        space
    });
    measure("vm_zap_sparse_user_half", 2_000, || {
        for address in [BASE, top] {
            core::hint::black_box(user_memory::read_u64(VirtAddr(address)).expect("read"));
        }
        with_vm(|vm| vm.zap(space, VirtAddr(USER_START), USER_END - USER_START)).expect("zap");
    });
    with_vm(|vm| vm.destroy(space)).expect("destroy");
}
