//! Running Bochs: the second emulator, for the processor features QEMU's TCG
//! lacks.
//!
//! TCG does not implement process-context identifiers (CPUID.01H:ECX bit 17), so
//! under QEMU the kernel's PCID path never runs; Bochs's `corei7_haswell_4770`
//! model has PCIDs (and INVPCID), checks CR3 and CR4 writes as the architecture
//! does, and boots the same BIOS image. Bochs still drops every non-global
//! translation on each CR3 load, as QEMU does: neither emulator keeps another
//! PCID's translations, so what a run here proves is that the PCID path is
//! architecturally valid and behaves, not that no flush is missing on a
//! processor that does keep them.
//!
//! The machine: Debian's `bochs` with the Bochs BIOS (`bochsbios`) and the
//! Cirrus VGA BIOS (`vgabios`). The bootloader's BIOS stage picks the VESA mode
//! it draws on from the VGA BIOS's list, and with Bochs's standard VGA BIOS it
//! ends on an 8-bit mode it cannot draw on; the Cirrus BIOS lists 24-bit modes.
//! Bochs has no isa-debug-exit device. The kernel writes `power off (success)`
//! or `power off (failure)` to Bochs's debug port 0xE9 (`port_e9_hack`) before
//! it powers off, and Bochs prints that on its standard output, which goes to a
//! file: that line there is the verdict. Not the same line on the serial
//! console, which the kernel also writes: user programs write to the serial line
//! too, unprefixed, so a program could forge it there; they cannot reach port
//! 0xE9 (IOPL 0, no I/O permission bitmap). The serial console goes to a file
//! of its own, read as it grows.
//! The display is Bochs's text-terminal one (`bochs-term`), writing to a file
//! of its own: it complains of the 24-bit mode the bootloader picks (reported,
//! not fatal) and then draws nothing, where the VNC one corrupts its own memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::options::Run;
use crate::qemu::Outcome;

mod session;
pub use session::Session;

/// The processor model: a Haswell, which has PCIDs.
const CPU_MODEL: &str = "corei7_haswell_4770";
/// The system BIOS, from Debian's `bochsbios` package.
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// The Cirrus VGA BIOS, from Debian's `vgabios` package.
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.cirrus.bin";
/// What to install when something is missing.
const PACKAGES: &str = "apt-get install bochs bochs-term bochsbios vgabios";

/// Guest memory in MiB for Bochs, from the runner's size syntax (`128M`, `1G`).
pub fn megabytes(memory: &str) -> Result<u64, String> {
    crate::options::memory_kib(memory)
        .filter(|&kib| kib > 0 && kib % 1024 == 0)
        .map(|kib| kib / 1024)
        .ok_or_else(|| format!("Bochs takes whole MiB of memory, not {memory:?}"))
}

/// Where Bochs's first serial port goes.
#[derive(Debug, Clone, Copy)]
pub enum Serial<'a> {
    /// Output only, to this file.
    File(&'a Path),
    /// Both ways, over a TCP connection Bochs makes to this port of
    /// 127.0.0.1 (where the runner listens).
    Socket(u16),
}

impl Serial<'_> {
    /// Bochs's `com1:` setting.
    fn setting(self) -> String {
        match self {
            Serial::File(path) => format!("mode=file, dev={}", path.display()),
            Serial::Socket(port) => format!("mode=socket-client, dev=127.0.0.1:{port}"),
        }
    }
}

/// The Bochs configuration for booting `image` with `run`'s memory, the
/// serial port on `serial` and Bochs's own log to `log`. A triple fault ends
/// Bochs (a failure the runner reports), unless `resets`: then it resets the
/// machine as on a PC. Runs that reboot need that, because the Bochs BIOS
/// faults after a keyboard-controller reset on this processor model (the reset
/// is a soft one, which keeps IA32_FEATURE_CONTROL locked, and the BIOS writes
/// it again): its triple fault then makes the hard reset. The BIOS boots at
/// once (`fastboot`), without the three emulated seconds it otherwise waits
/// for F12 (its boot menu): two thirds of a short test kernel's boot.
pub fn config(
    image: &Path,
    run: &Run,
    serial: Serial,
    log: &Path,
    resets: bool,
) -> Result<String, String> {
    let size = megabytes(&run.memory)?;
    let resets = u8::from(resets);
    let count = run.smp;
    Ok(format!(
        "memory: guest={size}, host={size}
cpu: model={CPU_MODEL}, count={count}, ips=200000000, reset_on_triple_fault={resets}
romimage: file={BIOS}, options=fastboot
vgaromimage: file={VGA_BIOS}
vga: extension=cirrus
pci: enabled=1, chipset=i440fx, slot1=cirrus
ata0-master: type=disk, path={image}, mode=flat
boot: disk
com1: enabled=1, {serial}
display_library: term
panic: action=fatal, term=report
speaker: enabled=0
port_e9_hack: enabled=1
clock: sync=none, time0=local
log: {log}
",
        image = image.display(),
        serial = serial.setting(),
        log = log.display(),
    ))
}

