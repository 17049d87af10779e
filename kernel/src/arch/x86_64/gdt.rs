//! The global descriptor table and the task state segment.
//!
//! Long mode ignores most of segmentation, but it still needs code and data
//! segments for each privilege level, and a TSS whose interrupt stack table gives
//! the double-fault handler a known-good stack: a kernel stack overflow faults
//! again on the same stack, and without a fresh one that becomes a triple fault.

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

static TSS: LazyLock<TaskStateSegment> = LazyLock::new(|| {
    let mut tss = TaskStateSegment::new();
    let stack = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
        stack + DOUBLE_FAULT_STACK_SIZE as u64;
    tss
});

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
        tss: gdt.append(Descriptor::tss_segment(&TSS)),
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
