//! Running QEMU: interactively, or captured with a time limit for tests.
//!
//! Every run has the isa-debug-exit device (the kernel's way to report success or
//! failure), `-no-reboot` (a triple fault ends QEMU instead of looping), and the
//! serial console on stdio. A run with `--swap` has its swap disk too (see
//! `swap`), made for the run and removed when QEMU has ended.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::options::Run;
use crate::swap::SwapImage;
use crate::watch::{self, Ended};

/// QEMU's exit status when the kernel wrote `Success` (0x10) to isa-debug-exit.
const SUCCESS_STATUS: i32 = (0x10 << 1) | 1;
/// QEMU's exit status when the kernel wrote `Failure` (0x11).
const FAILURE_STATUS: i32 = (0x11 << 1) | 1;

/// UEFI firmware images, from Debian's `ovmf` package.
pub const OVMF_PATHS: &[&str] =
    &["/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// How an emulator run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel reported success.
    Success,
    /// The kernel reported failure.
    Failure,
    /// The guest switched the machine off through ACPI, as the emulator
    /// itself reports it (QEMU's QMP, Bochs's log; see `session` and `bochs`):
    /// the monitor's `poweroff`.
    PoweredOff,
    /// The emulator ended by itself some other way, with this exit status:
    /// under `-no-reboot` a guest reset or triple fault ends QEMU with 0, as
    /// does closing its window.
    Exited(Option<i32>),
    /// The run hit its time limit and was killed.
    TimedOut,
}

impl Outcome {
    pub fn from_status(status: ExitStatus) -> Outcome {
        match status.code() {
            Some(SUCCESS_STATUS) => Outcome::Success,
            Some(FAILURE_STATUS) => Outcome::Failure,
            code => Outcome::Exited(code),
        }
    }

    /// True only when the kernel itself reported success: a check's verdict.
    pub fn passed(self) -> bool {
        self == Outcome::Success
    }

    /// True when the kernel reported success, switched the machine off, or
    /// the emulator ended with 0 (its window closed by the user, or the
    /// monitor's `poweroff`): an interactive run's exit status.
    pub fn ended_quietly(self) -> bool {
        matches!(self, Outcome::Success | Outcome::PoweredOff | Outcome::Exited(Some(0)))
    }

    /// Why this is not a pass, in words, for a run limited to `limit_seconds`.
    pub fn explain(self, limit_seconds: u64) -> String {
        match self {
            Outcome::Success => "the kernel reported success".into(),
            Outcome::Failure => "the kernel reported failure".into(),
            Outcome::PoweredOff => "the machine was switched off through ACPI".into(),
            Outcome::TimedOut => format!("timed out after {limit_seconds} s"),
            Outcome::Exited(code) => format!(
                "the emulator exited with {code:?} without the kernel's verdict \
                 (a reset, a triple fault, or an error)"
            ),
        }
    }
}

/// The OVMF firmware, or an error saying which package provides it.
fn ovmf() -> Result<PathBuf, String> {
    OVMF_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or_else(|| "UEFI firmware not found: install it with `apt-get install ovmf`".into())
}

/// The processor QEMU presents unless told otherwise (see [`command`]).
pub const DEFAULT_CPU: &str = "qemu64,vendor=GenuineIntel,+smep,+smap,+umip";

/// The QEMU command line for `image` with `run`'s options; `swap` is the
/// swap disk made for it ([`SwapImage::for_run`]), which must outlive QEMU.
/// A run that asks for a swap disk and has none is an error.
pub fn command(image: &Path, run: &Run, swap: Option<&SwapImage>) -> Result<Command, String> {
    let mut qemu = Command::new("qemu-system-x86_64");
    if run.usb {
        qemu.arg("-drive").arg(format!("if=none,id=stick,format=raw,file={}", image.display()));
        qemu.args(["-device", "qemu-xhci", "-device", "usb-storage,drive=stick,bootindex=1"]);
    } else {
        qemu.arg("-drive").arg(format!("format=raw,file={}", image.display()));
    }
    qemu.args(["-serial", "stdio", "-no-reboot", "-m", &run.memory]);
    qemu.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    qemu.args(["-accel", &run.accel]);
    if !run.qemu_sets("-smp") {
        qemu.args(["-smp", &run.smp.to_string()]);
    }
    if !run.qemu_sets("-cpu") {
        // QEMU reserves memory below 1 TiB for CPUs of AMD's vendor (its default
        // `qemu64` is one), and the bootloader then spends about 4 MiB of page
        // tables mapping physical memory up to it: too much for small machines.
        // SMEP, SMAP and UMIP, which TCG implements, so that the kernel's
        // protections run (and are tested) by default.
        qemu.args(["-cpu", DEFAULT_CPU]);
    }
    if run.headless || !has_display() {
        qemu.args(["-display", "none"]);
    }
    if run.uefi {
        qemu.arg("-bios").arg(ovmf()?);
    }
    match (run.swap.is_some(), swap) {
        (_, Some(swap)) => {
            qemu.args(swap.qemu_args());
        }
        (true, None) => return Err("qemu: --swap was asked for, but no disk was made".into()),
        (false, None) => {}
    }
    if run.gdb {
        qemu.args(["-s", "-S"]);
    }
    qemu.args(&run.qemu_args);
    Ok(qemu)
}

