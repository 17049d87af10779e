//! Function symbols, for backtraces the kernel prints itself.
//!
//! A panic on a real PC has only the screen: no debugger and no host to
//! resolve addresses. So every ramdisk carries a `symbols` file made from the
//! kernel ELF the image boots: one line per function, sorted by address,
//! `ADDRESS SIZE NAME` (hexadecimal; the address as linked, before the
//! bootloader's load offset; the name demangled, without its hash). The kernel
//! (`kernel/src/symbols.rs`) looks return addresses up in it. About 100 bytes a
//! function: some 60 KiB for the kernel. Each user program comes with one too
//! (`symbols.NAME`, see `programs`), for the backtrace of a killed process.

use std::fmt::Write;

use xmas_elf::ElfFile;
use xmas_elf::sections::SectionData;
use xmas_elf::symbol_table::{Entry, Type};

/// The file's name in the ramdisk.
pub const FILE: &str = "symbols";
/// Longest name kept (longer ones are cut).
const NAME_LIMIT: usize = 120;

/// The symbol file for the ELF image `bytes`.
pub fn table(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let elf = ElfFile::new(bytes).map_err(|e| format!("ELF: {e}"))?;
    let mut functions: Vec<(u64, u64, String)> = Vec::new();
    for section in elf.section_iter() {
        let Ok(SectionData::SymbolTable64(entries)) = section.get_data(&elf) else { continue };
        for entry in entries {
            if entry.get_type() != Ok(Type::Func) || entry.size() == 0 || entry.value() == 0 {
                continue;
            }
            let Ok(name) = entry.get_name(&elf) else { continue };
            let mut name = format!("{:#}", rustc_demangle::demangle(name));
            name.truncate(name.floor_char_boundary(NAME_LIMIT));
            functions.push((entry.value(), entry.size(), name.replace([' ', '\n'], "")));
        }
    }
    if functions.is_empty() {
        return Err("the ELF has no function symbols (stripped?)".into());
    }
    functions.sort();
    functions.dedup_by_key(|(address, _, _)| *address);
    let mut text = String::new();
    for (address, size, name) in functions {
        let _ = writeln!(text, "{address:x} {size:x} {name}");
    }
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_s_own_functions_are_listed_sorted_and_demangled() {
        let exe = std::env::current_exe().expect("the test binary");
        let bytes = std::fs::read(exe).expect("readable");
        let text = String::from_utf8(table(&bytes).expect("a table")).expect("text");
        let addresses: Vec<u64> = text
            .lines()
            .map(|line| u64::from_str_radix(line.split(' ').next().unwrap(), 16).unwrap())
            .collect();
        assert!(addresses.windows(2).all(|pair| pair[0] < pair[1]), "not sorted");
        assert!(text.contains("boot::symbols::table\n"), "this very function is missing");
        let hashed = |line: &str| {
            line.rsplit("::").next().is_some_and(|last| {
                last.len() == 17
                    && last.starts_with('h')
                    && last[1..].chars().all(|c| c.is_ascii_hexdigit())
            })
        };
        assert!(!text.lines().any(hashed), "a hash was left in a name");
    }
}
