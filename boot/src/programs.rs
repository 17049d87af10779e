//! The user programs, and the boot ramdisk that carries them with the command line.
//!
//! The bootloader hands the kernel one ramdisk; ours is a small archive. Its
//! first line is the kernel command line (so a kernel that only knows the command
//! line still reads it), then each file follows as a header line
//! `file NAME SIZE` and exactly SIZE bytes of content:
//!
//! ```text
//! once log=debug\n
//! file init 12345\n<12345 bytes>file probe 23456\n<23456 bytes>
//! ```
//!
//! The kernel's reader is `kernel/src/ramdisk.rs`. The programs are the binaries
//! of the `user` crate, built for the kernel target and stripped. The kernel gets
//! all of them; a test kernel only those its source asks for with a line
//! `//! programs: NAME...` (every byte of ramdisk counts on the smallest machine
//! the tests boot, where the bootloader itself runs short of frames).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::build;

/// The programs packed into every ramdisk, by binary name.
pub const PROGRAMS: &[&str] = &["init", "probe", "bench", "hostile", "fuzz", "crash", "swapper"];

/// One file of the archive.
pub struct File {
    /// Its name (no spaces or newlines).
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
}

/// The archive bytes for `command_line` and `files`.
pub fn archive(command_line: &str, files: &[File]) -> Vec<u8> {
    let mut bytes = format!("{}\n", command_line.replace('\n', " ")).into_bytes();
    for file in files {
        bytes.extend_from_slice(format!("file {} {}\n", file.name, file.content.len()).as_bytes());
        bytes.extend_from_slice(&file.content);
    }
    bytes
}

/// The ramdisk for `command_line` with the user programs named in `names`
/// (building them only if there are any) and the `extra` files.
pub fn ramdisk(command_line: &str, names: &[&str], extra: Vec<File>) -> Result<Vec<u8>, String> {
    if names.is_empty() {
        return Ok(archive(command_line, &extra));
    }
    let programs = user_programs()?;
    let mut chosen = Vec::new();
    for name in names {
        let program = programs.iter().find(|program| program.name == *name);
        chosen.push(program.ok_or_else(|| format!("no user program called {name:?}"))?);
        let symbols = symbols_file(name);
        chosen.extend(programs.iter().find(|program| program.name == symbols));
    }
    let mut files: Vec<File> = chosen
        .iter()
        .map(|file| File { name: file.name.clone(), content: file.content.clone() })
        .collect();
    files.extend(extra);
    Ok(archive(command_line, &files))
}

/// The name of the file with program `name`'s function symbols, which the
/// kernel reads to name the functions in a killed process's backtrace.
pub fn symbols_file(name: &str) -> String {
    format!("{}.{name}", crate::symbols::FILE)
}

/// The user programs, built (once per run of this tool) and stripped, each
/// followed by its symbols file (see [`symbols_file`]).
pub fn user_programs() -> Result<&'static [File], String> {
    static PROGRAMS_BUILT: OnceLock<Result<Vec<File>, String>> = OnceLock::new();
    PROGRAMS_BUILT.get_or_init(build_programs).as_deref().map_err(Clone::clone)
}

/// Builds the `user` crate's binaries and reads them back without symbols,
/// and their symbol tables (the same text as the kernel's, see `symbols`; a
/// few KiB a program).
fn build_programs() -> Result<Vec<File>, String> {
    let dir = build::cargo_build(&["--package", "user", "--bins"], false)?;
    let out = build::target_dir().join("images").join("programs");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut files = Vec::new();
    for name in PROGRAMS {
        let elf = dir.join(name);
        let stripped = out.join(name);
        strip_all(&elf, &stripped)?;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        files.push(File { name: name.to_string(), content: read(&stripped)? });
        let symbols = crate::symbols::table(&read(&elf)?)?;
        files.push(File { name: symbols_file(name), content: symbols });
    }
    Ok(files)
}

/// Copies `elf` to `out` without symbols or debug information (as is if the
/// toolchain's `llvm-objcopy` is missing).
fn strip_all(elf: &Path, out: &PathBuf) -> Result<(), String> {
    if let Some(objcopy) = build::llvm_objcopy() {
        let status = Command::new(objcopy).arg("--strip-all").arg(elf).arg(out).status();
        if matches!(status, Ok(s) if s.success()) {
            return Ok(());
        }
    }
    std::fs::copy(elf, out).map(|_| ()).map_err(|e| format!("cannot copy {}: {e}", elf.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_starts_with_the_command_line_then_files() {
        let files = [
            File { name: "a".into(), content: b"xy\nz".to_vec() },
            File { name: "b".into(), content: Vec::new() },
        ];
        let bytes = archive("once log=debug", &files);
        assert_eq!(bytes, b"once log=debug\nfile a 4\nxy\nzfile b 0\n");
        assert_eq!(archive("a\nb", &[]), b"a b\n");
    }
}
