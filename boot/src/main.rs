//! `boot`: builds the kernel, wraps it into BIOS and UEFI disk images with the
//! `bootloader` crate, and runs it in QEMU.
//!
//! `cargo run` at the workspace root runs this tool; `cargo run -- --help` lists
//! its options. `cargo run -- test` runs every test: host tests of the portable
//! code, then each test kernel under QEMU.

mod bench;
mod bochs;
mod build;
mod chart;
mod checks;
mod gdb;
mod options;
mod programs;
mod qemu;
mod report;
mod screenshot;
mod session;
mod swap;
mod symbols;
mod test;
mod tools;
mod usb;
mod watch;

use std::process::ExitCode;

use options::Command;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match options::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("boot: {message}\n\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help(text) => {
            println!("{text}");
            Ok(true)
        }
        Command::Run(run) => run_kernel(&run),
        Command::Test(test) => test::run_all(&test),
        Command::Bench(options) => bench::run(options),
        Command::Usb(device, uefi) => usb::flash(std::path::Path::new(&device), uefi),
        Command::Gdb(run) => gdb::debug(&run),
        Command::Image(run) => build::kernel_images(&run).map(|images| {
            println!("BIOS image: {}", images.bios.display());
            println!("UEFI image: {}", images.uefi.display());
            true
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("boot: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the kernel and boots it interactively; true if QEMU reported success
/// (or was closed by the user).
fn run_kernel(run: &options::Run) -> Result<bool, String> {
    let images = build::kernel_images(run)?;
    let image = if run.uefi { &images.uefi } else { &images.bios };
    let status = if run.bochs {
        bochs::run_interactive(image, run)?
    } else {
        qemu::run_interactive(image, run)?
    };
    Ok(status.ended_quietly())
}
