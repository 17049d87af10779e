//! ACPI: the firmware's tables, read once at start-up, and the registers they
//! name for switching the machine off and resetting it.
//!
//! The bootloader reports where the RSDP is (the BIOS area, or UEFI's
//! configuration table). From there the `acpi` crate finds the FADT and the
//! DSDT and checks them; it reaches physical memory through the bootloader's
//! mapping of all of it, which covers the first 4 GiB and every region of the
//! memory map, so every table (firmware puts them in regions it reports). What
//! power-off and reset need is copied into a [`Controls`] (`crate::power`) and
//! the tables are never read again: power-off works from a panic, and nothing
//! here allocates or takes a lock once start-up is done. The MADT is read at
//! the same time into a [`Topology`]: the processors, the local APIC and the
//! I/O APIC, and how the ISA interrupts reach it (`apic`, `smp`).
//!
//! Power-off follows ACPI's legacy sleep sequence for S5: enter ACPI mode if
//! the firmware left the machine outside it, write SLP_TYP to PM1a (and PM1b)
//! control, then SLP_TYP with SLP_EN. Reset writes the FADT's reset value to its
//! reset register; where there is none, or it does nothing, the keyboard
//! controller's reset line, and last a triple fault.

use core::ptr::NonNull;

use acpi::address::{AddressSpace, GenericAddress};
use acpi::sdt::fadt::Fadt;
use acpi::sdt::madt::{Madt, MadtEntry};
use acpi::{AcpiTable, AcpiTables, Handler, PciAddress, PhysicalMapping};
use bootloader_api::info::BootInfo;
use spin::Once;
use x86_64::instructions::port::Port;

use crate::power::{self, AcpiEnable, Controls, Register, Reset, SleepTypes, Space};

/// What the tables said, from start-up on (all `None` without tables).
static CONTROLS: Once<Controls> = Once::new();
/// The mapping of physical memory, for memory-space registers.
static MEMORY: Once<PhysicalMemory> = Once::new();
/// What the MADT said (unset without one).
static TOPOLOGY: Once<Topology> = Once::new();

/// Most processors the kernel starts; the MADT may list more.
pub const MAX_CPUS: usize = 16;

/// The interrupt hardware the MADT describes.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    /// Physical address of the local APICs' registers (in xAPIC mode).
    pub local_apic: u64,
    /// The APIC IDs of the enabled processors, the first [`Topology::cpus`].
    pub apic_ids: [u32; MAX_CPUS],
    /// How many of `apic_ids` there are.
    pub cpus: usize,
    /// Enabled processors the MADT listed beyond [`MAX_CPUS`].
    pub left_out: usize,
    /// The I/O APIC serving global system interrupt 0: its registers'
    /// physical address and its first GSI.
    pub io_apic: Option<(u64, u32)>,
    /// Where each ISA interrupt arrives: its GSI and whether it is
    /// level-triggered and active low (the overrides; ISA's own are edge and
    /// active high, on the GSI of the same number).
    pub isa: [IsaRoute; 16],
    /// Whether the machine also has the two 8259 PICs (to be masked).
    pub has_8259: bool,
}

/// Where an ISA interrupt arrives at the I/O APIC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IsaRoute {
    /// The global system interrupt.
    pub gsi: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub low: bool,
}

/// The size of a table header (signature, length, ..., creator revision).
const HEADER_BYTES: usize = 36;
/// FADT bytes up to and including the reset value (ACPI 2.0 on).
const FADT_RESET_END: u32 = 129;

/// Reads the ACPI tables and keeps what power-off and reset need; logs one line
/// saying what they gave (or why there is nothing). Needs the mapping of
/// physical memory, nothing else.
pub fn init(boot_info: &BootInfo) {
    if let Some(memory) = PhysicalMemory::of(boot_info) {
        MEMORY.call_once(|| memory);
    }
    let tables = open_tables(boot_info);
    let controls = match tables.as_ref().map_err(|why| *why).and_then(read_controls) {
        Ok(controls) => {
            log::info!("acpi: {controls}");
            controls
        }
        Err(why) => {
            log::warn!("acpi: {why}: no ACPI power-off, and reboot without the reset register");
            Controls::default()
        }
    };
    CONTROLS.call_once(|| controls);
    match tables.as_ref().map_err(|why| *why).and_then(read_madt) {
        Ok(topology) => {
            log::info!(
                "acpi: MADT: {} processors{}, I/O APIC {}",
                topology.cpus,
                if topology.left_out > 0 { " (more left out)" } else { "" },
                if topology.io_apic.is_some() { "found" } else { "missing" },
            );
            TOPOLOGY.call_once(|| topology);
        }
        Err(why) => log::warn!("acpi: {why}: one processor, interrupts through the 8259"),
    }
    // Measured now, while nothing else is going on: the waits below use it.
    super::tsc::frequency();
}