/// Why `run` cannot be a Bochs run, if it cannot.
pub fn unsupported(run: &Run) -> Option<&'static str> {
    if run.uefi {
        Some("--bochs boots the BIOS image; there is no UEFI firmware for Bochs here")
    } else if run.usb {
        Some("--bochs attaches the image as an IDE disk, not a USB stick")
    } else if run.gdb {
        Some("--bochs has no gdb stub; Bochs has its own debugger")
    } else if !run.qemu_args.is_empty() {
        Some("--bochs takes no QEMU arguments")
    } else if run.swap.is_some() {
        Some("--bochs attaches no swap disk: --swap is a virtio-blk device, which QEMU has")
    } else {
        None
    }
}

/// The verdict in a line of Bochs's standard output, if it is one. The
/// kernel's `power off (acpi)` is only its word: [`confirmed`] holds it to
/// Bochs's.
pub fn verdict(line: &str) -> Option<Outcome> {
    match line.trim_end() {
        "power off (success)" => Some(Outcome::Success),
        "power off (failure)" => Some(Outcome::Failure),
        "power off (acpi)" => Some(Outcome::PoweredOff),
        _ => None,
    }
}

/// What Bochs's ACPI controller logs (as a panic, which ends Bochs) when the
/// guest writes SLP_EN with the sleep type of soft off.
const SOFT_POWER_OFF: &str = "ACPI control: soft power off";

/// `outcome`, unless it is a power-off that Bochs's log in `log` does not
/// confirm: then how Bochs ended (`status`).
fn confirmed(outcome: Outcome, log: &Path, status: Option<i32>) -> Outcome {
    let switched_off = || bochs_panics(log).iter().any(|message| message == SOFT_POWER_OFF);
    match outcome {
        Outcome::PoweredOff if !switched_off() => Outcome::Exited(status),
        outcome => outcome,
    }
}

/// Files of one Bochs run, beside the image.
struct Files {
    dir: PathBuf,
    config: PathBuf,
    /// The serial console: the kernel's and its programs' output.
    serial: PathBuf,
    /// Bochs's log.
    log: PathBuf,
    /// Bochs's standard output and error: its messages, and what the kernel
    /// writes to the debug port (the verdict).
    output: PathBuf,
}

impl Files {
    fn beside(image: &Path) -> Files {
        let dir = image.parent().unwrap_or(Path::new(".")).to_path_buf();
        Files {
            config: dir.join("bochsrc"),
            serial: dir.join("bochs-serial.txt"),
            log: dir.join("bochs.log"),
            output: dir.join("bochs-output.txt"),
            dir,
        }
    }
}

/// Writes the configuration and starts Bochs on it, its debugger told to run;
/// the serial port goes to `files.serial`, or to `port` of 127.0.0.1 (an
/// interactive session, which may reboot: see [`config`]).
fn start(image: &Path, run: &Run, files: &Files, port: Option<u16>) -> Result<Child, String> {
    for path in [BIOS, VGA_BIOS] {
        if !Path::new(path).exists() {
            return Err(format!("{path} not found: install Bochs with `{PACKAGES}`"));
        }
    }
    let image = image.canonicalize().map_err(|e| format!("{}: {e}", image.display()))?;
    // A Bochs that was killed leaves its lock beside the image, and the next
    // refuses to open the image.
    let mut lock = image.clone().into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(lock);
    let _ = std::fs::remove_file(&files.serial);
    let _ = std::fs::remove_file(&files.output);
    let serial = match port {
        Some(port) => Serial::Socket(port),
        None => Serial::File(&files.serial),
    };
    let text = config(&image, run, serial, &files.log, port.is_some())?;
    std::fs::write(&files.config, text)
        .map_err(|e| format!("cannot write {}: {e}", files.config.display()))?;
    // The debugger stops again at a reset made by a triple fault (see
    // `config`), and would then read commands from our closed standard input:
    // it gets a `continue` for each of a few.
    let commands = files.dir.join("bochs-commands");
    std::fs::write(&commands, "continue\n".repeat(4))
        .map_err(|e| format!("cannot write {}: {e}", commands.display()))?;
    let output = std::fs::File::create(&files.output)
        .map_err(|e| format!("cannot write {}: {e}", files.output.display()))?;
    let errors = output.try_clone().map_err(|e| format!("{}: {e}", files.output.display()))?;
    Command::new("bochs")
        .env("TERM", "xterm")
        .arg("-q")
        .arg("-f")
        .arg(&files.config)
        .arg("-rc")
        .arg(&commands)
        .current_dir(&files.dir)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                format!("bochs not found: install it with `{PACKAGES}`")
            } else {
                format!("cannot start bochs: {error}")
            }
        })
}

