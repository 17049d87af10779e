//! `cargo run -- gdb` (`make gdb`): the kernel under GDB in one command.
//!
//! QEMU starts paused with its GDB stub on localhost:1234 and the serial
//! console going to `target/gdb-serial.log`; GDB starts on this terminal,
//! attached, with the kernel's symbols loaded at the address the bootloader
//! puts the kernel (it is position independent, linked at 0, loaded at
//! [`KERNEL_BASE`]) and a hardware breakpoint on `kernel_main` (software
//! breakpoints set before the bootloader copies the kernel in would be
//! overwritten). When GDB exits, QEMU is stopped.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::build;
use crate::options::Run;

/// Where the bootloader loads the kernel (`BOOTLOADER_CONFIG`'s kernel base).
pub const KERNEL_BASE: u64 = 0xffff_8000_0000_0000;

/// GDB's arguments for the kernel ELF `elf`: attach, load the symbols where
/// the kernel runs, stop at `kernel_main`.
pub fn arguments(elf: &Path) -> Vec<String> {
    [
        "-q".to_string(),
        "-iex".into(),
        "set confirm off".into(),
        "-ex".into(),
        "target remote localhost:1234".into(),
        "-ex".into(),
        format!("add-symbol-file {} -o {KERNEL_BASE:#x}", elf.display()),
        "-ex".into(),
        "hbreak kernel_main".into(),
        "-ex".into(),
        "continue".into(),
    ]
    .into()
}

/// Builds the images, boots the chosen one paused, and runs GDB on it.
pub fn debug(run: &Run) -> Result<bool, String> {
    let images = build::kernel_images(run)?;
    let image = if run.uefi { &images.uefi } else { &images.bios };
    let log = build::target_dir().join("gdb-serial.log");
    let serial = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let swap = crate::swap::SwapImage::for_run(run)?;
    let mut qemu = crate::qemu::command(image, run, swap.as_ref())?
        .stdin(Stdio::null())
        .stdout(serial)
        .spawn()
        .map_err(crate::qemu::spawn_error)?;
    println!("boot: QEMU paused; its serial console goes to {}", log.display());
    let gdb = Command::new("gdb").args(arguments(&build::kernel_binary(run.release))).status();
    let _ = qemu.kill();
    let _ = qemu.wait();
    match gdb {
        Ok(status) => Ok(status.success()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err("gdb not found: install it with `apt-get install gdb`".into())
        }
        Err(error) => Err(format!("cannot start gdb: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_loads_the_symbols_where_the_kernel_runs_and_stops_at_its_entry() {
        let arguments = arguments(Path::new("target/kernel"));
        let joined = arguments.join(" ");
        assert!(joined.contains("add-symbol-file target/kernel -o 0xffff800000000000"));
        assert!(joined.contains("hbreak kernel_main"));
        assert!(joined.contains("target remote localhost:1234"));
    }
}
