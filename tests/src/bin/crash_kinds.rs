//! Every kind of fault a user program can cause kills that process and only
//! it: privileged and invalid instructions, foreign system-call gates, a
//! return to the kernel's code segment, non-canonical jumps, arithmetic
//! faults (integer, x87 and SSE, with their exceptions unmasked), and a
//! `syscall` whose return address is the first non-canonical one. Two more
//! make a `syscall` with odd flags (the trap flag, the nested-task flag),
//! which the kernel may run or answer by killing, but must survive; so must
//! a mapping cut into 131,072 regions (every other page write-protected),
//! which at the smallest machine (21 MiB) the kernel's heap cannot hold;
//! and a process that runs the machine out of frames for its page tables
//! (one page touched every GiB) is killed like any memory hog.
//! Each test
//! runs the `crash` program in one mode and expects it killed (`abi::KILLED`),
//! every process reaped and every frame back; the next test shows the kernel
//! carried on. `sgdt` and `smsw` are refused only under UMIP, so they are
//! expected killed when the kernel turned UMIP on, and to run through when it
//! did not. Booted in QEMU (TCG, whose default processor is an AMD model:
//! `sysenter` is invalid in long mode there), through BIOS and through UEFI
//! (whose firmware leaves SSE on and CR0.NE set), and in Bochs (an Intel
//! model: `sysenter` is a #GP while its MSRs are unset, and `sysret` faults in
//! ring 0 on a non-canonical return address). QEMU 7.2's TCG records an
//! unmasked SSE division by zero in MXCSR but raises nothing, so that kind is
//! checked only where the processor raises it. One test reads the report of
//! a kill: its backtrace names the faulting function and its caller, from the
//! program's symbol table in the ramdisk.
//! programs: crash
//! run:
//! run: --uefi
//! run: --memory 21M
//! run: --bochs
//! timeout: 300
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::{println, testing};
use kernel_tests::crash::*;
use kernel_tests::{run_to_end, warm_up_with};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up();
    testing::run(&kernel::tests![
        undefined_opcode_is_killed,
        a_killed_process_is_reported_with_a_backtrace,
        int_0x80_is_killed,
        sysenter_is_killed,
        port_input_is_killed,
        port_output_is_killed,
        cli_is_killed,
        hlt_is_killed,
        rdmsr_is_killed,
        iretq_to_the_kernel_code_segment_is_killed,
        jump_to_a_non_canonical_address_is_killed,
        division_by_zero_is_killed,
        reading_cr0_is_killed,
        sgdt_and_smsw_are_killed_under_umip,
        breakpoint_is_killed,
        icebp_is_killed,
        ud2_with_a_non_canonical_stack_pointer_is_killed,
        syscall_with_a_kernel_stack_pointer_is_survived,
        syscall_with_a_non_canonical_stack_pointer_is_survived,
        syscall_with_the_nested_task_flag_is_survived,
        running_out_of_frames_for_page_tables_is_killed,
        splitting_a_mapping_into_regions_is_survived,
        yield_with_the_nested_task_flag_is_survived,
        system_calls_after_changing_gs_work,
        syscall_at_the_top_of_user_space_is_killed,
        syscall_with_the_trap_flag_is_survived,
        x87_fault_is_killed,
        sse_fault_is_killed,
        programs_still_run_after_every_crash,
    ])
}

/// Runs `crash` once, and gives the heap room, so that what the tests count
/// afterwards is theirs alone.
fn warm_up() {
    warm_up_with("crash", CALM);
    let room: alloc::vec::Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
}

extern crate alloc;

/// Runs `crash` in `mode` and checks it was killed.
fn expect_killed(mode: u64, what: &str) {
    assert_killed(run_to_end("crash", mode), what);
}

/// Checks `status` is the status word of a killed process.
fn assert_killed(status: u64, what: &str) {
    assert_eq!(
        status,
        abi::KILLED,
        "{what} was not killed: status word {status:#x} ({ALLOWED:#x}: it ran through)"
    );
}

fn undefined_opcode_is_killed() {
    expect_killed(UNDEFINED_OPCODE, "ud2");
}

/// The report of the `ud2` kill (the test before) has a backtrace: the
/// faulting function and its caller, named from the program's symbols.
fn a_killed_process_is_reported_with_a_backtrace() {
    expect_killed(UNDEFINED_OPCODE, "ud2");
    kernel::process::with_last_kill_report(|report| {
        let lines: alloc::vec::Vec<&str> = report.lines().collect();
        let named = |depth: usize, name: &str| {
            lines.iter().any(|line| {
                line.starts_with(&alloc::format!("  #{depth} 0x")) && line.contains(name)
            })
        };
        assert!(lines.first().is_some_and(|line| line.contains("INVALID OPCODE")), "{report}");
        assert!(lines.get(1) == Some(&"backtrace:"), "no backtrace in {report:?}");
        assert!(named(0, " crash::faults::undefined_opcode+0x"), "{report}");
        assert!(named(1, " crash::main+0x"), "{report}");
    });
}

fn int_0x80_is_killed() {
    expect_killed(INT_0X80, "int 0x80");
}

fn sysenter_is_killed() {
    expect_killed(SYSENTER, "sysenter");
}

fn port_input_is_killed() {
    expect_killed(PORT_IN, "in from a port");
}

fn port_output_is_killed() {
    expect_killed(PORT_OUT, "out to a port");
}

