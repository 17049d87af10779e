//! Whole-system checks: the real kernel image, driven like a user would.
//!
//! The kernel binary (not a test kernel) is booted and its monitor is used over
//! the serial line: every command is typed and its answer checked (programs are
//! started, listed, killed and seen to end through it, and `bench` runs to its
//! end while a command is half typed, see `programs`), a screenshot
//! must show text, a command typed on the PS/2 keyboard must be answered, and
//! `poweroff` must switch the machine off through ACPI. Then both images
//! boot as a USB stick, through BIOS and through UEFI, to the monitor prompt,
//! and power off the same way. `reboot` must restart the machine the way its
//! ACPI tables say (q35 has a reset register, the `pc` machine and Bochs do
//! not, so the keyboard controller) and the kernel must boot again and power
//! off, under QEMU's `pc` and `q35` machines and under Bochs. Last, the kernel
//! boots in Bochs, on a processor with PCIDs, with every CR3 load checked
//! against the shadow TLB, runs its start-up programs and powers off.
//!
//! A `poweroff` passes only if the emulator itself says the guest switched the
//! machine off through ACPI (QEMU's QMP event, Bochs's log): a reset or a
//! triple fault also ends QEMU with status 0 under `-no-reboot`. A `once` run
//! passes only with the kernel's own success code. A check whose emulator or
//! firmware is missing is skipped; the missing tool is the failure (see
//! `tools`).

use std::path::Path;
use std::time::Duration;

use crate::build;
use crate::options::Run;
use crate::qemu::Outcome;
use crate::screenshot;
use crate::session::{Console, GUEST_RESET, PowerEvent, Session};
use crate::test::Tally;
use crate::tools::Missing;

mod programs;
use programs::{
    bench_results, prompt_kept_whole, run_and_kill_a_spinner, run_bench_while_typing,
    run_to_the_end,
};

/// The monitor's prompt (kernel `monitor::PROMPT`).
const PROMPT: &str = "monitor> ";
/// Time to boot to the prompt (UEFI under emulation is the slowest).
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// Time for one command's answer.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Monitor commands, each with a text its answer must contain.
const SCRIPT: &[(&str, &str)] = &[
    ("help", "poweroff"),
    ("mem", "per private page with its VmPage"),
    ("vm", "page-table cache"),
    ("ptcache 2", "page-table cache: 2"),
    ("vm", "page-table cache: 2 address spaces"),
    ("ptcache 8", "page-table cache: 8"),
    ("vm", "page-table cache: 8 address spaces"),
    ("chaos on", "chaos: on"),
    ("vm", "chaos on"),
    ("chaos off", "chaos: off"),
    ("uptime", " ticks)"),
    ("cpus", "cpus: 2 online of 2"),
    ("frobnicate", "unknown command"),
    ("ptcache 0", "expected a number"),
    ("programs", "probe"),
    ("run nosuch", "error: run: no program"),
    ("run probe 0xz", "error: run: the argument must be a number"),
    ("kill 0", "error: kill: 0 is the kernel"),
    ("kill 9999", "error: kill: no process 9999"),
];

/// The boot over the serial line.
fn monitor_run() -> Run {
    Run { headless: true, ..Run::default() }
}

/// The boot for `run bench`, whose fork benchmarks map 256 MiB.
fn bench_run() -> Run {
    Run { headless: true, memory: "512M".into(), ..Run::default() }
}

/// The boot as a USB stick, through UEFI or BIOS.
fn usb_run(uefi: bool) -> Run {
    Run { headless: true, usb: true, uefi, ..Run::default() }
}

/// The boot in Bochs.
fn bochs_run() -> Run {
    let kernel_args = vec!["tlb_check".to_string()];
    Run { headless: true, once: true, bochs: true, kernel_args, ..Run::default() }
}