/// Reads what a file gained since the last call, a line at a time.
#[derive(Default)]
struct LineReader {
    offset: u64,
    partial: String,
}

impl LineReader {
    /// Passes every complete new line to `line`; with `flush`, the partial last
    /// line too.
    fn poll(&mut self, path: &Path, flush: bool, mut line: impl FnMut(&str)) {
        if let Ok(mut file) = std::fs::File::open(path) {
            let mut bytes = Vec::new();
            if file.seek(SeekFrom::Start(self.offset)).is_ok()
                && file.read_to_end(&mut bytes).is_ok()
            {
                self.offset += bytes.len() as u64;
                self.partial.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        while let Some(end) = self.partial.find('\n') {
            let text: String = self.partial.drain(..=end).collect();
            line(text.trim_end_matches(['\n', '\r']));
        }
        if flush && !self.partial.is_empty() {
            line(&std::mem::take(&mut self.partial));
        }
    }
}

/// Watches a Bochs run through its files: the serial console, passed on line
/// by line, and Bochs's standard output, where the verdict is looked for.
#[derive(Default)]
struct Watcher {
    serial: LineReader,
    output: LineReader,
}

impl Watcher {
    /// Passes the serial console's new lines to `line` (with `flush`, the
    /// partial last one too); returns the verdict if Bochs's output has it.
    fn poll(&mut self, files: &Files, flush: bool, line: impl FnMut(&str)) -> Option<Outcome> {
        self.serial.poll(&files.serial, flush, line);
        let mut outcome = None;
        self.output.poll(&files.output, false, |text| outcome = outcome.or(verdict(text)));
        outcome
    }
}

/// How long Bochs may take to end by itself after the verdict (the kernel's
/// ACPI power-off), writing out the serial console's last lines.
const GRACE: Duration = Duration::from_secs(5);

/// Boots `image` in Bochs with a time limit, passing each serial line to `line`
/// as it arrives; returns the kernel's verdict, or how Bochs ended without one
/// (then Bochs's own panic messages are passed on too, as `bochs: ...` lines).
pub fn run_captured(
    image: &Path,
    run: &Run,
    limit: Duration,
    mut line: impl FnMut(&str),
) -> Result<Outcome, String> {
    if let Some(why) = unsupported(run) {
        return Err(why.into());
    }
    let files = Files::beside(image);
    let mut child = start(image, run, &files, None)?;
    let deadline = Instant::now().checked_add(limit);
    let mut watcher = Watcher::default();
    loop {
        let exited = child.try_wait().map_err(|e| format!("waiting for bochs: {e}"))?;
        if let Some(outcome) = watcher.poll(&files, exited.is_some(), &mut line) {
            // The kernel has said how it ended; what Bochs does next (an ACPI
            // power-off it reports as a panic) does not matter, once it has
            // written out the serial console.
            let grace = Instant::now() + GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(50));
            }
            let status = match child.try_wait() {
                Ok(Some(status)) => status.code(),
                _ => None,
            };
            let _ = child.kill();
            let _ = child.wait();
            watcher.poll(&files, true, &mut line);
            return Ok(confirmed(outcome, &files.log, status));
        }
        if let Some(status) = exited {
            for text in bochs_panics(&files.log) {
                line(&format!("bochs: {text}"));
            }
            if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                line(&format!("bochs: killed by signal {signal}"));
            }
            return Ok(Outcome::Exited(status.code()));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Boots `image` in Bochs with the serial console on this terminal, until the
/// kernel powers off or Bochs ends.
pub fn run_interactive(image: &Path, run: &Run) -> Result<Outcome, String> {
    eprintln!(
        "boot: Bochs ({CPU_MODEL}): serial console here, no screen; Bochs's log in {}",
        Files::beside(image).log.display()
    );
    run_captured(image, run, Duration::MAX, |text| println!("{text}"))
}

/// Bochs's panic messages in its log (a triple fault, a missing file).
fn bochs_panics(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(">>PANIC<<").map(|(_, message)| message.trim()))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_become_megabytes() {
        assert_eq!(megabytes("128M"), Ok(128));
        assert_eq!(megabytes("21m"), Ok(21));
        assert_eq!(megabytes("2G"), Ok(2048));
        assert_eq!(megabytes("65536K"), Ok(64));
        assert_eq!(megabytes("64"), Ok(64));
        assert!(megabytes("1000K").is_err());
        assert!(megabytes("0M").is_err());
        assert!(megabytes("lots").is_err());
    }

    #[test]
    fn config_names_the_image_the_memory_and_a_pcid_processor() {
        let run = Run { memory: "256M".into(), ..Run::default() };
        let serial = Serial::File(Path::new("/x/s"));
        let text = config(Path::new("/x/bios.img"), &run, serial, Path::new("/x/l"), false)
            .expect("config");
        assert!(text.contains("reset_on_triple_fault=0"));
        assert!(text.contains("memory: guest=256, host=256\n"));
        assert!(text.contains("path=/x/bios.img, mode=flat"));
        assert!(text.contains("com1: enabled=1, mode=file, dev=/x/s\n"));
        assert!(text.contains(&format!("cpu: model={CPU_MODEL},")));
        assert!(text.contains("port_e9_hack: enabled=1\n"), "the verdict's channel");
        let serial = Serial::Socket(4321);
        let text = config(Path::new("/x/bios.img"), &run, serial, Path::new("/x/l"), true)
            .expect("config");
        assert!(text.contains("reset_on_triple_fault=1"));
        assert!(text.contains("com1: enabled=1, mode=socket-client, dev=127.0.0.1:4321\n"));
    }

    #[test]
    fn only_bios_disk_runs_are_possible() {
        assert_eq!(unsupported(&Run::default()), None);
        assert!(unsupported(&Run { uefi: true, ..Run::default() }).is_some());
        assert!(unsupported(&Run { usb: true, ..Run::default() }).is_some());
        assert!(unsupported(&Run { gdb: true, ..Run::default() }).is_some());
        let qemu_args = vec!["-smp".to_string(), "2".to_string()];
        assert!(unsupported(&Run { qemu_args, ..Run::default() }).is_some());
    }

    #[test]
    fn the_verdict_is_the_power_off_line() {
        assert_eq!(verdict("power off (success)"), Some(Outcome::Success));
        assert_eq!(verdict("power off (failure)\r"), Some(Outcome::Failure));
        assert_eq!(verdict("test power off (success) ... ok"), None);
        assert_eq!(verdict("power off"), None);
        assert_eq!(verdict("power off (acpi)"), Some(Outcome::PoweredOff));
    }

    #[test]
    fn a_power_off_counts_only_if_bochs_logs_it() {
        let dir = std::env::temp_dir().join(format!("bochs-acpi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("bochs.log");
        std::fs::write(&log, "00000000000i[ACPI  ] new PM base address: 0xb000\n").expect("write");
        assert_eq!(confirmed(Outcome::PoweredOff, &log, Some(0)), Outcome::Exited(Some(0)));
        assert_eq!(confirmed(Outcome::Success, &log, Some(1)), Outcome::Success);
        std::fs::write(&log, "01025312606p[ACPI  ] >>PANIC<< ACPI control: soft power off\n")
            .expect("write");
        assert_eq!(confirmed(Outcome::PoweredOff, &log, Some(1)), Outcome::PoweredOff);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn serial_lines_are_read_as_the_file_grows() {
        let dir = std::env::temp_dir().join(format!("bochs-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("serial.txt");
        let mut reader = LineReader::default();
        let mut lines = Vec::new();
        reader.poll(&path, false, |text| lines.push(text.to_string()));
        assert!(lines.is_empty(), "no file yet");
        std::fs::write(&path, "one\r\ntw").expect("write");
        reader.poll(&path, false, |text| lines.push(text.to_string()));
        assert_eq!(lines, ["one"]);
        std::fs::write(&path, "one\r\ntwo\nthr").expect("write");
        reader.poll(&path, false, |text| lines.push(text.to_string()));
        reader.poll(&path, true, |text| lines.push(text.to_string()));
        assert_eq!(lines, ["one", "two", "thr"]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_verdict_on_the_serial_line_is_not_one() {
        let dir = std::env::temp_dir().join(format!("bochs-verdict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = Files::beside(&dir.join("bios.img"));
        let mut watcher = Watcher::default();
        let mut lines = Vec::new();
        // A user program prints the verdict on the serial console and the
        // kernel then hangs: no verdict.
        std::fs::write(&files.serial, "probe: hello\npower off (success)\n").expect("write");
        std::fs::write(&files.output, "Bochs x86 Emulator 2.7\nNext at t=0\n").expect("write");
        let outcome = watcher.poll(&files, false, |text| lines.push(text.to_string()));
        assert_eq!(outcome, None);
        assert_eq!(lines, ["probe: hello", "power off (success)"]);
        // The kernel's debug-port line on Bochs's output is the verdict.
        std::fs::write(&files.output, "Bochs x86 Emulator 2.7\nNext at t=0\npower off (failure)\n")
            .expect("write");
        assert_eq!(watcher.poll(&files, false, |_| {}), Some(Outcome::Failure));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
