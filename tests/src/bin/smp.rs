//! Every processor: as many come online as the machine has (the test
//! parameter `test.cpus`, which the runner's `--smp` gives it), each with an
//! APIC ID of its own; the boot processor is processor 0; each one's local
//! APIC timer ticks; each other processor answers a call (an interrupt sent
//! from the boot processor), once per call, and a processor that is not
//! there is not called; the 8259 is masked while the APICs deliver
//! interrupts; and a process runs to its end with the other processors idle.
//! Under QEMU (xAPIC mode) with one, two and four processors, under UEFI, and
//! under Bochs (x2APIC mode).
//! programs: probe
//! run: --smp 1 --kernel-arg test.cpus=1
//! run: --smp 2 --kernel-arg test.cpus=2
//! run: --smp 4 --kernel-arg test.cpus=4
//! run: --uefi --smp 4 --kernel-arg test.cpus=4
//! run: --bochs --smp 2 --kernel-arg test.cpus=2
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::acpi::MAX_CPUS;
use kernel::arch::{apic, interrupts, smp};
use kernel::testing;
use kernel_tests::{probe, run_probe, run_until, warm_up_with_probe};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    // Page-table roots, heap and a kernel stack made before any baseline.
    warm_up_with_probe();
    testing::run(&kernel::tests![
        every_processor_comes_online,
        each_processor_has_its_own_apic_id,
        the_boot_processor_is_processor_zero,
        every_processor_timer_ticks,
        every_other_processor_answers_each_call,
        the_apics_deliver_interrupts_and_the_8259_is_masked,
        a_process_runs_while_the_others_idle,
    ]);
}

/// The processors the machine has, as the run says.
fn expected() -> usize {
    let cpus = testing::parameter("cpus").expect("test.cpus is not set");
    cpus.parse().expect("test.cpus is not a number")
}

fn every_processor_comes_online() {
    assert_eq!(smp::counts(), (expected(), expected()), "(online, listed)");
    for index in 0..MAX_CPUS {
        assert_eq!(smp::cpu(index).is_some(), index < expected(), "processor {index}");
    }
}

fn each_processor_has_its_own_apic_id() {
    let ids: alloc::vec::Vec<u32> =
        (0..expected()).map(|index| smp::cpu(index).expect("online").0).collect();
    for (index, id) in ids.iter().enumerate() {
        assert!(!ids[..index].contains(id), "processors share APIC ID {id}: {ids:?}");
    }
}

fn the_boot_processor_is_processor_zero() {
    assert_eq!(smp::this_cpu(), 0);
    assert_eq!(smp::cpu(0).map(|cpu| cpu.0), Some(apic::id()));
}

fn every_processor_timer_ticks() {
    let ticks = |index| smp::cpu(index).expect("online").1;
    let before: alloc::vec::Vec<u64> = (0..expected()).map(ticks).collect();
    run_until("every processor's timer ticks 5 times", 5, || {
        before.iter().enumerate().all(|(index, was)| ticks(index) >= was + 5)
    });
}

fn every_other_processor_answers_each_call() {
    let calls = |index| smp::cpu(index).expect("online").2;
    for index in 1..expected() {
        for round in 0..3 {
            let before = calls(index);
            assert!(smp::call(index), "processor {index} did not answer call {round}");
            assert_eq!(calls(index), before + 1, "processor {index}, call {round}");
        }
    }
    assert!(!smp::call(expected()), "a processor that is not there answered");
}

fn the_apics_deliver_interrupts_and_the_8259_is_masked() {
    assert!(apic::active(), "the APICs are not in use");
    assert_eq!(interrupts::legacy_masks(), (0xff, 0xff), "the 8259's masks");
    let (errors, status) = apic::errors();
    assert_eq!(errors, 0, "local APIC errors (last status {status:#x})");
}

fn a_process_runs_while_the_others_idle() {
    run_probe(probe::SHARED);
}