/// The machines `reboot` is checked on: a name, the boot, and the line with
/// which the kernel must say it resets it (the way the machine's ACPI tables
/// give).
fn reboot_machines() -> [(&'static str, Run, &'static str); 3] {
    // QEMU resets the machine instead of ending (`-no-reboot` says end), so
    // that the kernel boots again.
    let qemu = |machine: &str| Run {
        headless: true,
        qemu_args: ["-machine", machine, "-action", "reboot=reset"].map(String::from).to_vec(),
        ..Run::default()
    };
    [
        ("pc", qemu("pc"), "reboot (keyboard controller)"),
        ("q35", qemu("q35"), "reboot (acpi reset register)"),
        (
            "bochs",
            Run { headless: true, bochs: true, ..Run::default() },
            "reboot (keyboard controller)",
        ),
    ]
}

/// Every boot the checks make, for the tools they need.
pub fn runs() -> Vec<Run> {
    let mut runs =
        vec![monitor_run(), bench_run(), usb_run(false), usb_run(true), bochs_run(), gdb_run()];
    runs.extend(reboot_machines().map(|(_, run, _)| run));
    runs
}

/// The boot `make gdb` makes: paused, with the GDB stub.
fn gdb_run() -> Run {
    Run { headless: true, gdb: true, ..Run::default() }
}

/// Runs every system check, adding results to `tally`; a check that needs a
/// missing tool is skipped.
pub fn run(missing: &Missing, tally: &mut Tally) {
    println!("== system checks: the kernel image, its monitor, screen and USB boot");
    if let Err(why) = run_qemu_checks(missing, tally) {
        tally.record("system::kernel_image", Err(why));
    }
    for (machine, run, reset_by) in reboot_machines() {
        let name = format!("system::reboot_and_power_off_{machine}");
        match missing.blocking(&run) {
            Some(tool) => tally.skip(&name, tool),
            None => tally.record(&name, reboot_and_power_off(&run, reset_by)),
        }
    }
    let name = "system::boots_in_bochs_with_pcids_and_tlb_check";
    match missing.blocking(&bochs_run()) {
        Some(tool) => tally.skip(name, tool),
        None => tally.record(name, boots_in_bochs()),
    }
    let name = "system::gdb_stops_at_kernel_main_with_symbols";
    match missing.blocking(&gdb_run()) {
        Some(tool) => tally.skip(name, tool),
        None => tally.record(name, gdb_stops_at_kernel_main()),
    }
}

/// What `make gdb` does, with GDB in batch mode: QEMU paused, GDB attached with
/// the kernel's symbols at its load address, the breakpoint on `kernel_main`
/// hit with its source line, a backtrace, and QEMU ended from GDB.
fn gdb_stops_at_kernel_main() -> Result<(), String> {
    let run = gdb_run();
    let images = build::kernel_images(&run)?;
    let mut qemu = crate::qemu::command(&images.bios, &run, None)?
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(crate::qemu::spawn_error)?;
    let mut arguments = vec!["-batch".to_string()];
    arguments.extend(crate::gdb::arguments(&build::kernel_binary(false)));
    arguments.extend(["-ex".into(), "bt 1".into(), "-ex".into(), "kill".into()]);
    let gdb = std::process::Command::new("gdb")
        .args(&arguments)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut text = String::new();
    let ended = gdb.map_err(|e| format!("cannot start gdb: {e}")).and_then(|mut gdb| {
        crate::watch::watch(&mut gdb, Duration::from_secs(60), |line| {
            text.push_str(line);
            text.push('\n');
        })
    });
    let _ = qemu.kill();
    let _ = qemu.wait();
    if ended? == crate::watch::Ended::TimedOut {
        return Err(format!("GDB did not finish within 60 s:\n{text}"));
    }
    let stopped = text.contains("Breakpoint 1, kernel::kernel_main")
        && text.contains("kernel/src/main.rs")
        && text.contains("#0  kernel::kernel_main");
    match stopped {
        true => Ok(()),
        false => Err(format!("GDB did not stop at kernel_main with symbols:\n{text}")),
    }
}