/// What the tables said (all `None` before [`init`] or without tables).
pub fn controls() -> Controls {
    CONTROLS.get().copied().unwrap_or_default()
}

/// What the MADT said, if there was one.
pub fn topology() -> Option<&'static Topology> {
    TOPOLOGY.get()
}

/// Reads the processors and interrupt controllers from the MADT.
fn read_madt(tables: &AcpiTables<PhysicalMemory>) -> Result<Topology, &'static str> {
    let madt = tables.find_table::<Madt>().ok_or("no MADT")?;
    let madt = madt.get();
    madt.validate().map_err(|_| "the MADT's checksum is wrong")?;
    let mut topology = Topology {
        local_apic: u64::from(madt.local_apic_address),
        apic_ids: [0; MAX_CPUS],
        cpus: 0,
        left_out: 0,
        io_apic: None,
        isa: core::array::from_fn(|irq| IsaRoute { gsi: irq as u32, level: false, low: false }),
        has_8259: madt.supports_8259(),
    };
    let add = |topology: &mut Topology, id: u32, flags: u32| {
        // Bit 0: enabled. A processor only "online capable" (bit 1) is a
        // slot for one that may be added later: firmware often lists more of
        // those than there are processors, and starting one that is not
        // there would only time out.
        if flags & 1 == 0 || topology.apic_ids[..topology.cpus].contains(&id) {
            return;
        }
        if topology.cpus == MAX_CPUS {
            topology.left_out += 1;
        } else {
            topology.apic_ids[topology.cpus] = id;
            topology.cpus += 1;
        }
    };
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(cpu) => add(&mut topology, u32::from(cpu.apic_id), cpu.flags),
            MadtEntry::LocalX2Apic(cpu) => add(&mut topology, cpu.x2apic_id, cpu.flags),
            MadtEntry::LocalApicAddressOverride(entry) => {
                topology.local_apic = entry.local_apic_address
            }
            MadtEntry::IoApic(io) if io.global_system_interrupt_base == 0 => {
                topology.io_apic =
                    Some((u64::from(io.io_apic_address), io.global_system_interrupt_base));
            }
            MadtEntry::InterruptSourceOverride(entry) if entry.bus == 0 && entry.irq < 16 => {
                // Flags: polarity in bits 0-1 (3: low), trigger in 2-3 (3: level).
                let flags = entry.flags;
                topology.isa[usize::from(entry.irq)] = IsaRoute {
                    gsi: entry.global_system_interrupt,
                    low: flags & 0b11 == 0b11,
                    level: (flags >> 2) & 0b11 == 0b11,
                };
            }
            _ => {}
        }
    }
    if topology.cpus == 0 {
        return Err("the MADT lists no enabled processor");
    }
    Ok(topology)
}

/// Reaches physical memory through the bootloader's mapping of all of it.
#[derive(Debug, Clone, Copy)]
struct PhysicalMemory {
    /// Where physical address 0 is mapped.
    offset: u64,
    /// The end of the mapping (physical).
    end: u64,
}

impl PhysicalMemory {
    /// The mapping the bootloader made (see the module's doc).
    fn of(boot_info: &BootInfo) -> Option<PhysicalMemory> {
        let offset = boot_info.physical_memory_offset.into_option()?;
        let regions = boot_info.memory_regions.iter().map(|region| region.end);
        let end = regions.max().unwrap_or(0).max(1 << 32);
        Some(PhysicalMemory { offset, end })
    }

    /// The virtual address of `length` bytes at physical `address`. Panics
    /// if they are not all mapped: firmware tables always are.
    fn virtual_address(&self, address: usize, length: usize) -> u64 {
        let end = (address as u64).checked_add(length as u64);
        if end.is_none_or(|end| end > self.end) {
            panic!(
                "acpi: {length} bytes at {address:#x} are outside the mapping of physical memory"
            );
        }
        self.offset + address as u64
    }

    /// The bytes of the table whose header is at physical `address`, after
    /// the header (its AML, for a DSDT or SSDT).
    fn table_body(&self, address: usize, length: u32) -> &'static [u8] {
        let length = (length as usize).saturating_sub(HEADER_BYTES);
        let start = self.virtual_address(address + HEADER_BYTES, length);
        // SAFETY: the range is inside the mapping of physical memory (checked
        // just above), which stays for the kernel's lifetime; it holds an ACPI
        // table, in memory the firmware reserved, which no frame of the
        // kernel's allocator covers and nothing writes.
        unsafe { core::slice::from_raw_parts(start as *const u8, length) }
    }
}

