//! The global descriptor table and the task state segment.
//!
//! Long mode ignores most of segmentation, but it still needs code and data
//! segments for each privilege level, and a TSS whose interrupt stack table gives
//! the double-fault handler a known-good stack: a kernel stack overflow faults
//! again on the same stack, and without a fresh one that becomes a triple fault.
//! The TSS also holds `rsp0`, the stack an interrupt from user mode switches to:
//! the running process's kernel stack, set at every task switch.

use spin::LazyLock;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// Interrupt-stack-table slot used by the double-fault handler.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

/// Size of the double-fault stack.
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

/// The double-fault stack. It lives in `.bss`, so it needs no allocator.
#[repr(align(16))]
#[allow(dead_code)] // only its address is used
struct Stack([u8; DOUBLE_FAULT_STACK_SIZE]);
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_SIZE]);

/// The task state segment. Written only by [`tss`] (before the GDT refers to it)
/// and by [`set_privilege_stack`] (one field, interrupts disabled).
static mut TSS: TaskStateSegment = TaskStateSegment::new();

/// The TSS with its double-fault stack set, for the GDT descriptor.
fn tss() -> &'static TaskStateSegment {
    let stack = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
    // SAFETY: runs once, while the GDT is built and before the TSS is loaded, so
    // nothing else reads or writes it meanwhile.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack + DOUBLE_FAULT_STACK_SIZE as u64;
        &*tss
    }
}

/// Sets `rsp0`, the stack the CPU switches to on an interrupt from ring 3.
/// Call with interrupts disabled.
pub fn set_privilege_stack(top: u64) {
    // SAFETY: one field of the packed TSS, written unaligned through a raw
    // pointer (no reference to the static is made); the CPU reads it only when an
    // interrupt arrives from user mode, which cannot happen while interrupts are
    // disabled on this (only) CPU.
    unsafe {
        let slot = (&raw mut TSS.privilege_stack_table).cast::<VirtAddr>();
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

static GDT: LazyLock<(GlobalDescriptorTable, Selectors)> = LazyLock::new(|| {
    let mut gdt = GlobalDescriptorTable::new();
    let selectors = Selectors {
        kernel_code: gdt.append(Descriptor::kernel_code_segment()),
        kernel_data: gdt.append(Descriptor::kernel_data_segment()),
        user_data: gdt.append(Descriptor::user_data_segment()),
        user_code: gdt.append(Descriptor::user_code_segment()),
        tss: gdt.append(Descriptor::tss_segment(tss())),
    };
    (gdt, selectors)
});

/// Loads the GDT, reloads every segment register and loads the TSS.
pub fn init() {
    let (gdt, selectors) = &*GDT;
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

/// The selectors of the loaded GDT.
pub fn selectors() -> Selectors {
    GDT.1
}
