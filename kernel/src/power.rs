//! Power-off and reset as a PC's ACPI tables describe them, in portable terms.
//!
//! The firmware says how to switch the machine off and how to reset it: the FADT
//! names the PM1 control registers, the port that puts the chipset in ACPI mode
//! and (ACPI 2.0 on) a reset register with the value to write to it; the DSDT
//! holds the `\_S5` object, whose first two values are the sleep types
//! (SLP_TYPa, SLP_TYPb) that mean "soft off". Reading the tables is the machine
//! layer's (`arch::x86_64::acpi`, through the `acpi` crate); this module holds
//! what needs no machine: what was found ([`Controls`]), the search for `\_S5`
//! in the DSDT's bytes, and the values written to PM1 control.
//!
//! `\_S5` is found by scanning the AML for `Name (_S5_, Package () {...})`, not
//! by running it. Every firmware declares it that way: a named package of
//! integer constants at the root of the namespace. An interpreter would load the
//! whole DSDT and every SSDT (executing their top-level code, with PCI
//! configuration access, mutexes and timers from the kernel) to read those few
//! bytes, and a table using an opcode it lacks would leave no power-off at all.
//! The scan reads only a `Name` whose package it can decode entirely within the
//! table, and is tested on the encodings compilers emit.

use core::fmt;

/// Where a register is (the ACPI Generic Address Structure's address spaces
/// this kernel can reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// An I/O port.
    Io,
    /// A physical memory address.
    Memory,
    /// PCI configuration space of segment 0, bus 0: device in bits 32-47,
    /// function in bits 16-31, offset in bits 0-15 of the address.
    PciConfig,
}

/// A register named by the ACPI tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// Its address space.
    pub space: Space,
    /// Its address there.
    pub address: u64,
    /// Its width in bits: 8, 16 or 32 (64 for memory).
    pub bits: u8,
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let space = match self.space {
            Space::Io => "io",
            Space::Memory => "memory",
            Space::PciConfig => "pci",
        };
        write!(f, "{space} {:#x}", self.address)
    }
}

/// The FADT's reset register and the value that resets the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// The register (ACPI requires it 8 bits wide).
    pub register: Register,
    /// What to write.
    pub value: u8,
}

/// The sleep types of `\_S5` (soft off): SLP_TYPa for PM1a control, SLP_TYPb
/// for PM1b.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepTypes {
    /// For PM1a control.
    pub a: u8,
    /// For PM1b control.
    pub b: u8,
}

/// The port and value that hand the ACPI registers from the firmware to the
/// kernel (FADT `SMI_CMD` and `ACPI_ENABLE`), when the machine starts in legacy
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiEnable {
    /// The SMI command port.
    pub port: u16,
    /// The value that asks for ACPI mode.
    pub value: u8,
}

/// What the ACPI tables say about switching off and resetting; everything
/// `None` when the machine has no (readable) tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    /// The reset register, when the FADT has one and says it works.
    pub reset: Option<Reset>,
    /// The PM1a control register.
    pub pm1a: Option<Register>,
    /// The PM1b control register, on machines that split PM1.
    pub pm1b: Option<Register>,
    /// The sleep types of `\_S5`.
    pub s5: Option<SleepTypes>,
    /// How to enter ACPI mode, on machines that start without it.
    pub enable: Option<AcpiEnable>,
}

impl Controls {
    /// Whether these say how to switch the machine off.
    pub fn can_power_off(&self) -> bool {
        self.pm1a.is_some() && self.s5.is_some()
    }
}

/// One line: `reset register io 0xcf9 value 0x6, pm1a control io 0x604, s5
/// sleep type 0`, naming what is missing.
impl fmt::Display for Controls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reset {
            Some(reset) => write!(f, "reset register {} value {:#x}", reset.register, reset.value)?,
            None => f.write_str("no reset register")?,
        }
        match self.pm1a {
            Some(register) => write!(f, ", pm1a control {register}")?,
            None => f.write_str(", no pm1a control")?,
        }
        if let Some(register) = self.pm1b {
            write!(f, ", pm1b control {register}")?;
        }
        match self.s5 {
            Some(SleepTypes { a, b }) if a == b || self.pm1b.is_none() => {
                write!(f, ", s5 sleep type {a}")
            }
            Some(SleepTypes { a, b }) => write!(f, ", s5 sleep types {a} and {b}"),
            None => f.write_str(", no \\_S5"),
        }
    }
}

