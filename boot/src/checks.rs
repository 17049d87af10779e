//! Whole-system checks: the real kernel image, driven like a user would.
//!
//! The kernel binary (not a test kernel) is booted and its monitor is used over
//! the serial line: every command is typed and its answer checked, a screenshot
//! must show text, a command typed on the PS/2 keyboard must be answered, and
//! `poweroff` must end QEMU with success. Then both images
//! boot as a USB stick, through BIOS and through UEFI, to the monitor prompt.
//! Last, the kernel boots in Bochs, on a processor with PCIDs, with every CR3
//! load checked against the shadow TLB, runs its start-up programs and powers
//! off.

use std::path::Path;
use std::time::Duration;

use crate::build;
use crate::options::Run;
use crate::qemu::Outcome;
use crate::screenshot;
use crate::session::Session;
use crate::test::Tally;

/// The monitor's prompt (kernel `monitor::PROMPT`).
const PROMPT: &str = "monitor> ";
/// Time to boot to the prompt (UEFI under emulation is the slowest).
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// Time for one command's answer.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Monitor commands, each with a text its answer must contain.
const SCRIPT: &[(&str, &str)] = &[
    ("help", "poweroff"),
    ("mem", "VmPage"),
    ("vm", "page-table cache"),
    ("ptcache 2", "page-table cache: 2"),
    ("chaos on", "chaos: on"),
    ("vm", "chaos on"),
    ("chaos off", "chaos: off"),
    ("uptime", "uptime"),
    ("frobnicate", "unknown command"),
    ("ptcache 0", "expected a number"),
];

/// Runs every system check, adding results to `tally`.
pub fn run(tally: &mut Tally) -> Result<(), String> {
    println!("== system checks: the kernel image, its monitor, screen and USB boot");
    let images = build::kernel_images(&Run { headless: true, ..Run::default() })?;
    let out = build::target_dir().join("screenshots");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let result = monitor_over_serial(&images.bios, &out, tally);
    tally.record("system::monitor_over_serial", result);
    for (uefi, name) in [(false, "system::usb_stick_bios"), (true, "system::usb_stick_uefi")] {
        let image = if uefi { &images.uefi } else { &images.bios };
        let run = Run { headless: true, usb: true, uefi, ..Run::default() };
        tally.record(name, boot_to_prompt_and_power_off(image, &run, &out));
    }
    tally.record("system::boots_in_bochs_with_pcids_and_tlb_check", boots_in_bochs());
    Ok(())
}

/// Boots the kernel in Bochs with `once tlb_check`: start-up (the `init`
/// program's fork and shared-memory demonstrations) must run with PCIDs on and
/// end in a successful power-off.
fn boots_in_bochs() -> Result<(), String> {
    let kernel_args = vec!["tlb_check".to_string()];
    let run = Run { headless: true, once: true, bochs: true, kernel_args, ..Run::default() };
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
        (outcome, _) => Err(format!("Bochs run ended with {outcome:?}")),
    }
}

/// Boots to the prompt, runs [`SCRIPT`] (one test per command), takes a
/// screenshot and powers off.
fn monitor_over_serial(image: &Path, out: &Path, tally: &mut Tally) -> Result<(), String> {
    let run = Run { headless: true, ..Run::default() };
    let mut session = Session::start(image, &run, &out.join("monitor.sock"))?;
    session.expect(PROMPT, BOOT_LIMIT)?;
    for (command, expected) in SCRIPT {
        session.send(command)?;
        let answer = session.expect(PROMPT, COMMAND_LIMIT);
        let result = answer.and_then(|text| match text.contains(expected) {
            true => Ok(()),
            false => Err(format!("answer lacks {expected:?}")),
        });
        tally.record(&format!("system::monitor `{command}`"), result);
    }
    let typed =
        session.type_on_keyboard("uptime").and_then(|()| session.expect("uptime ", COMMAND_LIMIT));
    let typed = typed.and_then(|_| session.expect(PROMPT, COMMAND_LIMIT).map(|_| ()));
    tally.record("system::monitor_from_the_keyboard", typed);
    tally.record("system::screen_shows_the_console", screenshot(&mut session, out));
    session.send("poweroff")?;
    match session.finish(COMMAND_LIMIT) {
        outcome if outcome.passed() => Ok(()),
        outcome => Err(format!("poweroff ended with {outcome:?}")),
    }
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
    session.expect(PROMPT, BOOT_LIMIT)?;
    session.send("poweroff")?;
    match session.finish(COMMAND_LIMIT) {
        outcome if outcome.passed() => Ok(()),
        outcome => Err(format!("poweroff ended with {outcome:?}")),
    }
}
