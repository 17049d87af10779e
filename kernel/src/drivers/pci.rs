//! PCI configuration space through configuration mechanism #1 (ports 0xcf8
//! and 0xcfc), and a search of the buses for a device.
//!
//! QEMU's default machine (`pc`) and older PCs have no memory-mapped
//! configuration space (ECAM); the port mechanism works on every PC. It reaches
//! the first 256 bytes of each function's space, which is all the `virtio`
//! PCI transport reads. The search starts at bus 0 and follows PCI-to-PCI
//! bridges to the buses behind them, instead of probing all 256 buses.

use virtio_drivers::transport::pci::bus::{
    ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};
use x86_64::instructions::port::Port;

/// The address port of configuration mechanism #1.
const ADDRESS_PORT: u16 = 0xcf8;
/// The data port of configuration mechanism #1.
const DATA_PORT: u16 = 0xcfc;
/// Offset of a bridge's bus numbers (primary, secondary, subordinate).
const BRIDGE_BUSES_OFFSET: u8 = 0x18;
/// Most buses the search visits (bus 0 and those behind bridges).
const MAX_BUSES: usize = 32;

/// Configuration space through ports 0xcf8/0xcfc.
///
/// Selecting a register and reading or writing it are two port accesses, so
/// they must not be interleaved with another user's; the kernel runs on one
/// processor, and besides start-up only a reset through the ACPI reset
/// register (which never returns) uses these ports.
#[derive(Debug, Clone, Copy)]
pub struct PortConfiguration;

impl PortConfiguration {
    /// The value for the address port that selects `register_offset` (a
    /// multiple of 4) of `function`.
    fn selector(function: DeviceFunction, register_offset: u8) -> u32 {
        1 << 31
            | u32::from(function.bus) << 16
            | u32::from(function.device & 0x1f) << 11
            | u32::from(function.function & 0x7) << 8
            | u32::from(register_offset & 0xfc)
    }
}

impl ConfigurationAccess for PortConfiguration {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: ports 0xcf8/0xcfc are configuration mechanism #1 on every PC;
        // selecting a register and reading it touch no memory (see the type's
        // doc for why nothing interleaves).
        unsafe {
            Port::<u32>::new(ADDRESS_PORT).write(Self::selector(function, register_offset));
            Port::<u32>::new(DATA_PORT).read()
        }
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: as in `read_word`. What the write does to the device is the
        // caller's business: the transport writes only the command register
        // and BARs (while sizing them, with decoding off, restored after).
        unsafe {
            Port::<u32>::new(ADDRESS_PORT).write(Self::selector(function, register_offset));
            Port::<u32>::new(DATA_PORT).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortConfiguration
    }
}

/// The first function, in bus order (bus 0, then the buses behind its bridges,
/// and so on), for which `wanted` holds.
pub fn find(
    root: &PciRoot<PortConfiguration>,
    wanted: impl Fn(&DeviceFunctionInfo) -> bool,
) -> Option<(DeviceFunction, DeviceFunctionInfo)> {
    let mut buses = [0u8; MAX_BUSES];
    let mut count = 1;
    let mut index = 0;
    while index < count {
        for (function, info) in root.enumerate_bus(buses[index]) {
            if wanted(&info) {
                return Some((function, info));
            }
            if info.header_type == HeaderType::PciPciBridge && count < MAX_BUSES {
                let numbers = PortConfiguration.read_word(function, BRIDGE_BUSES_OFFSET);
                let secondary = (numbers >> 8) as u8;
                // A bridge the firmware left unconfigured has secondary bus 0.
                if secondary != 0 && !buses[..count].contains(&secondary) {
                    buses[count] = secondary;
                    count += 1;
                }
            }
        }
        index += 1;
    }
    None
}