/// The `acpi` crate reads tables through this. The rest of its trait serves
/// the crate's AML interpreter and register helpers, which this kernel does not
/// use (its `aml` feature is off, and [`power_off`] and [`reset`] write the
/// registers themselves): those reads find nothing (all ones, as from an absent
/// device) and writes go nowhere.
impl Handler for PhysicalMemory {
    unsafe fn map_physical_region<T>(
        &self,
        address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let start = self.virtual_address(address, size) as *mut T;
        PhysicalMapping {
            physical_start: address,
            virtual_start: NonNull::new(start)
                .expect("acpi: the mapping of physical memory is not at 0"),
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}

    fn read_u8(&self, _: usize) -> u8 {
        !0
    }
    fn read_u16(&self, _: usize) -> u16 {
        !0
    }
    fn read_u32(&self, _: usize) -> u32 {
        !0
    }
    fn read_u64(&self, _: usize) -> u64 {
        !0
    }
    fn write_u8(&self, _: usize, _: u8) {}
    fn write_u16(&self, _: usize, _: u16) {}
    fn write_u32(&self, _: usize, _: u32) {}
    fn write_u64(&self, _: usize, _: u64) {}
    fn read_io_u8(&self, _: u16) -> u8 {
        !0
    }
    fn read_io_u16(&self, _: u16) -> u16 {
        !0
    }
    fn read_io_u32(&self, _: u16) -> u32 {
        !0
    }
    fn write_io_u8(&self, _: u16, _: u8) {}
    fn write_io_u16(&self, _: u16, _: u16) {}
    fn write_io_u32(&self, _: u16, _: u32) {}
    fn read_pci_u8(&self, _: PciAddress, _: u16) -> u8 {
        !0
    }
    fn read_pci_u16(&self, _: PciAddress, _: u16) -> u16 {
        !0
    }
    fn read_pci_u32(&self, _: PciAddress, _: u16) -> u32 {
        !0
    }
    fn write_pci_u8(&self, _: PciAddress, _: u16, _: u8) {}
    fn write_pci_u16(&self, _: PciAddress, _: u16, _: u16) {}
    fn write_pci_u32(&self, _: PciAddress, _: u16, _: u32) {}

    fn nanos_since_boot(&self) -> u64 {
        let hz = super::tsc::frequency().max(1);
        (u128::from(super::tsc::read()) * 1_000_000_000 / u128::from(hz)) as u64
    }

    fn stall(&self, microseconds: u64) {
        spin_for_microseconds(microseconds);
    }

    fn sleep(&self, milliseconds: u64) {
        spin_for_microseconds(milliseconds.saturating_mul(1000));
    }
}

/// The tables, from the RSDP the bootloader reported.
fn open_tables(boot_info: &BootInfo) -> Result<AcpiTables<PhysicalMemory>, &'static str> {
    let rsdp = boot_info.rsdp_addr.into_option().ok_or("the firmware reported no RSDP")?;
    let memory = *MEMORY.get().ok_or("physical memory is not mapped")?;
    // SAFETY: `rsdp` is where the bootloader found the RSDP (by its signature
    // and checksum, or from UEFI's configuration table); the crate reads it and
    // every table it points to through `memory`, which checks each range is
    // mapped.
    unsafe { AcpiTables::from_rsdp(memory, rsdp as usize) }.map_err(|_| "the RSDP is not valid")
}

/// Finds the FADT and `\_S5`.
fn read_controls(tables: &AcpiTables<PhysicalMemory>) -> Result<Controls, &'static str> {
    let memory = *MEMORY.get().ok_or("physical memory is not mapped")?;
    let fadt = tables.find_table::<Fadt>().ok_or("no FADT")?;
    fadt.validate().map_err(|_| "the FADT's checksum is wrong")?;
    let dsdt = tables.dsdt().map_err(|_| "no DSDT")?;
    let s5 = power::find_s5(memory.table_body(dsdt.phys_address, dsdt.length)).or_else(|| {
        let mut ssdts = tables.ssdts();
        ssdts.find_map(|ssdt| power::find_s5(memory.table_body(ssdt.phys_address, ssdt.length)))
    });
    // PM1 control is read as well as written: I/O or memory only.
    let pm1 = |address: GenericAddress| register(address).filter(|r| r.space != Space::PciConfig);
    Ok(Controls {
        reset: reset_register(&fadt),
        pm1a: fadt.pm1a_control_block().ok().and_then(pm1),
        pm1b: fadt.pm1b_control_block().ok().flatten().and_then(pm1),
        s5,
        enable: acpi_enable(&fadt),
    })
}