fn cli_is_killed() {
    expect_killed(CLI, "cli");
}

fn hlt_is_killed() {
    expect_killed(HLT, "hlt");
}

fn rdmsr_is_killed() {
    expect_killed(RDMSR, "rdmsr");
}

fn iretq_to_the_kernel_code_segment_is_killed() {
    expect_killed(IRETQ_TO_KERNEL, "iretq to CS 0x08");
}

fn jump_to_a_non_canonical_address_is_killed() {
    expect_killed(JUMP_TO_NON_CANONICAL, "a jump to a non-canonical address");
}

fn division_by_zero_is_killed() {
    expect_killed(DIVIDE_BY_ZERO, "a division by zero");
}

fn reading_cr0_is_killed() {
    expect_killed(READ_CR0, "mov from CR0");
}

/// Killed under UMIP; without it the instructions are allowed in ring 3.
fn sgdt_and_smsw_are_killed_under_umip() {
    let umip = Cr4::read().contains(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION);
    for (mode, what) in [(SGDT, "sgdt"), (SMSW, "smsw")] {
        if umip {
            expect_killed(mode, what);
        } else {
            let status = run_to_end("crash", mode);
            assert_eq!(status, ALLOWED, "{what} without UMIP ended with status word {status:#x}");
            println!("crash_kinds: UMIP is off, so {what} ran in ring 3");
        }
    }
}

fn breakpoint_is_killed() {
    expect_killed(BREAKPOINT, "int3");
}

fn icebp_is_killed() {
    expect_killed(ICEBP, "int1 (icebp)");
}

fn ud2_with_a_non_canonical_stack_pointer_is_killed() {
    expect_killed(UD2_WITH_A_NON_CANONICAL_STACK, "ud2 with a non-canonical stack pointer");
}

fn syscall_with_a_kernel_stack_pointer_is_survived() {
    expect_survived(SYSCALL_WITH_A_KERNEL_STACK, "syscall with a kernel-half stack pointer");
}

fn syscall_with_a_non_canonical_stack_pointer_is_survived() {
    expect_survived(
        SYSCALL_WITH_A_NON_CANONICAL_STACK,
        "syscall with a non-canonical stack pointer",
    );
}

fn x87_fault_is_killed() {
    let status = run_to_end("crash", X87_USABLE);
    assert_eq!(status, 0, "a plain x87 instruction failed in ring 3 (status word {status:#x})");
    let what = if Cr0::read().contains(Cr0Flags::NUMERIC_ERROR) {
        "an unmasked x87 division by zero"
    } else {
        "an unmasked x87 division by zero (CR0.NE is clear: x87 errors go to FERR#, not #MF)"
    };
    expect_killed(X87_DIVIDE_BY_ZERO, what);
}

fn sse_fault_is_killed() {
    let status = run_to_end("crash", SSE_USABLE);
    assert_eq!(
        status, 0,
        "a plain SSE instruction failed in ring 3 (status word {status:#x}): SSE is not enabled"
    );
    match run_to_end("crash", SSE_DIVIDE_BY_ZERO) {
        NOT_RAISED => {
            println!("crash_kinds: the processor raised no SIMD exception (QEMU's TCG does not)")
        }
        status => assert_killed(status, "an unmasked SSE division by zero"),
    }
}

/// Killed or run, as the kernel likes, but never a kernel fault.
fn expect_survived(mode: u64, what: &str) {
    let status = run_to_end("crash", mode);
    let killed = status == abi::KILLED;
    assert!(killed || status == 0, "{what}: status word {status:#x}");
    println!("crash_kinds: {what}: {}", if killed { "killed" } else { "ran" });
}

fn syscall_with_the_trap_flag_is_survived() {
    expect_survived(SYSCALL_WITH_THE_TRAP_FLAG, "syscall with the trap flag");
}

fn syscall_with_the_nested_task_flag_is_survived() {
    expect_survived(SYSCALL_WITH_NESTED_TASK, "syscall with the nested-task flag");
}

fn yield_with_the_nested_task_flag_is_survived() {
    expect_survived(YIELD_WITH_NESTED_TASK, "yield with the nested-task flag beside a spinner");
}

/// The kernel reaches its per-processor entry state through its own GS base
/// (`swapgs`), so a program's GS is no concern of its.
fn system_calls_after_changing_gs_work() {
    let status = run_to_end("crash", GS_CHANGED);
    assert_eq!(status, 0, "system calls after changing GS: status word {status:#x}");
}

/// One page a GiB apart, two page tables each, until no frame is left: the
/// page-table allocation fails for the process, which is killed.
fn running_out_of_frames_for_page_tables_is_killed() {
    expect_killed(TOUCH_FAR_APART, "touching pages a GiB apart until the frames run out");
}

/// 131,072 regions: at 21 MiB the kernel's heap cannot hold them, so the
/// kernel must refuse the split with an error before it runs out.
fn splitting_a_mapping_into_regions_is_survived() {
    expect_survived(SPLIT_INTO_REGIONS, "write-protecting every other page of 1 GiB");
}

fn syscall_at_the_top_of_user_space_is_killed() {
    expect_killed(SYSCALL_AT_THE_TOP, "a syscall returning to a non-canonical address");
}

fn programs_still_run_after_every_crash() {
    assert_eq!(run_to_end("crash", CALM), 0, "the calm mode failed after the crashes");
}
