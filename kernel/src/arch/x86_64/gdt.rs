//! The global descriptor table and the task state segment.
//!
//! Long mode ignores most of segmentation, but it still needs code and data
//! segments for each privilege level, and a TSS whose interrupt stack table gives
//! four handlers a known-good stack of their own: the double fault (a kernel
//! stack overflow faults again on the same stack, and without a fresh one that
//! becomes a triple fault), and the NMI, machine check and debug exception,
//! which can arrive at the first instructions of `syscall_entry` while the
//! stack pointer is still the user's (a `syscall` made with the trap flag set
//! single-steps into the entry on Intel processors). At boot these are small stacks in
//! `.bss`; once memory is up, [`use_guarded_stacks`] moves each to a kernel stack
//! with an unmapped guard page below it (`stack`), so that an overflow of one
//! faults instead of running into its neighbour.
//! The TSS also holds `rsp0`, the stack an interrupt from user mode switches to:
//! the running process's kernel stack, set at every task switch.

use core::sync::atomic::{AtomicU64, Ordering};
use spin::LazyLock;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::acpi::MAX_CPUS;

/// Interrupt-stack-table slot used by the double-fault handler.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// Interrupt-stack-table slot used by the NMI handler.
pub const NMI_IST_INDEX: u16 = 1;
/// Interrupt-stack-table slot used by the machine-check handler.
pub const MACHINE_CHECK_IST_INDEX: u16 = 2;
/// Interrupt-stack-table slot used by the debug-exception handler (a `syscall`
/// made with the trap flag set traps at the entry's first instruction, on the
/// user's stack).
pub const DEBUG_IST_INDEX: u16 = 3;
/// The slots above, each with a stack of its own.
pub const IST_INDICES: [u16; 4] =
    [DOUBLE_FAULT_IST_INDEX, NMI_IST_INDEX, MACHINE_CHECK_IST_INDEX, DEBUG_IST_INDEX];

/// Size of each boot-time interrupt stack.
const BOOT_STACK_SIZE: usize = 8 * 1024;

/// The boot-time interrupt stacks. They live in `.bss`, so they need no
/// allocator; [`use_guarded_stacks`] replaces them.
#[repr(align(16))]
#[allow(dead_code)] // only its address is used
struct Stack([u8; BOOT_STACK_SIZE]);
static mut BOOT_STACKS: [Stack; IST_INDICES.len()] =
    [const { Stack([0; BOOT_STACK_SIZE]) }; IST_INDICES.len()];

/// The task state segment. Written only by [`tss`] (before the GDT refers to it)
/// and by [`set_privilege_stack`] (one field, interrupts disabled).
static mut TSS: TaskStateSegment = TaskStateSegment::new();

/// The TSS with its boot-time interrupt stacks set, for the GDT descriptor.
fn tss() -> &'static TaskStateSegment {
    // SAFETY: runs once, while the GDT is built and before the TSS is loaded, so
    // nothing else reads or writes it meanwhile.
    unsafe {
        let tss = &raw mut TSS;
        for (stack, index) in IST_INDICES.into_iter().enumerate() {
            let bottom = VirtAddr::from_ptr(&raw const BOOT_STACKS[stack]);
            (*tss).interrupt_stack_table[index as usize] = bottom + BOOT_STACK_SIZE as u64;
        }
        &*tss
    }
}

/// Moves the double-fault, NMI and machine-check handlers to kernel stacks with
/// guard pages. Runs once memory is set up, before interrupts are enabled.
pub fn use_guarded_stacks() -> Result<(), crate::vm::VmError> {
    for index in IST_INDICES {
        // Never released (the handler may run at any time from now on), so the
        // stack's slot is simply never given back to the pool.
        let top = super::stack::allocate()?.top();
        // SAFETY: one field of the packed TSS, written unaligned through a raw
        // pointer; the CPU reads it only when it delivers that vector, and an
        // 8-byte aligned store is seen whole or not at all.
        unsafe {
            let table = (&raw mut TSS.interrupt_stack_table).cast::<VirtAddr>();
            table.add(usize::from(index)).write_unaligned(VirtAddr::new(top));
        }
    }
    Ok(())
}

