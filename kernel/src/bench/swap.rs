//! Swap: what a page costs on its way out and back for each device, and a
//! program whose working set is 1.5 times the machine's memory, walked in
//! order and out of order (thrashing). Run on a small machine of its own
//! (`bench=swap`: the runner boots one with a swap disk beside the pool).
//!
//! Pages hold what the `swapper` program writes: 256 bytes that look random,
//! repeated, which the pool compresses to about a tenth.

use alloc::vec::Vec;

use super::report;
use crate::arch::{tsc, user_memory};
use crate::memory::with_vm;
use crate::println;
use crate::process;
use crate::vm::{PAGE_SIZE, Placement, Protection, SpaceId, VirtAddr};

/// Pages written, sent out and read back per device: 16 MiB.
const PAGES: u64 = 4096;
/// Where they are mapped.
const BASE: u64 = 0x10_0000_0000;
/// Words of a page that differ; the rest repeat them.
const DISTINCT: u64 = 32;
/// `swapper` modes (see `user/src/bin/swapper`).
const THRASH_SEQUENTIAL: u64 = 4;
const THRASH_RANDOM: u64 = 5;

/// Runs the swap rows for every device; false if a program's checks failed.
pub fn run() -> bool {
    let names: Vec<&'static str> =
        with_vm(|vm| vm.swap_devices().map(|device| device.name()).collect());
    if names.is_empty() {
        println!("I swap=none");
        return true;
    }
    let (total, low, high) = with_vm(|vm| {
        let marks = vm.watermarks();
        (vm.frames().counters().total, marks.low, marks.high)
    });
    println!("I swap_devices={} frames_total={total} low={low} high={high}", names.join(","));
    let mut passed = true;
    for (index, name) in names.iter().enumerate() {
        with_vm(|vm| {
            for other in 0..names.len() {
                vm.set_swap_device_enabled(other, other == index);
            }
        });
        out_and_back(name);
        let mib = (total as u64 * PAGE_SIZE * 3 / 2) >> 20;
        passed &= thrash(&alloc::format!("thrash_sequential_{name}"), THRASH_SEQUENTIAL, mib);
        passed &= thrash(&alloc::format!("thrash_random_{name}"), THRASH_RANDOM, mib);
        if index == 0 {
            // The same, with usage learnt by forgetting translations rather
            // than by harvesting their referenced bits.
            with_vm(|vm| vm.set_usage_by_discard(true));
            let sequential = alloc::format!("thrash_sequential_{name}_by_discard");
            passed &= thrash(&sequential, THRASH_SEQUENTIAL, mib);
            let random = alloc::format!("thrash_random_{name}_by_discard");
            passed &= thrash(&random, THRASH_RANDOM, mib);
            with_vm(|vm| vm.set_usage_by_discard(false));
        }
    }
    with_vm(|vm| (0..names.len()).for_each(|index| vm.set_swap_device_enabled(index, true)));
    passed
}

/// Word `index` of page `page`.
fn pattern(page: u64, index: u64) -> u64 {
    let x = ((page << 8) | (index % DISTINCT)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ x >> 29
}

/// Writes [`PAGES`] pages, reclaims them all, and reads them back, timing
/// the page-outs and the page-ins.
fn out_and_back(device: &str) {
    let space = with_vm(|vm| {
        let space = vm.create_space();
        let placement = Placement::Exact(VirtAddr(BASE));
        let protection = Protection::READ | Protection::WRITE;
        vm.map_anonymous(space, placement, PAGES * PAGE_SIZE, protection).expect("map");
        vm.activate(space).expect("activate");
        space
    });
    for page in 0..PAGES {
        for index in 0..PAGE_SIZE / 8 {
            let address = VirtAddr(BASE + page * PAGE_SIZE + index * 8);
            user_memory::write_u64(address, pattern(page, index)).expect("swap bench: write");
        }
    }
    let outs = with_vm(|vm| vm.statistics().page_outs);
    let start = tsc::read();
    with_vm(|vm| vm.reclaim(PAGES as usize));
    let cycles = tsc::read() - start;
    let out = with_vm(|vm| vm.statistics().page_outs) - outs;
    report(&alloc::format!("swap_page_out_{device}"), cycles / out.max(1), 0.0);
    let ins = with_vm(|vm| vm.statistics().page_ins);
    let start = tsc::read();
    let mut wrong = 0;
    for page in 0..PAGES {
        let address = VirtAddr(BASE + page * PAGE_SIZE);
        let value = user_memory::read_u64(address).expect("swap bench: read");
        wrong += u64::from(value != pattern(page, 0));
    }
    let cycles = tsc::read() - start;
    let back = with_vm(|vm| vm.statistics().page_ins) - ins;
    report(&alloc::format!("swap_page_in_{device}"), cycles / back.max(1), 1.0);
    println!("I swap_{device}_pages_out={out} pages_in={back} wrong={wrong}");
    assert_eq!(wrong, 0, "swap bench: pages came back wrong");
    destroy(space);
}

/// Forgets the measured space.
fn destroy(space: SpaceId) {
    with_vm(|vm| vm.destroy(space)).expect("destroy");
}

/// Runs `swapper` in a thrashing `mode` over `mib` MiB; one row, in time
/// per page touched (it touches every page three times).
fn thrash(name: &str, mode: u64, mib: u64) -> bool {
    let (outs, ins, faults) = with_vm(|vm| {
        let statistics = vm.statistics();
        (statistics.page_outs, statistics.page_ins, statistics.faults)
    });
    let start = tsc::read();
    let status = process::spawn("swapper", mode | mib << 8).ok().and_then(process::wait_for);
    let cycles = tsc::read() - start;
    let touches = 3 * (mib << 20) / PAGE_SIZE;
    let (outs_after, ins_after, faults_after) = with_vm(|vm| {
        let statistics = vm.statistics();
        (statistics.page_outs, statistics.page_ins, statistics.faults)
    });
    report(name, cycles / touches, (faults_after - faults) as f64 / touches as f64);
    println!(
        "I {name} mib={mib} page_outs={} page_ins={} faults={} status={status:?}",
        outs_after - outs,
        ins_after - ins,
        faults_after - faults
    );
    status == Some(0)
}