/// SCI_EN in PM1 control: set while the machine is in ACPI mode.
pub const SCI_ENABLE: u16 = 1 << 0;
/// SLP_EN in PM1 control: writing it enters the sleep state SLP_TYP names.
pub const SLEEP_ENABLE: u16 = 1 << 13;
/// SLP_TYP in PM1 control: bits 10 to 12.
const SLEEP_TYPE_SHIFT: u16 = 10;
const SLEEP_TYPE_MASK: u16 = 0b111 << SLEEP_TYPE_SHIFT;

/// The first of the two writes that enter a sleep state: PM1 control as read
/// (`current`), with SLP_TYP set to `sleep_type` and SLP_EN clear. The second
/// write is the same value with [`SLEEP_ENABLE`] (as ACPICA does: some chipsets
/// want the type in place before the enable).
pub fn sleep_type_value(current: u16, sleep_type: u8) -> u16 {
    let cleared = current & !(SLEEP_TYPE_MASK | SLEEP_ENABLE);
    cleared | (u16::from(sleep_type & 0b111) << SLEEP_TYPE_SHIFT)
}

/// AML opcodes and prefixes the `\_S5` scan reads.
const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xff;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const QWORD_PREFIX: u8 = 0x0e;
/// The name segment of `\_S5`.
const S5_NAME: &[u8; 4] = b"_S5_";

/// The sleep types of `\_S5` in `aml` (a DSDT's or SSDT's bytes after the
/// header), if it declares `Name (_S5_, Package () {...})` (or `\_S5_`) with
/// integer elements that are sleep types (0 to 7). A package of one element
/// holds both, SLP_TYPa in its low byte and SLP_TYPb in the next (as ACPICA
/// reads it). Every byte read is bounds-checked: any input is safe.
pub fn find_s5(aml: &[u8]) -> Option<SleepTypes> {
    let mut from = 0;
    while let Some(found) = aml.get(from..)?.windows(4).position(|bytes| bytes == S5_NAME) {
        let name = from + found;
        if let Some(types) = s5_at(aml, name) {
            return Some(types);
        }
        from = name + 1;
    }
    None
}

/// The sleep types of the `Name (_S5_, Package)` whose name segment starts
/// at `name` in `aml`, if that is what the bytes around it are.
fn s5_at(aml: &[u8], name: usize) -> Option<SleepTypes> {
    let declared = matches!(aml.get(..name)?, [.., NAME_OP] | [.., NAME_OP, ROOT_CHAR]);
    if !declared {
        return None;
    }
    let (&opcode, rest) = aml.get(name + S5_NAME.len()..)?.split_first()?;
    if opcode != PACKAGE_OP {
        return None;
    }
    let (length, length_bytes) = package_length(rest)?;
    // The package length counts its own bytes and ends within the table.
    let package = rest.get(length_bytes..length)?;
    let (&count, elements) = package.split_first()?;
    let (first, elements) = integer(elements)?;
    let (a, b) = match count {
        0 => return None,
        1 => (first & 0xff, (first >> 8) & 0xff),
        _ => (first, integer(elements)?.0),
    };
    let sleep_type = |value: u64| u8::try_from(value).ok().filter(|&value| value <= 7);
    Some(SleepTypes { a: sleep_type(a)?, b: sleep_type(b)? })
}

/// An AML PkgLength at the start of `bytes`: the length it encodes and how
/// many bytes encode it (1 to 4).
fn package_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let (&lead, rest) = bytes.split_first()?;
    let following = usize::from(lead >> 6);
    if following == 0 {
        return Some((usize::from(lead & 0x3f), 1));
    }
    let mut length = usize::from(lead & 0x0f);
    for (index, &byte) in rest.get(..following)?.iter().enumerate() {
        length |= usize::from(byte) << (4 + 8 * index);
    }
    Some((length, 1 + following))
}

/// An AML integer constant at the start of `bytes`, and the bytes after it.
fn integer(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&opcode, rest) = bytes.split_first()?;
    let size = match opcode {
        ZERO_OP => return Some((0, rest)),
        ONE_OP => return Some((1, rest)),
        ONES_OP => return Some((u64::MAX, rest)),
        BYTE_PREFIX => 1,
        WORD_PREFIX => 2,
        DWORD_PREFIX => 4,
        QWORD_PREFIX => 8,
        _ => return None,
    };
    let data = rest.get(..size)?;
    let value = data.iter().rev().fold(0, |value, &byte| value << 8 | u64::from(byte));
    Some((value, &rest[size..]))
}

#[cfg(test)]
mod tests;
