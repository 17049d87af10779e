//! What the VM's metadata costs per resident private page, measured from the
//! kernel heap's own count of bytes in use (every chunk, list, region and
//! tree node the VM allocates comes from it), plus the page record each frame
//! has. Page-table pages are counted apart: they are the MMU's cache.
//!
//! A space maps [`PAGES`] pages and writes each; then it forks (both sides
//! share every page); then the child writes each page (both sides own theirs).
//! One `I` line per state: heap bytes per page and the total with the page
//! record, and the page-table pages held.

use crate::arch::user_memory;
use crate::memory::with_vm;
use crate::println;
use crate::vm::page::VM_PAGE_BYTES;
use crate::vm::{PAGE_SIZE, Placement, Protection, SpaceId, VirtAddr};

/// Pages the measured space writes: 64 MiB.
const PAGES: u64 = 16_384;
/// Where it maps them.
const BASE: u64 = 0x10_0000_0000;

/// Kernel heap bytes in use, and page-table pages held.
fn snapshot() -> (usize, u64) {
    let tables = with_vm(|vm| vm.mmu().statistics().table_pages);
    (crate::heap::usage().1, tables)
}

/// Writes every page of the measured range in `space`.
fn write_all(space: SpaceId, value: u64) {
    with_vm(|vm| vm.activate(space)).expect("metadata: activate");
    for page in 0..PAGES {
        let address = VirtAddr(BASE + page * PAGE_SIZE);
        user_memory::write_u64(address, value).expect("metadata: write");
    }
}

/// Prints one state's line.
fn print(state: &str, pages: u64, before: (usize, u64), after: (usize, u64)) {
    let heap = after.0.saturating_sub(before.0) as f64 / pages as f64;
    println!(
        "I vm_metadata_{state} pages={pages} heap_bytes_per_page={heap:.2} \
         bytes_per_page_with_vmpage={:.2} page_table_pages={}",
        heap + VM_PAGE_BYTES as f64,
        after.1.saturating_sub(before.1)
    );
}

/// Measures and prints the three states, then frees everything.
pub fn run() {
    let before = snapshot();
    let parent = with_vm(|vm| {
        let space = vm.create_space();
        let protection = Protection::READ | Protection::WRITE;
        let placement = Placement::Exact(VirtAddr(BASE));
        vm.map_anonymous(space, placement, PAGES * PAGE_SIZE, protection).expect("map");
        space
    });
    write_all(parent, 1);
    print("private", PAGES, before, snapshot());
    let child = with_vm(|vm| vm.fork(parent)).expect("metadata: fork");
    print("after_fork_shared", PAGES, before, snapshot());
    write_all(child, 2);
    print("after_fork_both_written", 2 * PAGES, before, snapshot());
    with_vm(|vm| {
        vm.destroy(child).expect("destroy");
        vm.destroy(parent).expect("destroy");
    });
}