/// The FADT's reset register, if it is long enough to have one (ACPI 2.0
/// on) and says the register works.
fn reset_register(fadt: &Fadt) -> Option<Reset> {
    let header = fadt.header();
    let present = header.revision >= 2 && header.length >= FADT_RESET_END;
    if !present || !{ fadt.flags }.supports_system_reset_via_fadt() {
        return None;
    }
    let register = register(fadt.reset_register().ok()?)?;
    Some(Reset { register: Register { bits: 8, ..register }, value: fadt.reset_value })
}

/// The SMI command port and the value that enters ACPI mode, if the machine
/// has a legacy mode to leave.
fn acpi_enable(fadt: &Fadt) -> Option<AcpiEnable> {
    let port = u16::try_from(fadt.smi_cmd_port).ok().filter(|&port| port != 0)?;
    let value = fadt.acpi_enable;
    (value != 0).then_some(AcpiEnable { port, value })
}

/// A register from a Generic Address Structure, if it is one this kernel can
/// write: I/O, memory or PCI configuration space, 8 to 32 bits wide (64 for
/// memory), at offset 0.
fn register(address: GenericAddress) -> Option<Register> {
    let space = match address.address_space {
        AddressSpace::SystemIo => Space::Io,
        AddressSpace::SystemMemory => Space::Memory,
        AddressSpace::PciConfigSpace => Space::PciConfig,
        _ => return None,
    };
    let bits = match (address.bit_width, address.access_size) {
        (8 | 16 | 32, _) => address.bit_width,
        (64, _) if space == Space::Memory => 64,
        (_, 1) => 8,
        (_, 2) => 16,
        (_, 3) => 32,
        _ => return None,
    };
    if address.bit_offset != 0 || address.address == 0 {
        return None;
    }
    if space == Space::Io && address.address > u64::from(u16::MAX) {
        return None;
    }
    Some(Register { space, address: address.address, bits })
}

/// Switches the machine off through ACPI. Returns only if it could not: no
/// tables, no `\_S5`, or the chipset did not switch off within a second.
pub fn power_off() {
    let controls = controls();
    let (Some(pm1a), Some(SleepTypes { a, b })) = (controls.pm1a, controls.s5) else {
        return;
    };
    x86_64::instructions::interrupts::disable();
    if let Some(enable) = controls.enable {
        enter_acpi_mode(pm1a, enable);
    }
    let pm1 = [Some((pm1a, a)), controls.pm1b.map(|pm1b| (pm1b, b))];
    let values = pm1.map(|register| {
        register.map(|(register, sleep_type)| {
            let value = power::sleep_type_value(read(register) as u16, sleep_type);
            write(register, u64::from(value));
            (register, value)
        })
    });
    for (register, value) in values.into_iter().flatten() {
        write(register, u64::from(value | power::SLEEP_ENABLE));
    }
    spin_for_microseconds(1_000_000);
}

/// Asks the firmware for ACPI mode if PM1a control says the machine is not in
/// it, and waits up to a second for it.
fn enter_acpi_mode(pm1a: Register, enable: AcpiEnable) {
    let in_acpi_mode = || read(pm1a) as u16 & power::SCI_ENABLE != 0;
    if in_acpi_mode() {
        return;
    }
    let port = Register { space: Space::Io, address: u64::from(enable.port), bits: 8 };
    write(port, u64::from(enable.value));
    for _ in 0..1000 {
        if in_acpi_mode() {
            return;
        }
        spin_for_microseconds(1000);
    }
}

/// Resets the machine through the FADT's reset register. Returns only if it
/// could not: no register, or the machine did not reset within half a second.
pub fn reset() {
    let Some(Reset { register, value }) = controls().reset else {
        return;
    };
    write(register, u64::from(value));
    spin_for_microseconds(500_000);
}

/// The keyboard controller's status and command port.
const KEYBOARD_CONTROLLER: u16 = 0x64;
/// Status bit: the controller has not yet taken the last byte written.
const INPUT_FULL: u8 = 1 << 1;
/// Command: pulse the reset line.
const PULSE_RESET: u8 = 0xfe;