/// The stack top the TSS gives interrupt-stack-table slot `index`.
pub fn interrupt_stack(index: u16) -> u64 {
    // SAFETY: an unaligned read of one field of the packed TSS through a raw
    // pointer; it is written only by `tss` and `use_guarded_stacks`.
    unsafe {
        let table = (&raw const TSS.interrupt_stack_table).cast::<VirtAddr>();
        table.add(usize::from(index)).read_unaligned().as_u64()
    }
}

/// Each processor's TSS, by index (`smp::this_cpu`); the boot processor's is
/// [`TSS`], the others' are set by [`processor_tables`]. 0: none yet.
static PROCESSOR_TSS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Sets `rsp0` of processor `cpu` (the running one), the stack it switches to
/// on an interrupt from ring 3. Call with interrupts disabled.
pub fn set_privilege_stack(cpu: usize, top: u64) {
    let tss = match PROCESSOR_TSS[cpu].load(Ordering::Acquire) {
        0 => &raw mut TSS,
        address => address as *mut TaskStateSegment,
    };
    // SAFETY: one field of a packed TSS (this processor's: the static, or the
    // one leaked for it), written unaligned through a raw pointer (no
    // reference to it is made); only this processor reads it, when an
    // interrupt arrives from user mode, which cannot happen while interrupts
    // are disabled here.
    unsafe {
        let slot = (&raw mut (*tss).privilege_stack_table).cast::<VirtAddr>();
        slot.write_unaligned(VirtAddr::new(top));
    }
}

/// Selectors of the segments in [`GDT`].
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    /// Ring-0 code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data and stack.
    pub kernel_data: SegmentSelector,
    /// Ring-3 data and stack (placed right before user code, as `sysret` expects).
    pub user_data: SegmentSelector,
    /// Ring-3 64-bit code.
    pub user_code: SegmentSelector,
    /// The task state segment.
    pub tss: SegmentSelector,
}

static GDT: LazyLock<(GlobalDescriptorTable, Selectors)> = LazyLock::new(|| build(tss()));

/// A GDT with the kernel's segments and `tss`, always in the same order, so
/// that every processor's selectors are the same.
fn build(tss: &'static TaskStateSegment) -> (GlobalDescriptorTable, Selectors) {
    let mut gdt = GlobalDescriptorTable::new();
    let selectors = Selectors {
        kernel_code: gdt.append(Descriptor::kernel_code_segment()),
        kernel_data: gdt.append(Descriptor::kernel_data_segment()),
        user_data: gdt.append(Descriptor::user_data_segment()),
        user_code: gdt.append(Descriptor::user_code_segment()),
        tss: gdt.append(Descriptor::tss_segment(tss)),
    };
    (gdt, selectors)
}

/// Loads the GDT, reloads every segment register and loads the TSS.
pub fn init() {
    let (gdt, selectors) = &*GDT;
    load(gdt, *selectors);
}

/// Loads `gdt`, whose segments are `selectors`, on this processor.
fn load(gdt: &'static GlobalDescriptorTable, selectors: Selectors) {
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which is
    // `'static`; the code segment is 64-bit ring 0 like the code running now.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        SS::set_reg(selectors.kernel_data);
        load_tss(selectors.tss);
    }
}

/// A GDT and TSS of its own for another processor, whose interrupt stacks
/// are `stacks` (their tops, in [`IST_INDICES`] order). They are leaked: the
/// processor keeps them for good. Load them with [`load_processor_tables`].
pub fn processor_tables(
    cpu: usize,
    stacks: [u64; IST_INDICES.len()],
) -> &'static GlobalDescriptorTable {
    let mut tss = TaskStateSegment::new();
    for (index, top) in IST_INDICES.into_iter().zip(stacks) {
        tss.interrupt_stack_table[usize::from(index)] = VirtAddr::new(top);
    }
    let tss = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss));
    PROCESSOR_TSS[cpu].store(&raw mut *tss as u64, Ordering::Release);
    let (gdt, selectors) = build(tss);
    assert_eq!(selectors.tss.0, GDT.1.tss.0, "gdt: processors' layouts differ");
    alloc::boxed::Box::leak(alloc::boxed::Box::new(gdt))
}

/// Loads a GDT made by [`processor_tables`] on the processor it was made for.
pub fn load_processor_tables(gdt: &'static GlobalDescriptorTable) {
    load(gdt, GDT.1);
}

/// The selectors of the loaded GDT.
pub fn selectors() -> Selectors {
    GDT.1
}
