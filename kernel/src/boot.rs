//! Kernel start-up, shared by the kernel binary and every test kernel.
//!
//! The bootloader enters the kernel in long mode with the physical memory map,
//! the framebuffer and (from our runner) a ramdisk holding the command line. This
//! module brings the machine up in a fixed order: CPU tables and the serial
//! console first (so that everything after can report), then the command line,
//! then memory. Once the other processors are up it says which configuration
//! is in force (`configuration: pt_cache=... tlb_check=... chaos=... pcid=...
//! frame_cache=... cpus=...`, read back from the page-table layer, the frame
//! allocator and the processors that came online), so that a test run can check it got the one it asked for.

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::BootInfo;

use crate::cmdline::{self, Options};
use crate::{arch, console, println};

/// Start of the kernel half of the address space (P4 slot 256).
pub const KERNEL_HALF_START: u64 = 0xffff_8000_0000_0000;
/// Start of the region reserved for the kernel heap (P4 slot 510); the bootloader
/// places nothing at or above it.
pub const HEAP_REGION_START: u64 = 0xffff_ff00_0000_0000;

/// How the bootloader must set up the machine for this kernel.
///
/// All of its mappings go to the kernel half, below the heap region, so the lower
/// half is free for user address spaces; physical memory is mapped whole, which is
/// how the kernel reaches page tables and frames.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(KERNEL_HALF_START);
    config.mappings.dynamic_range_end = Some(HEAP_REGION_START - 1);
    config.kernel_stack_size = 256 * 1024;
    config
};

/// Brings the machine up and returns the parsed command line.
pub fn init(boot_info: &'static mut BootInfo) -> Options {
    arch::init_cpu();
    console::init_logger(log::LevelFilter::Info);
    let framebuffer = boot_info.framebuffer.take();
    let line = arch::boot_command_line(boot_info);
    crate::ramdisk::set(arch::boot_ramdisk(boot_info));
    crate::symbols::set(crate::ramdisk::get().file("symbols"), boot_info.kernel_image_offset);
    let mut unknown_words = 0;
    let options = cmdline::parse(line, |word| {
        unknown_words += 1;
        log::warn!("ignoring unknown option {:?}", word.0);
    });
    if options.once {
        // Nobody is watching a `once` run: a panic must end it, not halt it.
        crate::panic::exit_on_panic(true);
    }
    crate::testing::configure(&options, unknown_words);
    console::init_logger(options.log_level);
    log::info!("command line: {line:?}");
    arch::init_memory(boot_info);
    arch::acpi::init(boot_info);
    arch::gdt::use_guarded_stacks().expect("boot: no memory for the interrupt stacks");
    let protections = arch::cpu::enabled();
    log::info!(
        "cpu: SMEP {}, SMAP {}, UMIP {}, SSE {}",
        on_off(protections.smep),
        on_off(protections.smap),
        on_off(protections.umip),
        on_off(arch::fpu::sse_enabled()),
    );
    crate::process::init();
    crate::memory::configure_page_tables(&options);
    crate::memory::configure_frames(&options);
    if options.lockstat {
        crate::lockstat::enable();
    }
    if let Some(framebuffer) = framebuffer {
        console::init_screen(framebuffer);
    }
    crate::memory::log_summary();
    crate::drivers::virtio_blk::init();
    crate::memory::configure_swap(&options);
    arch::init_interrupts();
    arch::smp::start();
    announce_configuration(&options);
    options
}

/// `on` or `off`.
fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Prints the configuration in force: the page-table layer's, as it has it,
/// and the processors online.
fn announce_configuration(options: &Options) {
    let (pt_cache, tlb_check, chaos, pcid, frame_cache) = crate::memory::with_vm(|vm| {
        let mmu = vm.mmu();
        let frame_cache = vm.frames().frame_cache_limit();
        (mmu.capacity(), mmu.tlb_checks().is_some(), mmu.chaos(), mmu.has_pcid(), frame_cache)
    });
    // The layer knows only whether chaos is on; its interval is the option's.
    let chaos = if chaos { options.chaos } else { 0 };
    let (cpus, _) = arch::smp::counts();
    println!(
        "configuration: pt_cache={pt_cache} tlb_check={} chaos={chaos} pcid={} \
         frame_cache={frame_cache} cpus={cpus}",
        on_off(tlb_check),
        on_off(pcid)
    );
}
