//! Building kernels and their disk images.
//!
//! Kernels are built by a nested `cargo build` for `x86_64-unknown-none` (the host
//! tool and the kernel cannot share one build: different targets, different
//! panic runtimes). The bootloader loads large debug ELFs slowly, so the image gets
//! a copy with its debug information stripped; the unstripped ELF stays next to it
//! for GDB. The kernel command line and the user programs travel in the image's
//! ramdisk (`programs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use bootloader::{BootConfig, DiskImageBuilder};
pub use bootloader_boot_config::LevelFilter;

use crate::options::Run;

/// The target every kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// A kernel's disk images.
pub struct Images {
    /// MBR image for BIOS machines.
    pub bios: PathBuf,
    /// GPT image for UEFI machines.
    pub uefi: PathBuf,
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("boot crate has a parent").into()
}

/// The directory cargo puts kernel binaries in.
fn kernel_output_dir(release: bool) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    target_dir().join(KERNEL_TARGET).join(profile)
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs `cargo build` for the kernel target with `args`; returns the output dir.
pub fn cargo_build(args: &[&str], release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).arg("build").args(["--target", KERNEL_TARGET]).args(args);
    if release {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("kernel build failed ({status})"));
    }
    Ok(kernel_output_dir(release))
}

/// The kernel ELF (with symbols) that the last build of `release` made.
pub fn kernel_binary(release: bool) -> PathBuf {
    kernel_output_dir(release).join("kernel")
}

/// Builds the kernel binary and its images for `run`.
pub fn kernel_images(run: &Run) -> Result<Images, String> {
    kernel_images_in(run, &target_dir().join("images").join("kernel"))
}

/// Like [`kernel_images`], into the directory `out` (for images with a command
/// line of their own, which must not replace the user's).
pub fn kernel_images_in(run: &Run, out: &Path) -> Result<Images, String> {
    let dir = cargo_build(&["--package", "kernel", "--bin", "kernel"], run.release)?;
    let mut words = run.kernel_args.clone();
    if run.once {
        words.push("once".into());
    }
    let programs = crate::programs::PROGRAMS;
    make_images(&dir.join("kernel"), out, &words.join(" "), programs, true, LevelFilter::Info)
}

/// Writes `bios.img` (and `uefi.img` if `uefi`) for the kernel ELF `elf` into
/// `out`, with `command_line` and the user programs named in `programs` in the
/// ramdisk, and the bootloader logging at `bootloader_log`.
pub fn make_images(
    elf: &Path,
    out: &Path,
    command_line: &str,
    programs: &[&str],
    uefi: bool,
    bootloader_log: LevelFilter,
) -> Result<Images, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let stripped = out.join("kernel.stripped");
    strip(elf, &stripped)?;
    let ramdisk = out.join("ramdisk");
    let bytes = std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
    let symbols = crate::symbols::table(&bytes)?;
    let symbols = crate::programs::File { name: crate::symbols::FILE.into(), content: symbols };
    let archive = crate::programs::ramdisk(command_line, programs, vec![symbols])?;
    std::fs::write(&ramdisk, archive).map_err(|e| format!("cannot write ramdisk: {e}"))?;

    let mut config = BootConfig::default();
    config.log_level = bootloader_log;
    config.frame_buffer_logging = false;
    let mut builder = DiskImageBuilder::new(stripped);
    builder.set_ramdisk(ramdisk).set_boot_config(&config);
    let images = Images { bios: out.join("bios.img"), uefi: out.join("uefi.img") };
    builder.create_bios_image(&images.bios).map_err(|e| format!("BIOS image: {e:#}"))?;
    if uefi {
        builder.create_uefi_image(&images.uefi).map_err(|e| format!("UEFI image: {e:#}"))?;
    }
    Ok(images)
}

/// Copies `elf` to `out` without debug information, with the toolchain's
/// `llvm-objcopy` (component `llvm-tools-preview`), or as is if it is missing.
fn strip(elf: &Path, out: &Path) -> Result<(), String> {
    if let Some(objcopy) = llvm_objcopy() {
        let status = Command::new(objcopy).arg("--strip-debug").arg(elf).arg(out).status();
        if matches!(status, Ok(s) if s.success()) {
            return Ok(());
        }
    }
    eprintln!(
        "boot: llvm-objcopy unavailable (install llvm-tools-preview); booting the unstripped kernel"
    );
    std::fs::copy(elf, out).map(|_| ()).map_err(|e| format!("cannot copy {}: {e}", elf.display()))
}

/// The `llvm-objcopy` shipped with the active toolchain, if installed.
pub fn llvm_objcopy() -> Option<PathBuf> {
    let output = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
    let sysroot = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    let lib = sysroot.join("lib").join("rustlib");
    std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin").join("llvm-objcopy")))
        .find(|path| path.exists())
}