/// Whether a graphical display is there for a QEMU window.
fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Explains a failure to start QEMU.
pub fn spawn_error(error: std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        "qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`".into()
    } else {
        format!("cannot start qemu-system-x86_64: {error}")
    }
}

/// Boots `image` with the terminal attached; returns how QEMU ended.
pub fn run_interactive(image: &Path, run: &Run) -> Result<Outcome, String> {
    if run.gdb {
        let elf = crate::build::kernel_binary(run.release);
        let command = crate::gdb::arguments(&elf).join("' '");
        eprintln!("boot: QEMU is paused, waiting for GDB on localhost:1234; attach with");
        eprintln!("  gdb '{command}'");
    }
    if !run.headless && !has_display() {
        eprintln!(
            "boot: no graphical display found: running without a window (serial console here)"
        );
    }
    let swap = SwapImage::for_run(run)?;
    let status = command(image, run, swap.as_ref())?.status().map_err(spawn_error)?;
    Ok(Outcome::from_status(status))
}

/// Boots `image` headless with a time limit, passing each serial line to
/// `line` as it arrives; returns how the run ended.
pub fn run_captured(
    image: &Path,
    run: &Run,
    limit: Duration,
    line: impl FnMut(&str),
) -> Result<Outcome, String> {
    let swap = SwapImage::for_run(run)?;
    let mut child = command(image, run, swap.as_ref())?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    Ok(match watch::watch(&mut child, limit, line)? {
        Ended::Exited(status) => Outcome::from_status(status),
        Ended::TimedOut => Outcome::TimedOut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// An exit status with `code`, as `wait` reports it.
    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn only_the_kernels_success_code_passes() {
        assert_eq!(Outcome::from_status(exited(33)), Outcome::Success);
        assert!(Outcome::from_status(exited(33)).passed());
        // A reset or triple fault under -no-reboot: QEMU exits with 0.
        assert!(!Outcome::from_status(exited(0)).passed());
        assert!(!Outcome::from_status(exited(35)).passed());
        assert!(!Outcome::from_status(exited(1)).passed());
        assert!(!Outcome::TimedOut.passed());
        assert!(Outcome::from_status(exited(0)).ended_quietly(), "a closed window");
    }

    #[test]
    fn a_swap_disk_is_attached_as_virtio_blk_only_when_made() {
        let run = Run { swap: Some("16M".into()), ..Run::default() };
        let image = Path::new("bios.img");
        assert!(command(image, &run, None).is_err(), "asked for, not made");
        let target = std::env::temp_dir().join(format!("boot-qemu-{}", std::process::id()));
        let swap = SwapImage::create(&target, "16M").unwrap();
        let qemu = command(image, &run, Some(&swap)).unwrap();
        let args: Vec<String> =
            qemu.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        let drive = format!("if=none,id=swap,format=raw,file={}", swap.path().display());
        assert!(args.windows(2).any(|pair| pair == ["-drive", drive.as_str()]), "{args:?}");
        assert!(args.windows(2).any(|pair| pair == ["-device", "virtio-blk-pci,drive=swap"]));
        let plain = command(image, &Run::default(), None).unwrap();
        assert!(!plain.get_args().any(|arg| arg.to_string_lossy().contains("virtio-blk")));
        drop(swap);
        std::fs::remove_dir_all(target).unwrap();
    }
}