/// The checks under QEMU: the monitor, the screen, and the USB boots.
fn run_qemu_checks(missing: &Missing, tally: &mut Tally) -> Result<(), String> {
    let checks = [
        ("system::monitor_over_serial", monitor_run()),
        ("system::usb_stick_bios", usb_run(false)),
        ("system::usb_stick_uefi", usb_run(true)),
    ];
    let mut to_run = Vec::new();
    for (name, run) in checks {
        match missing.blocking(&run) {
            Some(tool) => tally.skip(name, tool),
            None => to_run.push((name, run)),
        }
    }
    if to_run.is_empty() {
        return Ok(());
    }
    let images = build::kernel_images(&monitor_run())?;
    let out = build::target_dir().join("screenshots");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, run) in to_run {
        let image = if run.uefi { &images.uefi } else { &images.bios };
        let result = match run.usb {
            true => boot_to_prompt_and_power_off(image, &run, &out),
            false => monitor_over_serial(image, &out, tally),
        };
        tally.record(name, result);
    }
    let names =
        ["system::monitor_runs_bench", "system::program_output_does_not_continue_the_prompt"];
    match missing.blocking(&bench_run()) {
        Some(tool) => names.iter().for_each(|name| tally.skip(name, tool)),
        None => {
            let results = match bench_from_the_monitor(&images.bios, &out) {
                Ok(transcript) => [bench_results(&transcript), prompt_kept_whole(&transcript)],
                Err(why) => [Err(why.clone()), Err(why)],
            };
            for (name, result) in names.iter().zip(results) {
                tally.record(name, result);
            }
        }
    }
    Ok(())
}

/// Boots with [`bench_run`], and runs `bench` from the monitor while typing
/// (see [`run_bench_while_typing`]).
fn bench_from_the_monitor(image: &Path, out: &Path) -> Result<String, String> {
    let mut session = Session::start(image, &bench_run(), &out.join("bench.sock"))?;
    boot_to_prompt(session.console())?;
    run_bench_while_typing(session.console())
}

/// The verdict on the monitor's `poweroff`: only a power-off through ACPI, as
/// the emulator reports it, passes.
fn power_off_verdict(outcome: Outcome) -> Result<(), String> {
    match outcome {
        Outcome::PoweredOff => Ok(()),
        outcome => Err(format!("poweroff: {}", outcome.explain(COMMAND_LIMIT.as_secs()))),
    }
}

/// Boots `run` to the monitor, types `reboot`, and checks the kernel reset
/// the machine the way it says with `reset_by` (and nothing it tried did
/// nothing), boots again to the prompt, and then switches off with `poweroff`.
/// The emulator must also say the guest reset the machine: QMP's `RESET`
/// event (SeaBIOS adds one of its own after a warm reset), Bochs's log line
/// for the keyboard controller's reset command.
fn reboot_and_power_off(run: &Run, reset_by: &str) -> Result<(), String> {
    if run.bochs {
        let out = build::target_dir().join("images").join("system-bochs-monitor");
        let images = build::kernel_images_in(run, &out)?;
        let mut session = crate::bochs::Session::start(&images.bios, run)?;
        reboot_then_power_off(session.console(), reset_by)?;
        if !session.log().contains(BOCHS_KEYBOARD_RESET) {
            return Err(format!("Bochs's log lacks {BOCHS_KEYBOARD_RESET:?}"));
        }
        return power_off_verdict(session.finish(COMMAND_LIMIT));
    }
    let images = build::kernel_images(run)?;
    let socket = build::target_dir().join("images").join("reboot.sock");
    let mut session = Session::start(&images.bios, run, &socket)?;
    reboot_then_power_off(session.console(), reset_by)?;
    if !session.events().contains(&PowerEvent::Reset(GUEST_RESET.into())) {
        return Err(format!("QEMU saw no reset by the guest: {:?}", session.events()));
    }
    power_off_verdict(session.finish(COMMAND_LIMIT))
}