/// Resets the machine through the keyboard controller's reset line, the way
/// PCs have since the AT. Returns only if the machine did not reset within
/// half a second (no controller, as on some recent machines).
pub fn keyboard_controller_reset() {
    let mut port = Port::<u8>::new(KEYBOARD_CONTROLLER);
    for _ in 0..1000 {
        // SAFETY: reading the keyboard controller's status has no effect on
        // memory (on a machine without one the bus reads all ones).
        if unsafe { port.read() } & INPUT_FULL == 0 {
            break;
        }
        spin_for_microseconds(100);
    }
    // SAFETY: this command pulses the processor's reset line; nothing in the
    // kernel needs to survive a reboot, and no memory is touched.
    unsafe { port.write(PULSE_RESET) };
    spin_for_microseconds(500_000);
}

/// Reads `register`.
fn read(register: Register) -> u64 {
    match register.space {
        Space::Io => {
            let port = register.address as u16;
            // SAFETY: the firmware's FADT names this port as an ACPI register
            // (PM1 control); reading it has no effect on memory.
            unsafe {
                match register.bits {
                    8 => u64::from(Port::<u8>::new(port).read()),
                    16 => u64::from(Port::<u16>::new(port).read()),
                    _ => u64::from(Port::<u32>::new(port).read()),
                }
            }
        }
        Space::Memory => match memory_register(register) {
            // SAFETY: `memory_register` checked the address is in the mapping
            // of physical memory and aligned; the FADT names it a register.
            Some(address) => unsafe {
                match register.bits {
                    8 => u64::from((address as *const u8).read_volatile()),
                    16 => u64::from((address as *const u16).read_volatile()),
                    32 => u64::from((address as *const u32).read_volatile()),
                    _ => (address as *const u64).read_volatile(),
                }
            },
            None => 0,
        },
        // Only the reset register may be in PCI space (`read_controls`), and it
        // is only written.
        Space::PciConfig => 0,
    }
}

/// Writes `value` to `register`.
fn write(register: Register, value: u64) {
    match register.space {
        Space::Io => {
            let port = register.address as u16;
            // SAFETY: the firmware's FADT names this port as the register for
            // this write (PM1 control, SMI command or reset); the write
            // switches the machine off, hands it to ACPI or resets it, and
            // touches no memory.
            unsafe {
                match register.bits {
                    8 => Port::<u8>::new(port).write(value as u8),
                    16 => Port::<u16>::new(port).write(value as u16),
                    _ => Port::<u32>::new(port).write(value as u32),
                }
            }
        }
        Space::Memory => {
            if let Some(address) = memory_register(register) {
                // SAFETY: `memory_register` checked the address is in the
                // mapping of physical memory and aligned; the firmware's FADT
                // names it the register for this write.
                unsafe {
                    match register.bits {
                        8 => (address as *mut u8).write_volatile(value as u8),
                        16 => (address as *mut u16).write_volatile(value as u16),
                        32 => (address as *mut u32).write_volatile(value as u32),
                        _ => (address as *mut u64).write_volatile(value),
                    }
                }
            }
        }
        Space::PciConfig => write_pci_config_byte(register.address, value as u8),
    }
}

/// The virtual address of a memory-space register, if it is mapped and
/// aligned to its width.
fn memory_register(register: Register) -> Option<u64> {
    let memory = MEMORY.get()?;
    let bytes = u64::from(register.bits / 8);
    let mapped = register.address.checked_add(bytes)? <= memory.end;
    let aligned = register.address.is_multiple_of(bytes);
    (mapped && aligned).then_some(memory.offset + register.address)
}

/// Writes one byte of PCI configuration space (segment 0, bus 0), addressed as
/// a Generic Address Structure does: device in bits 32-47, function in 16-31,
/// offset in 0-15. Through configuration mechanism 1 (ports 0xcf8 and 0xcfc).
fn write_pci_config_byte(address: u64, value: u8) {
    let device = (address >> 32) as u32 & 0x1f;
    let function = (address >> 16) as u32 & 0x7;
    let offset = address as u32 & 0xff;
    let selector = 1 << 31 | device << 11 | function << 8 | (offset & 0xfc);
    // SAFETY: ports 0xcf8/0xcfc are the PCI configuration mechanism on every
    // PC; the firmware's FADT names this byte as the reset register, and
    // writing it resets the machine. No memory is touched.
    unsafe {
        Port::<u32>::new(0xcf8).write(selector);
        Port::<u8>::new(0xcfc + (offset & 3) as u16).write(value);
    }
}

/// Busy-waits `microseconds` by the time-stamp counter.
fn spin_for_microseconds(microseconds: u64) {
    let ticks = u128::from(super::tsc::frequency()) * u128::from(microseconds) / 1_000_000;
    let start = super::tsc::read();
    while u128::from(super::tsc::read().wrapping_sub(start)) < ticks {
        core::hint::spin_loop();
    }
}