/// What Bochs logs when the keyboard controller is told to reset.
const BOCHS_KEYBOARD_RESET: &str = "command 0xfe: reset cpu";

/// The monitor's part of [`reboot_and_power_off`]: `reboot`, the second boot
/// to the prompt, and `poweroff` typed.
fn reboot_then_power_off(console: &mut Console, reset_by: &str) -> Result<(), String> {
    boot_to_prompt(console)?;
    console.send("reboot")?;
    let text = console.expect(PROMPT, BOOT_LIMIT)?;
    let said: Vec<&str> = text.lines().filter(|line| line.starts_with("reboot")).collect();
    if !text.contains(reset_by) || text.contains("did nothing") {
        return Err(format!("`reboot` did not reset with {reset_by:?}: {said:?}"));
    }
    if !text.contains("configuration: ") {
        return Err(format!("the kernel did not boot again after `reboot`: {said:?}"));
    }
    console.send("poweroff")
}

/// Boots the kernel in Bochs with `once tlb_check`: start-up (the `init`
/// program's fork and shared-memory demonstrations) must run with PCIDs on and
/// end in a successful power-off.
fn boots_in_bochs() -> Result<(), String> {
    let run = bochs_run();
    let out = build::target_dir().join("images").join("system-bochs");
    let images = build::kernel_images_in(&run, &out)?;
    let mut pcid = false;
    let outcome = crate::bochs::run_captured(&images.bios, &run, BOOT_LIMIT, |text| {
        pcid |= text.contains("PCID on");
        println!("    | {text}");
    })?;
    match (outcome, pcid) {
        (Outcome::Success, true) => Ok(()),
        (Outcome::Success, false) => Err("the kernel did not turn PCIDs on".into()),
        (outcome, _) => Err(format!("Bochs run: {}", outcome.explain(BOOT_LIMIT.as_secs()))),
    }
}

/// Boots to the prompt, runs [`SCRIPT`] (one test per command), takes a
/// screenshot and powers off.
fn monitor_over_serial(image: &Path, out: &Path, tally: &mut Tally) -> Result<(), String> {
    let mut session = Session::start(image, &monitor_run(), &out.join("monitor.sock"))?;
    boot_to_prompt(session.console())?;
    for (command, expected) in SCRIPT {
        session.send(command)?;
        let answer = session.expect(PROMPT, COMMAND_LIMIT);
        let result = answer.and_then(|text| match answer_of(&text).contains(expected) {
            true => Ok(()),
            false => Err(format!("answer lacks {expected:?}")),
        });
        tally.record(&format!("system::monitor `{command}`"), result);
    }
    tally.record(
        "system::monitor_runs_and_kills_a_spinner",
        run_and_kill_a_spinner(session.console()),
    );
    tally.record("system::monitor_reports_a_program_ending", run_to_the_end(session.console()));
    let typed = session.type_on_keyboard("uptime").and_then(|()| {
        let text = session.expect(PROMPT, COMMAND_LIMIT)?;
        match answer_of(&text).contains(" ticks)") {
            true => Ok(()),
            false => Err(format!("no uptime answer in {text:?}")),
        }
    });
    tally.record("system::monitor_from_the_keyboard", typed);
    tally.record("system::screen_shows_the_console", screenshot(&mut session, out));
    session.send("poweroff")?;
    power_off_verdict(session.finish(COMMAND_LIMIT))
}

/// What `init` prints last at start-up: after it comes the prompt, and the
/// console is the monitor's (programs' output would cut the prompt line, and
/// the monitor would show the prompt again, see kernel `monitor::prompt`).
const INIT_DONE: &str = "init: demonstration done";

/// Waits for start-up to end (see [`INIT_DONE`]) and the prompt after it.
fn boot_to_prompt(console: &mut Console) -> Result<(), String> {
    console.expect(INIT_DONE, BOOT_LIMIT)?;
    console.expect(PROMPT, COMMAND_LIMIT).map(drop)
}

/// Types `command` and returns its answer (see [`answer_of`]), without the
/// prompt that follows it.
fn ask(session: &mut Console, command: &str) -> Result<String, String> {
    session.send(command)?;
    let text = session.expect(PROMPT, COMMAND_LIMIT)?;
    let answer = answer_of(&text);
    Ok(answer.strip_suffix(PROMPT).unwrap_or(answer).to_string())
}

/// What the monitor printed for a command: the text after the echo of the
/// typed line (its first line), so that the echo cannot pass for an answer.
fn answer_of(text: &str) -> &str {
    text.split_once('\n').map_or("", |(_, answer)| answer)
}

/// Saves the screen as `screen.png` and checks that text is on it.
fn screenshot(session: &mut Session, out: &Path) -> Result<(), String> {
    let ppm = out.join("screen.ppm");
    session.screendump(&ppm)?;
    let data = std::fs::read(&ppm).map_err(|e| format!("{}: {e}", ppm.display()))?;
    let image = screenshot::parse_ppm(&data)?;
    let png = out.join("screen.png");
    image.save_png(&png)?;
    let lit = image.lit_fraction();
    println!(
        "    screenshot {} ({}x{}, {:.2}% lit)",
        png.display(),
        image.width,
        image.height,
        lit * 100.0
    );
    if lit < 0.005 {
        return Err(format!("screen is blank ({:.3}% lit)", lit * 100.0));
    }
    Ok(())
}

/// Boots `image` with `run` to the monitor prompt, then powers off.
fn boot_to_prompt_and_power_off(image: &Path, run: &Run, out: &Path) -> Result<(), String> {
    let mut session = Session::start(image, run, &out.join("usb.sock"))?;
    boot_to_prompt(session.console())?;
    session.send("poweroff")?;
    power_off_verdict(session.finish(COMMAND_LIMIT))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_echo_of_a_command_is_not_its_answer() {
        assert_eq!(super::answer_of("uptime\r\n"), "");
        assert!(!super::answer_of("uptime\r\n").contains("uptime"));
        assert!(super::answer_of("uptime\r\nuptime 1.00 s (100 ticks)\r\n").contains(" ticks)"));
    }

    use super::*;

    #[test]
    fn only_a_power_off_through_acpi_is_a_poweroff() {
        assert_eq!(power_off_verdict(Outcome::PoweredOff), Ok(()));
        // isa-debug-exit is the tests' way out, not the monitor's.
        assert!(power_off_verdict(Outcome::Success).is_err());
        // What QEMU says after a reset or triple fault under -no-reboot.
        assert!(power_off_verdict(Outcome::Exited(Some(0))).is_err());
        assert!(power_off_verdict(Outcome::Exited(None)).is_err());
        assert!(power_off_verdict(Outcome::Failure).is_err());
        assert!(power_off_verdict(Outcome::TimedOut).is_err());
    }

    #[test]
    fn the_checks_need_qemu_ovmf_and_bochs() {
        use crate::tools::{Host, Tool};
        let nothing = Host { path: "/nowhere".into(), plugin_path: None, exists: |_| false };
        let missing = Missing::look_for(&runs(), &nothing);
        let names: Vec<String> = missing.failures().map(|(name, _)| name).collect();
        assert!(names.contains(&format!("tool::{}", Tool::Ovmf.name())));
        assert!(names.contains(&format!("tool::{}", Tool::Bochs.name())));
        assert!(names.contains(&format!("tool::{}", Tool::Gdb.name())));
        assert_eq!(missing.blocking(&usb_run(true)), Some(Tool::Qemu));
        assert_eq!(missing.blocking(&gdb_run()), Some(Tool::Qemu));
    }
}
